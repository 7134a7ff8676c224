"""The limiters the contract suite (``test_contract``) runs against, each behind one driver.

A driver owns the limiter(s) under test, one clock they share, and the events they log, and
answers the three questions the scenarios ask of every implementation alike: let everything
pending take effect (``settle``), move time (``advance``), and what is the state of a key
(``view``: in flight, queued, circuit, consecutive failures).

* ``local``: one ``DestinationLimiter`` on a fake clock; ``settle`` is ``wake()`` and a few
  loop turns (admission is synchronous).
* ``workers``: ``SharedByWorkers`` over a ``DestinationLimiter``: one of ``WORKERS`` worker
  processes, enforcing its share of every cap.
* ``redis``: ``RedisLimiter`` against a real redis-server, and ``redis-fleet``: two of them
  (two replicas), requests spread over both. Their client side runs on the fake clock (queue
  deadlines, ``queued_ms``); the scripts use Redis's clock, so ``advance`` also moves every
  stored instant of the destinations' state (cool-off end, pause end, bucket refill) back by
  the same amount, in one script. Slot and ticket leases are not moved: the replicas keep
  renewing them while time passes. ``settle`` waits for the outbox to be answered and for a
  poll of every waiting destination that began after the call. Redis's clock also runs in
  real time between steps, so scenarios keep half a second or more between an expectation
  and the boundary it sits next to (a pause's end, a token, a cool-off's whole second).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from hookwall.limits import DestinationLimiter
from hookwall.limits.backend import Limiter
from hookwall.limits.redis_backend import RedisLimiter
from hookwall.limits.share import SharedByWorkers

__all__ = [
    "IMPLEMENTATIONS",
    "WORKERS",
    "Driver",
    "Event",
    "FakeClock",
    "Kind",
    "View",
    "driver",
]

Kind = Literal["local", "workers", "redis"]
Event = tuple[str, str, dict[str, object]]  # (key, event, fields)
IMPLEMENTATIONS = ("local", "workers", "redis", "redis-fleet")
WORKERS = 2  # the workers the shared-by-workers limiter is one of
_LOOP_TURNS = 10  # enough for a resolved future's task to finish, and its cleanup to run

# Time passes in Redis: move the stored instants of every destination back by ARGV[1] ms.
_SHIFT = """
local delta = tonumber(ARGV[1])
for _, key in ipairs(redis.call('KEYS', ARGV[2])) do
  for _, field in ipairs({'open_until', 'paused_until', 'tokens_ts'}) do
    local value = tonumber(redis.call('HGET', key, field))
    if value then redis.call('HSET', key, field, value - delta) end
  end
end
"""


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True, slots=True)
class View:
    """A key's state as every implementation can tell it."""

    in_flight: int
    queued: int
    circuit: str
    failures: int


class Driver(Protocol):
    kind: Kind
    limiters: Sequence[Limiter]  # a scenario's n-th request goes to limiters[n % len]
    events: list[Event]

    def holding(self, index: int, key: str) -> int:
        """Requests ``limiters[index]`` has in flight or queued for ``key``: an arrival that
        queues adds one, the queue's head moving into a freed slot does not."""
        ...

    async def arrived(self, index: int, key: str, before: int, task: asyncio.Task[Any]) -> None:
        """Return once ``task``, an acquire sent to ``limiters[index]`` while it was
        ``holding`` ``before`` requests for ``key``, is admitted, refused or queued."""
        ...

    async def settle(self) -> None: ...

    async def advance(self, seconds: float, *, look: bool = True) -> None:
        """Move the clock; ``look=False``: without letting the limiter look (as before its
        timers fire)."""
        ...

    async def view(self, key: str) -> View: ...


