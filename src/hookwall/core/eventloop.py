"""Which event loop runs the proxy: the standard library's by default, uvloop on request.

uvloop's transports are C (libuv), so it was the default for a while. Measured side by side
in four full benchmark runs (``bench/bench.py``, configurations ``hookwall`` and the same
proxy on the other loop), it was no faster on average: its throughput over asyncio's ranged
0.79-1.38x per scenario, about 1.0x overall, and peak RSS showed no consistent difference.
The standard loop is what mitmproxy is built and tested on, so it is the default, and
``--event-loop uvloop`` stays available. uvloop is a dependency so that the option works and
the benchmark can keep measuring it (``hw-uvloop``).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Coroutine
from typing import Any, Literal

EventLoop = Literal["asyncio", "uvloop"]
CHOICES: tuple[EventLoop, ...] = ("asyncio", "uvloop")


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def run[T](main: Coroutine[Any, Any, T], wanted: EventLoop = "asyncio") -> T:
    """``asyncio.run`` on the chosen loop; uvloop without uvloop installed is an error."""
    if wanted == "uvloop":
        if not uvloop_available():
            raise RuntimeError(
                "--event-loop uvloop: uvloop is not installed (pip install uvloop), "
                "or run with the default --event-loop asyncio"
            )
        import uvloop

        return asyncio.run(main, loop_factory=uvloop.new_event_loop)
    return asyncio.run(main)


def running_loop_name() -> str:
    """``uvloop`` or ``asyncio``: what the running loop is (for the start-up event)."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"
