"""One destination key's admission: its numbers (``KeyState``), its queue (``WaitQueue``), and
everything that moves them: admitting, queueing, the hand-off on release, deadlines, the
receiver's pauses and the circuit breaker's transitions.

Nothing here awaits while touching the state: admission is decided synchronously in
``acquire``, ``Slot.release``, ``report`` and timer callbacks, so keys never wait on each other.

* ``release`` hands the slot straight to the head waiter: a newcomer never barges past a queue.
* When the circuit opens, everyone queued for the key is refused "circuit-open" at once: they
  would be refused when their turn came anyway, and waiting only holds the sender's connection.
* Half-open: the first request after the cool-off is the single probe (it still queues for the
  cap, tokens and pauses); others get "circuit-open" with a short retry_after. Any success or
  failure reported while half-open decides (success closes, failure re-opens for another
  cool-off); a neutral outcome, a probe that is cancelled, times out or is released without a
  verdict lets the next request probe. Outcomes reported while open (late replies to requests
  sent before it opened) are ignored: the cool-off stands.
* Time comes from the injected clock. Loop timers only prompt a re-check, so with a fake clock
  tests advance it and call ``DestinationLimiter.wake()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hookwall.limits import admission, verdicts
from hookwall.limits.keystate import KeyState
from hookwall.limits.settings import LimitConfig
from hookwall.limits.slots import ReleasedOnce
from hookwall.limits.verdicts import EventSink, Outcome, Rejected
from hookwall.limits.waitqueue import EPSILON, Waiter, WaitQueue

__all__ = ["KeyGate", "Slot"]


class Slot(ReleasedOnce):
    """One admission. Release it exactly when the upstream exchange is over."""

    __slots__ = ("_gate", "_probe_gen", "queued_ms")

    def __init__(self, gate: KeyGate, queued_ms: float, probe_gen: int | None) -> None:
        super().__init__()
        self._gate = gate
        self._probe_gen = probe_gen
        self.queued_ms = queued_ms

    def _give_back(self) -> None:
        """Return the slot and wake the next waiter."""
        self._gate.release(self._probe_gen)


class KeyGate:
    """Admission for one key; ``DestinationLimiter`` keeps one per key it has seen."""

    __slots__ = ("_clock", "_emit", "queue", "state")

    def __init__(
        self,
        key: str,
        config: LimitConfig,
        now: float,
        *,
        clock: Callable[[], float],
        emit: EventSink,
    ) -> None:
        self.state = KeyState(key, config, now)
        self.queue: WaitQueue[Slot] = WaitQueue()
        self._clock = clock
        self._emit = emit  # never raises (the limiter's guarded sink)

    @property
    def key(self) -> str:
        return self.state.key

    # -- what the limiter asks -------------------------------------------------------------

    def reconfigure(self, config: LimitConfig, now: float) -> None:
        if config is self.state.config:
            return
        self.state.configure(config, now)
        if self.queue:  # a reload may have raised the cap or the rate
            self.pump()

    async def acquire(self, now: float) -> Slot:
        """Admit, queue or refuse a request under the config of the latest ``reconfigure``."""
        probe_gen = self._pass_circuit(now)
        if admission.arrive(self.state, len(self.queue), now) == "admit":
            if probe_gen is not None:
                self.state.circuit.probe_out = True
            return self._admit(now, now, probe_gen)
        return await self._wait(now, probe_gen)

    def report(
        self, now: float, outcome: Outcome, *, retry_after: float | None, status: int | None
    ) -> None:
        pause = self.state.pause_earned(status, retry_after)
        if pause is not None:
            self._pause(now, pause, status, retry_after)
        transition = self.state.circuit.record(outcome, self.state.config.circuit_failures)
        if transition == "open":
            self._open_circuit(now)
        elif transition is not None:
            self._close_circuit(why=transition)

    def release(self, probe_gen: int | None) -> None:
        self.state.in_flight -= 1
        if self.state.is_probe(probe_gen):
            self.state.circuit.probe_out = False  # no verdict: the next request probes
        self.pump()

    def wake(self, now: float) -> None:
        """Re-check the queue against the clock: admit who may go, refuse who waited too long."""
        self.pump()  # admission first: a request due now is not also timed out
        for waiter in self.queue.due(now):
            self._expire(waiter, now)
        self.pump()

    def idle(self, now: float) -> bool:
        """Forgetting this key changes nothing a sender could notice (or exploit)."""
        return not self.queue and self.state.idle(now)

    def forget(self) -> None:
        self.queue.cancel_wake()

    def row(self, now: float) -> dict[str, object]:
        return self.state.row(now, len(self.queue))

    # -- the queue -------------------------------------------------------------------------

    def pump(self) -> None:
        """Admit queued requests from the head while the key allows; else arm a wake-up."""
        now = self._clock()
        state, queue = self.state, self.queue
        while (waiter := queue.head()) is not None:
            if waiter.future.done():  # cancelled, its task has not run its cleanup yet
                self._drop(waiter)
                continue
            if state.paused_until > now:
                self._wake_at(waiter, state.paused_until, now)
                return
            if not state.has_room():
                queue.cancel_wake()  # a release will pump
                return
            if not state.take_token(now):
                self._wake_at(waiter, now + state.token_wait(1, now), now)
                return
            self._drop(waiter, admitted=True)
            waiter.future.set_result(self._admit(now, waiter.enqueued, waiter.probe_gen))
        queue.cancel_wake()

    def _admit(self, now: float, enqueued: float, probe_gen: int | None) -> Slot:
        self.state.in_flight += 1
        return Slot(self, max(0.0, now - enqueued) * 1000.0, probe_gen)

    async def _wait(self, now: float, probe_gen: int | None) -> Slot:
        timeout = self.state.config.queue_timeout
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Slot] = loop.create_future()
        waiter = Waiter(future, now, now + timeout, probe_gen)
        self.queue.add(waiter)
        if probe_gen is not None:
            self.state.circuit.probe_out = True
        waiter.timer = loop.call_later(timeout, self._on_deadline, waiter)
        self.pump()  # a due timer may not have fired yet: let the head go first
        try:
            return await future
        except BaseException:
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result().release()  # admitted as we were cancelled: give it back
            else:
                self._drop(waiter)
                self.pump()
            raise

    def _drop(self, waiter: Waiter[Slot], *, admitted: bool = False) -> None:
        """Forget a waiter (idempotent); a probe that leaves unadmitted lets the next one probe."""
        if self.queue.remove(waiter) and not admitted and self.state.is_probe(waiter.probe_gen):
            self.state.circuit.probe_out = False

    def _refuse(self, waiter: Waiter[Slot], error: Rejected) -> None:
        if not waiter.future.done():
            waiter.future.set_exception(error)
        self._drop(waiter)

    def _expire(self, waiter: Waiter[Slot], now: float) -> None:
        self._refuse(waiter, verdicts.waited_too_long(self.key, self.state.busy_retry_after(now)))

    def _on_deadline(self, waiter: Waiter[Slot]) -> None:
        waiter.timer = None
        if waiter.future.done() or waiter not in self.queue:
            return
        now = self._clock()
        if now + EPSILON < waiter.deadline:  # early timer, or a clock not driven by the loop
            loop = waiter.future.get_loop()
            waiter.timer = loop.call_later(waiter.deadline - now, self._on_deadline, waiter)
            return
        self.pump()  # admission first: a request due now is not also timed out
        if waiter in self.queue:
            self._expire(waiter, now)
            self.pump()

    def _wake_at(self, waiter: Waiter[Slot], at: float, now: float) -> None:
        self.queue.arm_wake(waiter.future.get_loop(), at, now, self.pump)

    # -- pauses and the circuit ------------------------------------------------------------

    def _pass_circuit(self, now: float) -> int | None:
        """Refuse while open or while another request probes; None when closed, else the
        half-open period this request probes for (the cool-off's end makes it half-open)."""
        state = self.state
        circuit = state.circuit
        if state.config.circuit_failures == 0 and circuit.state != "closed":
            self._close_circuit(why="disabled")
        if circuit.state == "open":
            left = circuit.cooloff_left(now)
            if left > 0:
                raise verdicts.circuit_open(state.key, left)
            circuit.half_open()
            self._emit(state.key, "circuit_half_open", {"cooloff_s": state.config.circuit_cooloff})
        if circuit.state != "half-open":
            return None
        if circuit.probe_out:
            raise verdicts.probing(state.key)
        return circuit.generation

    def _pause(self, now: float, pause: float, status: int | None, asked: float | None) -> None:
        until = now + pause
        if until <= self.state.paused_until:
            return
        self.state.paused_until = until
        self._emit(
            self.key,
            "destination_paused",
            {"pause_s": round(pause, 3), "status": status, "retry_after_s": asked},
        )
        for waiter in self.queue.ending_before(until):
            self._refuse(waiter, verdicts.paused_past_deadline(self.key, pause))
        self.pump()

    def _open_circuit(self, now: float) -> None:
        circuit = self.state.circuit
        was = circuit.state
        cooloff = self.state.config.circuit_cooloff
        circuit.open(now, cooloff)
        self._emit(
            self.key,
            "circuit_opened",
            {"from": was, "failures": circuit.failures, "cooloff_s": cooloff},
        )
        for waiter in list(self.queue):
            self._refuse(waiter, verdicts.circuit_open(self.key, cooloff))
        self.queue.cancel_wake()

    def _close_circuit(self, why: str) -> None:
        was = self.state.circuit.state
        self.state.circuit.close()
        self._emit(self.key, "circuit_closed", {"from": was, "why": why})
        self.pump()
