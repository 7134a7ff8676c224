"""What the supervisor tells a worker: its place in argv, the facts it shares on stdin.

A worker is started as ``python -m hookwall <the same arguments> --worker-listen
MODE@HOST:PORT... --worker I/N``; then the supervisor writes one JSON line on its stdin and
closes it: the secret that marks hookwall's own redirect hops (so it is never in argv or the
environment), the internal listener ports of every worker, the supervisor's own listeners
(which the worker refuses as destinations) and the unix socket where the worker serves
``/readyz`` and ``/metrics`` to the supervisor. Both ends of that line are here, so its
fields are named once.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

__all__ = ["Handover", "WorkerInfo", "parse_worker", "take_handover"]


@dataclass(slots=True)
class WorkerInfo:
    index: int  # 1..count
    count: int
    internal_token: str | None = None  # from the supervisor, on stdin
    # The internal listeners' ports, one per worker (reserved by the supervisor; stdin too).
    internal_ports: tuple[int, ...] = ()
    parent: int | None = None
    admin_socket: str | None = None  # where this worker serves /readyz and /metrics to it


def parse_worker(text: str) -> WorkerInfo:
    """``--worker I/N`` (internal: set by the supervisor)."""
    index, sep, count = text.partition("/")
    if not (sep and index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise argparse.ArgumentTypeError(f"expected I/N with 1 <= I <= N, got {text!r}")
    return WorkerInfo(int(index), int(count))


@dataclass(frozen=True, slots=True)
class Handover:
    """The supervisor's line on one worker's stdin."""

    internal_token: str
    internal_ports: tuple[int, ...]
    sibling_listeners: tuple[tuple[str, int], ...]  # the supervisor's admin listener, if any
    admin_socket: str | None  # None: the supervisor serves no admin listener

    def line(self) -> bytes:
        given: dict[str, object] = {
            "internal_token": self.internal_token,
            "internal_ports": self.internal_ports,
            "sibling_listeners": self.sibling_listeners,
        }
        if self.admin_socket is not None:
            given["admin_socket"] = self.admin_socket
        return json.dumps(given).encode() + b"\n"


def take_handover(line: str, info: WorkerInfo) -> tuple[tuple[str, int], ...] | None:
    """Fill ``info`` from the supervisor's line; returns the sibling listeners it names, or
    None when the line is not the supervisor's (a worker started by hand, whose redirect
    hops then stay on itself)."""
    try:
        given = json.loads(line)
        info.internal_token = given["internal_token"] or None
        info.internal_ports = tuple(int(port) for port in given.get("internal_ports") or ())
        info.admin_socket = given.get("admin_socket") or None
        return tuple((str(host), int(port)) for host, port in given.get("sibling_listeners") or ())
    except (ValueError, KeyError, TypeError, AttributeError):
        info.internal_token = None
        return None
