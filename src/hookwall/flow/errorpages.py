"""Make mitmproxy's own error responses follow hookwall's denial contract.

When mitmproxy itself fails a request (the receiver refused the connection, TLS to it failed,
its response was malformed), it writes a small HTML page from deep inside its HTTP/1 layer. We
replace that page with our JSON body and ``X-Hookwall-Reason`` so a sender can always tell
what happened, or with the answer a proxy-side retry got. What to write is kept per client
connection until mitmproxy writes it (``flow/respond.py`` says so; only it calls ``expect_*``).
This wraps an internal method (``Http1Server.send``); mitmproxy is pinned and
``tests/unit/mitm/test_mitm_hookpoints.py`` fails if the hook point moves.

``render`` is the one place a denial becomes bytes on the wire (from ``Denial.headers`` and
``Denial.body``): here, in ``mitm/http1guard.py`` and for a crashed connection.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from weakref import WeakKeyDictionary

from mitmproxy import connection
from mitmproxy.connection import ConnectionState
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.layers.http._events import ResponseProtocolError

from hookwall.core import ids
from hookwall.core.denials import Denial, Reason


@dataclass(frozen=True, slots=True)
class _Refusal:
    request_id: str
    denial: Denial


# The answer to write instead of mitmproxy's error response, per client connection.
_refusals: WeakKeyDictionary[connection.Connection, _Refusal] = WeakKeyDictionary()
_relayed: WeakKeyDictionary[connection.Connection, bytes] = WeakKeyDictionary()  # retries

_REASON_BY_STATUS = {
    400: Reason.BAD_REQUEST,
    413: Reason.REQUEST_TOO_LARGE,
    502: Reason.UPSTREAM_ERROR,
    504: Reason.RESPONSE_TIMEOUT,
}
# Framing headers of a relayed answer: the bytes written say their own length and close.
_NOT_RELAYED = frozenset({b"content-length", b"transfer-encoding", b"connection"})


def classify_error(message: str) -> Denial:
    """Map a mitmproxy error message to our reason codes."""
    lowered = message.lower()
    if "hookwall refused" in lowered:
        return Denial(Reason.ADDRESS_BLOCKED, message)
    if RESPONSE_HEAD_MARK in lowered:
        return Denial(Reason.RESPONSE_HEAD_TOO_LARGE, message.split(":", 1)[-1].strip())
    if RESPONSE_FRAMING_MARK in lowered:
        return Denial(Reason.RESPONSE_BAD_FRAMING, message.split(":", 1)[-1].strip())
    if lowered.startswith(("client disconnected", "client closed")):
        message = "the sender closed its connection before the exchange ended"
        return Denial(Reason.CLIENT_CLOSED, message)
    if CONNECT_TIMEOUT_MARK in lowered:
        message = f"the receiver did not accept the connection: {message}"
        return Denial(Reason.CONNECT_TIMEOUT, message)
    if "tls" in lowered or "certificate" in lowered or "ssl" in lowered:
        return Denial(Reason.TLS_FAILED, f"TLS with the receiver failed: {message}")
    if "body_size_limit" in lowered:
        if lowered.startswith("response"):
            message = "the receiver's response is larger than allowed"
            return Denial(Reason.RESPONSE_TOO_LARGE, message)
        return Denial(Reason.REQUEST_TOO_LARGE, "the request body is larger than allowed")
    return Denial(Reason.UPSTREAM_ERROR, f"the receiver could not be reached: {message}")


CONNECT_TIMEOUT_MARK = "connect timed out"
RESPONSE_HEAD_MARK = "response head too large"
RESPONSE_FRAMING_MARK = "response head ambiguous"  # http1guard: framing.response_problem


def expect_error_response(client: connection.Client, request_id: str, denial: Denial) -> None:
    """mitmproxy's error response on this connection is to carry ``denial``."""
    _refusals[client] = _Refusal(request_id, denial)


def expect_raw_response(client: connection.Client, data: bytes) -> None:
    """mitmproxy's error response on this connection is to be ``data`` instead (a retry's)."""
    _relayed[client] = data


def forget(client: connection.Client) -> None:
    _refusals.pop(client, None)
    _relayed.pop(client, None)


def render(status: int, denial: Denial, request_id: str) -> bytes:
    """A complete HTTP/1.1 error response in our contract's shape; the connection then closes."""
    headers = [(k.encode(), v.encode()) for k, v in denial.headers(request_id).items()]
    return render_answer(status, headers, denial.body(request_id))


def render_answer(status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes) -> bytes:
    """A complete HTTP/1.1 response with these headers (their framing ones dropped) and body,
    followed by a close."""
    head = [f"HTTP/1.1 {status} {_phrase(status)}".encode()]
    head += [key + b": " + value for key, value in headers if key.lower() not in _NOT_RELAYED]
    head += [b"Content-Length: %d" % len(body), b"Connection: close", b"", b""]
    return b"\r\n".join(head) + body


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _error_page(status: int, message: str = "") -> bytes:
    """Replacement for mitmproxy's HTML error page where no denial is pending. (A request head
    mitmproxy's parser refuses never gets here: ``http1guard`` answers it, with an id and an
    event.) Should another path reach it, the answer still carries a fresh id, never ""."""
    denial = Denial(_REASON_BY_STATUS.get(status, Reason.UPSTREAM_ERROR), message)
    return render(status, denial, ids.request_id())


_original_send = _http1.Http1Server.send


def _send(self: Any, event: Any) -> Generator[commands.Command, Any, None]:
    """Like ``Http1Server.send``, but a flow's error response carries its id and reason."""
    if isinstance(event, ResponseProtocolError):
        refusal = _refusals.pop(self.conn, None)
        relayed = _relayed.pop(self.conn, None)
        can_write = bool(self.conn.state & ConnectionState.CAN_WRITE)
        if relayed is not None and can_write and not self.response:
            yield commands.SendData(self.conn, relayed)
            yield commands.CloseConnection(self.conn)
            return
        # A pending denial is ours to send, even where mitmproxy would send nothing (kills).
        if refusal is not None and can_write and not self.response:
            denial = refusal.denial
            yield commands.SendData(self.conn, render(denial.status, denial, refusal.request_id))
            yield commands.CloseConnection(self.conn)
            return
    yield from _original_send(self, event)


def install() -> None:
    """Swap in our error pages (idempotent)."""
    _http1.make_error_response = _error_page  # type: ignore[assignment]
    _http1.Http1Server.send = _send  # type: ignore[method-assign]
