"""Concurrent script calls to Redis share round trips (``AutoPipeline``).

The proxy's requests each make their own script call; sent one by one, N concurrent requests
would need N connections (and hit the pool's limit). Instead, the calls made while earlier
batches are on the wire go together in the next pipeline, over at most ``lanes`` connections.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hookwall.limits.backend import BackendUnavailable, describe

__all__ = ["Arg", "AutoPipeline"]

Arg = str | int | float  # a script argument
_Call = tuple[str, list[str], list[Arg], asyncio.Future[Any]]  # sha, keys, args, its answer


class AutoPipeline:
    """EVALSHA calls batched into pipelines; each call's future gets its own result, its own
    error (``NoScriptError``: the caller loads the script), or ``BackendUnavailable`` when the
    pipeline as a whole failed."""

    def __init__(self, client: Redis, lanes: int = 4, batch: int = 256) -> None:
        self._client = client
        self._lanes = lanes
        self._batch = batch
        self._busy = 0
        self._scheduled = False
        self._pending: deque[_Call] = deque()

    def call(self, sha: str, keys: list[str], args: list[Arg]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((sha, keys, args, future))
        if not self._scheduled:  # gather what this loop iteration asks for, then send
            self._scheduled = True
            loop.call_soon(self._kick)
        return future

    def _kick(self) -> None:
        self._scheduled = False
        loop = asyncio.get_running_loop()
        while self._pending and self._busy < self._lanes:
            batch = [self._pending.popleft() for _ in range(min(self._batch, len(self._pending)))]
            self._busy += 1
            loop.create_task(self._send(batch)).add_done_callback(self._sent)

    def _sent(self, _: asyncio.Task[None]) -> None:
        self._busy -= 1
        if self._pending:
            self._kick()

    async def _send(self, batch: list[_Call]) -> None:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for sha, keys, args, _ in batch:
                    pipe.evalsha(sha, len(keys), *keys, *args)
                results = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError) as exc:
            _fail(batch, exc)
            return
        except BaseException as exc:  # cancelled (shutting down): nobody is left hanging
            _fail(batch, exc)
            raise
        for (*_, future), result in zip(batch, results, strict=True):
            if future.done():  # its caller went away
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)  # NoScriptError: the caller loads the script
            else:
                future.set_result(result)


def _fail(batch: list[_Call], exc: BaseException) -> None:
    for *_, future in batch:
        if not future.done():
            future.set_exception(BackendUnavailable(describe(exc)))
