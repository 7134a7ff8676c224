"""Which limiter a proxy process uses: its own (``DestinationLimiter``), its share of the
host's caps among ``--workers N`` (``SharedByWorkers``), or Redis shared by every replica
(``BackendLimiter``: ``RedisLimiter`` with a local fallback) when the policy says
``limits: {backend: redis://...}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hookwall.core.extras import install_hint
from hookwall.deliveries import logs
from hookwall.flow.runtime import log_limit_event
from hookwall.limits import DestinationLimiter
from hookwall.limits.backend import Limiter
from hookwall.limits.share import SharedByWorkers
from hookwall.policy import Policy

if TYPE_CHECKING:
    from hookwall.limits.fallback import BackendLimiter

__all__ = ["BuiltLimiter", "backend_problem", "build_limiter", "redis_missing"]


@dataclass(slots=True)
class BuiltLimiter:
    limiter: Limiter
    backend: BackendLimiter | None = None

    async def start(self) -> None:
        if self.backend is not None:
            await self.backend.start()

    async def aclose(self) -> None:
        if self.backend is not None:
            await self.backend.aclose()


def log_status(level: str, event: str, fields: dict[str, object]) -> None:
    logger = logs.get_logger()
    getattr(logger, level if level in ("info", "warning", "error") else "info")(event, **fields)


def redis_missing() -> str:
    return (
        "the policy's limits.backend needs the redis package, which is not installed: "
        f"{install_hint('redis')}, or remove limits.backend to keep the limits in each process"
    )


def backend_problem(policy: Policy) -> str | None:
    """Why this policy's shared limits cannot work here (checked at start, before any
    worker), or None. A policy without ``limits.backend`` never imports redis."""
    if policy.shared_limits is None:
        return None
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        return redis_missing()
    return None


def build_limiter(policy: Policy, workers: int = 1) -> BuiltLimiter:
    """The limiter for one process; ``workers`` > 1: one of that many on this host."""
    local: Limiter = DestinationLimiter(on_event=log_limit_event)
    if workers > 1:
        local = SharedByWorkers(local, workers)
    shared = policy.shared_limits
    if shared is None:
        return BuiltLimiter(local)
    try:  # only a policy with limits.backend needs the Redis client
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        from hookwall.limits.fallback import BackendLimiter
        from hookwall.limits.redis_backend import RedisLimiter
    except ImportError:
        raise SystemExit(f"hookwall: {redis_missing()}") from None
    client = Redis.from_url(
        shared.backend,
        password=shared.password,
        socket_timeout=shared.timeout,
        socket_connect_timeout=shared.timeout,
        retry=Retry(NoBackoff(), 0),  # a failure degrades at once; no hidden retry delays
        decode_responses=True,
        health_check_interval=0,
    )
    backend = BackendLimiter(
        RedisLimiter(client, on_event=log_limit_event, lease=shared.lease),
        local,  # the fallback: this process's share of each cap
        backend=shared.backend,
        on_failure=shared.on_backend_failure,
        on_status=log_status,
    )
    return BuiltLimiter(backend, backend)
