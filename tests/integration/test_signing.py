"""Request signing end to end: senders send plain webhooks, receivers verify with stock tools.

Every receiver-side check here uses the verifier of the receiver's ecosystem
(``standardwebhooks``, ``stripe``, ``cryptography`` for Ed25519, GitHub's documented HMAC),
never hookwall's own signing code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import requests
import stripe
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from tests.support.dnsserver import TestDnsServer
from tests.support.launcher import ProxyLauncher
from tests.support.proxyproc import ProxyProcess, trusting
from tests.support.receivers import Receiver, Twins

pytestmark = pytest.mark.integration

WHSEC_NEW = "whsec_" + base64.b64encode(b"new-key-for-hookwall-tests-32byt").decode()
WHSEC_OLD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the spec's vector secret
ED_SEED = bytes(range(32))
WHSK = "whsk_" + base64.b64encode(ED_SEED).decode()
GITHUB_SECRET = "It's a Secret to Everybody"
STRIPE_SECRET = "whsec_stripe0123456789abcdefghijklmnop"
CONVOY_SECRET = "convoy-secret-for-tests"
SECRETS = {
    "HW_T_NEW": WHSEC_NEW,
    "HW_T_OLD": WHSEC_OLD,
    "HW_T_ED": WHSK,
    "HW_T_GH": GITHUB_SECRET,
    "HW_T_STRIPE": STRIPE_SECRET,
    "HW_T_CONVOY": CONVOY_SECRET,
}

POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
  ca_bundle: {ca}
destinations:
  - hosts: [sw.hooks.test]
    signing: {scheme: standard-webhooks, secrets: [env:HW_T_NEW, env:HW_T_OLD]}
  - hosts: [ed.hooks.test]
    signing: {scheme: standard-webhooks, secrets: [env:HW_T_ED, env:HW_T_NEW]}
  - hosts: [gh.hooks.test]
    signing: {scheme: github, secrets: [env:HW_T_GH], legacy_sha1: true}
  - hosts: [stripe.hooks.test]
    signing: {scheme: stripe, secrets: [env:HW_T_STRIPE]}
  - hosts: [convoy.hooks.test]
    signing:
      scheme: hmac
      secrets: [env:HW_T_CONVOY]
      header: Convoy-Signature
      value: "t={timestamp},v1={signature}"
      content: timestamp-body
      separator: ","
      encoding: hex
  - hosts: [expired.hooks.test]
    signing:
      scheme: standard-webhooks
      secrets: [{secret: env:HW_T_OLD, not_after: 2020-01-01T00:00:00Z}]
  - hosts: [rotating.hooks.test]
    signing:
      scheme: standard-webhooks
      secrets: [env:HW_T_NEW, {secret: env:HW_T_OLD, not_after: 2020-01-01T00:00:00Z}]
  - hosts: [keep.hooks.test]
    signing: {scheme: github, secrets: [env:HW_T_GH], keep_sender_signatures: true}
  - hosts: [idhdr.hooks.test]
    signing: {scheme: standard-webhooks, secrets: [env:HW_T_NEW], id_header: X-Event-Id}
  - hosts: [svix.hooks.test]
    signing: {scheme: standard-webhooks, secrets: [env:HW_T_NEW], header_prefix: svix}
"""
NAMES = [
    f"{name}.hooks.test"
    for name in ("sw", "ed", "gh", "stripe", "convoy", "expired", "rotating", "keep", "idhdr")
] + ["svix.hooks.test"]


@pytest.fixture(scope="module")
def signing_proxy(start_module_proxy: ProxyLauncher) -> Iterator[ProxyProcess]:
    proc = start_module_proxy(POLICY, names=NAMES, env=SECRETS)
    yield proc
    assert proc.stop() == 0
    # No secret, whole or as its base64 payload, in any line the proxy wrote.
    output = json.dumps(proc.events) + "".join(proc.stderr)
    for secret in SECRETS.values():
        assert secret not in output
        assert secret.split("_", 1)[-1] not in output


