"""A process-wide budget of bytes: what request bodies may hold in memory at once.

mitmproxy buffers every request body whole before it goes upstream, and a request waiting for
its destination's slot keeps its body; without a budget, senders decide how much memory the
proxy uses (``max_connections`` x ``max_request_body``). A request reserves its declared
``Content-Length`` (a chunked one: its destination's ``max_request_body``) before its body is
read, and gives it back when its exchange ends.
"""

from __future__ import annotations


class ByteBudget:
    __slots__ = ("in_use", "peak")

    def __init__(self) -> None:
        self.in_use = 0
        self.peak = 0

    def reserve(self, size: int, limit: int) -> bool:
        """Take ``size`` bytes if they fit under ``limit``; a single request larger than the
        whole budget still fits when nothing else is reserved (its own cap judged it)."""
        if size <= 0:
            return True
        if self.in_use and self.in_use + size > limit:
            return False
        self.in_use += size
        self.peak = max(self.peak, self.in_use)
        return True

    def give_back(self, size: int) -> None:
        self.in_use = max(0, self.in_use - size)
