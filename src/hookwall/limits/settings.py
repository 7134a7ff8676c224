"""The flood-control sections: ``limits``, ``timeouts``, ``max_request_body``,
``max_response_body`` (in ``defaults`` and in destinations), and the top-level ``proxy``.

A destination writes only what differs from the defaults; each section is merged field by
field (``limits: {concurrency: 2}`` keeps the default queue). Values are validated here so a
bad number is a load error with file and line, never a surprise at run time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Literal

from hookwall.config.units import parse_size
from hookwall.config.yamltree import YNode, YScalar
from hookwall.limits.caps import LimitConfig

if TYPE_CHECKING:
    from hookwall.policy.schema import _FileChecker

KeyBy = Literal["host", "host-port"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-destination flood control: the limiter's config plus how requests are grouped."""

    config: LimitConfig = field(default_factory=LimitConfig)
    # One budget (and one circuit) per host and port by default: failures of one service
    # never open the circuit of another on the same host; `key: host` shares them on purpose.
    key: KeyBy = "host-port"
    per_sender: bool = False  # each sender gets its own budget at this destination


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


DEFAULT_MAX_BODY = 1024 * 1024
Override = tuple[tuple[str, object], ...]

_LIMIT_KEYS = (
    "concurrency",
    "queue",
    "queue_timeout",
    "rate",
    "burst",
    "per_sender",
    "key",
    "retry_after_max",
    "circuit",
)
_CIRCUIT_KEYS = ("failures", "cooloff")
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
_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*")
_PER = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


def parse_rate(value: object) -> float:
    """Requests per second from '50/s', '600/m', '10/h' or a bare number (per second)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        rate = float(value)
    elif isinstance(value, str) and (match := _RATE.fullmatch(value)):
        rate = float(match[1]) / _PER[match[2]]
    else:
        raise ValueError(f"expected a rate like '50/s', '600/m' or '10/h'; got {value!r}")
    if rate <= 0:
        raise ValueError("a rate must be more than 0; leave it out for no rate limit")
    return rate


def apply(base: object, override: Override) -> object:
    """``base`` with the fields an override names replaced (dataclasses.replace)."""
    return replace(base, **dict(override)) if override else base  # type: ignore[type-var]


def merge_limits(base: Limits, override: Override) -> Limits:
    """Limits plus a field-wise override; limiter fields go to ``config``."""
    if not override:
        return base
    config_fields = {f.name for f in fields(LimitConfig)}
    values: dict[str, Any] = dict(override)
    config = replace(base.config, **{k: v for k, v in values.items() if k in config_fields})
    rest = {k: v for k, v in values.items() if k not in config_fields}
    return replace(base, config=config, **rest)


def check_limits(checker: _FileChecker, node: YNode, path: str) -> Override:
    mapping = checker.mapping(node, path)
    if mapping is None:
        return ()
    checker.keys(mapping, path, _LIMIT_KEYS, "limits")
    out: list[tuple[str, object]] = []
    for key, entry in mapping.entries.items():
        where, value = f"{path}.{key}", entry.value
        if key in ("concurrency", "queue", "burst"):
            number = _count(checker, value, where, minimum=0 if key == "queue" else 1)
            if number is not None:
                out.append((key, number))
        elif key in ("queue_timeout", "retry_after_max"):
            out.append((key, checker.duration(value, where, positive=key != "queue_timeout")))
        elif key == "rate":
            if isinstance(value, YScalar) and value.value is None:
                out.append(("rate", None))
                continue
            try:
                out.append(
                    ("rate", parse_rate(value.value if isinstance(value, YScalar) else None))
                )
            except ValueError as exc:
                checker.issue(value.location, f"{where}: {exc}")
        elif key == "per_sender":
            flag = checker.boolean(value, where)
            if flag is not None:
                out.append((key, flag))
        elif key == "key":
            choice = checker.choice(value, where, ("host", "host-port"))
            if choice is not None:
                out.append((key, choice))
        elif key == "circuit":
            out.extend(_circuit(checker, value, where))
    return tuple(out)


def _circuit(checker: _FileChecker, node: YNode, path: str) -> list[tuple[str, object]]:
    mapping = checker.mapping(node, path)
    if mapping is None:
        return []
    checker.keys(mapping, path, _CIRCUIT_KEYS, "circuit")
    out: list[tuple[str, object]] = []
    if "failures" in mapping.entries:
        failures = _count(checker, mapping.entries["failures"].value, f"{path}.failures", 0)
        if failures is not None:
            out.append(("circuit_failures", failures))
    if "cooloff" in mapping.entries:
        node = mapping.entries["cooloff"].value
        out.append(("circuit_cooloff", checker.duration(node, f"{path}.cooloff", positive=True)))
    return out


def check_timeouts(checker: _FileChecker, node: YNode, path: str) -> Override:
    mapping = checker.mapping(node, path)
    if mapping is None:
        return ()
    checker.keys(mapping, path, _TIMEOUT_KEYS, "timeouts")
    return tuple(
        (key, checker.duration(entry.value, f"{path}.{key}", positive=True))
        for key, entry in mapping.entries.items()
        if key in _TIMEOUT_KEYS
    )


def check_size(checker: _FileChecker, node: YNode, path: str) -> int | None:
    value = node.value if isinstance(node, YScalar) else None
    if not isinstance(value, str | int) or isinstance(value, bool):
        checker.expected(node, path, "a size like '1MiB' or '256KiB'")
        return None
    try:
        size = parse_size(value)
    except ValueError as exc:
        checker.issue(node.location, f"{path}: {exc}")
        return None
    if size <= 0:
        checker.issue(node.location, f"{path}: must be more than 0 bytes")
        return None
    return size


def check_proxy(checker: _FileChecker, node: YNode) -> ProxySettings | None:
    mapping = checker.mapping(node, "proxy")
    if mapping is None:
        return None
    checker.keys(mapping, "proxy", _PROXY_KEYS, "proxy")
    values: dict[str, Any] = {}
    for key, entry in mapping.entries.items():
        where = f"proxy.{key}"
        value: object = None
        if key in _PROXY_COUNTS:
            value = _count(checker, entry.value, where, _PROXY_COUNTS[key])
        elif key in _PROXY_DURATIONS:
            value = checker.duration(entry.value, where, positive=True) or None
        elif key in _PROXY_SIZES:
            value = check_size(checker, entry.value, where)
        if value is not None:
            values[key] = value
    settings = replace(ProxySettings(), **values)
    return settings


def _count(checker: _FileChecker, node: YNode, path: str, minimum: int) -> int | None:
    value = node.value if isinstance(node, YScalar) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        checker.expected(node, path, f"a whole number >= {minimum}")
        return None
    return value
