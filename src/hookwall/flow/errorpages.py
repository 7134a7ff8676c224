"""What hookwall writes where mitmproxy would write its own error page, and the bytes of
every denial on the wire.

When mitmproxy itself fails a request (the receiver refused the connection, TLS to it failed,
its response was malformed), it writes a small HTML page from deep inside its HTTP/1 layer;
``mitm/errorpages.py`` replaces that page with what is pending here for the connection: our
JSON body and ``X-Hookwall-Reason``, so a sender can always tell what happened, or the answer
a proxy-side retry got. What to write is kept per client connection until mitmproxy writes
it (``flow/respond.py`` says so; only it calls ``expect_*``).

``render`` is the one place a denial becomes bytes on the wire (from ``Denial.headers`` and
``Denial.body``): for mitmproxy's error pages, in ``mitm/http1guard.py`` and for a crashed
connection.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from weakref import WeakKeyDictionary

from mitmproxy import connection

from hookwall.core import ids
from hookwall.core.denials import Denial, Reason
from hookwall.core.librarymessages import receiver_tls


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
    """Map a mitmproxy error message to our reason codes, said in hookwall's words."""
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
        said = receiver_tls(message)  # mitmproxy's advice names its own options
        return Denial(
            Reason.TLS_FAILED,
            f"TLS with the receiver failed: {said.sentence() if said else message}",
        )
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


def take_pending(client: connection.Connection) -> tuple[Denial, str] | bytes | None:
    """What to write instead of mitmproxy's error response on this connection, once: a denial
    with its request id, a retry's answer (bytes), or None."""
    refusal = _refusals.pop(client, None)
    relayed = _relayed.pop(client, None)
    if relayed is not None:
        return relayed
    return (refusal.denial, refusal.request_id) if refusal is not None else None


def fallback_page(status: int, message: str = "") -> bytes:
    """mitmproxy's HTML error page where no denial is pending, in our contract instead. (A
    request head mitmproxy's parser refuses never gets here: ``http1guard`` answers it, with an
    id and an event.) Should another path reach it, the answer still carries a fresh id."""
    denial = Denial(_REASON_BY_STATUS.get(status, Reason.UPSTREAM_ERROR), message)
    return render(status, denial, ids.request_id())
