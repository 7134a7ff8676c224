"""The ``limits`` section of ``defaults`` and destinations: flood control per destination.

A destination writes only what differs from the defaults; the section is merged field by
field (``limits: {concurrency: 2}`` keeps the default queue). Values are validated here so a
bad number is a load error with file and line, never a surprise at run time. Where the
limiter's state is shared (the top-level ``limits``) is ``limits.shared_settings``.

``LimitConfig`` is what the limiter is handed with every ``acquire``: frozen, so one object is
shared by every request of a policy generation, and the limiter always uses the config of the
latest ``acquire``, so a policy reload takes effect at once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from hookwall.config.checker import Checker
from hookwall.config.overrides import Override
from hookwall.config.shapes import Custom, Duration, Fields, Flag, OneOf, Text, Whole
from hookwall.config.yamlnodes import YNode, YScalar

__all__ = [
    "LIMITS",
    "LIMIT_KEYS",
    "KeyBy",
    "LimitConfig",
    "Limits",
    "check_limits",
    "merge_limits",
    "parse_rate",
]

KeyBy = Literal["host", "host-port"]


@dataclass(frozen=True, slots=True)
class LimitConfig:
    """Limits for one destination key (see ``DestinationLimiter`` for the semantics)."""

    concurrency: int = 8  # max requests in flight per key
    queue: int = 100  # max requests waiting per key (0: no queue, excess rejected at once)
    queue_timeout: float = 10.0  # max seconds a request waits
    rate: float | None = None  # sustained requests/second per key; None = unlimited
    burst: int | None = None  # bucket size; None -> max(1, ceil(rate))
    retry_after_max: float = 300.0  # clamp for receivers' Retry-After pauses
    circuit_failures: int = 5  # consecutive failures that open the circuit; 0 disables it
    circuit_cooloff: float = 30.0  # seconds open before one probe is let through (half-open)

    def __post_init__(self) -> None:
        """Fail at policy load, not with a confusing stall under load."""
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.queue < 0:
            raise ValueError("queue must not be negative")
        if not math.isfinite(self.queue_timeout) or self.queue_timeout < 0:
            raise ValueError("queue_timeout must be a finite number of seconds >= 0")
        if self.rate is not None and (not math.isfinite(self.rate) or self.rate <= 0):
            raise ValueError("rate must be a positive number of requests per second")
        if self.burst is not None and self.burst < 1:
            raise ValueError("burst must be at least 1")
        if not math.isfinite(self.retry_after_max) or self.retry_after_max < 0:
            raise ValueError("retry_after_max must be a finite number of seconds >= 0")
        if self.circuit_failures < 0:
            raise ValueError("circuit_failures must not be negative")
        if not math.isfinite(self.circuit_cooloff) or self.circuit_cooloff < 0:
            raise ValueError("circuit_cooloff must be a finite number of seconds >= 0")

    @property
    def bucket_size(self) -> int | None:
        """The token bucket's capacity, or None when the rate is unlimited."""
        if self.rate is None:
            return None
        if self.burst is not None:
            return self.burst
        return max(1, math.ceil(self.rate))


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-destination flood control: the limiter's config plus how requests are grouped."""

    config: LimitConfig = field(default_factory=LimitConfig)
    # One budget (and one circuit) per host and port by default: failures of one service
    # never open the circuit of another on the same host; `key: host` shares them on purpose.
    key: KeyBy = "host-port"
    per_sender: bool = False  # each sender gets its own budget at this destination


_KEY_BY: tuple[KeyBy, ...] = ("host", "host-port")
_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*")
_PER = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}

CIRCUIT = Fields(
    {
        "failures": Whole(0, doc="consecutive failures that open the circuit (0: never)"),
        "cooloff": Duration(True, doc="how long an open circuit refuses before one probe"),
    },
    doc="the circuit breaker of a destination",
)
LIMITS = Fields(
    {
        "concurrency": Whole(1, doc="requests in flight to the destination (default 8)"),
        "queue": Whole(0, doc="requests waiting for a slot (default 100; 0: none wait)"),
        "queue_timeout": Duration(False, doc="how long a request waits for a slot (10s)"),
        "rate": Custom(
            {
                "anyOf": [
                    Text(
                        "a rate like '50/s', '600/m' or '10/h'", f"^{_RATE.pattern}$"
                    ).json_schema(),
                    {"type": "number", "exclusiveMinimum": 0},
                    {"type": "null"},
                ]
            },
            doc="requests per second or '50/s', '600/m', '10/h'; null: no rate limit",
        ),
        "burst": Whole(1, doc="requests a rate limit lets through at once"),
        "per_sender": Flag(doc="each sender gets its own budget at this destination"),
        "key": OneOf(_KEY_BY, doc="one budget per host and port (default) or per host"),
        "retry_after_max": Duration(True, doc="the longest Retry-After of a receiver obeyed"),
        "circuit": CIRCUIT,
    },
    doc="flood control: concurrency, queue, rate and circuit per destination",
)
LIMIT_KEYS = LIMITS.names


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


def merge_limits(base: Limits, override: Override) -> Limits:
    """Limits plus a field-wise override; limiter fields go to ``config``."""
    if not override:
        return base
    config_fields = {f.name for f in fields(LimitConfig)}
    values: dict[str, Any] = dict(override)
    config = replace(base.config, **{k: v for k, v in values.items() if k in config_fields})
    rest = {k: v for k, v in values.items() if k not in config_fields}
    return replace(base, config=config, **rest)


def check_limits(checker: Checker, node: YNode, path: str) -> Override:
    mapping = checker.mapping(node, path)
    if mapping is None:
        return ()
    checker.keys(mapping, path, LIMITS.names)
    out: list[tuple[str, object]] = []
    for key, entry in mapping.entries.items():
        where, value = f"{path}.{key}", entry.value
        if key == "rate":
            out.extend(_rate(checker, value, where))
        elif key == "circuit":
            out.extend(_circuit(checker, value, where))
        elif key in LIMITS.fields:
            read = LIMITS.reader(key).read(checker, value, where)
            if read is not None:
                out.append((key, read))
    return tuple(out)


def _rate(checker: Checker, node: YNode, path: str) -> list[tuple[str, object]]:
    """``rate: null`` switches an inherited rate off; anything else must read as a rate."""
    if isinstance(node, YScalar) and node.value is None:
        return [("rate", None)]
    try:
        return [("rate", parse_rate(node.value if isinstance(node, YScalar) else None))]
    except ValueError as exc:
        checker.issue(node.location, f"{path}: {exc}")
        return []


def _circuit(checker: Checker, node: YNode, path: str) -> list[tuple[str, object]]:
    mapping = checker.mapping(node, path)
    if mapping is None:
        return []
    checker.keys(mapping, path, CIRCUIT.names)
    out: list[tuple[str, object]] = []
    for key, entry in mapping.entries.items():
        if key in CIRCUIT.fields:
            read = CIRCUIT.reader(key).read(checker, entry.value, f"{path}.{key}")
            if read is not None:
                out.append((f"circuit_{key}", read))
    return out
