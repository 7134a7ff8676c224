"""Bounds and framing rules on HTTP/1 message heads, in both directions, before mitmproxy
parses them.

mitmproxy buffers a request or response head until its blank line, however long it grows
(``# FIXME: protect against header size DoS`` in its ``_http1.py``), and then forwards what its
lenient parser accepted (obs-fold, bare CRs, ``Transfer-Encoding: gzip, chunked`` ...). We
wrap the two ``read_headers`` state functions (``Http1Server``: heads from senders, also inside
intercepted TLS and for CONNECT; ``Http1Client``: heads from receivers) so that every head is
judged on the exact bytes mitmproxy is about to parse:

- over ``proxy.max_header_bytes`` bytes or ``proxy.max_header_fields`` lines (as soon as it is
  seen): from a sender ``431 header-too-large``; from a receiver the receiver's connection
  closes and the sender gets ``502 response-head-too-large``;
- with more than one framing (``hookwall.bounds.framing``): from a sender ``400 bad-framing`` (``403
  invalid-host`` for a request-line host with userinfo or '%'); from a receiver the receiver's
  connection closes and the sender gets ``502 response-bad-framing``;
- any other head mitmproxy's own parser refuses: ``400 bad-request``, in hookwall's shape.

A sender's head refused here never becomes a flow, so it gets its request id here and its one
``exchange`` event from ``on_refused`` (ExchangeLog, given a ``flow.headrefusal.HeadRefusal``);
the connection then closes, since the bytes after an ambiguous head cannot be trusted.

The same wrapper tells ``ConnectionGuard`` when the first byte of a new request head arrives,
which starts the head deadline. mitmproxy is pinned;
``tests/unit/mitm/test_mitm_hookpoints.py`` fails if the hook points move.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from logging import WARNING
from typing import Any

from mitmproxy.net.http import http1
from mitmproxy.proxy import commands, events
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import ErrorCode, ResponseProtocolError

from hookwall.bounds import framing
from hookwall.core.denials import Denial, Reason
from hookwall.flow import errorpages
from hookwall.flow.headrefusal import HeadRefusal
from hookwall.flow.state import new_request_id


@dataclass(slots=True)
class HeadLimits:
    max_bytes: int = 64 * 1024
    max_fields: int = 100


limits = HeadLimits()
# Called with the client connection's id when a new request head starts (ConnectionGuard).
on_head_started: list[Callable[[str], None]] = []
# Called once for every sender's head refused here (ExchangeLog: its exchange event).
on_refused: list[Callable[[HeadRefusal], None]] = []


def head_problem(buffered: bytes, max_bytes: int, max_fields: int) -> str | None:
    """Why a (possibly incomplete) head is refused, or None. The start line counts towards
    the bytes, not the fields; a continuation line (obs-fold) counts as a field."""
    return _size_problem(buffered, framing.split_head(buffered), max_bytes, max_fields)


def _size_problem(
    buffered: bytes, split: tuple[int, bytes] | None, max_bytes: int, max_fields: int
) -> str | None:
    if split is None:  # incomplete: everything after the empty lines is head so far
        skipped = framing.skip_empty_lines(buffered)
        head_bytes, fields = len(buffered), buffered.count(b"\n", skipped)
    else:
        skipped, head = split
        head_bytes, fields = skipped + len(head), head.count(b"\n")
    if head_bytes > max_bytes:
        return f"more than {max_bytes} bytes"
    if fields > max_fields:  # lines after the start line (a final line has no \n yet)
        return f"more than {max_fields} header fields"
    return None


_server_read_headers = _http1.Http1Server.read_headers
_client_read_headers = _http1.Http1Client.read_headers


def _server_read(self: Any, event: events.ConnectionEvent) -> Generator[Any, Any, None]:
    if not isinstance(event, events.DataReceived):
        yield from _server_read_headers(self, event)
        return
    buffered = bytes(self.buf)
    if len(buffered) == len(event.data):  # the buffer was empty: a new head begins
        for listener in on_head_started:
            listener(self.conn.id)
    split = framing.split_head(buffered)
    problem = _size_problem(buffered, split, limits.max_bytes, limits.max_fields)
    if problem is not None:
        message = (
            f"the request head has {problem}; hookwall accepts at most {limits.max_bytes} "
            f"bytes and {limits.max_fields} header fields (proxy.max_header_bytes, "
            "proxy.max_header_fields in the policy)"
        )
        yield from _refuse(self, Denial(Reason.HEADER_TOO_LARGE, message), buffered)
        return
    if split is None:
        yield from _server_read_headers(self, event)  # not whole yet (or only empty lines)
        return
    found = framing.request_problem(split[1])
    if found is not None:
        yield from _refuse(self, Denial(found.reason, found.message), split[1])
        return
    yield from _unless_refused(self, _server_read_headers(self, event), split[1])


def _unless_refused(
    self: Any, reading: Generator[Any, Any, None], head: bytes
) -> Generator[Any, Any, None]:
    """mitmproxy's own reading of a head that passed our rules. Should its parser still refuse
    it (a host its URL parser rejects, say), its HTML 400 and the flow it would make of the
    parsed part become one hookwall refusal: an id, the JSON body, one event."""
    try:
        command = next(reading)
        while True:
            if isinstance(command, commands.SendData) and command.connection is self.conn:
                reading.close()  # mitmproxy's error page: the rest of its answer is ours
                message = f"the request head could not be read: {_parse_error(head)}"
                yield from _refuse(self, Denial(Reason.BAD_REQUEST, message), head)
                return
            command = reading.send((yield command))
    except StopIteration:
        return


def _parse_error(head: bytes) -> str:
    """What mitmproxy's parser says about this head (only called once it refused it)."""
    try:
        request = http1.read_request_head(framing.head_lines(head))
        http1.expected_http_body_size(request)
    except ValueError as exc:
        return str(exc)
    return "mitmproxy refused it"


