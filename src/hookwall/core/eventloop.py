"""Which event loop runs the proxy: the standard library's by default, uvloop on request.

uvloop's transports are C (libuv), so it was the default for a while. Measured side by side
in four full benchmark runs (``bench/bench.py``, configurations ``hookwall`` and the same
proxy on the other loop), it was no faster on average: its throughput over asyncio's ranged
0.79-1.38x per scenario, about 1.0x overall, and peak RSS showed no consistent difference.
The standard loop is what mitmproxy is built and tested on, so it is the default, and
``--event-loop uvloop`` stays available, with the extra ``hookwall[uvloop]`` (the dev lock
has it, so the benchmark can keep measuring it, ``hw-uvloop``). Without it, ``hookwall run
--event-loop uvloop`` refuses to start (``loop_problem``) and nothing imports uvloop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Literal

from hookwall.core.extras import install_hint

EventLoop = Literal["asyncio", "uvloop"]
CHOICES: tuple[EventLoop, ...] = ("asyncio", "uvloop")


def loop_problem(wanted: EventLoop) -> str | None:
    """Why the loop asked for cannot run here (checked before start), or None."""
    if wanted != "uvloop":
        return None
    try:
        import uvloop  # noqa: F401  (only asked for: the default never imports it)
    except ImportError:
        return (
            f"--event-loop uvloop needs uvloop, which is not installed: {install_hint('uvloop')}"
            ", or run with the default --event-loop asyncio"
        )
    return None


def run[T](main: Coroutine[Any, Any, T], wanted: EventLoop = "asyncio") -> T:
    """``asyncio.run`` on the chosen loop; uvloop without uvloop installed is an error."""
    if wanted == "uvloop":
        problem = loop_problem(wanted)
        if problem is not None:
            main.close()  # never awaited: no "coroutine was never awaited" warning
            raise RuntimeError(problem)
        import uvloop

        return asyncio.run(main, loop_factory=uvloop.new_event_loop)
    return asyncio.run(main)


def running_loop_name() -> str:
    """``uvloop`` or ``asyncio``: what the running loop is (for the start-up event)."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"
