"""Releases and outcome reports on their way to Redis.

The proxy's hooks are synchronous, so a release or a report is queued here and one background
task sends what has gathered in pipelines of script calls; a report followed by the release of
the same destination's slot travels as one ``FINISH`` call. A batch that fails is lost: its
releases come back with their leases, its reports are lost, and the limiter hears of the
failure (``BackendLimiter`` degrades).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from hookwall.limits.backend import BackendUnavailable, describe
from hookwall.limits.redis_pipeline import Arg
from hookwall.limits.redis_scripts import Scripts
from hookwall.limits.verdicts import Outcome

__all__ = ["Op", "Outbox"]

log = logging.getLogger(__name__)

_BATCH = 256  # releases/reports per pipeline


@dataclass(slots=True)
class Op:
    """A report (``outcome``, the receiver's status and Retry-After), a release, or both."""

    key: str
    outcome: Outcome | None = None
    status: int | None = None
    retry_after: float | None = None
    release: str | None = None  # the slot id to give back


class Outbox:
    def __init__(
        self,
        scripts: Scripts,
        *,
        on_failure: Callable[[BaseException], None],
        on_released: Callable[[str], None],
    ) -> None:
        self._scripts = scripts
        self._on_failure = on_failure
        self._on_released = on_released  # (key): a slot there is free again
        self._ops: deque[Op] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # nothing queued and nothing on the wire
        self._idle.set()
        self._flusher: asyncio.Task[None] | None = None

    def send(self, op: Op) -> None:
        self._ops.append(op)
        self._idle.clear()
        self._wake.set()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def flushed(self) -> None:
        """Return once everything sent so far has been answered by Redis (or has failed)."""
        await self._idle.wait()

    def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._ops:
                ops = self._take_batch()
                try:
                    await self._flush(ops)
                except BackendUnavailable as exc:
                    # Lost releases come back with their leases; lost reports are lost.
                    self._on_failure(exc)
                except Exception as exc:  # keep flushing whatever comes next
                    log.exception("sending releases and reports to Redis failed")
                    self._on_failure(BackendUnavailable(describe(exc)))
                for key in {op.key for op in ops if op.release}:
                    self._on_released(key)
            self._idle.set()

    def _take_batch(self) -> list[Op]:
        """Up to _BATCH operations; a report followed by its slot's release becomes one."""
        ops: list[Op] = []
        while self._ops and len(ops) < _BATCH:
            op = self._ops.popleft()
            if (
                op.release is not None
                and ops
                and ops[-1].key == op.key
                and ops[-1].release is None
                and ops[-1].outcome is not None
            ):
                ops[-1].release = op.release
                continue
            ops.append(op)
        return ops

    async def _flush(self, ops: list[Op]) -> None:
        scripts = self._scripts
        calls = []
        for op in ops:
            config = scripts.config_of(op.key)
            retry = -1.0 if op.retry_after is None else round(op.retry_after * 1000.0, 3)
            extra: list[Arg] = [op.outcome or "", op.status or 0, retry, op.release or ""]
            calls.append(scripts.eval("finish", scripts.keys(op.key), scripts.args(config, extra)))
        results = await asyncio.gather(*calls, return_exceptions=True)
        failure: BaseException | None = None
        for op, result in zip(ops, results, strict=True):
            if isinstance(result, BaseException):
                failure = failure or result
                continue
            scripts.observe(op.key, json.loads(result))
        if failure is not None:
            raise BackendUnavailable(describe(failure))
