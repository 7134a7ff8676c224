"""Structured logging: one JSON object per line, through structlog, never mitmproxy's handler.

Operators ship these lines to Loki/Elasticsearch/Vector and query them when a customer says
"we never got the webhook", so the shape is a contract (see README.md, "Log events").
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import MutableMapping
from typing import IO, Any, TextIO

import structlog

from hookwall.core import jsontext
from hookwall.core.listenerrors import translate_library_message
from hookwall.deliveries.event import EVENT_FIELDS
from hookwall.deliveries.redaction import redact_text

# The exchange event's fields, in their documented order (deliveries/event.py).
EXCHANGE_FIELDS: tuple[str, ...] = EVENT_FIELDS


class _TeeLogger:
    """A structlog logger that writes each rendered line to several streams and flushes."""

    def __init__(self, streams: list[IO[str]]) -> None:
        self._streams = streams

    def msg(self, message: str) -> None:
        for stream in self._streams:
            try:
                stream.write(message + "\n")
                stream.flush()
            except (OSError, ValueError):  # a closed pipe must not take the proxy down
                pass

    log = debug = info = warning = warn = error = critical = exception = msg


def configure(*, stdout: TextIO | None = sys.stdout, log_file: str | None = None) -> None:
    """Send JSON lines to stdout and/or an append-only file."""
    streams: list[IO[str]] = []
    if stdout is not None:
        streams.append(stdout)
    if log_file:
        streams.append(open(log_file, "a", encoding="utf-8", buffering=1))  # noqa: SIM115
    tee = _TeeLogger(streams)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            _drop_secrets,
            _lead_with_identity,
            structlog.processors.JSONRenderer(serializer=_dumps),
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
            message = translate_library_message(message) or message  # hookwall's flags
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
