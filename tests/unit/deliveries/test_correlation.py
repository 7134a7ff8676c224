"""Which webhook event a request carries: conventional headers, a policy header, Stripe ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookwall.core.exchange import Exchange
from hookwall.deliveries.correlation import id_headers, stripe_event_id, webhook_id
from hookwall.policy import load_policy


def request(headers: dict[str, str], body: bytes | None = None) -> Exchange:
    return Exchange("POST", "http://a.test/", tuple(headers.items()), body)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"webhook-id": "msg_1"}, "msg_1"),
        ({"svix-id": "msg_svix"}, "msg_svix"),
        ({"x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
         "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ({"webhook-id": "msg_1", "svix-id": "msg_2"}, "msg_1"),  # Standard Webhooks first
        ({"webhook-id": "  "}, None),
        ({}, None),
    ],
)  # fmt: skip
def test_conventional_headers(headers: dict[str, str], expected: str | None) -> None:
    assert webhook_id(request(headers)) == expected


def test_a_header_named_in_the_policy_comes_first() -> None:
    headers = {"x-event-id": "evt-42", "webhook-id": "msg_1"}
    assert webhook_id(request(headers), ("x-event-id",)) == "evt-42"
    assert webhook_id(request({"webhook-id": "msg_1"}), ("x-event-id",)) == "msg_1"
    assert webhook_id(request({"X-Event-ID": "evt-43"}), ("x-event-id",)) == "evt-43"  # any case


def test_stripe_event_id_from_the_body() -> None:
    body = b'{"id": "evt_1NG8Du2eZvKYlo2CUI79vXWy", "object": "event", "type": "invoice.paid"}'
    assert webhook_id(request({}, body)) == "evt_1NG8Du2eZvKYlo2CUI79vXWy"
    assert webhook_id(request({"webhook-id": "msg_1"}, body)) == "msg_1"  # a header wins
    for other in (
        b'{"id": 42}',
        b'{"id": "cus_123", "note": "evt_123"}',  # not an event id
        b'{"data": {"id": "evt_123"}}',  # not top level
        b'["evt_123"]',
        b'{"id": "evt_123"',  # not JSON
        b"\xff\xfe",
    ):
        assert stripe_event_id(other) is None


def test_policy_id_headers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_T_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    policy_file = tmp_path / "p.yaml"
    policy_file.write_text(
        "version: 1\n"
        "logging: {id_header: X-Event-Id}\n"
        "destinations:\n"
        "  - hosts: [a.example]\n"
        "    logging: {id_header: X-Acme-Delivery}\n"
        "    signing: {scheme: standard-webhooks, secrets: [env:HW_T_SECRET], id_header: X-Msg}\n"
        "  - hosts: [b.example]\n"
        "    limits: {concurrency: 1}\n"
    )
    policy = load_policy(policy_file)
    assert id_headers(policy.settings_for("a.example")) == ("x-acme-delivery", "x-msg")
    assert id_headers(policy.settings_for("b.example")) == ("x-event-id",)
    assert id_headers(policy.settings_for("c.example")) == ("x-event-id",)
    assert id_headers(None) == ()
