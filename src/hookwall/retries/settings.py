"""The ``retries`` section of defaults and destinations (merged field by field)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hookwall.config.yamltree import YNode, YScalar
from hookwall.limits.settings import Override

if TYPE_CHECKING:
    from hookwall.policy.schema import _FileChecker

_KEYS = ("attempts", "backoff", "max_backoff", "on")
_CONDITIONS = ("connect-error", "timeout")
MAX_ATTEMPTS = 10


def check_retries(checker: _FileChecker, node: YNode, path: str) -> Override:
    mapping = checker.mapping(node, path)
    if mapping is None:
        return ()
    checker.keys(mapping, path, _KEYS, "retries")
    out: list[tuple[str, object]] = []
    for key, entry in mapping.entries.items():
        where, value = f"{path}.{key}", entry.value
        if key == "attempts":
            count = value.value if isinstance(value, YScalar) else None
            if not _whole(count) or not 0 <= count <= MAX_ATTEMPTS:  # type: ignore[operator]
                checker.expected(value, where, f"a whole number from 0 to {MAX_ATTEMPTS}")
            else:
                out.append((key, count))
        elif key in ("backoff", "max_backoff"):
            out.append((key, checker.duration(value, where, positive=True)))
        elif key == "on":
            conditions = _conditions(checker, value, where)
            if conditions is not None:
                out.append((key, conditions))
    return tuple(out)


def _conditions(checker: _FileChecker, node: YNode, path: str) -> tuple[str | int, ...] | None:
    what = "a list of connect-error, timeout, 429 or 5xx statuses"
    items = checker.items(node, path, "a list", "e.g. [connect-error, timeout, 503]")
    if items is None:
        return None
    out: list[str | int] = []
    for index, item in enumerate(items):
        value = item.value if isinstance(item, YScalar) else None
        if value in _CONDITIONS or (_whole(value) and _status_ok(value)):  # type: ignore[arg-type]
            out.append(value)  # type: ignore[arg-type]
        else:
            checker.expected(item, f"{path}[{index}]", what)
            return None
    return tuple(dict.fromkeys(out))


def _status_ok(status: int) -> bool:
    return status == 429 or 500 <= status <= 599


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