class _Local:
    """``local`` and ``workers``: one ``DestinationLimiter``, bare or as one worker's share."""

    def __init__(self, kind: Kind) -> None:
        self.kind: Kind = kind
        self.clock = FakeClock()
        self.events: list[Event] = []
        self.inner = DestinationLimiter(clock=self.clock, on_event=self._log)
        limiter: Limiter = self.inner
        if kind == "workers":
            limiter = SharedByWorkers(self.inner, WORKERS)
        self.limiters: Sequence[Limiter] = [limiter]

    def _log(self, key: str, event: str, fields: dict[str, object]) -> None:
        self.events.append((key, event, fields))

    def holding(self, index: int, key: str) -> int:
        return self.inner.in_flight(key) + self.inner.queued(key)

    async def arrived(self, index: int, key: str, before: int, task: asyncio.Task[Any]) -> None:
        await _turns()  # admission is decided without a round trip: done, or waiting now

    async def settle(self) -> None:
        self.inner.wake()
        await _turns()

    async def advance(self, seconds: float, *, look: bool = True) -> None:
        self.clock.advance(seconds)
        if look:
            await self.settle()

    async def view(self, key: str) -> View:
        rows = [row for row in self.inner.snapshot() if row["key"] == key]
        if not rows:
            return View(0, 0, "closed", 0)
        row = rows[0]
        return View(
            _int(row["in_flight"]), _int(row["queued"]), str(row["circuit"]), _int(row["failures"])
        )


class _Redis:
    """``redis`` and ``redis-fleet``: ``replicas`` RedisLimiters sharing one Redis."""

    kind: Kind = "redis"

    def __init__(self, url: str, replicas: int) -> None:
        self.clock = FakeClock()
        self.events: list[Event] = []
        self.prefix = f"contract:{secrets.token_hex(4)}:"
        self.replicas = [
            RedisLimiter(_client(url), on_event=self._log, prefix=self.prefix, clock=self.clock)
            for _ in range(replicas)
        ]
        self.limiters: Sequence[Limiter] = self.replicas
        self._admin = _client(url)

    def _log(self, key: str, event: str, fields: dict[str, object]) -> None:
        self.events.append((key, event, fields))

    async def start(self) -> None:
        for replica in self.replicas:
            await replica.check()
            replica.start()

    async def aclose(self) -> None:
        for replica in self.replicas:
            await replica.aclose()
        await self._admin.aclose()

    def holding(self, index: int, key: str) -> int:
        replica = self.replicas[index]
        return replica.in_flight(key) + replica.queued(key)

    async def arrived(self, index: int, key: str, before: int, task: asyncio.Task[Any]) -> None:
        for _ in range(5000):  # the ACQUIRE round trip: admitted, refused, or a ticket
            if task.done() or self.holding(index, key) > before:
                return
            await asyncio.sleep(0.001)
        raise AssertionError("an acquire was neither admitted, refused nor queued in 5 s")

    async def settle(self) -> None:
        for _ in range(2):  # a poll's admission of a cancelled waiter is released: again
            for replica in self.replicas:
                await replica.flushed()
            for replica in self.replicas:
                await _next_polls(replica)
            await _turns()

    async def advance(self, seconds: float, *, look: bool = True) -> None:
        self.clock.advance(seconds)
        shift = self._admin.register_script(_SHIFT)
        await shift(args=[round(seconds * 1000.0, 3), f"{self.prefix}*:state"])
        if look:
            await self.settle()

    async def view(self, key: str) -> View:
        shared = await self.replicas[0].inspect(key)
        return View(
            _int(shared["in_flight"]),
            _int(shared["queued"]),
            str(shared["circuit"]),
            _int(shared["failures"]),
        )


@asynccontextmanager
async def driver(implementation: str, redis_url: Callable[[], str]) -> AsyncIterator[Driver]:
    """The driver of one implementation, for one scenario (``redis_url``: asked only if
    the implementation needs Redis)."""
    if implementation in ("local", "workers"):
        yield _Local("local" if implementation == "local" else "workers")
        return
    redis = _Redis(redis_url(), replicas=2 if implementation == "redis-fleet" else 1)
    await redis.start()
    try:
        yield redis
    finally:
        await redis.aclose()


async def _next_polls(replica: RedisLimiter) -> None:
    """Every destination this replica has waiters for, polled once from now."""
    for key in [str(row["key"]) for row in replica.snapshot() if row["queued"]]:
        await asyncio.wait_for(replica.polled(key), 5)


async def _turns() -> None:
    for _ in range(_LOOP_TURNS):
        await asyncio.sleep(0)


def _client(url: str) -> Redis:
    return Redis.from_url(
        url,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


def _int(value: object) -> int:
    assert isinstance(value, int), value
    return value
