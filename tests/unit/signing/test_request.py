"""sign_exchange: what signing changes in one request, read from a neutral Exchange."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hookwall.config.errors import Location
from hookwall.core.exchange import Exchange
from hookwall.policy import SigningSettings
from hookwall.signing import GitHub, StandardWebhooks, parse_secret
from hookwall.signing.request import UnusableSenderId, sign_exchange

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SW_KEY = parse_secret("standard-webhooks", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
HERE = Location("policy.yaml", 1, 1)


def settings(**overrides: object) -> SigningSettings:
    values: dict[str, object] = {
        "scheme": StandardWebhooks(),
        "keys": (SW_KEY,),
        "references": ("env:KEY",),
        "location": HERE,
    }
    return SigningSettings(**(values | overrides))  # type: ignore[arg-type]


def request(*headers: tuple[str, str], body: bytes = b'{"a": 1}') -> Exchange:
    return Exchange("POST", "https://receiver.test/hook", headers, body)


def test_the_senders_signatures_go_and_ours_are_added() -> None:
    sent = request(("Webhook-Signature", "v1,forged"), ("svix-timestamp", "1"), ("X-A", "b"))
    signed = sign_exchange(sent, settings(), (), NOW)
    assert signed.failure is None and signed.scheme == "standard-webhooks"
    assert set(signed.remove) == {"webhook-signature", "svix-timestamp"}
    added = dict(signed.add)
    assert set(added) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert added["webhook-timestamp"] == str(int(NOW.timestamp()))
    assert signed.webhook_id == added["webhook-id"] and signed.key_ids == (SW_KEY.key_id,)


def test_the_senders_own_event_id_is_kept() -> None:
    signed = sign_exchange(request(("Webhook-Id", "msg_sender")), settings(), (), NOW)
    assert dict(signed.add)["webhook-id"] == "msg_sender" == signed.webhook_id


def test_an_event_id_that_cannot_be_signed_is_the_senders_fault() -> None:
    with pytest.raises(UnusableSenderId):
        sign_exchange(request(("webhook-id", "a.b")), settings(), (), NOW)


def test_a_kept_sender_signature_changes_nothing() -> None:
    sent = request(("webhook-signature", "v1,theirs"))
    signed = sign_exchange(sent, settings(keep_sender_signatures=True), (), NOW)
    assert (signed.scheme, signed.remove, signed.add) == ("sender", (), ())


def test_without_a_usable_key_it_is_refused_and_the_senders_signatures_still_go() -> None:
    expired = parse_secret(
        "standard-webhooks",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        not_after=NOW - timedelta(days=1),
    )
    sent = request(("webhook-signature", "v1,forged"))
    signed = sign_exchange(sent, settings(keys=(expired,)), (), NOW)
    assert signed.failure is not None and "expired" in signed.failure
    assert signed.remove == ("webhook-signature",) and signed.add == ()


def test_a_scheme_without_ids_logs_the_senders_own() -> None:
    github = settings(scheme=GitHub(), keys=(parse_secret("github", "s3cret"),))
    signed = sign_exchange(request(("X-Event", "evt-9")), github, ("x-event",), NOW)
    assert signed.webhook_id == "evt-9"
    assert [name.lower() for name, _ in signed.add] == ["x-hub-signature-256"]
