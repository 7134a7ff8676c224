"""Waiting for what another thread or process does, when it says nothing we could wait on."""

from __future__ import annotations

import time
from collections.abc import Callable

POLL = 0.01  # seconds between looks: short, the deadline bounds the whole wait


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` (a receiver's counter, a gauge) until it holds, or fail at the
    deadline. For the proxy's own log lines use ``ProxyProcess.wait_for``, which needs no
    polling."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s"
        time.sleep(POLL)
