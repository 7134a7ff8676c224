"""Waiting for a slot in Redis: a FIFO across replicas, by polling.

A request that cannot be admitted at once holds a ticket in the destination's queue in Redis:
a sequence number from Redis, so the queue is in the order Redis saw the requests, whichever
replica they came to. Each replica polls for its own waiters of a destination in one script
call, with a backoff from 5 ms to 50 ms (sooner when this replica releases a slot there; when
the blocker is a pause or the rate, at the time it ends, at most 250 ms later), and never past
a waiter's deadline: the queue timeout bounds every wait. A ticket is admitted only when every
live ticket ahead of it can be admitted too, so nobody overtakes an earlier request.

A poll's verdict per ticket (see ``redis_lua.POLL``): admitted, still waiting, gone (its
request was cancelled), or refused: circuit opened, paused past its deadline, timed out, or
lost (its ticket lease ran out while this replica stalled).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, KeysView
from dataclasses import dataclass, field
from typing import Any

from hookwall.limits import verdicts
from hookwall.limits.backend import BackendUnavailable, describe
from hookwall.limits.redis_pipeline import Arg
from hookwall.limits.redis_scripts import Scripts
from hookwall.limits.settings import LimitConfig
from hookwall.limits.slots import ReleasedOnce
from hookwall.limits.verdicts import Rejected

__all__ = ["HINT_MAX", "POLL_MAX", "POLL_MIN", "Pollers"]

log = logging.getLogger(__name__)

POLL_MIN = 0.005  # first poll interval for a waiting destination
POLL_MAX = 0.05  # longest interval while slots are full (a freed slot waits at most this)
HINT_MAX = 0.25  # longest sleep while the blocker is a pause or the rate
_NO_WAIT = 0.0


@dataclass(slots=True, eq=False)
class _Waiter[S]:
    ticket: str
    future: asyncio.Future[S]
    enqueued: float
    deadline: float
    cancelled: bool = False  # its request went away: the next poll takes the ticket out


@dataclass(slots=True)
class _Queue[S]:
    waiters: list[_Waiter[S]] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # poll again now
    task: asyncio.Task[None] | None = None
    answered: int = 0  # the number of the latest poll answered (see Pollers.polled)


class Pollers[S: ReleasedOnce]:
    """This replica's waiters per destination, and one polling task per destination."""

    def __init__(
        self,
        scripts: Scripts,
        *,
        admit: Callable[[str, str, float], S],
        clock: Callable[[], float],
    ) -> None:
        self._scripts = scripts
        self._admit = admit  # (key, ticket, enqueued) -> the slot the ticket became
        self._clock = clock
        self._queues: dict[str, _Queue[S]] = {}
        self._polls = itertools.count(1)  # numbers the polls, in the order they begin
        self._begun = 0  # the number of the latest poll begun
        self._answered = asyncio.Event()  # set (and replaced) after each poll's verdicts

    def queued(self, key: str) -> int:
        queue = self._queues.get(key)
        return 0 if queue is None else len(queue.waiters)

    def keys(self) -> KeysView[str]:
        return self._queues.keys()

    def poke(self, key: str) -> None:
        """Poll ``key`` now (a slot there was released, or a waiter left)."""
        queue = self._queues.get(key)
        if queue is not None:
            queue.wake.set()

    async def polled(self, key: str) -> None:
        """Poll ``key`` now; return once a poll begun after this call has been answered, so
        its verdicts are in (at once when nobody waits for ``key`` here)."""
        mark = self._begun
        self.poke(key)

        def answered() -> bool:
            queue = self._queues.get(key)
            return queue is None or not queue.waiters or queue.answered > mark

        while not answered():
            await self._answered.wait()

    def close(self) -> None:
        for queue in self._queues.values():
            if queue.task is not None:
                queue.task.cancel()

    async def wait(self, key: str, ticket: str, started: float, config: LimitConfig) -> S:
        """Wait with ``ticket`` (queued by ACQUIRE) until a poll admits or refuses it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[S] = loop.create_future()
        waiter = _Waiter(ticket, future, started, started + config.queue_timeout)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
        queue.waiters.append(waiter)
        if queue.task is None or queue.task.done():
            queue.task = loop.create_task(self._poll_loop(key, queue))
        try:
            return await future
        except BaseException:
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result().release()  # admitted as we were cancelled: give it back
            elif not future.done() or future.cancelled():
                waiter.cancelled = True  # the poller takes the ticket out of the queue
                queue.wake.set()
            raise

    # -- polling ---------------------------------------------------------------------------

    async def _poll_loop(self, key: str, queue: _Queue[S]) -> None:
        delay = POLL_MIN
        try:
            while queue.waiters:
                config = self._scripts.config_of(key)
                batch = list(queue.waiters)
                queue.wake.clear()
                number = self._begun = next(self._polls)
                try:
                    reply = await self._poll(key, config, batch)
                except BackendUnavailable as exc:
                    _fail_all(queue, exc)  # with those that queued during the call
                    return
                admitted = self._settle(key, config, queue, batch, reply)
                queue.answered = number
                self._notify()
                if not queue.waiters:
                    return
                delay = POLL_MIN if admitted else min(POLL_MAX, delay * 2)
                sleep = self._sleep(queue, delay, reply)
                if queue.wake.is_set() or await _woken(queue.wake, sleep):
                    delay = POLL_MIN  # a release here, or a waiter left: look again now
        except Exception as exc:  # never leave a waiter hanging
            log.exception("polling for %s failed", key)
            _fail_all(queue, BackendUnavailable(describe(exc)))
        finally:
            if self._queues.get(key) is queue and not queue.waiters:
                del self._queues[key]
            self._notify()

    def _notify(self) -> None:
        self._answered.set()
        self._answered = asyncio.Event()

    async def _poll(self, key: str, config: LimitConfig, batch: list[_Waiter[S]]) -> dict[str, Any]:
        now = self._clock()
        args: list[Arg] = [len(batch)]
        for waiter in batch:
            left = 0.0 if waiter.cancelled else max(0.0, waiter.deadline - now)
            args += [waiter.ticket, round(left * 1000.0, 3), int(waiter.cancelled)]
        return await self._scripts.run("poll", key, config, args)

    def _sleep(self, queue: _Queue[S], delay: float, reply: dict[str, Any]) -> float:
        """Until the next poll: the backoff, or the end of a pause or token wait (capped),
        and never past the nearest deadline."""
        sleep = delay
        hint = max(float(reply.get("pause_ms") or 0), float(reply.get("token_ms") or 0))
        if hint > 0:
            sleep = max(sleep, min(HINT_MAX, hint / 1000.0))
        nearest = min(w.deadline for w in queue.waiters)
        return min(sleep, max(_NO_WAIT, nearest - self._clock()))

    def _settle(
        self,
        key: str,
        config: LimitConfig,
        queue: _Queue[S],
        batch: list[_Waiter[S]],
        reply: dict[str, Any],
    ) -> bool:
        """Apply one poll's verdicts; True if anyone was admitted."""
        verdicts_ = reply.get("r") or []
        if not isinstance(verdicts_, list) or len(verdicts_) != len(batch):
            raise BackendUnavailable(f"unexpected reply from Redis to a poll: {verdicts_!r:.100}")
        admitted = False
        done: set[int] = set()
        for waiter, verdict in zip(batch, verdicts_, strict=True):
            if verdict == "w":
                continue
            done.add(id(waiter))
            if verdict == "a":
                admitted = True
                slot = self._admit(key, waiter.ticket, waiter.enqueued)
                if waiter.future.done():  # cancelled after the call went out: give it back
                    slot.release()
                else:
                    waiter.future.set_result(slot)
            elif waiter.future.done():
                continue
            elif verdict == "c":
                waiter.future.cancel()
            else:
                waiter.future.set_exception(_refusal(key, config, verdict, reply))
        queue.waiters[:] = [w for w in queue.waiters if id(w) not in done]
        return admitted


def _refusal(key: str, config: LimitConfig, verdict: str, reply: dict[str, Any]) -> Rejected:
    pause = float(reply.get("pause_ms") or 0) / 1000.0
    if verdict == "o":
        retry = float(reply.get("open_ms") or 0) / 1000.0 or config.circuit_cooloff
        return verdicts.circuit_open(key, retry)
    if verdict == "p":
        return verdicts.paused_past_deadline(key, pause)
    if verdict == "g":
        return verdicts.lost_place(key, config.queue_timeout)
    return verdicts.waited_too_long(key, pause if pause > 0 else config.queue_timeout)


def _fail_all(queue: _Queue[Any], exc: BaseException) -> None:
    """Every waiter of the destination gets ``exc``; none is left waiting on a dead poller."""
    for waiter in queue.waiters:
        if not waiter.future.done():
            waiter.future.set_exception(exc)
    queue.waiters.clear()


async def _woken(wake: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``wake`` is set first; True if it was."""
    try:
        async with asyncio.timeout(seconds):
            await wake.wait()
    except TimeoutError:
        return False
    return True