def _refuse(self: Any, denial: Denial, head: bytes) -> Generator[Any, Any, None]:
    """Answer a sender's head with a refusal and close: nothing of it goes upstream."""
    request_id = new_request_id()
    self.buf.maybe_extract_at_most(len(self.buf))  # nothing of it is parsed or kept
    yield commands.SendData(self.conn, errorpages.render(denial.status, denial, request_id))
    yield commands.CloseConnection(self.conn)
    peer = self.conn.peername[0] if self.conn.peername else "?"
    yield commands.Log(
        f"hookwall refused a request head from {peer} ({denial.reason}): {denial.message}",
        WARNING,
    )
    self.state = self.done
    start_line = head.split(b"\n", 1)[0]
    refusal = HeadRefusal(self.conn.id, self.conn.peername, request_id, denial, start_line)
    for listener in on_refused:
        listener(refusal)


def _client_read(self: Any, event: events.ConnectionEvent) -> Generator[Any, Any, None]:
    if isinstance(event, events.DataReceived) and self.stream_id is not None:
        buffered = bytes(self.buf)
        split = framing.split_head(buffered)
        problem = _size_problem(buffered, split, limits.max_bytes, limits.max_fields)
        if problem is not None:
            yield from _fail_response(
                self,
                f"{errorpages.RESPONSE_HEAD_MARK}: the receiver's response head has "
                f"{problem}; hookwall accepts at most {limits.max_bytes} bytes and "
                f"{limits.max_fields} header fields (proxy.max_header_bytes, "
                "proxy.max_header_fields)",
            )
            return
        found = framing.response_problem(split[1]) if split is not None else None
        if found is not None:
            yield from _fail_response(
                self,
                f"{errorpages.RESPONSE_FRAMING_MARK}: the receiver's response head is "
                f"ambiguous, so hookwall closed its connection and relayed nothing: "
                f"{found.message}",
            )
            return
    yield from _client_read_headers(self, event)


def _fail_response(self: Any, message: str) -> Generator[Any, Any, None]:
    """Close the receiver's connection; the sender's exchange fails with ``message``."""
    self.buf.maybe_extract_at_most(len(self.buf))  # nothing of it is parsed or kept
    yield commands.CloseConnection(self.conn)
    yield ReceiveHttp(
        ResponseProtocolError(self.stream_id, message, ErrorCode.GENERIC_SERVER_ERROR)
    )


def configure(max_bytes: int, max_fields: int) -> None:
    limits.max_bytes, limits.max_fields = max_bytes, max_fields


def install() -> None:
    """Swap in the bounded, framing-checked head readers (idempotent)."""
    _http1.Http1Server.read_headers = _server_read  # type: ignore[method-assign]
    _http1.Http1Client.read_headers = _client_read  # type: ignore[method-assign]