def verify_v1(secret: str, body: bytes, headers: dict[str, str]) -> None:
    """Standard Webhooks v1: the reference library for JSON bodies, the spec for the rest.

    (``standardwebhooks`` decodes the payload as UTF-8 and parses it as JSON after checking
    the signature, so it cannot take binary or non-JSON bodies.)
    """
    try:
        # As the library reads it: UTF-8, then JSON (json.loads of bytes would guess UTF-16
        # for b"0\x00" and call it JSON, which the library then fails to parse).
        json.loads(body.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError is one too
        key = base64.b64decode(secret.removeprefix("whsec_"))
        content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
        expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
        sent = [s.split(",", 1)[1] for s in headers["webhook-signature"].split() if s[:3] == "v1,"]
        assert any(hmac.compare_digest(expected, s) for s in sent)
    else:
        Webhook(secret).verify(body, headers)


def post(proxy: ProxyProcess, url: str, body: bytes, **headers: str) -> requests.Response:
    return requests.post(
        url, data=body, headers=headers, proxies={"http": proxy.url, "https": proxy.url}, timeout=10
    )


def test_standard_webhooks_verifies_with_the_reference_library(
    signing_proxy: ProxyProcess, plain_twins: Twins
) -> None:
    allowed, _ = plain_twins
    body = b'{"type": "invoice.paid", "id": 42}'
    r = post(signing_proxy, f"http://sw.hooks.test:{allowed.port}/hook", body)
    assert r.status_code == 200, r.text
    seen = allowed.requests[-1]
    assert seen.body == body
    assert seen.headers["webhook-id"].startswith("msg_")
    assert abs(int(seen.headers["webhook-timestamp"]) - time.time()) < 60
    # Rotation: both keys signed; each alone verifies.
    assert len(seen.headers["webhook-signature"].split()) == 2
    for secret in (WHSEC_NEW, WHSEC_OLD):
        Webhook(secret).verify(seen.body, seen.headers)
    event = signing_proxy.exchange(host="sw.hooks.test", status=200)
    assert event["signed"] == "standard-webhooks"
    assert len(event["key_ids"]) == 2 and all(k.startswith("hmac:") for k in event["key_ids"])
    assert event["webhook_id"] == seen.headers["webhook-id"]


def test_over_intercepted_https_too(signing_proxy: ProxyProcess, tls_twins: Twins) -> None:
    allowed, _ = tls_twins
    body = b'{"over": "tls"}'
    with httpx.Client(proxy=signing_proxy.url, verify=trusting(signing_proxy.ca_cert)) as client:
        r = client.post(f"https://sw.hooks.test:{allowed.port}/tls", content=body, timeout=10)
    assert r.status_code == 200
    seen = allowed.requests[-1]
    Webhook(WHSEC_NEW).verify(seen.body, seen.headers)


def test_sender_id_is_kept_and_sender_signatures_replaced(
    signing_proxy: ProxyProcess, plain_twins: Twins
) -> None:
    allowed, _ = plain_twins
    forged = "v1," + base64.b64encode(b"x" * 32).decode()
    r = post(
        signing_proxy,
        f"http://sw.hooks.test:{allowed.port}/retry",
        b"{}",
        **{"webhook-id": "msg_retry123", "webhook-signature": forged, "webhook-timestamp": "1"},
    )
    assert r.status_code == 200
    seen = allowed.requests[-1]
    assert seen.headers["webhook-id"] == "msg_retry123"
    assert forged not in seen.headers["webhook-signature"]
    assert seen.headers["webhook-timestamp"] != "1"
    Webhook(WHSEC_OLD).verify(seen.body, seen.headers)


def test_svix_receivers_get_only_hookwalls_signature_under_either_prefix(
    signing_proxy: ProxyProcess, plain_twins: Twins
) -> None:
    """A receiver may read both prefixes: the sender's own signatures go under both."""
    allowed, _ = plain_twins
    forged = "v1," + base64.b64encode(b"x" * 32).decode()
    own = {f"{p}-{h}": v for p in ("svix", "webhook") for h, v in [("signature", forged)]}
    own |= {"webhook-timestamp": "1", "svix-timestamp": "1"}
    r = post(signing_proxy, f"http://svix.hooks.test:{allowed.port}/s", b"{}", **own)
    assert r.status_code == 200
    seen = allowed.requests[-1]
    assert "webhook-signature" not in seen.headers and "webhook-timestamp" not in seen.headers
    assert forged not in seen.headers["svix-signature"]
    renamed = {k.replace("svix-", "webhook-"): v for k, v in seen.headers.items()}
    Webhook(WHSEC_NEW).verify(seen.body, renamed)


def test_id_header_from_the_policy_is_reused(
    signing_proxy: ProxyProcess, plain_twins: Twins
) -> None:
    allowed, _ = plain_twins
    post(
        signing_proxy, f"http://idhdr.hooks.test:{allowed.port}/", b"{}", **{"X-Event-Id": "evt_7"}
    )
    assert allowed.requests[-1].headers["webhook-id"] == "evt_7"


def test_ed25519_v1a_verifies_with_cryptography(
    signing_proxy: ProxyProcess, plain_twins: Twins
) -> None:
    allowed, _ = plain_twins
    body = b"\x00binary\xffbody"
    assert post(signing_proxy, f"http://ed.hooks.test:{allowed.port}/", body).status_code == 200
    seen = allowed.requests[-1]
    signatures = dict(item.split(",", 1) for item in seen.headers["webhook-signature"].split())
    assert set(signatures) == {"v1a", "v1"}
    public: Ed25519PublicKey = Ed25519PrivateKey.from_private_bytes(ED_SEED).public_key()
    content = f"{seen.headers['webhook-id']}.{seen.headers['webhook-timestamp']}.".encode() + body
    public.verify(base64.b64decode(signatures["v1a"]), content)  # raises if invalid
    verify_v1(WHSEC_NEW, seen.body, seen.headers)  # the HMAC key of the pair signs too


def test_github_signature_and_legacy_header(
    signing_proxy: ProxyProcess, plain_twins: Twins
) -> None:
    allowed, _ = plain_twins
    body = b"Hello, World!"
    assert post(signing_proxy, f"http://gh.hooks.test:{allowed.port}/", body).status_code == 200
    seen = allowed.requests[-1]
    key = GITHUB_SECRET.encode()
    expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    assert seen.headers["x-hub-signature-256"] == expected
    assert expected == "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert (
        seen.headers["x-hub-signature"] == "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()
    )


