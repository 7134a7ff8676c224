"""How long and how large: ``timeouts``, ``max_request_body`` and ``max_response_body`` (in
``defaults`` and in destinations), and the process-wide bounds of the top-level ``proxy``.

A destination writes only the timeouts that differ from the defaults (an ``Override``,
merged field by field). Values are validated here so a bad number is a load error with file
and line, never a surprise at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from hookwall.config.checker import Checker
from hookwall.config.overrides import Override
from hookwall.config.shapes import Duration, Fields, Size, Whole
from hookwall.config.yamlnodes import YNode

__all__ = [
    "BODY_SIZE",
    "DEFAULT_MAX_BODY",
    "PROXY",
    "TIMEOUTS",
    "ProxySettings",
    "Timeouts",
    "check_proxy",
    "check_size",
    "check_timeouts",
]

DEFAULT_MAX_BODY = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Timeouts:
    """mitmproxy has none of these; hookwall enforces them with its own timers."""

    connect: float = 5.0  # TCP connect to the receiver
    headers: float = 15.0  # request sent -> response headers received
    response: float = 30.0  # request sent -> whole response received (the deadline)
    body: float = 30.0  # request head received -> whole request body received (slow senders)


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """Process-wide limits (top-level ``proxy:``)."""

    max_connections: int = 2000  # concurrent client connections
    max_connections_per_client: int = 200  # concurrent connections from one client address
    idle_timeout: float = 60.0  # a connection with no exchange in flight is closed after this
    head_timeout: float = 10.0  # a request head (or CONNECT + TLS handshake) must be complete
    max_header_bytes: int = 64 * 1024  # of a request or response head, start line included
    max_header_fields: int = 100  # header lines of a request or response head
    max_idle_upstream_per_client: int = 8  # idle receiver connections kept for one client
    max_idle_upstream: int = 512  # idle receiver connections kept in all
    max_buffered_bodies: int = 256 * 1024 * 1024  # request bodies held in memory at once


TIMEOUTS = Fields(
    {
        "connect": Duration(True, doc="TCP connect to the receiver (default 5s)"),
        "headers": Duration(True, doc="request sent -> response headers received (default 15s)"),
        "response": Duration(True, doc="request sent -> whole response received (default 30s)"),
        "body": Duration(True, doc="request head -> whole request body received (default 30s)"),
    },
    doc="hookwall's own deadlines; a destination writes only those that differ",
)
PROXY = Fields(
    {
        "max_connections": Whole(1, doc="concurrent client connections (default 2000)"),
        "max_connections_per_client": Whole(
            1, doc="concurrent connections from one client address (default 200)"
        ),
        "idle_timeout": Duration(True, doc="a connection with no exchange is closed (1m)"),
        "head_timeout": Duration(True, doc="a request head or CONNECT + TLS handshake (10s)"),
        "max_header_bytes": Size(doc="of a request or response head (default 64KiB)"),
        "max_header_fields": Whole(1, doc="header lines of a head (default 100)"),
        "max_idle_upstream_per_client": Whole(
            0, doc="idle receiver connections kept for one client connection (default 8)"
        ),
        "max_idle_upstream": Whole(0, doc="idle receiver connections kept in all (default 512)"),
        "max_buffered_bodies": Size(doc="request bodies held in memory at once (256MiB)"),
    },
    doc="process-wide bounds",
)
BODY_SIZE = Size(doc="the largest body, e.g. 1MiB (default 1MiB)")


def check_timeouts(checker: Checker, node: YNode, path: str) -> Override:
    mapping = checker.mapping(node, path)
    if mapping is None:
        return ()
    checker.keys(mapping, path, TIMEOUTS.names)
    return tuple(
        (key, TIMEOUTS.reader(key).read(checker, entry.value, f"{path}.{key}"))
        for key, entry in mapping.entries.items()
        if key in TIMEOUTS.fields
    )


def check_size(checker: Checker, node: YNode, path: str) -> int | None:
    """A size of more than 0 bytes (``max_request_body``, ``proxy.max_header_bytes``, ...)."""
    return BODY_SIZE.read(checker, node, path)


def check_proxy(checker: Checker, node: YNode) -> ProxySettings | None:
    mapping = checker.mapping(node, "proxy")
    if mapping is None:
        return None
    checker.keys(mapping, "proxy", PROXY.names)
    values: dict[str, Any] = {}
    for key, entry in mapping.entries.items():
        if key not in PROXY.fields:
            continue
        shape = PROXY.reader(key)
        value = shape.read(checker, entry.value, f"proxy.{key}")
        # None, or a positive duration read as 0 after its issue: no value (the load fails).
        if value is not None and not (isinstance(shape, Duration) and not value):
            values[key] = value
    return replace(ProxySettings(), **values)
