"""The requests waiting for one destination key, oldest first, and the key's one wake-up timer.

A container with no admission logic of its own (``keygate`` decides who leaves it and why):
waiters leave from anywhere in O(1) (cancelled, timed out, refused when a circuit opens), and
at most one loop timer per key prompts a re-check when a pause ends or a token is due.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Iterator

__all__ = ["EPSILON", "WaitQueue", "Waiter"]

# Float slack for comparing deadlines and wake-up times against the clock.
EPSILON = 1e-9


class Waiter[T]:
    """One queued request: its future resolves to its slot (or a refusal)."""

    __slots__ = ("deadline", "enqueued", "future", "probe_gen", "timer")

    def __init__(
        self, future: asyncio.Future[T], enqueued: float, deadline: float, probe_gen: int | None
    ) -> None:
        self.future = future
        self.enqueued = enqueued
        self.deadline = deadline
        self.probe_gen = probe_gen  # the half-open period it probes for, if it is the probe
        self.timer: asyncio.TimerHandle | None = None  # its deadline


class WaitQueue[T]:
    __slots__ = ("_waiters", "_wake_at", "_wake_handle")

    def __init__(self) -> None:
        # Insertion-ordered with O(1) removal from anywhere.
        self._waiters: OrderedDict[Waiter[T], None] = OrderedDict()
        self._wake_at = 0.0
        self._wake_handle: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._waiters)

    def __iter__(self) -> Iterator[Waiter[T]]:
        return iter(self._waiters)

    def __contains__(self, waiter: object) -> bool:
        return waiter in self._waiters

    def add(self, waiter: Waiter[T]) -> None:
        self._waiters[waiter] = None

    def head(self) -> Waiter[T] | None:
        return next(iter(self._waiters), None)

    def remove(self, waiter: Waiter[T]) -> bool:
        """Take ``waiter`` out and stop its deadline timer; False if it had left already."""
        if waiter.timer is not None:
            waiter.timer.cancel()
            waiter.timer = None
        if waiter not in self._waiters:
            return False
        del self._waiters[waiter]
        return True

    def due(self, now: float) -> list[Waiter[T]]:
        """The waiters whose deadline has come."""
        return [w for w in self._waiters if w.deadline <= now + EPSILON]

    def ending_before(self, until: float) -> list[Waiter[T]]:
        """The waiters whose deadline comes before ``until`` (a pause's end)."""
        return [w for w in self._waiters if w.deadline < until]

    def arm_wake(
        self, loop: asyncio.AbstractEventLoop, at: float, now: float, wake: Callable[[], None]
    ) -> None:
        """Call ``wake`` at clock time ``at`` (one timer per key: a new time replaces it)."""
        if self._wake_handle is not None:
            if abs(self._wake_at - at) <= EPSILON:
                return
            self._wake_handle.cancel()
        self._wake_at = at
        self._wake_handle = loop.call_later(max(0.0, at - now), self._woken, wake)

    def cancel_wake(self) -> None:
        if self._wake_handle is not None:
            self._wake_handle.cancel()
            self._wake_handle = None

    def _woken(self, wake: Callable[[], None]) -> None:
        self._wake_handle = None
        wake()
