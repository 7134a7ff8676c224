"""Bounds on HTTP/1 message heads, in both directions, before mitmproxy parses them.

mitmproxy buffers a request or response head until its blank line, however long it grows
(``# FIXME: protect against header size DoS`` in its ``_http1.py``). We wrap the two
``read_headers`` state functions (``Http1Server``: heads from senders; ``Http1Client``: heads
from receivers) so that a head over ``proxy.max_header_bytes`` bytes or
``proxy.max_header_fields`` lines is refused as soon as it is seen:

- from a sender: ``431 header-too-large`` and the connection closes, nothing goes upstream;
- from a receiver: the receiver's connection closes and the sender gets
  ``502 response-head-too-large``.

The same wrapper tells ``ConnectionGuard`` when the first byte of a new request head arrives,
which starts the head deadline. mitmproxy is pinned; ``tests/test_mitm_hookpoints.py`` fails if
the hook points move.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from dataclasses import dataclass
from logging import WARNING
from typing import Any

from mitmproxy.proxy import commands, events
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import ErrorCode, ResponseProtocolError

from hookwall.denials import Denial
from hookwall.proxy import errorpages

# h11's end of a head: an empty line, CRLF or bare LF (``h11._receivebuffer``).
_BLANK_LINE = re.compile(rb"\n\r?\n")


@dataclass(slots=True)
class HeadLimits:
    max_bytes: int = 64 * 1024
    max_fields: int = 100


limits = HeadLimits()
# Called with the client connection's id when a new request head starts (ConnectionGuard).
on_head_started: list[Callable[[str], None]] = []


def head_problem(buffered: bytes, max_bytes: int, max_fields: int) -> str | None:
    """Why a (possibly incomplete) head is refused, or None. The start line counts towards
    the bytes, not the fields; a continuation line (obs-fold) counts as a field."""
    stripped = buffered.lstrip(b"\r\n")  # h11 skips empty lines before a head: they count too
    end = _BLANK_LINE.search(stripped)
    head = stripped[: end.start()] if end else stripped
    if len(head) + len(buffered) - len(stripped) > max_bytes:
        return f"more than {max_bytes} bytes"
    fields = head.count(b"\n")  # lines after the start line (a final line has no \n yet)
    if fields > max_fields:
        return f"more than {max_fields} header fields"
    return None


_server_read_headers = _http1.Http1Server.read_headers
_client_read_headers = _http1.Http1Client.read_headers


def _server_read(self: Any, event: events.ConnectionEvent) -> Generator[Any, Any, None]:
    if isinstance(event, events.DataReceived):
        buffered = bytes(self.buf)
        if len(buffered) == len(event.data):  # the buffer was empty: a new head begins
            for listener in on_head_started:
                listener(self.conn.id)
        problem = head_problem(buffered, limits.max_bytes, limits.max_fields)
        if problem is not None:
            message = (
                f"the request head has {problem}; hookwall accepts at most {limits.max_bytes} "
                f"bytes and {limits.max_fields} header fields (proxy.max_header_bytes, "
                "proxy.max_header_fields in the policy)"
            )
            denial = Denial("header-too-large", message)
            yield commands.SendData(self.conn, errorpages.render(431, denial, ""))
            yield commands.CloseConnection(self.conn)
            peer = self.conn.peername[0] if self.conn.peername else "?"
            yield commands.Log(f"hookwall refused a request head from {peer}: {problem}", WARNING)
            self.state = self.done
            return
    yield from _server_read_headers(self, event)


def _client_read(self: Any, event: events.ConnectionEvent) -> Generator[Any, Any, None]:
    if isinstance(event, events.DataReceived) and self.stream_id is not None:
        problem = head_problem(bytes(self.buf), limits.max_bytes, limits.max_fields)
        if problem is not None:
            self.buf.maybe_extract_at_most(len(self.buf))  # nothing of it is parsed or kept
            yield commands.CloseConnection(self.conn)
            yield ReceiveHttp(
                ResponseProtocolError(
                    self.stream_id,
                    f"{errorpages.RESPONSE_HEAD_MARK}: the receiver's response head has "
                    f"{problem}; hookwall accepts at most {limits.max_bytes} bytes and "
                    f"{limits.max_fields} header fields (proxy.max_header_bytes, "
                    "proxy.max_header_fields)",
                    ErrorCode.GENERIC_SERVER_ERROR,
                )
            )
            return
    yield from _client_read_headers(self, event)


def configure(max_bytes: int, max_fields: int) -> None:
    limits.max_bytes, limits.max_fields = max_bytes, max_fields


def install() -> None:
    """Swap in the bounded head readers (idempotent)."""
    _http1.Http1Server.read_headers = _server_read  # type: ignore[method-assign]
    _http1.Http1Client.read_headers = _client_read  # type: ignore[method-assign]
