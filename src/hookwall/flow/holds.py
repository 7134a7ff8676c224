"""What an exchange (or a connection) has taken, given back exactly once.

A concurrency slot, a lease, a timer, the in-flight count: each is registered here when it is
taken, with the function that gives it back. Whoever ends the exchange first (its last
``response``/``error`` handler, or the end of its client connection when mitmproxy dropped
the flow without either hook) releases everything still held; a hook that never runs can
therefore never leak anything. Releases run last-taken first, and one failing release never
stops the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

Release = Callable[[], None]


class Hold:
    """One resource: ``release()`` gives it back the first time and does nothing after."""

    __slots__ = ("_release", "what")

    def __init__(self, what: str, release: Release) -> None:
        self.what = what
        self._release: Release | None = release

    @property
    def held(self) -> bool:
        return self._release is not None

    def forget(self) -> None:
        """It was given back some other way: nothing to do at the end."""
        self._release = None

    def release(self) -> None:
        release, self._release = self._release, None
        if release is None:
            return
        try:
            release()
        except Exception:  # one failing release never keeps the others
            logger.exception("releasing %s failed", self.what)


class Holds:
    """Everything one exchange or connection holds. After ``release_all`` nothing more can be
    taken: a late ``add`` (an await that finished after the end) is given back at once."""

    __slots__ = ("_held", "closed")

    def __init__(self) -> None:
        self._held: list[Hold] = []
        self.closed = False

    def add(self, what: str, release: Release) -> Hold:
        hold = Hold(what, release)
        if self.closed:
            hold.release()
        else:
            self._held.append(hold)
        return hold

    def held(self) -> list[str]:
        """What is still held, oldest first (for diagnostics and tests)."""
        return [hold.what for hold in self._held if hold.held]

    def release_all(self) -> None:
        self.closed = True
        while self._held:
            self._held.pop().release()


class stopped_if_released:
    """While inside, the end of the exchange (its sender gone) cancels the current task: work
    done on behalf of an exchange (a queue wait, redirect hops, retries) stops with it.
    (A class, not ``@contextmanager``: it is on every request's path.)"""

    __slots__ = ("_hold", "_holds", "_what")

    def __init__(self, holds: Holds, what: str) -> None:
        self._holds, self._what = holds, what
        self._hold: Hold | None = None

    def __enter__(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._hold = self._holds.add(self._what, task.cancel)  # type: ignore[arg-type]

    def __exit__(self, *exc: object) -> None:
        if self._hold is not None:
            self._hold.forget()  # done: ending the exchange later must not cancel whoever runs
