"""Coarse deadlines, checked together a few times a second.

Connection and body deadlines are set and cleared on every exchange but almost never fire.
An event-loop timer for each (``call_later`` + ``cancel``) costs a heap entry per exchange
that lingers until the loop compacts its heap; here setting or clearing one is a dict write,
and one task looks at all of them every ``tick`` seconds. A deadline fires at most ``tick``
late, which is nothing next to the seconds these deadlines are.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable

logger = logging.getLogger(__name__)

Expired = Callable[[], None]


class Sweeper:
    def __init__(self, tick: float = 0.25, clock: Callable[[], float] = time.monotonic) -> None:
        self.tick = tick
        self._clock = clock
        self._due: dict[Hashable, tuple[float, Expired]] = {}
        self._task: asyncio.Task[None] | None = None

    def set(self, key: Hashable, seconds: float, expired: Expired) -> None:
        """Call ``expired`` once ``seconds`` have passed, unless ``clear(key)`` comes first;
        setting a key again replaces its deadline."""
        self._due[key] = (self._clock() + seconds, expired)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def clear(self, key: Hashable) -> None:
        self._due.pop(key, None)

    def __len__(self) -> int:
        return len(self._due)

    def sweep(self) -> None:
        """Fire every deadline that has passed (each once; a failing one never stops the rest)."""
        now = self._clock()
        expired = [key for key, (when, _) in self._due.items() if when <= now]
        for key in expired:
            entry = self._due.pop(key, None)
            if entry is None:
                continue  # cleared by an earlier callback of this sweep
            try:
                entry[1]()
            except Exception:
                logger.exception("a deadline callback failed")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            self.sweep()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
