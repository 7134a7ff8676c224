"""The ``logging`` section: what the delivery store keeps, and for how long.

Top level (the store is one per process)::

    logging:
      capture_body: 64KiB     # bytes of each request/response body kept; 0: none
      id_header: X-Event-Id   # optional: a sender header that carries the event id
      retention: 7d           # rows older than this are deleted, continuously
      max_size: 1GiB          # and the oldest rows go when the store grows past this
      redact:                 # more credential names, on top of the built-in rules
        headers: [X-Tenant-Pin]  # their values never reach the log, the store
        query: [ticket]          # or `hookwall logs` (hookwall.deliveries.redaction)

A destination may override what is captured for its hosts (``capture_body``, ``id_header``)
in ``destinations[].logging``; retention and size are the store's, so top level only, and
so is ``redact``: a credential name is one everywhere (it can only add to the built-ins).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from hookwall.config.checker import Checker
from hookwall.config.overrides import Override
from hookwall.config.shapes import Custom, Duration, Fields, ListOf, Size, Text
from hookwall.config.yamlnodes import YEntry, YNode, YScalar
from hookwall.deliveries.redaction import BUILT_IN, Rules

__all__ = [
    "LOGGING",
    "RULE_LOGGING",
    "DestinationLogging",
    "LoggingSettings",
    "check_logging",
    "check_rule_logging",
]

DEFAULT_CAPTURE_BODY = 64 * 1024
DEFAULT_RETENTION = 7 * 86400.0
DEFAULT_MAX_SIZE = 1024**3

# A header name (RFC 9110 token); the class is written for ECMA-262 too (editors' schemas).
_HEADER_CHARS = "-!#$%&'*+.^_`|~0-9A-Za-z"
_HEADER_NAME = re.compile(f"[{_HEADER_CHARS}]+")
_CAPTURE = Size(0, "'64KiB' or '1GiB'", doc="bytes of each body kept in the store; 0: none")
_ID_HEADER = Custom(
    {
        "anyOf": [
            Text("a header name", rf"^\s*[{_HEADER_CHARS}]+\s*$").json_schema(),
            {"type": "null"},
        ]
    },
    doc="a sender header that carries the event id (e.g. X-Event-Id); null: none",
)
REDACT = Fields(
    {
        "headers": ListOf(
            Text("a header name", rf"^\s*[{_HEADER_CHARS}]+\s*$"),
            doc="header names whose values never reach the log or the store",
        ),
        "query": ListOf(Text("a query parameter name", r"\S"), doc="query parameter names"),
    },
    doc="credential names added to the built-in ones",
)
LOGGING = Fields(
    {
        "capture_body": _CAPTURE,
        "id_header": _ID_HEADER,
        "retention": Duration(True, doc="rows older than this are deleted (default 7d)"),
        "max_size": Size(1, "'64KiB' or '1GiB'", doc="the store's largest size (default 1GiB)"),
        "redact": REDACT,
    },
    doc="the delivery store: what it keeps, and for how long",
)
RULE_LOGGING = Fields(
    {"capture_body": _CAPTURE, "id_header": _ID_HEADER},
    doc="what the store captures for this destination",
)
_WHOLE_STORE = tuple(key for key in LOGGING.names if key not in RULE_LOGGING.fields)


@dataclass(frozen=True, slots=True)
class DestinationLogging:
    """What the store captures for one destination."""

    capture_body: int = DEFAULT_CAPTURE_BODY  # bytes per body; 0: no body is kept
    id_header: str | None = None  # lower-case; a sender header carrying the event id


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    """The top-level ``logging`` section."""

    capture_body: int = DEFAULT_CAPTURE_BODY
    id_header: str | None = None
    retention: float = DEFAULT_RETENTION  # seconds
    max_size: int = DEFAULT_MAX_SIZE  # bytes
    redact: Rules = BUILT_IN  # the built-in credential names plus ``redact``'s

    @property
    def destination(self) -> DestinationLogging:
        return DestinationLogging(self.capture_body, self.id_header)


def check_logging(checker: Checker, node: YNode) -> LoggingSettings | None:
    mapping = checker.mapping(node, "logging")
    if mapping is None:
        return None
    checker.keys(mapping, "logging", LOGGING.names)
    settings = LoggingSettings()
    entries = mapping.entries
    values = dict(_capture_keys(checker, entries, "logging"))
    if "retention" in entries:
        retention = LOGGING.reader("retention").read(
            checker, entries["retention"].value, "logging.retention"
        )
        values["retention"] = retention or settings.retention
    if "max_size" in entries:
        size = LOGGING.reader("max_size").read(
            checker, entries["max_size"].value, "logging.max_size"
        )
        if size is not None:
            values["max_size"] = size
    if "redact" in entries:
        values["redact"] = _redact(checker, entries["redact"].value)
    return replace(settings, **values)  # type: ignore[arg-type]


def check_rule_logging(checker: Checker, node: YNode, path: str) -> Override:
    """A destination's ``logging``: capture settings only (field-wise override)."""
    mapping = checker.mapping(node, path)
    if mapping is None:
        return ()
    for key, entry in mapping.entries.items():
        if key in _WHOLE_STORE:
            checker.issue(
                entry.key_location,
                f"{path}.{key}: {key} applies to the whole store; set it in the top-level "
                "logging section",
            )
    known = {k: e for k, e in mapping.entries.items() if k not in _WHOLE_STORE}
    for key, entry in known.items():
        if key not in RULE_LOGGING.fields:
            checker.issue(
                entry.key_location,
                f"{path}.{key}: unknown key {key!r}; known keys: {', '.join(RULE_LOGGING.names)}",
            )
    return tuple(_capture_keys(checker, mapping.entries, path))


