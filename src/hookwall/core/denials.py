"""The denial contract: every refusal has a stable reason code, an HTTP status and a JSON body.

Senders' code and operators' alerts match on ``X-Hookwall-Reason``; keep the codes stable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

REASON_HEADER = "X-Hookwall-Reason"
# The challenge of every 407: both schemes a sender may use (RFC 9110 11.7.1).
PROXY_AUTHENTICATE = 'Basic realm="hookwall", Bearer realm="hookwall"'

STATUS_BY_REASON: dict[str, int] = {
    # policy denials
    "address-blocked": 403,
    "host-denied": 403,
    "port-denied": 403,
    "invalid-host": 403,
    "host-mismatch": 403,
    "dns-failed": 403,
    "sender-denied": 403,
    "internal-error": 403,
    # malformed or too slow requests
    "bad-request": 400,
    # the request head can be framed more than one way (obs-fold, bare CR, CL with TE, ...):
    # refused, never repaired, and the connection closes (bounds/framing.py)
    "bad-framing": 400,
    "request-timeout": 408,  # the request head or body did not arrive in time
    "header-too-large": 431,  # the request head has too many bytes or fields
    # the sender went away before the exchange ended (never sent: nobody is listening)
    "client-closed": 499,
    # the proxy could not do its part
    "signing-failed": 500,
    "proxy-error": 502,  # hookwall's HTTP engine failed on this exchange; the connection closed
    # access control
    "auth-required": 407,
    # limits
    "request-too-large": 413,
    "rate-limited": 429,
    "queue-full": 503,
    "queue-timeout": 503,
    "circuit-open": 503,
    "proxy-busy": 503,  # request bodies in memory are at proxy.max_buffered_bodies
    "limits-unavailable": 503,  # the shared limits store is down (on_backend_failure: refuse)
    # upstream
    "redirect-denied": 502,
    "response-too-large": 502,
    "response-head-too-large": 502,
    "response-bad-framing": 502,  # the receiver's response head can be framed more than one way
    "upstream-error": 502,
    "tls-failed": 502,
    "connect-timeout": 504,
    "response-timeout": 504,
}


@dataclass(frozen=True, slots=True)
class Denial:
    reason: str
    message: str
    retry_after: int | None = None  # seconds, for 429/503: when the sender should come back

    @property
    def status(self) -> int:
        return STATUS_BY_REASON.get(self.reason, 403)

    def body(self, request_id: str) -> bytes:
        return json.dumps(
            {"error": self.reason, "message": self.message, "request_id": request_id},
            ensure_ascii=False,
        ).encode()

    def headers(self, request_id: str) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            REASON_HEADER: self.reason,
            "X-Hookwall-Request-Id": request_id,
            "Cache-Control": "no-store",
        }
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, self.retry_after))
        if self.reason == "auth-required":
            headers["Proxy-Authenticate"] = PROXY_AUTHENTICATE
        return headers
