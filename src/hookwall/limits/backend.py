"""What the proxy needs from a limiter, whichever keeps the state: this process
(``DestinationLimiter``), this process's share of a host's caps (``SharedByWorkers``), or Redis
for every replica (``RedisLimiter`` behind ``BackendLimiter``); and the one error a shared
backend raises when it cannot be asked.
"""

from __future__ import annotations

from typing import Protocol

from hookwall.limits.settings import LimitConfig
from hookwall.limits.verdicts import Outcome

__all__ = ["BackendUnavailable", "Limiter", "SlotHandle", "describe"]


class BackendUnavailable(Exception):
    """Redis could not be asked (down, unreachable, too slow, or an unexpected answer)."""


def describe(exc: BaseException) -> str:
    """An error as one short line for a log field."""
    text = str(exc) or type(exc).__name__
    return text[:300]


class SlotHandle(Protocol):
    """One admission: release it exactly once, when the upstream exchange is over."""

    queued_ms: float

    def release(self) -> None: ...


class Limiter(Protocol):
    async def acquire(self, key: str, config: LimitConfig) -> SlotHandle:
        """Wait for a slot for ``key`` under ``config``, or raise ``Rejected``."""
        ...

    def report(
        self,
        key: str,
        outcome: Outcome,
        *,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        """The outcome of one exchange (circuit breaker, receiver's Retry-After)."""
        ...

    def snapshot(self, limit: int = 1000) -> list[dict[str, object]]:
        """Per destination key: in flight, queued, pauses, circuit (limits_snapshot)."""
        ...
