"""hookwall.invalid's answers, the pure part: which hosts are it, and what each path says."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hookwall.selfanswer.answer import (
    CA_SEEN,
    NAME,
    PATHS,
    Answer,
    Asker,
    OwnCA,
    answer,
    fingerprint,
    is_hookwall_name,
)

ASKER = Asker(
    request_id="req_1",
    sender="billing",
    senders_required=True,
    would_deny=(),
    mode="regular",
    client="127.0.0.1:5000",
    tls=False,
)
CA = OwnCA(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "AB:CD")


def doc(reply: Answer) -> Any:
    assert dict(reply.headers)["Content-Type"] == "application/json"
    return json.loads(reply.body)


@pytest.mark.parametrize("host", ["hookwall.invalid", "HOOKWALL.Invalid", "hookwall.invalid."])
def test_the_name_in_any_spelling_the_guard_reads_the_same(host: str) -> None:
    assert is_hookwall_name(host)


@pytest.mark.parametrize(
    "host",
    ["www.hookwall.invalid", "hookwall.invalid.example", "hookwall", "xhookwall.invalid", "",
     "hookwall.invalid/x", "127.0.0.1", "[::1]", "hookwall..invalid"],
)  # fmt: skip
def test_other_hosts_are_not_it(host: str) -> None:
    assert not is_hookwall_name(host)


def test_whoami_says_how_hookwall_saw_the_request() -> None:
    reply = answer("GET", "/whoami?x=1", ASKER, CA)
    assert reply.status == 200 and dict(reply.headers)["Cache-Control"] == "no-store"
    assert doc(reply) == {
        "through_hookwall": True,
        "request_id": "req_1",
        "sender": "billing",
        "senders_required": True,
        "would_deny": [],
        "mode": "regular",
        "client": "127.0.0.1:5000",
        "tls": False,
        "ca": None,
        "ca_sha256": "AB:CD",
    }


def test_over_tls_it_says_the_handshake_completed_and_no_more() -> None:
    tls = Asker("req_2", None, False, ("auth-required",), "transparent", None, True)
    body = doc(answer("HEAD", "/whoami", tls, None))
    assert body["ca"] == CA_SEEN and "cannot tell" in body["ca"]
    assert body["ca_sha256"] is None and body["would_deny"] == ["auth-required"]
    assert body["mode"] == "transparent" and body["sender"] is None


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
def test_only_get_and_head_are_answered(method: str) -> None:
    reply = answer(method, "/whoami", ASKER, CA)
    assert reply.status == 405 and dict(reply.headers)["Allow"] == "GET, HEAD"
    assert doc(reply)["error"] == "method-not-allowed"


def test_an_unknown_path_lists_what_exists() -> None:
    reply = answer("GET", "/admin", ASKER, CA)
    body = doc(reply)
    assert reply.status == 404 and body["paths"] == list(PATHS)
    assert body["request_id"] == "req_1" and "/admin" in body["message"]


def test_a_hostile_path_stays_ascii_text() -> None:
    reply = answer("GET", "/\udcff\x00\u202e" + "a" * 5000, ASKER, CA)
    assert reply.status == 404 and reply.body.isascii() and len(reply.body) < 1000


def test_the_root_says_what_the_name_is() -> None:
    body = doc(answer("GET", "/", ASKER, CA))
    assert body["name"] == NAME and "RFC 6761" in body["what"] and "/whoami" in body["paths"]


def test_ca_pem_is_the_certificate_only() -> None:
    reply = answer("GET", "/ca.pem", ASKER, CA)
    assert (reply.status, reply.body) == (200, CA.pem)
    assert dict(reply.headers)["Content-Type"] == "application/x-pem-file"
    missing = answer("GET", "/ca.pem", ASKER, None)
    assert missing.status == 503 and "hookwall ca" in doc(missing)["message"]


def test_fingerprints_read_as_openssl_prints_them() -> None:
    assert fingerprint(bytes([0, 1, 171, 255])) == "00:01:AB:FF"
