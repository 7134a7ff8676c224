"""Which event loop runs the proxy: uvloop by default, the standard library's on request.

Every byte hookwall forwards passes through the loop's transports, written in C in uvloop
(libuv). It won most of the benchmark's keep-alive comparisons against asyncio's selector
loop, by 14-18%, and costs ~20 MiB more peak RSS. The measurements vary run to run, so the
benchmark keeps measuring both (``bench/bench.py``, configurations ``hookwall`` and
``hw-asyncio``). ``--event-loop asyncio`` is the fallback should uvloop misbehave on a
platform, and the default where uvloop is not installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Coroutine
from typing import Any, Literal

EventLoop = Literal["auto", "uvloop", "asyncio"]
CHOICES: tuple[EventLoop, ...] = ("auto", "uvloop", "asyncio")


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def chosen(wanted: EventLoop) -> Literal["uvloop", "asyncio"]:
    """The loop ``wanted`` resolves to; ``uvloop`` without uvloop installed is an error."""
    if wanted == "asyncio":
        return "asyncio"
    if uvloop_available():
        return "uvloop"
    if wanted == "uvloop":
        raise RuntimeError(
            "--event-loop uvloop: uvloop is not installed (pip install uvloop), "
            "or run with --event-loop asyncio"
        )
    return "asyncio"


def run[T](main: Coroutine[Any, Any, T], wanted: EventLoop = "auto") -> T:
    """``asyncio.run`` on the chosen loop."""
    if chosen(wanted) == "uvloop":
        import uvloop

        return asyncio.run(main, loop_factory=uvloop.new_event_loop)
    return asyncio.run(main)


def running_loop_name() -> str:
    """``uvloop`` or ``asyncio``: what the running loop is (for the start-up event)."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"
