"""Bounded labels for hookwall's metrics: a status's class, a denial's code, and which
destinations get series of their own (at most ``top_destinations`` at a time; every other one
is ``destination="other"``).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable

OTHER = "other"
NONE = "none"
DEFAULT_TOP_DESTINATIONS = 20
_REASON = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


def status_class(status: object) -> str:
    """``2xx`` ... ``5xx``, or ``none`` when the exchange ended without a status."""
    if isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599:
        return f"{status // 100}xx"
    return NONE


def reason_label(reason: object) -> str:
    """A denial's stable code (bounded by construction; anything else is ``other``)."""
    if reason is None:
        return NONE
    if isinstance(reason, str) and _REASON.fullmatch(reason):
        return reason
    return OTHER


def destination_of(limit_key: str) -> str:
    """The destination part of a flood-control key (``host`` or ``host:port``, per sender
    ``...|sender``): per-sender budgets of one destination are one destination here."""
    return limit_key.partition("|")[0]


class DestinationLabels:
    """Which destinations get series of their own: at most ``limit`` at a time.

    A destination is labelled on its first activity while there is room, and keeps its label
    while it is active, so its counters stay monotonic. When the table is full, activity of
    unlabelled destinations is counted (in a bounded table) and they are ``other``; every
    ``maintain`` (at each scrape, and at least every ``interval`` seconds) retires labelled
    destinations idle for ``retire_after`` seconds and gives the free labels to the most active
    of the others. A retired label's series are removed (``on_retire``); should it come back it
    starts again from zero, which Prometheus' ``rate()`` reads as a counter reset.
    """

    def __init__(
        self,
        limit: int = DEFAULT_TOP_DESTINATIONS,
        *,
        retire_after: float = 600.0,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        on_retire: Callable[[str], None] | None = None,
    ) -> None:
        self.limit = max(0, limit)
        self.retire_after = retire_after
        self.interval = interval
        self._clock = clock
        self._on_retire = on_retire
        self._labelled: dict[str, float] = {}  # destination -> last activity
        self._candidates: Counter[str] = Counter()  # unlabelled destination -> activity
        self._max_candidates = max(100, 50 * self.limit)
        self._next_maintenance = clock() + interval

    @property
    def labelled(self) -> frozenset[str]:
        return frozenset(self._labelled)

    def label(self, destination: str) -> str:
        """The label for ``destination``, counting one unit of activity for it."""
        now = self._clock()
        if now >= self._next_maintenance:
            self.maintain()
        if destination in self._labelled:
            self._labelled[destination] = now
            return destination
        if len(self._labelled) < self.limit:
            self._labelled[destination] = now
            return destination
        if destination in self._candidates or len(self._candidates) < self._max_candidates:
            self._candidates[destination] += 1
        return OTHER

    def peek(self, destination: str) -> str:
        """The label for ``destination`` without counting activity."""
        return destination if destination in self._labelled else OTHER

    def maintain(self) -> None:
        now = self._clock()
        self._next_maintenance = now + self.interval
        if not self._candidates:
            return
        room = self.limit - len(self._labelled)
        idle = sorted(
            (d for d, seen in self._labelled.items() if now - seen >= self.retire_after),
            key=self._labelled.__getitem__,
        )
        wanted = [d for d, _ in self._candidates.most_common(room + len(idle))]
        # Retire only as many idle labels as there are destinations waiting for one.
        for destination in idle[: max(0, len(wanted) - room)]:
            del self._labelled[destination]
            if self._on_retire is not None:
                self._on_retire(destination)
        for destination in wanted[: self.limit - len(self._labelled)]:
            self._labelled[destination] = now
        self._candidates.clear()
