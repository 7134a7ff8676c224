"""Each of N worker processes enforces its share of a destination's caps.

Without a shared backend, ``hookwall run --workers N`` gives every worker its own limiter with
``concurrency`` and ``burst`` divided by N, rounded down but at least 1, and ``rate`` divided by
N. The host then never sends more than the policy's cap to a destination, except when the cap
is below N: ``concurrency: 1`` with 4 workers allows 4 in flight. The ``queue`` stays per
worker (it bounds each process's memory). Pauses and circuit states are per worker too; the
Redis backend shares all of it (and one cap, not N shares).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

from hookwall.limits.backend import Limiter, SlotHandle
from hookwall.limits.settings import LimitConfig
from hookwall.limits.verdicts import Outcome

__all__ = ["SharedByWorkers", "describe_share", "worker_share"]

_CACHE = 256  # distinct configs remembered (one per destination rule and reload, in practice)


def worker_share(config: LimitConfig, workers: int) -> LimitConfig:
    """``config`` as one of ``workers`` processes enforces it (see the module docstring)."""
    if workers <= 1:
        return config
    rate = None if config.rate is None else config.rate / workers
    burst = None
    if config.rate is not None and config.bucket_size is not None:
        burst = max(1, config.bucket_size // workers)
    return dataclasses.replace(
        config,
        concurrency=max(1, config.concurrency // workers),
        rate=rate,
        burst=burst,
    )


class SharedByWorkers:
    """A limiter that applies ``worker_share`` to every config before the inner one sees it."""

    def __init__(self, inner: Limiter, workers: int) -> None:
        self.inner = inner
        self.workers = max(1, workers)
        self._configs: OrderedDict[LimitConfig, LimitConfig] = OrderedDict()

    def share(self, config: LimitConfig) -> LimitConfig:
        # The same object for the same config: the inner limiter reconfigures on identity.
        shared = self._configs.get(config)
        if shared is None:
            shared = worker_share(config, self.workers)
            self._configs[config] = shared
            if len(self._configs) > _CACHE:
                self._configs.popitem(last=False)
        return shared

    async def acquire(self, key: str, config: LimitConfig) -> SlotHandle:
        return await self.inner.acquire(key, self.share(config))

    def report(
        self,
        key: str,
        outcome: Outcome,
        *,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        self.inner.report(key, outcome, retry_after=retry_after, status=status)

    def snapshot(self, limit: int = 1000) -> list[dict[str, object]]:
        return self.inner.snapshot(limit)


def describe_share(workers: int) -> str:
    return (
        f"each of the {workers} workers enforces concurrency and burst divided by {workers} "
        f"(rounded down, at least 1) and rate divided by {workers}; queues, pauses and circuit "
        "states are per worker"
    )
