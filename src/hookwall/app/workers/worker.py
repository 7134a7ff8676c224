"""The worker side of ``--workers N``, and the serving of one proxy process.

``enter_worker`` makes this process worker I of N: it takes the supervisor's hand-over from
stdin (``handover.py``), leaves the CA and the admin listener to the supervisor, and tags
every log line with ``worker`` and ``pid``. ``run_proxy`` serves one process, a plain
``hookwall run`` or one worker; a worker's listener joins the port's SO_REUSEPORT group
(``mitm/listener.py``), and a worker whose supervisor disappears (SIGKILL) stops itself,
gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

import structlog

from hookwall.app.workers.handover import WorkerInfo, take_handover
from hookwall.deliveries import logs
from hookwall.mitm import listener

__all__ = ["current_worker", "enter_worker", "run_proxy"]

PARENT_CHECK = 1.0  # seconds between checks that the supervisor is still there

_current: WorkerInfo | None = None


def current_worker() -> WorkerInfo | None:
    """This process's place among the workers, or None outside ``--workers N``."""
    return _current


def enter_worker(args: argparse.Namespace) -> WorkerInfo:
    """Become worker I of N: read the shared secret from stdin, tag every log line."""
    global _current
    info: WorkerInfo = args.worker
    line = sys.stdin.readline() if not sys.stdin.isatty() else ""
    siblings = take_handover(line, info)
    if siblings is not None:
        # the supervisor's admin listener: never a destination either
        args.sibling_listeners = siblings
    info.parent = os.getppid()
    args.ca = None  # the supervisor installed it; N workers rewriting it would race readers
    if info.admin_socket is not None or info.index > 1:
        args.admin_listen = None  # the supervisor serves it for all (workeradmin.py)
    _current = info
    config = structlog.get_config()
    fields = {"worker": info.index, "pid": os.getpid()}

    def add_worker(_: Any, __: str, event: Any) -> Any:
        event.update(fields)
        return event

    structlog.configure(processors=[add_worker, *config["processors"]])
    return info


async def run_proxy(config: Any, runtime: Any, worker: WorkerInfo | None = None) -> int:
    """Serve one proxy process: ``hookwall run``, or one worker of ``--workers N``."""
    from hookwall.app.limiter import build_limiter
    from hookwall.app.master import serve
    from hookwall.flow.runtime import INTERNAL_HOST

    share = worker.count if worker is not None else 1
    tasks: set[asyncio.Task[None]] = set()
    if worker is not None:
        listener.install()
        if worker.internal_token:
            runtime.internal_token = worker.internal_token
        if len(worker.internal_ports) == worker.count:
            runtime.internal_port = worker.internal_ports[worker.index - 1]
            for port in worker.internal_ports:  # every worker's: never a destination
                runtime.self_addresses.add_listener(INTERNAL_HOST, port)
        tasks.add(asyncio.get_running_loop().create_task(_watch_parent(worker)))
    built = build_limiter(runtime.policy, share)
    runtime.limiter = built.limiter
    await built.start()
    try:
        return await serve(config, runtime)
    finally:
        for task in tasks:
            task.cancel()
        await built.aclose()


async def _watch_parent(worker: WorkerInfo) -> None:
    """An orphaned worker (its supervisor was SIGKILLed) drains and exits like on SIGTERM."""
    while True:
        await asyncio.sleep(PARENT_CHECK)
        if os.getppid() != worker.parent:
            logs.get_logger().warning("supervisor_gone", message="draining and exiting")
            os.kill(os.getpid(), signal.SIGTERM)
            return
