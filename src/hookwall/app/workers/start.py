"""Starting ``hookwall run --workers N``: what is done once, before any worker runs.

``supervise`` binds every listen address with SO_REUSEPORT (port 0 becomes a free port here, so
every worker reports the same one) and keeps that bound, non-listening socket for the
supervisor's whole life, so a restarted worker always gets the port back; it reserves one
loopback port per worker for its internal listener; it creates the CA and the delivery store
once (N workers would race to); then it runs the :class:`Supervisor` until it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import socket
import sys
from pathlib import Path
from typing import Any

from hookwall.access.decide import is_loopback_listen
from hookwall.app.workers.supervisor import Supervisor
from hookwall.core.listen import Listener
from hookwall.core.listenerrors import cannot_listen
from hookwall.deliveries import logs
from hookwall.mitm import listener

__all__ = ["supervise", "workers_count"]

DRAIN_GRACE = 10.0 + 5.0  # a worker's own drain bound, plus start-up slack, before SIGKILL


def workers_count(text: str) -> int:
    """``--workers N``: 1 to 256."""
    if not text.isdigit() or not 1 <= int(text) <= 256:
        raise argparse.ArgumentTypeError(
            f"expected a number of processes from 1 to 256, got {text!r}"
        )
    return int(text)


def supervise(args: argparse.Namespace, policy: Any, data_dir: Path) -> int:
    """The supervisor of ``hookwall run --workers N`` (N > 1); returns the exit status."""
    from hookwall.app.ca import ensure_ca
    from hookwall.deliveries.store import STORE_FILENAME, Store, StoreError
    from hookwall.flow.runtime import INTERNAL_HOST
    from hookwall.limits.share import describe_share

    reserved: list[socket.socket] = []
    listeners: list[Listener] = []
    for asked in args.listeners:
        try:
            sockets = listener.reserve(asked.host, asked.port)
        except OSError as exc:
            for sock in reserved:
                sock.close()
            print(cannot_listen("proxy", asked.address, exc), file=sys.stderr)
            return 1
        reserved += sockets
        listeners.append(dataclasses.replace(asked, port=sockets[0].getsockname()[1]))
    internal_ports: list[int] = []
    try:
        for _ in range(args.workers):
            reserved += listener.reserve(INTERNAL_HOST, 0)
            internal_ports.append(reserved[-1].getsockname()[1])
    except OSError as exc:
        for sock in reserved:
            sock.close()
        print(f"hookwall: cannot reserve a loopback port: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        ensure_ca(data_dir, args.ca)  # once: N workers creating it at once would race
        with contextlib.suppress(StoreError):  # create or migrate once; workers report errors
            Store.open(data_dir / STORE_FILENAME).close()
        shared = policy.shared_limits
        limits = (
            f"shared in {shared.backend} (one cap for every worker and replica)"
            if shared is not None
            else describe_share(args.workers)
        )
        listen = [item.describe() for item in listeners]
        argv = list(getattr(args, "argv", None) or sys.argv[1:])
        command = [sys.executable, "-m", "hookwall", *argv]
        admin = getattr(args, "admin_listen", None)
        token = os.environ.get("HOOKWALL_ADMIN_TOKEN") or None
        supervisor = Supervisor(
            command,
            tuple(listeners),
            args.workers,
            DRAIN_GRACE,
            admin,
            token,
            tuple(internal_ports),
        )
        supervisor.started_fields.update(
            pid=os.getpid(),
            workers=args.workers,
            listen=listen,
            limits=limits,
            limits_backend=shared.backend if shared is not None else "local",
            admin=None,
        )
        if admin is not None and token is None and not is_loopback_listen(admin[0]):
            logs.get_logger().warning(
                "admin_unauthenticated",
                admin=f"{admin[0]}:{admin[1]}",
                message="/metrics is served without a bearer token on a non-loopback "
                "address; set HOOKWALL_ADMIN_TOKEN, or keep the port behind a firewall",
            )
        return asyncio.run(supervisor.run())
    finally:
        for sock in reserved:
            sock.close()
