"""RequestSigning in process: each request signed for its destination, on the bytes that go
upstream; the sender's own signature headers never reach the receiver.

Driven through mitmproxy's addon dispatch behind the real DestinationGuard (literal
addresses: no DNS), with a real policy whose secrets come from the environment. Signatures
are checked with the receivers' own libraries (``standardwebhooks``) or plain ``hmac``, not
with hookwall's code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest
import standardwebhooks.webhooks
from mitmproxy import http

from hookwall.destinations.addons.guard import DestinationGuard
from hookwall.flow.runtime import Runtime
from hookwall.signing import addon as signing_addon
from hookwall.signing.addon import RequestSigning
from tests.unit.support.flows import (
    assert_passed,
    assert_refused,
    load,
    request_to,
    runtime_for,
    state,
)
from tests.unit.support.mitm import HttpRequestHeadersHook, HttpRequestHook, run_hooks

WHSEC = "whsec_" + base64.b64encode(b"a-key-for-the-signing-addon-32b!").decode()
GITHUB_SECRET = "a github secret"
POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
destinations:
  - hosts: [127.0.0.3]
    network: {allow: [127.0.0.3/32]}
    signing: {scheme: standard-webhooks, secrets: [env:HW_SIGN_WHSEC]}
  - hosts: [127.0.0.4]
    network: {allow: [127.0.0.4/32]}
    signing: {scheme: github, secrets: [env:HW_SIGN_GITHUB]}
  - hosts: [127.0.0.5]
    network: {allow: [127.0.0.5/32]}
    signing:
      scheme: standard-webhooks
      secrets: [env:HW_SIGN_WHSEC]
      keep_sender_signatures: true
  - hosts: [127.0.0.6]
    network: {allow: [127.0.0.6/32]}
    signing:
      scheme: standard-webhooks
      secrets: [{secret: env:HW_SIGN_WHSEC, not_after: 2001-01-01T00:00:00Z}]
"""
STANDARD, GITHUB, KEEPS_SENDERS, EXPIRED = "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"
BODY = b'{"type": "invoice.paid"}'


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.setenv("HW_SIGN_WHSEC", WHSEC)
    monkeypatch.setenv("HW_SIGN_GITHUB", GITHUB_SECRET)
    return runtime_for(load(tmp_path, POLICY))


def signed(runtime: Runtime, host: str, **headers: str) -> http.HTTPFlow:
    """A request to ``host`` with these headers, through the guard and the signer."""
    flow = request_to(host, 8080, body=BODY)
    for name, value in headers.items():
        flow.request.headers[name.replace("_", "-")] = value
    run_hooks(
        [DestinationGuard(runtime), RequestSigning()],
        HttpRequestHeadersHook(flow),
        HttpRequestHook(flow),
    )
    return flow


def standard_webhooks_verifies(flow: http.HTTPFlow) -> bool:
    headers = {name.lower(): flow.request.headers[name] for name in flow.request.headers}
    try:
        standardwebhooks.webhooks.Webhook(WHSEC).verify(flow.request.raw_content or b"", headers)
    except standardwebhooks.webhooks.WebhookVerificationError:
        return False
    return True


def test_a_standard_webhooks_destination_gets_a_signature_its_library_accepts(
    runtime: Runtime,
) -> None:
    flow = signed(runtime, STANDARD)
    found = assert_passed(flow)
    assert standard_webhooks_verifies(flow)
    headers = flow.request.headers
    assert headers["webhook-id"].startswith("msg_")
    assert found.signed == "standard-webhooks" and len(found.key_ids) == 1
    assert found.webhook_id == headers["webhook-id"]  # logged with the exchange


def test_the_senders_own_id_is_kept_so_retries_keep_it(runtime: Runtime) -> None:
    flow = signed(runtime, STANDARD, webhook_id="evt_0001")
    assert flow.request.headers.get_all("webhook-id") == ["evt_0001"]
    assert standard_webhooks_verifies(flow)
    assert state(flow).webhook_id == "evt_0001"


def test_an_id_standard_webhooks_cannot_sign_is_the_senders_error(runtime: Runtime) -> None:
    flow = signed(runtime, STANDARD, webhook_id="evt.0001")
    found = assert_refused(flow, 400, "bad-request")
    assert found.signed is None
    assert "webhook-signature" not in flow.request.headers


@pytest.mark.parametrize(
    "forged",
    ["webhook-signature", "webhook-timestamp", "svix-signature", "svix-timestamp"],
)
def test_a_senders_signature_headers_never_reach_the_receiver(
    runtime: Runtime, forged: str
) -> None:
    flow = signed(runtime, STANDARD, **{forged.replace("-", "_"): "v1,Zm9yZ2Vk"})
    sent = [name.lower() for name in flow.request.headers]
    assert not {"svix-signature", "svix-timestamp"} & set(sent)
    assert sent.count("webhook-signature") == sent.count("webhook-timestamp") == 1
    assert standard_webhooks_verifies(flow)  # ours, not the forged one


def test_a_github_destination_gets_its_hmac_of_the_exact_body(runtime: Runtime) -> None:
    flow = signed(runtime, GITHUB, X_Hub_Signature_256="sha256=forged")
    expected = "sha256=" + hmac.new(GITHUB_SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert flow.request.headers.get_all("X-Hub-Signature-256") == [expected]
    found = assert_passed(flow)
    assert found.signed == "github" and found.webhook_id is None  # github sends no id


def test_a_request_the_sender_signed_may_be_left_as_it_is(runtime: Runtime) -> None:
    theirs = {"webhook_id": "evt_1", "webhook_timestamp": "1", "webhook_signature": "v1,theirs"}
    flow = signed(runtime, KEEPS_SENDERS, **theirs)
    assert flow.request.headers["webhook-signature"] == "v1,theirs"
    assert assert_passed(flow).signed == "sender"
    unsigned = signed(runtime, KEEPS_SENDERS)  # nothing of theirs: hookwall signs
    assert standard_webhooks_verifies(unsigned)


def test_a_request_that_cannot_be_signed_is_refused_not_sent_unsigned(runtime: Runtime) -> None:
    flow = signed(runtime, EXPIRED)
    found = assert_refused(flow, 500, "signing-failed")
    assert found.denial is not None and "expired" in found.denial.message
    assert "webhook-signature" not in flow.request.headers


def test_a_destination_without_signing_is_left_alone(runtime: Runtime) -> None:
    flow = signed(runtime, "127.0.0.2", webhook_signature="v1,theirs")
    assert assert_passed(flow).signed is None
    assert flow.request.headers["webhook-signature"] == "v1,theirs"


def test_a_refused_request_is_never_signed(runtime: Runtime) -> None:
    flow = request_to("127.0.0.1", 8080, body=BODY)
    run_hooks(
        [DestinationGuard(runtime), RequestSigning()],
        HttpRequestHeadersHook(flow),
        HttpRequestHook(flow),
    )
    assert_refused(flow, 403, "address-blocked")
    assert "webhook-signature" not in flow.request.headers


def test_signing_fails_closed(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug below the adapter (fault injection: the real signer, made to raise)."""

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(signing_addon, "sign_exchange", explode)
    flow = signed(runtime, STANDARD)
    found = assert_refused(flow, 500, "signing-failed")
    assert found.denial is not None and "RuntimeError" in found.denial.message
    assert "webhook-signature" not in flow.request.headers
