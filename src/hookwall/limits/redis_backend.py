"""Flood-control state in Redis, so N replicas (or workers) enforce one cap per destination.

``RedisLimiter`` has the interface of ``DestinationLimiter`` (acquire -> slot, report,
release, snapshot) and the same semantics (see ``gate.py``), kept in Redis by the Lua scripts
of ``redis_lua.py``; each runs atomically (EVALSHA) with Redis's clock.

* **Concurrency slots with leases.** A slot is a member of a sorted set scored by its lease
  expiry. The replica holding it renews the lease every ``lease / 3``; a replica that dies
  (kill -9, a lost node) stops renewing and its slots come back after at most ``lease``.
* **Waiting: a FIFO across replicas, by polling.** A request that cannot be admitted at once
  takes a ticket: a sequence number from Redis, so the queue is in the order Redis saw the
  requests, whichever replica they came to. Each replica polls for its own waiters of a
  destination in one script call, with a backoff from 5 ms to 50 ms (sooner when this replica
  releases a slot there; when the blocker is a pause or the rate, at the time it ends, at
  most 250 ms later), and never past a waiter's deadline: the queue timeout bounds every
  wait. A ticket is admitted only when every live ticket ahead of it can be admitted too, so
  nobody overtakes an earlier request and a newcomer never barges past a queue.
  Not guaranteed: the order of requests that reach different replicas within the same
  round trip; a freed slot may stay idle for up to one poll interval while the replica of
  the head of the queue polls; a waiter whose replica stalls for longer than the ticket lease
  (2 s) loses its place (queue-timeout), and a dead replica's waiters hold up the head of
  the queue for up to that long.
* **Rate limits**: one token bucket per destination in Redis, refilled by Redis's clock.
* **Pauses** (receivers' Retry-After) and **circuit states** (closed/open/half-open with a
  single probe across all replicas) live in Redis too; the replica whose script made a
  transition logs it, so each is logged once.

Releases and outcome reports are queued and sent in pipelines by one background task (the
proxy's hooks are synchronous); a report and the release that follows it travel as one script
call. Any Redis error raises ``BackendUnavailable``; ``BackendLimiter`` then falls back to a
local limiter (or refuses) and watches for Redis to come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import itertools
import json
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from hookwall.limits import redis_lua
from hookwall.limits.backend import Limiter, SlotHandle
from hookwall.limits.gate import EventSink, Outcome, Reason, Rejected, ReleasedOnce
from hookwall.limits.settings import LimitConfig

__all__ = [
    "BackendLimiter",
    "BackendUnavailable",
    "RedisLimiter",
    "RedisSlot",
    "StatusSink",
]

log = logging.getLogger(__name__)

Arg = str | int | float  # a script argument

# (level, event, fields): backend health events (limits_backend_degraded, ..._restored).
StatusSink = Callable[[str, str, dict[str, object]], None]

POLL_MIN = 0.005  # first poll interval for a waiting destination
POLL_MAX = 0.05  # longest interval while slots are full (a freed slot waits at most this)
HINT_MAX = 0.25  # longest sleep while the blocker is a pause or the rate
TICKET_LEASE = 2.0  # a waiter not polled for this long leaves the queue
_MAX_KEYS = 10_000  # destinations remembered (config, last shared view)
_BATCH = 256  # releases/reports per pipeline
_NO_WAIT = 0.0


class BackendUnavailable(Exception):
    """Redis could not be asked (down, unreachable, too slow, or an unexpected answer)."""


@dataclass(slots=True)
class _Op:
    key: str
    outcome: Outcome | None = None
    status: int | None = None
    retry_after: float | None = None
    release: str | None = None


@dataclass(slots=True, eq=False)
class _Waiter:
    ticket: str
    future: asyncio.Future[RedisSlot]
    enqueued: float
    deadline: float
    cancelled: bool = False


@dataclass(slots=True)
class _Queue:
    waiters: list[_Waiter] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class _AutoPipeline:
    """Concurrent script calls share round trips: the calls made while earlier batches are
    on the wire go together in the next pipeline, over at most ``lanes`` connections. Without
    this, N concurrent requests would need N connections (and hit the pool's limit)."""

    def __init__(self, client: Redis, lanes: int = 4, batch: int = 256) -> None:
        self._client = client
        self._lanes = lanes
        self._batch = batch
        self._busy = 0
        self._scheduled = False
        self._pending: deque[tuple[str, list[str], list[Arg], asyncio.Future[Any]]] = deque()

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

    async def _send(
        self, batch: list[tuple[str, list[str], list[Arg], asyncio.Future[Any]]]
    ) -> None:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for sha, keys, args, _ in batch:
                    pipe.evalsha(sha, len(keys), *keys, *args)
                results = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError) as exc:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(BackendUnavailable(_describe(exc)))
            return
        except BaseException as exc:  # cancelled (shutting down): nobody is left hanging
            for *_, future in batch:
                if not future.done():
                    future.set_exception(BackendUnavailable(_describe(exc)))
            raise
        for (*_, future), result in zip(batch, results, strict=True):
            if future.done():  # its caller went away
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)  # NoScriptError: the caller loads the script
            else:
                future.set_result(result)


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