def test_stripe_signature_verifies_with_the_stripe_package(
    signing_proxy: ProxyProcess, plain_twins: Twins
) -> None:
    allowed, _ = plain_twins
    body = b'{"id": "evt_1", "object": "event"}'
    assert post(signing_proxy, f"http://stripe.hooks.test:{allowed.port}/", body).status_code == 200
    seen = allowed.requests[-1]
    header = seen.headers["stripe-signature"]
    assert stripe.WebhookSignature.verify_header(body.decode(), header, STRIPE_SECRET, 300)


def test_generic_hmac_convoy_style(signing_proxy: ProxyProcess, plain_twins: Twins) -> None:
    allowed, _ = plain_twins
    body = b'{"convoy": true}'
    assert post(signing_proxy, f"http://convoy.hooks.test:{allowed.port}/", body).status_code == 200
    value = allowed.requests[-1].headers["convoy-signature"]
    parts = dict(part.split("=", 1) for part in value.split(","))
    content = parts["t"].encode() + b"," + body
    expected = hmac.new(CONVOY_SECRET.encode(), content, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)


def test_expired_keys_do_not_sign_and_nothing_is_sent_unsigned(
    signing_proxy: ProxyProcess, plain_twins: Twins
) -> None:
    allowed, _ = plain_twins
    before = len(allowed.requests)
    r = post(signing_proxy, f"http://expired.hooks.test:{allowed.port}/", b"{}")
    assert r.status_code == 500
    assert r.headers["X-Hookwall-Reason"] == "signing-failed"
    assert "expired" in r.json()["message"]
    assert len(allowed.requests) == before
    r = post(signing_proxy, f"http://rotating.hooks.test:{allowed.port}/", b"{}")
    assert r.status_code == 200
    seen = allowed.requests[-1]
    assert len(seen.headers["webhook-signature"].split()) == 1  # the expired key is gone
    Webhook(WHSEC_NEW).verify(seen.body, seen.headers)


