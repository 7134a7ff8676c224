"""The denial contract: every refusal has a stable reason code, an HTTP status and a JSON body.

Senders' code and operators' alerts match on ``X-Hookwall-Reason``; keep the codes stable.
``Reason`` is the one table of codes and their statuses: a code that is not in it is a type
error, never a silent 403. This module is the one place a ``Denial`` becomes the status,
headers and body a sender sees (``flow/respond.py`` puts them on a flow, ``flow/errorpages.py``
renders them as bytes where mitmproxy writes its own answer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from hookwall.core.headers import REASON, REQUEST_ID

REASON_HEADER = REASON
# The challenge of every 407: both schemes a sender may use (RFC 9110 11.7.1).
PROXY_AUTHENTICATE = 'Basic realm="hookwall", Bearer realm="hookwall"'


class Reason(StrEnum):
    """A refusal's reason code (the wire value) and the HTTP status it is answered with."""

    status: int

    def __new__(cls, code: str, status: int | None = None) -> Reason:
        if status is None:  # a member without its status: refused when the class is built
            raise TypeError(f"reason {code!r} needs its HTTP status")
        member = str.__new__(cls, code)
        member._value_ = code
        member.status = status
        return member

    # policy denials
    ADDRESS_BLOCKED = "address-blocked", 403
    HOST_DENIED = "host-denied", 403
    PORT_DENIED = "port-denied", 403
    INVALID_HOST = "invalid-host", 403
    HOST_MISMATCH = "host-mismatch", 403
    DNS_FAILED = "dns-failed", 403
    SENDER_DENIED = "sender-denied", 403
    INTERNAL_ERROR = "internal-error", 403
    # malformed or too slow requests
    BAD_REQUEST = "bad-request", 400
    # the request head can be framed more than one way (obs-fold, bare CR, CL with TE, ...):
    # refused, never repaired, and the connection closes (bounds/framing.py)
    BAD_FRAMING = "bad-framing", 400
    REQUEST_TIMEOUT = "request-timeout", 408  # the request head or body did not arrive in time
    HEADER_TOO_LARGE = "header-too-large", 431  # the request head has too many bytes or fields
    # the sender went away before the exchange ended (never sent: nobody is listening)
    CLIENT_CLOSED = "client-closed", 499
    # the proxy could not do its part
    SIGNING_FAILED = "signing-failed", 500
    PROXY_ERROR = "proxy-error", 502  # hookwall's HTTP engine failed; the connection closed
    # access control
    AUTH_REQUIRED = "auth-required", 407
    # limits
    REQUEST_TOO_LARGE = "request-too-large", 413
    RATE_LIMITED = "rate-limited", 429
    QUEUE_FULL = "queue-full", 503
    QUEUE_TIMEOUT = "queue-timeout", 503
    CIRCUIT_OPEN = "circuit-open", 503
    PROXY_BUSY = "proxy-busy", 503  # request bodies in memory are at proxy.max_buffered_bodies
    LIMITS_UNAVAILABLE = "limits-unavailable", 503  # the shared limits store is down (refuse)
    # upstream
    REDIRECT_DENIED = "redirect-denied", 502
    RESPONSE_TOO_LARGE = "response-too-large", 502
    RESPONSE_HEAD_TOO_LARGE = "response-head-too-large", 502
    RESPONSE_BAD_FRAMING = "response-bad-framing", 502  # the receiver's head is ambiguous
    UPSTREAM_ERROR = "upstream-error", 502
    TLS_FAILED = "tls-failed", 502
    CONNECT_TIMEOUT = "connect-timeout", 504
    RESPONSE_TIMEOUT = "response-timeout", 504


@dataclass(frozen=True, slots=True)
class Denial:
    reason: Reason
    message: str
    retry_after: int | None = None  # seconds, for 429/503: when the sender should come back

    @property
    def status(self) -> int:
        return self.reason.status

    def body(self, request_id: str) -> bytes:
        return json.dumps(
            {"error": self.reason.value, "message": self.message, "request_id": request_id},
            ensure_ascii=False,
        ).encode()

    def headers(self, request_id: str) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            REASON_HEADER: self.reason.value,
            REQUEST_ID: request_id,
            "Cache-Control": "no-store",
        }
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, self.retry_after))
        if self.reason is Reason.AUTH_REQUIRED:
            headers["Proxy-Authenticate"] = PROXY_AUTHENTICATE
        return headers
