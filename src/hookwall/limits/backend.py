"""What the proxy needs from a limiter, whichever keeps the state: this process
(``DestinationLimiter``), this process's share of a host's caps (``SharedByWorkers``), or Redis
for every replica (``RedisLimiter`` behind ``BackendLimiter``).
"""

from __future__ import annotations

from typing import Protocol

from hookwall.limits.gate import Outcome
from hookwall.limits.settings import LimitConfig

__all__ = ["Limiter", "SlotHandle"]


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
