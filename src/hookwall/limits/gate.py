"""Per-destination admission in this process: concurrency cap, bounded FIFO queue, token bucket,
backpressure pauses and a circuit breaker, so one slow, flooded or failing receiver never hurts
another.

``DestinationLimiter`` is the table of destination keys: one ``KeyGate`` per key (``keygate``
says what admission means for one key, ``admission`` how an arrival is decided), kept in
least-recently-used order and bounded by forgetting idle keys. Forgetting a key must lift no
limit, so only idle keys go: nothing in flight or queued, the circuit closed, no pause, the
bucket full.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from hookwall.limits.keygate import KeyGate, Slot
from hookwall.limits.settings import LimitConfig
from hookwall.limits.verdicts import EventSink, Outcome

__all__ = ["DestinationLimiter"]

log = logging.getLogger(__name__)

# Keys examined per eviction pass: bounds the work one new key can cause.
_EVICT_SCAN = 64


class DestinationLimiter:
    """Admission control per destination key; see ``keygate`` for the semantics."""

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
        self._keys: OrderedDict[str, KeyGate] = OrderedDict()  # least recently used first

    # -- the limiter interface -------------------------------------------------------------

    async def acquire(self, key: str, config: LimitConfig) -> Slot:
        """Wait for a slot for ``key`` under ``config``, or raise ``Rejected``."""
        now = self._clock()
        return await self._gate(key, config, now).acquire(now)

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
        self._gate(key, None, now).report(now, outcome, retry_after=retry_after, status=status)

    def snapshot(self, limit: int = 1000) -> list[dict[str, object]]:
        """Per tracked key (at most ``limit``, sorted by key): what operators ask when it's slow."""
        now = self._clock()
        return [self._keys[key].row(now) for key in heapq.nsmallest(max(0, limit), self._keys)]

    # -- one key at a time, and the clock (tests drive a fake one) ------------------------

    def in_flight(self, key: str) -> int:
        gate = self._keys.get(key)
        return 0 if gate is None else gate.state.in_flight

    def queued(self, key: str) -> int:
        gate = self._keys.get(key)
        return 0 if gate is None else len(gate.queue)

    def wake(self, key: str | None = None) -> None:
        """Re-check queues against the clock now (timers do this; tests with a fake clock)."""
        now = self._clock()
        if key is None:
            gates = list(self._keys.values())
        else:
            gates = [self._keys[key]] if key in self._keys else []
        for gate in gates:
            gate.wake(now)

    def __len__(self) -> int:
        """Number of keys with state (bounded by eviction)."""
        return len(self._keys)

    # -- the table of keys -----------------------------------------------------------------

    def _gate(self, key: str, config: LimitConfig | None, now: float) -> KeyGate:
        """The key's gate, made most recently used; ``config``: the latest, applied at once."""
        gate = self._keys.get(key)
        if gate is None:
            gate = KeyGate(key, config or LimitConfig(), now, clock=self._clock, emit=self._emit)
            self._keys[key] = gate
            if len(self._keys) > self._max_idle_keys:
                self._evict(now, keep=key)
            return gate
        self._keys.move_to_end(key)
        if config is not None:
            gate.reconfigure(config, now)
        return gate

    def _evict(self, now: float, keep: str) -> None:
        """Drop least recently used idle keys; busy ones go to the back to be looked at later."""
        for key in list(itertools.islice(self._keys, _EVICT_SCAN)):
            if len(self._keys) <= self._max_idle_keys:
                return
            if key == keep:
                continue
            gate = self._keys[key]
            if gate.idle(now):
                gate.forget()
                del self._keys[key]
            else:
                self._keys.move_to_end(key)

    def _emit(self, key: str, event: str, fields: dict[str, object]) -> None:
        """Logging must not break admission: a failing sink is logged and otherwise ignored."""
        if self._on_event is None:
            return
        try:
            self._on_event(key, event, fields)
        except Exception:
            log.exception("on_event failed for %s %s", key, event)
