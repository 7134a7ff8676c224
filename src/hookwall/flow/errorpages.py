"""Make mitmproxy's own error responses follow hookwall's denial contract.

When mitmproxy itself fails a request (the receiver refused the connection, TLS to it failed,
its response was malformed), it writes a small HTML page from deep inside its HTTP/1 layer. We
replace that page with our JSON body and ``X-Hookwall-Reason`` so a sender can always tell
what happened. This wraps an internal method (``Http1Server.send``); mitmproxy is pinned and
``tests/unit/mitm/test_mitm_hookpoints.py`` fails if the hook point moves.
"""

from __future__ import annotations

from collections.abc import Generator
from http import HTTPStatus
from typing import Any

from mitmproxy.connection import ConnectionState
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.layers.http._events import ResponseProtocolError

from hookwall.core import ids
from hookwall.core.denials import Denial, Reason

# client connection id -> (request_id, denial) for the error response mitmproxy is about to write
_pending: dict[str, tuple[str, Denial]] = {}
# client connection id -> a complete response to write instead (proxy-side retries)
_raw: dict[str, bytes] = {}

_REASON_BY_STATUS = {
    400: Reason.BAD_REQUEST,
    413: Reason.REQUEST_TOO_LARGE,
    502: Reason.UPSTREAM_ERROR,
    504: Reason.RESPONSE_TIMEOUT,
}


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
        return Denial(
            Reason.CLIENT_CLOSED, "the sender closed its connection before the exchange ended"
        )
    if CONNECT_TIMEOUT_MARK in lowered:
        return Denial(
            Reason.CONNECT_TIMEOUT, f"the receiver did not accept the connection: {message}"
        )
    if "tls" in lowered or "certificate" in lowered or "ssl" in lowered:
        return Denial(Reason.TLS_FAILED, f"TLS with the receiver failed: {message}")
    if "body_size_limit" in lowered:
        if lowered.startswith("response"):
            return Denial(
                Reason.RESPONSE_TOO_LARGE, "the receiver's response is larger than allowed"
            )
        return Denial(Reason.REQUEST_TOO_LARGE, "the request body is larger than allowed")
    return Denial(Reason.UPSTREAM_ERROR, f"the receiver could not be reached: {message}")


CONNECT_TIMEOUT_MARK = "connect timed out"
RESPONSE_HEAD_MARK = "response head too large"
RESPONSE_FRAMING_MARK = "response head ambiguous"  # http1guard: framing.response_problem


def expect_error_response(client_id: str, request_id: str, denial: Denial) -> None:
    _pending[client_id] = (request_id, denial)


def expect_raw_response(client_id: str, data: bytes) -> None:
    _raw[client_id] = data


def forget(client_id: str) -> None:
    _pending.pop(client_id, None)
    _raw.pop(client_id, None)


def render(status: int, denial: Denial, request_id: str) -> bytes:
    """A complete HTTP/1.1 error response in our contract's shape; the connection then closes."""
    body = denial.body(request_id)
    headers = denial.headers(request_id)
    head = [f"HTTP/1.1 {status} {_phrase(status)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(head).encode() + body


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
        pending = _pending.pop(self.conn.id, None)
        raw = _raw.pop(self.conn.id, None)
        can_write = bool(self.conn.state & ConnectionState.CAN_WRITE)
        if raw is not None and can_write and not self.response:
            yield commands.SendData(self.conn, raw)
            yield commands.CloseConnection(self.conn)
            return
        # A pending denial is ours to send, even where mitmproxy would send nothing (kills).
        if pending and can_write and not self.response:
            request_id, denial = pending
            yield commands.SendData(self.conn, render(denial.status, denial, request_id))
            yield commands.CloseConnection(self.conn)
            return
    yield from _original_send(self, event)


def install() -> None:
    """Swap in our error pages (idempotent)."""
    _http1.make_error_response = _error_page  # type: ignore[assignment]
    _http1.Http1Server.send = _send  # type: ignore[method-assign]
