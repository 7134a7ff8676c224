"""The reason codes are a contract with senders and operators: exactly these, with these
statuses (the table as it stood when codes became an enum), and one shape of refusal."""

from __future__ import annotations

import json

import pytest

from hookwall.core.denials import PROXY_AUTHENTICATE, REASON_HEADER, Denial, Reason

STATUS_BY_CODE = {
    "address-blocked": 403,
    "host-denied": 403,
    "port-denied": 403,
    "invalid-host": 403,
    "host-mismatch": 403,
    "dns-failed": 403,
    "sender-denied": 403,
    "internal-error": 403,
    "bad-request": 400,
    "bad-framing": 400,
    "request-timeout": 408,
    "header-too-large": 431,
    "client-closed": 499,
    "signing-failed": 500,
    "proxy-error": 502,
    "auth-required": 407,
    "request-too-large": 413,
    "rate-limited": 429,
    "queue-full": 503,
    "queue-timeout": 503,
    "circuit-open": 503,
    "proxy-busy": 503,
    "limits-unavailable": 503,
    "redirect-denied": 502,
    "response-too-large": 502,
    "response-head-too-large": 502,
    "response-bad-framing": 502,
    "upstream-error": 502,
    "tls-failed": 502,
    "connect-timeout": 504,
    "response-timeout": 504,
}


def test_every_reason_has_its_status_and_the_codes_are_exactly_todays() -> None:
    assert {reason.value: reason.status for reason in Reason} == STATUS_BY_CODE
    assert all(isinstance(reason.status, int) for reason in Reason)


def test_a_reason_is_its_wire_value() -> None:
    assert Reason("queue-full") is Reason.QUEUE_FULL
    assert Reason.QUEUE_FULL.value == "queue-full" and str(Reason.QUEUE_FULL) == "queue-full"
    assert "queue-full" in {Reason.QUEUE_FULL}  # equal to its wire value, hashed alike
    assert f"{Reason.TLS_FAILED}" == "tls-failed"
    with pytest.raises(ValueError, match="not a valid Reason"):
        Reason("anything")


def test_a_denial_is_answered_in_one_shape() -> None:
    denial = Denial(Reason.RATE_LIMITED, "slow down", retry_after=0)
    assert denial.status == 429
    assert json.loads(denial.body("req_1")) == {
        "error": "rate-limited",
        "message": "slow down",
        "request_id": "req_1",
    }
    assert denial.headers("req_1") == {
        "Content-Type": "application/json",
        REASON_HEADER: "rate-limited",
        "X-Hookwall-Request-Id": "req_1",
        "Cache-Control": "no-store",
        "Retry-After": "1",
    }
    challenge = Denial(Reason.AUTH_REQUIRED, "who are you?").headers("req_2")
    assert challenge["Proxy-Authenticate"] == PROXY_AUTHENTICATE
    assert type(challenge[REASON_HEADER]) is str  # the wire value, not the enum