def test_keep_sender_signatures_forwards_them_untouched(
    signing_proxy: ProxyProcess, plain_twins: Twins
) -> None:
    allowed, _ = plain_twins
    own = "sha256=" + "0" * 64
    post(
        signing_proxy,
        f"http://keep.hooks.test:{allowed.port}/",
        b"x",
        **{"X-Hub-Signature-256": own},
    )
    assert allowed.requests[-1].headers["x-hub-signature-256"] == own
    assert signing_proxy.exchange(host="keep.hooks.test")["signed"] == "sender"


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=st.one_of(st.binary(max_size=4096), st.sampled_from([b"", b"\x00" * 70000])))
def test_any_body_arrives_byte_identical_and_verifies(
    signing_proxy: ProxyProcess, plain_twins: Twins, body: bytes
) -> None:
    allowed, _ = plain_twins
    r = post(signing_proxy, f"http://sw.hooks.test:{allowed.port}/prop", body)
    assert r.status_code == 200
    seen = allowed.requests[-1]
    assert seen.body == body
    verify_v1(WHSEC_NEW, seen.body, seen.headers)


def test_cli_output_never_shows_secrets(
    signing_proxy: ProxyProcess, dns_server: TestDnsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**SECRETS}
    hookwall = Path(sys.executable).with_name("hookwall")
    outputs = []
    for args in (
        ["check", str(signing_proxy.policy)],
        ["explain", "http://sw.hooks.test/", "--policy", str(signing_proxy.policy),
         "--dns-server", dns_server.spec, "--json"],
    ):  # fmt: skip
        result = subprocess.run(
            [str(hookwall), *args], capture_output=True, text=True, env=env, timeout=30
        )
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout + result.stderr)
    assert "hmac:" in outputs[0] and "env:HW_T_NEW" in outputs[0]
    for secret in SECRETS.values():
        assert all(secret not in out and secret.split("_", 1)[-1] not in out for out in outputs)


def test_receiver_sees_no_signature_for_unsigned_destinations(
    signing_proxy: ProxyProcess, plain_twins: Twins
) -> None:
    allowed: Receiver = plain_twins[0]
    signing_proxy.exchange  # noqa: B018 - the fixture must be up
    r = requests.post(
        f"http://127.0.0.2:{allowed.port}/plain",
        data=b"{}",
        headers={"webhook-id": "msg_sender"},
        proxies={"http": signing_proxy.url},
        timeout=10,
    )
    assert r.status_code == 200
    seen = allowed.requests[-1]
    assert "webhook-signature" not in seen.headers
    event = signing_proxy.exchange(url=f"http://127.0.0.2:{allowed.port}/plain")
    assert event["signed"] is False and event["webhook_id"] == "msg_sender"


def test_an_unsignable_sender_id_is_the_senders_error(
    signing_proxy: ProxyProcess, plain_twins: Twins
) -> None:
    allowed, _ = plain_twins
    before = len(allowed.requests)
    r = post(signing_proxy, f"http://sw.hooks.test:{allowed.port}/", b"{}", **{"webhook-id": "a.b"})
    assert r.status_code == 400 and r.headers["X-Hookwall-Reason"] == "bad-request"
    assert len(allowed.requests) == before
