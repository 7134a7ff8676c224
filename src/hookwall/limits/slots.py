"""The release-exactly-once base of every limiter's slot (local and Redis alike).

The proxy gives a slot back from whichever hook ends the exchange first, and a hold may be
released again on the way out; a slot given back twice would free a place that is still taken.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["ReleasedOnce"]


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
