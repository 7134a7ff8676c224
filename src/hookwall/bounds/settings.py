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
from hookwall.config.yamlnodes import YNode

__all__ = [
    "DEFAULT_MAX_BODY",
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


_TIMEOUT_KEYS = ("connect", "headers", "response", "body")
# key -> how its value is read: a count (minimum), a duration or a size.
_PROXY_COUNTS = {
    "max_connections": 1,
    "max_connections_per_client": 1,
    "max_header_fields": 1,
    "max_idle_upstream_per_client": 0,
    "max_idle_upstream": 0,
}
_PROXY_DURATIONS = ("idle_timeout", "head_timeout")
_PROXY_SIZES = ("max_header_bytes", "max_buffered_bodies")
_PROXY_KEYS = (*_PROXY_COUNTS, *_PROXY_DURATIONS, *_PROXY_SIZES)


def check_timeouts(checker: Checker, node: YNode, path: str) -> Override:
    mapping = checker.mapping(node, path)
    if mapping is None:
        return ()
    checker.keys(mapping, path, _TIMEOUT_KEYS)
    return tuple(
        (key, checker.duration(entry.value, f"{path}.{key}", positive=True))
        for key, entry in mapping.entries.items()
        if key in _TIMEOUT_KEYS
    )


def check_size(checker: Checker, node: YNode, path: str) -> int | None:
    """A size of more than 0 bytes (``max_request_body``, ``proxy.max_header_bytes``, ...)."""
    size = checker.size(node, path, "'1MiB' or '256KiB'")
    if size is not None and size <= 0:
        checker.issue(node.location, f"{path}: must be more than 0 bytes")
        return None
    return size


def check_proxy(checker: Checker, node: YNode) -> ProxySettings | None:
    mapping = checker.mapping(node, "proxy")
    if mapping is None:
        return None
    checker.keys(mapping, "proxy", _PROXY_KEYS)
    values: dict[str, Any] = {}
    for key, entry in mapping.entries.items():
        where = f"proxy.{key}"
        value: object = None
        if key in _PROXY_COUNTS:
            value = checker.count(entry.value, where, _PROXY_COUNTS[key])
        elif key in _PROXY_DURATIONS:
            value = checker.duration(entry.value, where, positive=True) or None
        elif key in _PROXY_SIZES:
            value = check_size(checker, entry.value, where)
        if value is not None:
            values[key] = value
    return replace(ProxySettings(), **values)
