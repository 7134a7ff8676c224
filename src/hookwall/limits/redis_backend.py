"""Flood-control state in Redis, so N replicas (or workers) enforce one cap per destination.

``RedisLimiter`` has the interface of ``DestinationLimiter`` (acquire -> slot, report,
release, snapshot) and the same semantics (see ``keygate`` and ``admission``), kept in Redis by
the Lua scripts of ``redis_lua``; each runs atomically (EVALSHA) with Redis's clock.

* **Concurrency slots with leases** (``redis_leases``): a replica that dies gives its slots
  back after at most ``lease``.
* **Waiting: a FIFO across replicas, by polling** (``redis_waiting``). Not guaranteed: the
  order of requests that reach different replicas within the same round trip; a freed slot
  may stay idle for up to one poll interval while the replica of the head of the queue polls;
  a waiter whose replica stalls for longer than the ticket lease (2 s) loses its place
  (queue-timeout), and a dead replica's waiters hold up the head of the queue for up to that
  long.
* **Rate limits**: one token bucket per destination in Redis, refilled by Redis's clock.
* **Pauses** (receivers' Retry-After) and **circuit states** (closed/open/half-open with a
  single probe across all replicas) live in Redis too; the replica whose script made a
  transition logs it, so each is logged once.

Releases and outcome reports go through the ``redis_outbox`` (the proxy's hooks are
synchronous). Any Redis error raises ``BackendUnavailable``; ``BackendLimiter`` (``fallback``)
then falls back to a local limiter (or refuses) and watches for Redis to come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from hookwall.core.denials import Reason
from hookwall.limits import verdicts
from hookwall.limits.backend import BackendUnavailable
from hookwall.limits.redis_leases import Leases
from hookwall.limits.redis_outbox import Op, Outbox
from hookwall.limits.redis_scripts import Scripts
from hookwall.limits.redis_waiting import Pollers
from hookwall.limits.settings import LimitConfig
from hookwall.limits.slots import ReleasedOnce
from hookwall.limits.verdicts import EventSink, Outcome, Rejected

__all__ = ["RedisLimiter", "RedisSlot"]


class RedisSlot(ReleasedOnce):
    """One admission from Redis; ``release`` queues the release (never blocks)."""

    __slots__ = ("_limiter", "key", "queued_ms", "slot_id")

    def __init__(self, limiter: RedisLimiter, key: str, slot_id: str, queued_ms: float) -> None:
        super().__init__()
        self._limiter = limiter
        self.key = key
        self.slot_id = slot_id
        self.queued_ms = queued_ms

    def _give_back(self) -> None:
        self._limiter._release(self)


class RedisLimiter:
    """Per-destination admission with the state in Redis; see the module docstring."""

    def __init__(
        self,
        client: Redis,
        *,
        on_event: EventSink | None = None,
        lease: float = 10.0,
        prefix: str = "hookwall:limits:",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._scripts = Scripts(client, prefix=prefix, lease=lease, on_event=on_event)
        self._clock = clock
        self._replica = secrets.token_hex(6)
        self._ids = itertools.count(1)
        self._leases = Leases(self._scripts, on_failure=self._failed)
        self._waiting: Pollers[RedisSlot] = Pollers(self._scripts, admit=self._admit, clock=clock)
        self._outbox = Outbox(
            self._scripts, on_failure=self._failed, on_released=self._waiting.poke
        )
        # Called with the error when a background call fails (BackendLimiter degrades).
        self.on_failure: Callable[[BaseException], None] | None = None

    @property
    def lease(self) -> float:
        return self._scripts.lease

    # -- lifecycle ---------------------------------------------------------------------------

    async def check(self) -> None:
        """Ping and load the scripts; BackendUnavailable when Redis cannot be used."""
        await self._scripts.load()

    def start(self) -> None:
        """Start lease renewal (and idle health pings); needs a running loop."""
        self._leases.start()

    async def aclose(self) -> None:
        self._outbox.close()
        self._leases.close()
        self._waiting.close()
        with contextlib.suppress(Exception):
            await self._scripts.client.aclose()

    # -- the limiter interface ---------------------------------------------------------------

    async def acquire(self, key: str, config: LimitConfig) -> RedisSlot:
        """Wait for a slot for ``key``; raise Rejected, or BackendUnavailable."""
        self._scripts.remember(key, config)
        started = self._clock()
        slot_id = f"{self._replica}:{next(self._ids)}"
        call = asyncio.ensure_future(self._scripts.run("acquire", key, config, [slot_id]))
        try:
            reply = await asyncio.shield(call)
        except asyncio.CancelledError:
            # The sender went away during the call: whatever Redis granted (a slot, a
            # ticket) is given back as soon as the call completes.
            call.add_done_callback(lambda done: self._abandoned(done, key, slot_id))
            raise
        kind = reply.get("r")
        if kind == "admit":
            return self._admit(key, slot_id, started)
        if kind == "reject":
            raise _rejected(key, config, reply)
        if kind != "queued":
            raise BackendUnavailable(f"unexpected reply from Redis: {kind!r}")
        return await self._waiting.wait(key, slot_id, started, config)

    def report(
        self,
        key: str,
        outcome: Outcome,
        *,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        self._outbox.send(Op(key, outcome, status, retry_after))

    def snapshot(self, limit: int = 1000) -> list[dict[str, object]]:
        """This replica's view: its own in flight and waiting, and the shared state as the
        last script call saw it (``shared_*``); ``inspect`` asks Redis."""
        rows: list[dict[str, object]] = []
        views = self._scripts.shared
        keys = sorted(set(self._leases.keys()) | set(self._waiting.keys()) | set(views))
        for key in keys[: max(0, limit)]:
            shared = views.get(key, {})
            rows.append(
                {
                    "key": key,
                    "in_flight": self._leases.count(key),
                    "queued": self._waiting.queued(key),
                    "circuit": shared.get("circuit", "closed"),
                    "failures": shared.get("failures", 0),
                    "shared_in_flight": shared.get("in_flight"),
                    "shared_queued": shared.get("queued"),
                    "backend": "redis",
                }
            )
        return rows

    # -- one destination, as this replica or Redis sees it -----------------------------------

    async def inspect(self, key: str) -> dict[str, object]:
        """The shared state of one destination, read from Redis."""
        raw = await self._scripts.eval("inspect", self._scripts.keys(key), [])
        view: dict[str, object] = json.loads(raw)
        if view.get("circuit") == "open" and not view.get("open_ms"):
            view["circuit"] = "half-open"
        return view

    def in_flight(self, key: str) -> int:
        return self._leases.count(key)

    def queued(self, key: str) -> int:
        return self._waiting.queued(key)

    async def polled(self, key: str) -> None:
        """Poll ``key``'s waiters here now; return once that poll's verdicts are in."""
        await self._waiting.polled(key)

    async def flushed(self) -> None:
        """Return once the releases and reports made so far have reached Redis."""
        await self._outbox.flushed()

    # -- admission ---------------------------------------------------------------------------

    def _abandoned(self, call: asyncio.Future[dict[str, Any]], key: str, slot_id: str) -> None:
        if call.cancelled() or call.exception() is not None:
            return  # nothing was granted, or Redis is failing (leases clean up)
        self._outbox.send(Op(key, release=slot_id))

    def _admit(self, key: str, slot_id: str, started: float) -> RedisSlot:
        self._leases.hold(key, slot_id)
        return RedisSlot(self, key, slot_id, max(0.0, self._clock() - started) * 1000.0)

    def _release(self, slot: RedisSlot) -> None:
        self._leases.drop(slot.key, slot.slot_id)
        self._outbox.send(Op(slot.key, release=slot.slot_id))

    def _failed(self, exc: BaseException) -> None:
        if self.on_failure is not None:
            self.on_failure(exc)


def _rejected(key: str, config: LimitConfig, reply: dict[str, Any]) -> Rejected:
    """ACQUIRE's refusal (``why`` names the situation) as the local limiter would word it."""
    retry = float(reply.get("retry_ms") or 0.0) / 1000.0 or config.queue_timeout
    why = reply.get("why")
    if why == "open":
        return verdicts.circuit_open(key, retry)
    if why == "probing":
        return verdicts.probing(key)
    if why == "paused":
        return verdicts.paused(key, retry)
    if why == "rate":
        return verdicts.rate_limited(key, retry)
    if why == "full":
        return verdicts.queue_full(key, retry)
    return Rejected(Reason(str(reply.get("reason"))), retry, f"{key} is busy; try again later.")
