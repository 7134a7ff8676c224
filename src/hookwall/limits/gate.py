"""Per-destination admission: concurrency cap, bounded FIFO queue, token bucket, backpressure
pauses and a circuit breaker, so one slow, flooded or failing receiver never hurts another.

Every key has its own state and nothing here awaits while touching shared state: admission is
decided synchronously in ``acquire``, ``Slot.release``, ``report`` and timer callbacks, so keys
never wait on each other.

Decisions worth knowing:

* FIFO without barging: a newcomer is admitted at once only when nobody is queued for its key;
  ``release`` hands the slot straight to the head waiter.
* Requests that cannot be served in time are refused up front, not after a wasted wait: a pause
  that outlasts ``queue_timeout`` gives "queue-timeout" (retry_after = the rest of the pause),
  and a token the bucket cannot produce in time for this place in the queue gives
  "rate-limited" (retry_after = when it could).
* When the circuit opens, everyone queued for the key is refused "circuit-open" at once: they
  would be refused when their turn came anyway, and waiting only holds the sender's connection.
* Half-open: the first request after the cool-off is the single probe (it still queues for the
  cap, tokens and pauses); others get "circuit-open" with a short retry_after. Any success or
  failure reported while half-open decides (success closes, failure re-opens for another
  cool-off); a neutral outcome, a probe that is cancelled, times out or is released without a
  verdict lets the next request probe. Outcomes reported while open (late replies to requests
  sent before it opened) are ignored: the cool-off stands.
* Time comes from the injected clock. Loop timers only prompt a re-check, so with a fake clock
  tests advance it and call ``wake()``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from types import TracebackType
from typing import Literal, Self

from hookwall.limits.circuit import CircuitBreaker
from hookwall.limits.ratelimit import TokenBucket
from hookwall.limits.settings import LimitConfig

__all__ = ["DestinationLimiter", "EventSink", "Outcome", "Reason", "Rejected", "Slot"]

log = logging.getLogger(__name__)

Outcome = Literal["success", "failure", "neutral"]
# limits-unavailable: the shared limits store is down and the policy says refuse.
Reason = Literal[
    "queue-full", "queue-timeout", "rate-limited", "circuit-open", "limits-unavailable"
]
EventSink = Callable[[str, str, dict[str, object]], None]

PAUSE_STATUSES = frozenset({429, 503})
# Half-open: how soon others should come back; the probe's verdict usually takes about that.
HALF_OPEN_RETRY_AFTER = 1
# Keys examined per eviction pass: bounds the work one new key can cause.
_EVICT_SCAN = 64
_EPSILON = 1e-9


def whole_seconds(seconds: float) -> int:
    """A Retry-After value: whole seconds, rounded up, at least 1."""
    if not math.isfinite(seconds):
        return 2**31
    return max(1, math.ceil(seconds - _EPSILON))


class Rejected(Exception):
    """The request was not admitted; map ``reason`` to the denial code and status."""

    def __init__(self, reason: Reason, retry_after: float, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.retry_after: int = whole_seconds(retry_after)
        self.message: str = message

    def __repr__(self) -> str:
        return f"Rejected({self.reason!r}, retry_after={self.retry_after})"


class ReleasedOnce:
    """An admission's release: the first call gives the slot back, later calls do nothing,
    and ``async with`` releases on exit. Subclasses say what giving it back means."""

    __slots__ = ("_released",)

    def __init__(self) -> None:
        self._released = False

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._give_back()

    def _give_back(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class Slot(ReleasedOnce):
    """One admission. Release it exactly when the upstream exchange is over."""

    __slots__ = ("_limiter", "_probe_gen", "_state", "queued_ms")

    def __init__(
        self,
        limiter: DestinationLimiter,
        state: _KeyState,
        queued_ms: float,
        probe_gen: int | None,
    ) -> None:
        super().__init__()
        self._limiter = limiter
        self._state = state
        self._probe_gen = probe_gen
        self.queued_ms = queued_ms

    def _give_back(self) -> None:
        """Return the slot and wake the next waiter."""
        self._limiter._release(self._state, self._probe_gen)


class _Waiter:
    __slots__ = ("deadline", "enqueued", "future", "probe_gen", "timer")

    def __init__(
        self, future: asyncio.Future[Slot], enqueued: float, deadline: float, probe_gen: int | None
    ) -> None:
        self.future = future
        self.enqueued = enqueued
        self.deadline = deadline
        self.probe_gen = probe_gen
        self.timer: asyncio.TimerHandle | None = None


class _KeyState:
    __slots__ = (
        "bucket",
        "circuit",
        "config",
        "in_flight",
        "key",
        "paused_until",
        "waiters",
        "wake_at",
        "wake_handle",
    )

    def __init__(self, key: str, config: LimitConfig, now: float) -> None:
        self.key = key
        self.config = config
        self.in_flight = 0
        # Insertion-ordered with O(1) removal from anywhere (cancelled or timed-out waiters).
        self.waiters: OrderedDict[_Waiter, None] = OrderedDict()
        self.bucket: TokenBucket | None = None
        self.circuit = CircuitBreaker()
        self.paused_until = 0.0
        self.wake_at = 0.0
        self.wake_handle: asyncio.TimerHandle | None = None
        self.configure(config, now)

    def configure(self, config: LimitConfig, now: float) -> None:
        self.config = config
        size = config.bucket_size
        if config.rate is None or size is None:
            self.bucket = None
        elif self.bucket is None:
            self.bucket = TokenBucket(config.rate, size, now)
        elif self.bucket.rate != config.rate or self.bucket.capacity != size:
            self.bucket.reconfigure(config.rate, size, now)

    def pause_left(self, now: float) -> float:
        return max(0.0, self.paused_until - now)

    def idle(self, now: float) -> bool:
        """Forgetting this key changes nothing a sender could notice (or exploit)."""
        return (
            self.in_flight == 0
            and not self.waiters
            and self.circuit.state == "closed"
            and self.paused_until <= now
            and (self.bucket is None or self.bucket.full(now))
        )


class DestinationLimiter:
    """Admission control per destination key; see the module docstring for the semantics."""

    def __init__(
        self,
        *,
        on_event: EventSink | None = None,
        max_idle_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_event = on_event
        self._max_idle_keys = max(0, max_idle_keys)
        self._clock = clock
        self._keys: OrderedDict[str, _KeyState] = OrderedDict()  # least recently used first

    # -- public API ------------------------------------------------------------------------

    async def acquire(self, key: str, config: LimitConfig) -> Slot:
        """Wait for a slot for ``key`` under ``config``, or raise ``Rejected``."""
        loop = asyncio.get_running_loop()
        now = self._clock()
        state = self._state_for(key, config, now)
        circuit = state.circuit

        if config.circuit_failures == 0 and circuit.state != "closed":
            self._close_circuit(state, why="disabled")
        if circuit.state == "open":
            left = circuit.cooloff_left(now)
            if left > 0:
                raise Rejected(
                    "circuit-open",
                    left,
                    f"Deliveries to {key} keep failing; hookwall pauses them for a while.",
                )
            circuit.half_open()
            self._emit(key, "circuit_half_open", {"cooloff_s": config.circuit_cooloff})
        probe_gen: int | None = None
        if circuit.state == "half-open":
            if circuit.probe_out:
                raise Rejected(
                    "circuit-open",
                    HALF_OPEN_RETRY_AFTER,
                    f"Deliveries to {key} were failing; hookwall is testing it with one request.",
                )
            probe_gen = circuit.generation

        pause_left = state.pause_left(now)
        if pause_left > config.queue_timeout:
            raise Rejected(
                "queue-timeout",
                pause_left,
                f"{key} asked hookwall to slow down; it accepts requests again later.",
            )
        queued = len(state.waiters)
        bucket = state.bucket
        token_wait = 0.0 if bucket is None else bucket.wait_for(queued + 1, now)
        if token_wait > config.queue_timeout:
            raise Rejected(
                "rate-limited",
                token_wait,
                f"Requests to {key} exceed its rate limit; try again later.",
            )

        if (
            queued == 0
            and pause_left <= 0
            and state.in_flight < config.concurrency
            and (bucket is None or bucket.take(now))
        ):
            if probe_gen is not None:
                circuit.probe_out = True
            return self._admit(state, now, now, probe_gen)

        if queued >= config.queue:
            if config.queue == 0 and pause_left <= 0 and state.in_flight < config.concurrency:
                raise Rejected(
                    "rate-limited",
                    token_wait,
                    f"Requests to {key} exceed its rate limit; try again later.",
                )
            raise Rejected(
                "queue-full",
                self._busy_retry_after(state, now),
                f"Too many requests are already waiting for {key}; try again later.",
            )

        future: asyncio.Future[Slot] = loop.create_future()
        waiter = _Waiter(future, now, now + config.queue_timeout, probe_gen)
        state.waiters[waiter] = None
        if probe_gen is not None:
            circuit.probe_out = True
        waiter.timer = loop.call_later(config.queue_timeout, self._on_deadline, state, waiter)
        self._pump(state)  # a due timer may not have fired yet: let the head go first
        try:
            return await future
        except BaseException:
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result().release()  # admitted as we were cancelled: give it back
            else:
                self._drop_waiter(state, waiter)
                self._pump(state)
            raise

    def report(
        self,
        key: str,
        outcome: Outcome,
        *,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        """Feed the outcome of one exchange to the circuit breaker and honour Retry-After."""
        now = self._clock()
        state = self._state_for(key, None, now)
        config = state.config
        if status in PAUSE_STATUSES and retry_after is not None and retry_after > 0:
            self._pause(state, now, min(retry_after, config.retry_after_max), status, retry_after)
        self._record(state, now, outcome)

    def in_flight(self, key: str) -> int:
        state = self._keys.get(key)
        return 0 if state is None else state.in_flight

    def queued(self, key: str) -> int:
        state = self._keys.get(key)
        return 0 if state is None else len(state.waiters)

    def snapshot(self, limit: int = 1000) -> list[dict[str, object]]:
        """Per tracked key (at most ``limit``, sorted by key): what operators ask when it's slow."""
        now = self._clock()
        rows: list[dict[str, object]] = []
        for key in heapq.nsmallest(max(0, limit), self._keys):
            state = self._keys[key]
            row: dict[str, object] = {
                "key": key,
                "in_flight": state.in_flight,
                "queued": len(state.waiters),
                "paused_for_s": round(state.pause_left(now), 3),
                "circuit": state.circuit.display(now),
                "failures": state.circuit.failures,
            }
            if state.bucket is not None:
                row["tokens"] = round(state.bucket.tokens(now), 3)
            rows.append(row)
        return rows

    def wake(self, key: str | None = None) -> None:
        """Re-check queues against the clock now (timers do this; tests with a fake clock)."""
        now = self._clock()
        if key is None:
            states = list(self._keys.values())
        else:
            states = [self._keys[key]] if key in self._keys else []
        for state in states:
            self._pump(state)  # admission first: a request due now is not also timed out
            for waiter in [w for w in state.waiters if w.deadline <= now + _EPSILON]:
                self._expire(state, waiter, now)
            self._pump(state)

    def __len__(self) -> int:
        """Number of keys with state (bounded by eviction)."""
        return len(self._keys)

    # -- internals ------------------------------------------------------------------------

    def _state_for(self, key: str, config: LimitConfig | None, now: float) -> _KeyState:
        state = self._keys.get(key)
        if state is None:
            state = _KeyState(key, config or LimitConfig(), now)
            self._keys[key] = state
            if len(self._keys) > self._max_idle_keys:
                self._evict(now, keep=key)
            return state
        self._keys.move_to_end(key)
        if config is not None and config is not state.config:
            state.configure(config, now)
            if state.waiters:  # a reload may have raised the cap or the rate
                self._pump(state)
        return state

    def _evict(self, now: float, keep: str) -> None:
        """Drop least recently used idle keys; busy ones go to the back to be looked at later."""
        for key in list(itertools.islice(self._keys, _EVICT_SCAN)):
            if len(self._keys) <= self._max_idle_keys:
                return
            if key == keep:
                continue
            state = self._keys[key]
            if state.idle(now):
                self._cancel_wake(state)
                del self._keys[key]
            else:
                self._keys.move_to_end(key)

    def _admit(self, state: _KeyState, now: float, enqueued: float, probe_gen: int | None) -> Slot:
        state.in_flight += 1
        return Slot(self, state, max(0.0, now - enqueued) * 1000.0, probe_gen)

    def _release(self, state: _KeyState, probe_gen: int | None) -> None:
        state.in_flight -= 1
        circuit = state.circuit
        if probe_gen == circuit.generation and circuit.state == "half-open":
            circuit.probe_out = False  # no verdict: the next request probes
        self._pump(state)

    def _pump(self, state: _KeyState) -> None:
        """Admit queued requests from the head while the key allows; else arm a wake-up."""
        now = self._clock()
        waiters = state.waiters
        while waiters:
            waiter = next(iter(waiters))
            if waiter.future.done():  # cancelled, its task has not run its cleanup yet
                self._drop_waiter(state, waiter)
                continue
            if state.paused_until > now:
                self._arm_wake(state, waiter, state.paused_until, now)
                return
            if state.in_flight >= state.config.concurrency:
                self._cancel_wake(state)  # a release will pump
                return
            bucket = state.bucket
            if bucket is not None and not bucket.take(now):
                self._arm_wake(state, waiter, now + bucket.wait_for(1, now), now)
                return
            self._drop_waiter(state, waiter, admitted=True)
            slot = self._admit(state, now, waiter.enqueued, waiter.probe_gen)
            waiter.future.set_result(slot)
        self._cancel_wake(state)

    def _drop_waiter(self, state: _KeyState, waiter: _Waiter, *, admitted: bool = False) -> None:
        """Forget a waiter (idempotent); a probe that leaves unadmitted lets the next one probe."""
        if waiter.timer is not None:
            waiter.timer.cancel()
            waiter.timer = None
        if waiter not in state.waiters:
            return
        del state.waiters[waiter]
        circuit = state.circuit
        if not admitted and waiter.probe_gen == circuit.generation and circuit.state == "half-open":
            circuit.probe_out = False

    def _reject(self, state: _KeyState, waiter: _Waiter, error: Rejected) -> None:
        if not waiter.future.done():
            waiter.future.set_exception(error)
        self._drop_waiter(state, waiter)

    def _expire(self, state: _KeyState, waiter: _Waiter, now: float) -> None:
        self._reject(
            state,
            waiter,
            Rejected(
                "queue-timeout",
                self._busy_retry_after(state, now),
                f"{state.key} is busy; the request waited too long for its turn.",
            ),
        )

    def _on_deadline(self, state: _KeyState, waiter: _Waiter) -> None:
        waiter.timer = None
        if waiter.future.done() or waiter not in state.waiters:
            return
        now = self._clock()
        if now + _EPSILON < waiter.deadline:  # early timer, or a clock not driven by the loop
            loop = waiter.future.get_loop()
            waiter.timer = loop.call_later(waiter.deadline - now, self._on_deadline, state, waiter)
            return
        self._pump(state)  # admission first: a request due now is not also timed out
        if waiter in state.waiters:
            self._expire(state, waiter, now)
            self._pump(state)

    def _arm_wake(self, state: _KeyState, waiter: _Waiter, at: float, now: float) -> None:
        if state.wake_handle is not None:
            if abs(state.wake_at - at) <= _EPSILON:
                return
            state.wake_handle.cancel()
        state.wake_at = at
        loop = waiter.future.get_loop()
        state.wake_handle = loop.call_later(max(0.0, at - now), self._on_wake, state)

    def _cancel_wake(self, state: _KeyState) -> None:
        if state.wake_handle is not None:
            state.wake_handle.cancel()
            state.wake_handle = None

    def _on_wake(self, state: _KeyState) -> None:
        state.wake_handle = None
        self._pump(state)

    def _busy_retry_after(self, state: _KeyState, now: float) -> float:
        """When to come back after queue-full/queue-timeout: the pause's end if the key is
        paused, else the queue timeout, by which every request now queued is gone."""
        pause_left = state.pause_left(now)
        return pause_left if pause_left > 0 else state.config.queue_timeout

    def _pause(
        self, state: _KeyState, now: float, pause: float, status: int | None, asked: float
    ) -> None:
        until = now + pause
        if until <= state.paused_until:
            return
        state.paused_until = until
        self._emit(
            state.key,
            "destination_paused",
            {"pause_s": round(pause, 3), "status": status, "retry_after_s": asked},
        )
        for waiter in [w for w in state.waiters if w.deadline < until]:
            self._reject(
                state,
                waiter,
                Rejected(
                    "queue-timeout",
                    pause,
                    f"{state.key} asked hookwall to slow down for longer than a request may wait.",
                ),
            )
        self._pump(state)

    def _record(self, state: _KeyState, now: float, outcome: Outcome) -> None:
        circuit = state.circuit
        config = state.config
        if config.circuit_failures == 0:
            circuit.failures = 0
            if circuit.state != "closed":
                self._close_circuit(state, why="disabled")
            return
        if outcome == "neutral" or circuit.state == "open":
            return
        if outcome == "success":
            circuit.failures = 0
            if circuit.state == "half-open":
                self._close_circuit(state, why="probe-succeeded")
            return
        circuit.failures += 1
        if circuit.state == "half-open" or circuit.failures >= config.circuit_failures:
            self._open_circuit(state, now)

    def _open_circuit(self, state: _KeyState, now: float) -> None:
        circuit = state.circuit
        was = circuit.state
        cooloff = state.config.circuit_cooloff
        circuit.open(now, cooloff)
        self._emit(
            state.key,
            "circuit_opened",
            {"from": was, "failures": circuit.failures, "cooloff_s": cooloff},
        )
        for waiter in list(state.waiters):
            self._reject(
                state,
                waiter,
                Rejected(
                    "circuit-open",
                    cooloff,
                    f"Deliveries to {state.key} keep failing; hookwall pauses them for a while.",
                ),
            )
        self._cancel_wake(state)

    def _close_circuit(self, state: _KeyState, why: str) -> None:
        was = state.circuit.state
        state.circuit.close()
        self._emit(state.key, "circuit_closed", {"from": was, "why": why})
        self._pump(state)

    def _emit(self, key: str, event: str, fields: dict[str, object]) -> None:
        """Logging must not break admission: a failing sink is logged and otherwise ignored."""
        if self._on_event is None:
            return
        try:
            self._on_event(key, event, fields)
        except Exception:
            log.exception("on_event failed for %s %s", key, event)
