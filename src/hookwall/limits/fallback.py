"""``on_backend_failure``: what the proxy's limiter does while the shared limits store is down.

``BackendLimiter`` is the Redis limiter while Redis answers; when it does not, the local
limiter (``local``, with a ``limits_backend_degraded`` warning) or 503 ``limits-unavailable``
(``refuse``). A health check every ``check_interval`` switches back once Redis answers again
(``limits_backend_restored``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Literal

from hookwall.limits import verdicts
from hookwall.limits.backend import BackendUnavailable, Limiter, SlotHandle, describe
from hookwall.limits.redis_backend import RedisLimiter
from hookwall.limits.settings import LimitConfig
from hookwall.limits.verdicts import Outcome

__all__ = ["BackendLimiter", "StatusSink"]

log = logging.getLogger(__name__)

# (level, event, fields): backend health events (limits_backend_degraded, ..._restored).
StatusSink = Callable[[str, str, dict[str, object]], None]


class BackendLimiter:
    """Redis while it answers, the fallback (or a refusal) while it does not."""

    def __init__(
        self,
        shared: RedisLimiter,
        fallback: Limiter,
        *,
        backend: str,
        on_failure: Literal["local", "refuse"] = "local",
        on_status: StatusSink | None = None,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shared = shared
        self.fallback = fallback
        self.backend = backend
        self.mode = on_failure
        self._on_status = on_status
        self._interval = check_interval
        self._clock = clock
        self.degraded = False
        self._since = 0.0
        self._health: asyncio.Task[None] | None = None
        shared.on_failure = self._degrade

    async def start(self) -> None:
        """Connect once (a Redis that is down at start is a degraded start, not a failure)."""
        try:
            await self.shared.check()
        except BackendUnavailable as exc:
            self._degrade(exc)
        else:
            self._status(
                "info",
                "limits_backend",
                {
                    "backend": self.backend,
                    "on_backend_failure": self.mode,
                    "lease_s": self.shared.lease,
                },
            )
        self.shared.start()

    async def aclose(self) -> None:
        if self._health is not None:
            self._health.cancel()
        await self.shared.aclose()

    async def acquire(self, key: str, config: LimitConfig) -> SlotHandle:
        started = self._clock()
        tried = False
        if not self.degraded:
            tried = True
            try:
                return await self.shared.acquire(key, config)
            except BackendUnavailable as exc:
                self._degrade(exc)
        if self.mode == "refuse":
            raise verdicts.limits_unavailable(max(1.0, self._interval))
        if tried:  # part of the wait may have gone to Redis: not twice
            left = config.queue_timeout - (self._clock() - started)
            config = dataclasses.replace(config, queue_timeout=max(0.0, left))
        return await self.fallback.acquire(key, config)

    def report(
        self,
        key: str,
        outcome: Outcome,
        *,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        target: Limiter = self.fallback if self.degraded else self.shared
        target.report(key, outcome, retry_after=retry_after, status=status)

    def snapshot(self, limit: int = 1000) -> list[dict[str, object]]:
        if self.degraded:
            return [row | {"backend": "local (degraded)"} for row in self.fallback.snapshot(limit)]
        local = [row for row in self.fallback.snapshot(limit) if row.get("in_flight")]
        return self.shared.snapshot(limit) + [row | {"backend": "local"} for row in local]

    def _degrade(self, exc: BaseException) -> None:
        if self.degraded:
            return
        self.degraded = True
        self._since = self._clock()
        message = "the shared limits store is unreachable; " + (
            "each process enforces the limits on its own until it is back"
            if self.mode == "local"
            else "deliveries are refused (503 limits-unavailable) until it is back"
        )
        self._status(
            "warning",
            "limits_backend_degraded",
            {
                "backend": self.backend,
                "on_backend_failure": self.mode,
                "error": describe(exc),
                "message": message,
            },
        )
        if self._health is None or self._health.done():
            self._health = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while self.degraded:
            await asyncio.sleep(self._interval)
            try:
                await self.shared.check()
            except BackendUnavailable:
                continue
            self.degraded = False
            self._status(
                "info",
                "limits_backend_restored",
                {
                    "backend": self.backend,
                    "degraded_for_s": round(self._clock() - self._since, 3),
                },
            )

    def _status(self, level: str, event: str, fields: dict[str, object]) -> None:
        if self._on_status is None:
            return
        try:
            self._on_status(level, event, fields)
        except Exception:
            log.exception("on_status failed for %s", event)