def _key_names(prefix: str, key: str) -> list[str]:
    base = f"{prefix}{{{key}}}:"
    return [base + "state", base + "slots", base + "queue", base + "live"]


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
        self._client = client
        self._pipeline = _AutoPipeline(client)
        self._on_event = on_event
        self.lease = lease
        self._prefix = prefix
        self._clock = clock
        self._replica = secrets.token_hex(6)
        self._ids = itertools.count(1)
        self._shas = {
            name: hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
            for name, source in _SCRIPTS.items()
        }
        self._configs: OrderedDict[str, LimitConfig] = OrderedDict()
        self._shared: OrderedDict[str, dict[str, Any]] = OrderedDict()  # last view per key
        self._held: dict[str, dict[str, None]] = {}  # key -> slot ids this replica holds
        self._queues: dict[str, _Queue] = {}
        self._outbox: deque[_Op] = deque()
        self._outbox_wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flusher: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        # Called with the error when a background call fails (BackendLimiter degrades).
        self.on_failure: Callable[[BaseException], None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def check(self) -> None:
        """Ping and load the scripts; BackendUnavailable when Redis cannot be used."""
        try:
            await cast(Awaitable[Any], self._client.ping())
            for name, source in _SCRIPTS.items():
                sha = await self._client.script_load(source)
                if sha != self._shas[name]:
                    raise BackendUnavailable(f"Redis hashed the {name} script unexpectedly")
        except (RedisError, OSError) as exc:
            raise BackendUnavailable(_describe(exc)) from exc

    def start(self) -> None:
        """Start lease renewal (and idle health pings); needs a running loop."""
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def aclose(self) -> None:
        for task in [self._flusher, self._refresher, *self._tasks]:
            if task is not None:
                task.cancel()
        for queue in self._queues.values():
            if queue.task is not None:
                queue.task.cancel()
        with contextlib.suppress(Exception):
            await self._client.aclose()

    # -- the limiter interface ---------------------------------------------------------------

    async def acquire(self, key: str, config: LimitConfig) -> RedisSlot:
        """Wait for a slot for ``key``; raise Rejected, or BackendUnavailable."""
        self._remember(key, config)
        started = self._clock()
        slot_id = f"{self._replica}:{next(self._ids)}"
        call = asyncio.ensure_future(self._script("acquire", key, config, [slot_id]))
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
            raise self._rejected(key, config, reply)
        if kind != "queued":
            raise BackendUnavailable(f"unexpected reply from Redis: {kind!r}")
        return await self._wait(key, slot_id, started, config)

    def report(
        self,
        key: str,
        outcome: Outcome,
        *,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        self._send(_Op(key, outcome, status, retry_after))

    def snapshot(self, limit: int = 1000) -> list[dict[str, object]]:
        """This replica's view: its own in flight and waiting, and the shared state as the
        last script call saw it (``shared_*``); ``inspect`` asks Redis."""
        rows: list[dict[str, object]] = []
        keys = sorted(set(self._held) | set(self._queues) | set(self._shared))
        for key in keys[: max(0, limit)]:
            shared = self._shared.get(key, {})
            queue = self._queues.get(key)
            rows.append(
                {
                    "key": key,
                    "in_flight": len(self._held.get(key, ())),
                    "queued": len(queue.waiters) if queue else 0,
                    "circuit": shared.get("circuit", "closed"),
                    "failures": shared.get("failures", 0),
                    "shared_in_flight": shared.get("in_flight"),
                    "shared_queued": shared.get("queued"),
                    "backend": "redis",
                }
            )
        return rows

    async def inspect(self, key: str) -> dict[str, object]:
        """The shared state of one destination, read from Redis."""
        raw = await self._eval("inspect", _key_names(self._prefix, key), [])
        view: dict[str, object] = json.loads(raw)
        if view.get("circuit") == "open" and not view.get("open_ms"):
            view["circuit"] = "half-open"
        return view

    def in_flight(self, key: str) -> int:
        return len(self._held.get(key, ()))

    def queued(self, key: str) -> int:
        queue = self._queues.get(key)
        return 0 if queue is None else len(queue.waiters)

    # -- admission ---------------------------------------------------------------------------

    def _abandoned(self, call: asyncio.Future[dict[str, Any]], key: str, slot_id: str) -> None:
        if call.cancelled() or call.exception() is not None:
            return  # nothing was granted, or Redis is failing (leases clean up)
        self._send(_Op(key, release=slot_id))

    def _admit(self, key: str, slot_id: str, started: float) -> RedisSlot:
        self._held.setdefault(key, {})[slot_id] = None
        return RedisSlot(self, key, slot_id, max(0.0, self._clock() - started) * 1000.0)

    def _release(self, slot: RedisSlot) -> None:
        held = self._held.get(slot.key)
        if held is not None:
            held.pop(slot.slot_id, None)
            if not held:
                del self._held[slot.key]
        self._send(_Op(slot.key, release=slot.slot_id))

    def _rejected(self, key: str, config: LimitConfig, reply: dict[str, Any]) -> Rejected:
        reason = cast(Reason, reply.get("reason"))
        retry = float(reply.get("retry_ms") or 0.0) / 1000.0
        why = reply.get("why")
        messages = {
            "open": f"Deliveries to {key} keep failing; hookwall pauses them for a while.",
            "probing": f"Deliveries to {key} were failing; hookwall is testing it with one "
            "request.",
            "paused": f"{key} asked hookwall to slow down; it accepts requests again later.",
            "rate": f"Requests to {key} exceed its rate limit; try again later.",
            "full": f"Too many requests are already waiting for {key}; try again later.",
        }
        message = messages.get(str(why), f"{key} is busy; try again later.")
        return Rejected(reason, retry or config.queue_timeout, message)

    async def _wait(self, key: str, ticket: str, started: float, config: LimitConfig) -> RedisSlot:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RedisSlot] = loop.create_future()
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

    async def _poll_loop(self, key: str, queue: _Queue) -> None:
        delay = POLL_MIN
        try:
            while queue.waiters:
                config = self._configs.get(key) or LimitConfig()
                now = self._clock()
                batch = list(queue.waiters)
                args: list[Arg] = [len(batch)]
                for waiter in batch:
                    left = 0.0 if waiter.cancelled else max(0.0, waiter.deadline - now)
                    args += [waiter.ticket, round(left * 1000.0, 3), int(waiter.cancelled)]
                queue.wake.clear()
                try:
                    reply = await self._script("poll", key, config, args)
                except BackendUnavailable as exc:
                    for waiter in batch:
                        if not waiter.future.done():
                            waiter.future.set_exception(exc)
                    queue.waiters.clear()
                    return
                verdicts = reply.get("r") or []
                admitted = self._settle(key, config, queue, batch, verdicts, reply)
                if not queue.waiters:
                    return
                delay = POLL_MIN if admitted else min(POLL_MAX, delay * 2)
                sleep = delay
                hint = max(float(reply.get("pause_ms") or 0), float(reply.get("token_ms") or 0))
                if hint > 0:
                    sleep = max(sleep, min(HINT_MAX, hint / 1000.0))
                nearest = min(w.deadline for w in queue.waiters)
                sleep = min(sleep, max(_NO_WAIT, nearest - self._clock()))
                if queue.wake.is_set():
                    delay = POLL_MIN
                    continue
                try:
                    async with asyncio.timeout(sleep):
                        await queue.wake.wait()
                    delay = POLL_MIN  # a release here, or a waiter left: look again now
                except TimeoutError:
                    pass
        except Exception as exc:  # never leave a waiter hanging
            log.exception("polling for %s failed", key)
            for waiter in queue.waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(BackendUnavailable(_describe(exc)))
            queue.waiters.clear()
        finally:
            if self._queues.get(key) is queue and not queue.waiters:
                del self._queues[key]

    def _settle(
        self,
        key: str,
        config: LimitConfig,
        queue: _Queue,
        batch: list[_Waiter],
        verdicts: list[str] | dict[str, Any],
        reply: dict[str, Any],
    ) -> bool:
        """Apply one poll's verdicts; True if anyone was admitted."""
        admitted = False
        done: set[int] = set()
        pause = float(reply.get("pause_ms") or 0) / 1000.0
        if not isinstance(verdicts, list) or len(verdicts) != len(batch):
            raise BackendUnavailable(f"unexpected reply from Redis to a poll: {verdicts!r:.100}")
        for waiter, verdict in zip(batch, verdicts, strict=True):
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
                continue
            if waiter.future.done():
                continue
            if verdict == "c":
                waiter.future.cancel()
                continue
            error = self._waiter_error(key, config, verdict, pause, reply)
            waiter.future.set_exception(error)
        queue.waiters[:] = [w for w in queue.waiters if id(w) not in done]
        return admitted

    @staticmethod
    def _waiter_error(
        key: str, config: LimitConfig, verdict: str, pause: float, reply: dict[str, Any]
    ) -> Rejected:
        if verdict == "o":
            retry = float(reply.get("open_ms") or 0) / 1000.0 or config.circuit_cooloff
            return Rejected(
                "circuit-open",
                retry,
                f"Deliveries to {key} keep failing; hookwall pauses them for a while.",
            )
        if verdict == "p":
            return Rejected(
                "queue-timeout",
                pause,
                f"{key} asked hookwall to slow down for longer than a request may wait.",
            )
        if verdict == "g":
            return Rejected(
                "queue-timeout",
                config.queue_timeout,
                f"{key} is busy; the request lost its place in the queue.",
            )
        return Rejected(
            "queue-timeout",
            pause if pause > 0 else config.queue_timeout,
            f"{key} is busy; the request waited too long for its turn.",
        )

    # -- releases and reports ----------------------------------------------------------------

    def _send(self, op: _Op) -> None:
        self._outbox.append(op)
        self._outbox_wake.set()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        while True:
            await self._outbox_wake.wait()
            self._outbox_wake.clear()
            while self._outbox:
                ops = self._take_batch()
                try:
                    await self._flush(ops)
                except BackendUnavailable as exc:
                    # Lost releases come back with their leases; lost reports are lost.
                    self._failed(exc)
                except Exception as exc:  # keep flushing whatever comes next
                    log.exception("sending releases and reports to Redis failed")
                    self._failed(BackendUnavailable(_describe(exc)))
                for key in {op.key for op in ops if op.release}:
                    queue = self._queues.get(key)
                    if queue is not None:
                        queue.wake.set()

    def _take_batch(self) -> list[_Op]:
        """Up to _BATCH operations; a report followed by its slot's release becomes one."""
        ops: list[_Op] = []
        while self._outbox and len(ops) < _BATCH:
            op = self._outbox.popleft()
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

    async def _flush(self, ops: list[_Op]) -> None:
        calls = []
        for op in ops:
            config = self._configs.get(op.key) or LimitConfig()
            retry = -1.0 if op.retry_after is None else round(op.retry_after * 1000.0, 3)
            extra: list[Arg] = [op.outcome or "", op.status or 0, retry, op.release or ""]
            keys = _key_names(self._prefix, op.key)
            calls.append(self._eval("finish", keys, self._args(config, extra)))
        results = await asyncio.gather(*calls, return_exceptions=True)
        failure: BaseException | None = None
        for op, result in zip(ops, results, strict=True):
            if isinstance(result, BaseException):
                failure = failure or result
                continue
            self._observe(op.key, json.loads(result))
        if failure is not None:
            raise BackendUnavailable(_describe(failure))

    # -- lease renewal -----------------------------------------------------------------------

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self._refresh()
            except BackendUnavailable as exc:
                self._failed(exc)
            except Exception as exc:  # keep renewing
                log.exception("renewing slot leases in Redis failed")
                self._failed(BackendUnavailable(_describe(exc)))

    async def _refresh(self) -> None:
        held: dict[str, list[str]] = {key: list(ids) for key, ids in self._held.items() if ids}
        lease_ms = int(self.lease * 1000)
        if not held:  # nothing to renew: still notice an outage while idle
            try:
                await cast(Awaitable[Any], self._client.ping())
            except (RedisError, OSError) as exc:
                raise BackendUnavailable(_describe(exc)) from exc
            return
        calls = []
        for key, ids in held.items():
            ttl = self._ttl(self._configs.get(key) or LimitConfig())
            args: list[Arg] = [lease_ms, ttl, *ids]
            calls.append(self._eval("refresh", _key_names(self._prefix, key), args))
        results = await asyncio.gather(*calls, return_exceptions=True)
        for key, result in zip(held, results, strict=True):
            if isinstance(result, BaseException):
                raise BackendUnavailable(_describe(result))
            if result:  # expired while held (a long stall, or Redis lost its data)
                log.warning("%d slot lease(s) at %s expired while held", len(result), key)
                mine = self._held.get(key, {})
                for slot_id in result:
                    mine.pop(str(slot_id), None)

    # -- Redis calls -------------------------------------------------------------------------

    def _args(self, config: LimitConfig, extra: list[Arg]) -> list[Arg]:
        rate = 0.0 if config.rate is None else config.rate / 1000.0
        lease_ms = int(self.lease * 1000)
        return [
            config.concurrency,
            config.queue,
            round(config.queue_timeout * 1000.0, 3),
            rate,
            config.bucket_size or 0,
            round(config.retry_after_max * 1000.0, 3),
            config.circuit_failures,
            round(config.circuit_cooloff * 1000.0, 3),
            lease_ms,
            int(TICKET_LEASE * 1000),
            self._ttl(config),
            *extra,
        ]

    def _ttl(self, config: LimitConfig) -> int:
        """How long an idle destination's state must outlive its last use (ms)."""
        refill = 0.0
        if config.rate is not None and config.bucket_size is not None:
            refill = config.bucket_size / config.rate
        seconds = max(
            2 * self.lease,
            config.queue_timeout,
            config.retry_after_max,
            config.circuit_cooloff,
            refill,
        )
        return int(min(seconds, 7 * 86400.0) * 1000) + 60_000

    async def _script(
        self, name: str, key: str, config: LimitConfig, extra: list[Arg]
    ) -> dict[str, Any]:
        raw = await self._eval(name, _key_names(self._prefix, key), self._args(config, extra))
        try:
            reply = json.loads(raw)
        except (TypeError, ValueError) as exc:
            raise BackendUnavailable(f"unexpected reply from Redis: {raw!r:.100}") from exc
        if not isinstance(reply, dict):
            raise BackendUnavailable(f"unexpected reply from Redis: {raw!r:.100}")
        self._observe(key, reply)
        return reply

    async def _eval(self, name: str, keys: list[str], args: list[Arg]) -> Any:
        sha = self._shas[name]
        try:
            try:
                return await self._pipeline.call(sha, keys, args)
            except NoScriptError:  # Redis restarted (or SCRIPT FLUSH): load it again
                await self._client.script_load(_SCRIPTS[name])
                return await self._pipeline.call(sha, keys, args)
        except (RedisError, OSError) as exc:
            raise BackendUnavailable(_describe(exc)) from exc

    def _observe(self, key: str, reply: dict[str, Any]) -> None:
        """Remember the shared numbers and log the transitions this call made."""
        shared: dict[str, Any] = {
            k: reply[k] for k in ("in_flight", "queued", "circuit", "failures") if k in reply
        }
        if shared:
            self._shared[key] = shared
            self._shared.move_to_end(key)
            while len(self._shared) > _MAX_KEYS:
                self._shared.popitem(last=False)
        events = reply.get("events")
        if not isinstance(events, list) or self._on_event is None:
            return
        for item in events:
            try:
                name, fields = item[0], item[1] if isinstance(item[1], dict) else {}
                self._on_event(key, str(name), _rounded(fields))
            except Exception:
                log.exception("on_event failed for %s", key)

    def _remember(self, key: str, config: LimitConfig) -> None:
        self._configs[key] = config
        self._configs.move_to_end(key)
        while len(self._configs) > _MAX_KEYS:
            self._configs.popitem(last=False)

    def _failed(self, exc: BaseException) -> None:
        if self.on_failure is not None:
            self.on_failure(exc)


_SCRIPTS = {
    "acquire": redis_lua.ACQUIRE,
    "poll": redis_lua.POLL,
    "finish": redis_lua.FINISH,
    "refresh": redis_lua.REFRESH,
    "inspect": redis_lua.INSPECT,
}


def _rounded(fields: dict[str, Any]) -> dict[str, object]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in fields.items()}


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:300]


# -- falling back when Redis is down --------------------------------------------------------


class BackendLimiter:
    """Redis while it answers; when it does not, the local limiter (``on_backend_failure:
    local``, and a ``limits_backend_degraded`` warning) or 503 ``limits-unavailable``
    (``refuse``). A health check every ``check_interval`` switches back once Redis answers
    again (``limits_backend_restored``)."""

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
            raise Rejected(
                "limits-unavailable",
                max(1.0, self._interval),
                "hookwall cannot reach the shared limits store and is configured to refuse "
                "deliveries meanwhile; try again shortly.",
            )
        if tried:  # part of the wait may have gone to Redis: not twice
            left = config.queue_timeout - (self._clock() - started)
            config = _with_queue_timeout(config, max(0.0, left))
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
                "error": _describe(exc),
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


def _with_queue_timeout(config: LimitConfig, seconds: float) -> LimitConfig:
    return dataclasses.replace(config, queue_timeout=seconds)
