"""Structured logging: one JSON object per line, through structlog, never mitmproxy's handler.

Operators ship these lines to Loki/Elasticsearch/Vector and query them when a customer says
"we never got the webhook", so the shape is a contract (see README.md, "Log events"). For a
person watching a terminal, stdout can have structlog's console lines instead
(``--log-format console``, the choice of ``auto`` on a terminal: ``choose_format``); the
``--log-file`` always has the JSON ones, which are for machines.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import MutableMapping
from typing import IO, Any, Literal, TextIO

import structlog

from hookwall.core import jsontext
from hookwall.core.librarymessages import library_line
from hookwall.core.printable import clean
from hookwall.deliveries.event import EVENT_FIELDS
from hookwall.deliveries.redaction import redact_text

# The exchange event's fields, in their documented order (deliveries/event.py).
EXCHANGE_FIELDS: tuple[str, ...] = EVENT_FIELDS


Format = Literal["json", "console"]
FORMATS: tuple[str, ...] = ("auto", "json", "console")  # --log-format's choices


def choose_format(choice: str, terminal: bool) -> Format:
    """``--log-format``: ``json`` or ``console`` as asked; ``auto`` is ``console`` when the
    lines go to a terminal, else ``json`` (a pipe, a file, a log collector: ``make run | jq``
    and every shipper read JSON)."""
    if choice == "auto":
        return "console" if terminal else "json"
    if choice == "json":
        return "json"
    if choice == "console":
        return "console"
    raise ValueError(f"--log-format: expected one of {', '.join(FORMATS)}, got {choice!r}")


def is_terminal(stream: IO[str] | None) -> bool:
    """Whether ``stream`` is a terminal (None: no stream, --quiet)."""
    try:
        return stream is not None and stream.isatty()
    except (OSError, ValueError):  # closed, or no file behind it
        return False


class _TeeLogger:
    """A structlog logger that writes each line to several streams and flushes: each stream
    gets the JSON line or, if it is the console stream, the console one."""

    def __init__(self, streams: list[tuple[IO[str], Format]]) -> None:
        self._streams = streams

    def msg(self, json: str, console: str | None = None) -> None:
        for stream, kind in self._streams:
            line = console if kind == "console" and console is not None else json
            try:
                stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):  # a closed pipe must not take the proxy down
                pass

    log = debug = info = warning = warn = error = critical = exception = msg


class _Render:
    """The last processor: the JSON line, and the console line if a stream wants it. The
    console one is made of ``clean`` values (structlog prints strings as they are, and a
    URL with an ESC in it must not reach the terminal raw), without the empty fields."""

    def __init__(self, console: bool, colours: bool) -> None:
        self._json = structlog.processors.JSONRenderer(serializer=_dumps)
        self._console = (
            structlog.dev.ConsoleRenderer(
                colors=colours,
                sort_keys=False,  # the event's own order: identity first, as in the JSON
                timestamp_key="ts",
                exception_formatter=structlog.dev.plain_traceback,
            )
            if console
            else None
        )

    def __call__(self, logger: Any, name: str, event: MutableMapping[str, Any]) -> dict[str, str]:
        rendered = {"json": str(self._json(logger, name, dict(event)))}
        if self._console is not None:
            rendered["console"] = str(
                self._console(logger, name, _for_console(logger, name, event))
            )
        return rendered


# The fields structlog's console renderer prints with str(), not through its repr rule.
_PLAIN_FIELDS = frozenset({"ts", "level", "event", "logger", "logger_name"})
# A string with one of these is printed as its repr() (quoted, every control escaped).
_QUOTED = frozenset({" ", "\t", "=", "\r", "\n", '"', "'"})


class _Shown:
    """A value that is not a string, printed as its repr() made ``clean`` (a repr of an
    object of a library need not escape what it holds)."""

    def __init__(self, value: Any) -> None:
        self._text = clean(repr(value))

    def __repr__(self) -> str:
        return self._text


def _for_console(logger: Any, name: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    """The event as the console line shows it, every byte of it safe for a terminal, and
    without the fields that have no value. structlog prints a string as it is unless it
    holds a space, a quote, ``=`` or a line break (then as its repr, which escapes every
    control character): the others are ``clean``; a traceback is cleaned line by line."""
    if event.get("exc_info"):
        event = structlog.processors.format_exc_info(logger, name, dict(event))
    shown: dict[str, Any] = {}
    for key, value in event.items():
        if value is None or value == [] or value == {}:
            continue
        key = clean(str(key))
        if key == "exception" and isinstance(value, str):
            shown[key] = "\n".join(clean(line) for line in value.split("\n"))
        elif key in _PLAIN_FIELDS:
            shown[key] = clean(str(value))
        elif isinstance(value, str):
            shown[key] = value if set(value) & _QUOTED else clean(value)
        else:
            shown[key] = _Shown(value)
    return shown


def configure(
    *,
    stdout: TextIO | None = sys.stdout,
    log_file: str | None = None,
    log_format: Format = "json",
    colours: bool = False,
) -> None:
    """Send log lines to stdout (JSON, or console lines with ``log_format="console"``, in
    colour with ``colours``) and/or JSON lines to an append-only file."""
    streams: list[tuple[IO[str], Format]] = []
    if stdout is not None:
        streams.append((stdout, log_format))
    if log_file:
        streams.append((open(log_file, "a", encoding="utf-8", buffering=1), "json"))  # noqa: SIM115
    tee = _TeeLogger(streams)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            _drop_secrets,
            _lead_with_identity,
            _Render(console=stdout is not None and log_format == "console", colours=colours),
        ],
        logger_factory=lambda *_: tee,
        cache_logger_on_first_use=True,
    )
    _route_stdlib_logging()


def _dumps(event: Any, *, default: Any = None, **_: Any) -> str:
    """structlog's serializer hook: compact JSON that never raises (``jsontext``)."""
    return jsontext.dumps(event, default)


_SECRET_KEYS = ("authorization", "proxy-authorization", "secret", "token", "password")


@functools.lru_cache(maxsize=1024)  # field names repeat on every line: judge each once
def _secret_key(key: str) -> bool:
    lower = key.lower()
    return any(word in lower for word in _SECRET_KEYS)


def _drop_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Last line of defence: a field whose name says 'secret' never reaches a log, nor a
    credential in a URL anywhere in a line (``hookwall.deliveries.redaction``'s built-in rules; the
    exchange event was already redacted with its policy's additions)."""
    for key, value in event.items():
        if isinstance(value, str) and "://" in value:
            event[key] = redact_text(value)
    for key in [key for key in event if _secret_key(key)]:
        event[key] = "[redacted]"
    return event


def _lead_with_identity(
    _: Any, __: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """``ts``, ``level`` and ``event`` first, so a human scanning raw lines sees them at once."""
    head = {key: event.pop(key) for key in ("ts", "level", "event") if key in event}
    return head | dict(event)


class _ToStructlog(logging.Handler):
    """Forward warnings from mitmproxy and libraries as JSON events (no second log format)."""

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # logging must never raise into the proxy
            message = record.getMessage()
            message = library_line(message) or message  # in hookwall's words and flags
            structlog.get_logger().log(
                record.levelno, "library_log", logger=record.name, message=message
            )


def _route_stdlib_logging() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_ToStructlog(level=logging.WARNING))
    root.setLevel(logging.WARNING)


def get_logger() -> Any:
    return structlog.get_logger()