def _capture_keys(
    checker: Checker, entries: dict[str, YEntry], path: str
) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    entry = entries.get("capture_body")
    if entry is not None:
        size = _CAPTURE.read(checker, entry.value, f"{path}.capture_body")
        if size is not None:
            out.append(("capture_body", size))
    entry = entries.get("id_header")
    if entry is not None:
        node = entry.value
        if isinstance(node, YScalar) and node.value is None:
            out.append(("id_header", None))
        else:
            name = checker.string(node, f"{path}.id_header", "a header name like X-Event-Id")
            if name is not None and _is_header_name(name):
                out.append(("id_header", name.strip().lower()))
            elif name is not None:
                checker.issue(node.location, f"{path}.id_header: {name!r} is not a header name")
    return out


def _redact(checker: Checker, node: YNode) -> Rules:
    """``redact: {headers: [...], query: [...]}``: names added to the built-in rules."""
    mapping = checker.mapping(node, "logging.redact")
    if mapping is None:
        return BUILT_IN
    checker.keys(mapping, "logging.redact", REDACT.names)
    names: dict[str, list[str]] = {"headers": [], "query": []}
    for key, what in (("headers", "header"), ("query", "query parameter")):
        entry = mapping.entries.get(key)
        if entry is None:
            continue
        path = f"logging.redact.{key}"
        example = "[X-Tenant-Pin]" if key == "headers" else "[ticket, session_key]"
        items = checker.items(entry.value, path, f"a list of {what} names", f"e.g. {example}")
        for item in items or ():
            name = checker.string(item, path, f"a {what} name")
            if name is None:
                continue
            if key == "headers" and not _is_header_name(name):
                hint = "no spaces or separators, e.g. X-Tenant-Pin"
                checker.issue(item.location, f"{path}: {name!r} is not a header name ({hint})")
            elif not name.strip():
                checker.issue(item.location, f"{path}: an empty name; remove it")
            else:
                names[key].append(name)
    return Rules.adding(names["headers"], names["query"])


def _is_header_name(name: str) -> bool:
    return _HEADER_NAME.fullmatch(name.strip()) is not None
