"""The ``retries`` section of defaults and destinations (merged field by field).

Retries are off by default (``attempts: 0``); which outcomes are worth another try and how
long to wait is ``retries.plan``'s arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeGuard

from hookwall.config.checker import Checker, is_whole
from hookwall.config.overrides import Override
from hookwall.config.shapes import Custom, Duration, Fields, Whole
from hookwall.config.yamlnodes import YNode, YScalar

__all__ = ["MAX_ATTEMPTS", "RETRIES", "RetryOn", "RetrySettings", "check_retries"]

RetryOn = str | int  # "connect-error", "timeout" or an HTTP status


@dataclass(frozen=True, slots=True)
class RetrySettings:
    attempts: int = 0  # retries after the first try; 0 = off
    backoff: float = 0.5  # base of the exponential wait, seconds
    max_backoff: float = 10.0  # cap of one wait, seconds
    on: tuple[RetryOn, ...] = ("connect-error", "timeout", 502, 503, 504)


_CONDITIONS = ("connect-error", "timeout")
MAX_ATTEMPTS = 10
RETRIES = Fields(
    {
        "attempts": Whole(0, MAX_ATTEMPTS, doc="retries after the first try (default 0: off)"),
        "backoff": Duration(True, doc="base of the exponential wait (default 500ms)"),
        "max_backoff": Duration(True, doc="cap of one wait (default 10s)"),
        "on": Custom(
            {
                "type": "array",
                "items": {
                    "anyOf": [
                        {"enum": list(_CONDITIONS)},
                        {"const": 429},
                        {"type": "integer", "minimum": 500, "maximum": 599},
                    ]
                },
            },
            doc="what is retried: connect-error, timeout, 429, 5xx statuses",
        ),
    },
    doc="retries of a failed delivery (only of requests hookwall may repeat)",
)


def check_retries(checker: Checker, node: YNode, path: str) -> Override:
    mapping = checker.mapping(node, path)
    if mapping is None:
        return ()
    checker.keys(mapping, path, RETRIES.names)
    out: list[tuple[str, object]] = []
    for key, entry in mapping.entries.items():
        where, value = f"{path}.{key}", entry.value
        if key == "on":
            conditions = _conditions(checker, value, where)
            if conditions is not None:
                out.append((key, conditions))
        elif key in RETRIES.fields:
            read = RETRIES.reader(key).read(checker, value, where)
            if read is not None:
                out.append((key, read))
    return tuple(out)


def _conditions(checker: Checker, node: YNode, path: str) -> tuple[RetryOn, ...] | None:
    what = "a list of connect-error, timeout, 429 or 5xx statuses"
    items = checker.items(node, path, "a list", "e.g. [connect-error, timeout, 503]")
    if items is None:
        return None
    out: list[RetryOn] = []
    for index, item in enumerate(items):
        value = item.value if isinstance(item, YScalar) else None
        if _is_condition(value):
            out.append(value)
        else:
            checker.expected(item, f"{path}[{index}]", what)
            return None
    return tuple(dict.fromkeys(out))


def _is_condition(value: object) -> TypeGuard[RetryOn]:
    """connect-error, timeout, 429 or a 5xx status."""
    if isinstance(value, str):
        return value in _CONDITIONS
    return is_whole(value) and (value == 429 or 500 <= value <= 599)
