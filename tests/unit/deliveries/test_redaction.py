"""The redaction rules (hookwall.deliveries.redaction) against real-world credential names,
and what they must leave alone."""

from __future__ import annotations

import pytest

from hookwall.deliveries.redaction import (
    REDACTED,
    Rules,
    is_credential_header,
    is_credential_param,
    normalise,
    redact_event,
    redact_headers,
    redact_text,
    redact_url,
)

# Credential and signature headers real services send or expect, spelled as they document.
CREDENTIAL_HEADERS = [
    "Authorization",
    "Proxy-Authorization",
    "Cookie",
    "Set-Cookie",
    "X-Api-Key",
    "Api-Key",
    "Api_Key",
    "apikey",
    "X-API-KEY",
    "Stripe-Signature",
    "X-Hub-Signature",
    "X-Hub-Signature-256",
    "X-GitHub-Token",
    "X-Gitlab-Token",
    "PRIVATE-TOKEN",  # GitLab
    "Ocp-Apim-Subscription-Key",  # Azure API Management
    "X-Functions-Key",  # Azure Functions
    "X-Amz-Security-Token",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Goog-Api-Key",
    "X-Slack-Signature",
    "X-Twilio-Signature",
    "X-Twilio-Email-Event-Webhook-Signature",
    "X-Access-Key",
    "X-Signing-Key",
    "X-Shopify-Hmac-Sha256",
    "X-Shopify-Access-Token",
    "X-Auth-Token",
    "X-Vault-Token",
    "Token",  # PagerDuty's Events API v1 style
    "X-PagerDuty-Signature",
    "X-CSRF-Token",
    "X-XSRF-TOKEN",
    "webhook-signature",
    "svix-signature",
    "X-Square-HmacSha256-Signature",
    "X-Zm-Signature",  # Zoom
    "X-Line-Signature",
    "X-Hasura-Admin-Secret",
    "X-Webhook-Secret",
    "X-Hook-Secret",  # Asana
    "DD-API-KEY",  # Datadog
    "DD-APPLICATION-KEY",
    "X-Algolia-API-Key",
    "X-RapidAPI-Key",
    "X-Postmark-Server-Token",
    "X-Figma-Token",
    "X-Plex-Token",
    "X-Honeycomb-Team",
    "X-Sentry-Auth",
    "X-Client-Secret",
    "X-Session-Token",
    "X-Mailgun-Signature",
    "X-Discourse-Event-Signature",
    "X-Private-Key",
    "X-Jwt-Assertion",
    "X-Otp",
    "X-Password",
    "Bearer",
]

# Credential query parameters (and the same rule in a fragment).
CREDENTIAL_PARAMS = [
    "token",
    "api_key",
    "apikey",
    "apiKey",
    "api-key",
    "key",  # GCP
    "code",  # Azure Functions
    "sig",  # Azure SAS
    "signature",
    "access_token",
    "accessToken",
    "refresh_token",
    "id_token",
    "client_secret",
    "clientSecret",
    "secret",
    "password",
    "passwd",
    "pwd",
    "auth",
    "auth_token",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
    "X-Goog-Signature",
    "X-Goog-Credential",
    "hapikey",  # HubSpot
    "private_token",  # GitLab
    "hub.verify_token",  # Meta
    "session",
    "sessionid",
    "jwt",
    "access_key",
    "subscription-key",  # Azure APIM
    "otp",
]

ORDINARY_HEADERS = [
    "Host",
    "Content-Type",
    "Content-Length",
    "Content-Encoding",
    "User-Agent",
    "Accept",
    "Accept-Encoding",
    "Connection",
    "Keep-Alive",
    "Date",
    "X-Request-Id",
    "X-Correlation-Id",
    "traceparent",
    "tracestate",
    "X-B3-TraceId",
    "X-B3-SpanId",
    "X-Amzn-Trace-Id",
    "X-Cloud-Trace-Context",
    "Idempotency-Key",
    "X-Idempotency-Key",
    "webhook-id",
    "webhook-timestamp",
    "svix-id",
    "X-GitHub-Event",
    "X-GitHub-Delivery",
    "X-Slack-Request-Timestamp",
    "X-Shopify-Topic",
    "X-Shopify-Shop-Domain",
    "X-Amz-Date",
    "X-Forwarded-For",
    "X-Hookwall-Request-Id",
    "X-Event-Id",
    "X-Author",
]

ORDINARY_PARAMS = ["page", "limit", "event", "id", "type", "format", "v", "state", "sort",
                   "monkey", "author", "design", "signal", "redirect_uri",
                   "token_type"]  # fmt: skip


@pytest.mark.parametrize("name", CREDENTIAL_HEADERS)
def test_credential_headers_are_redacted(name: str) -> None:
    assert is_credential_header(name)
    assert redact_headers([(name, "s3cr3t-value")]) == [(name, REDACTED)]


@pytest.mark.parametrize("name", CREDENTIAL_PARAMS)
def test_credential_params_are_redacted(name: str) -> None:
    assert is_credential_param(name)
    url = f"https://hooks.example/in?event=paid&{name}=s3cr3t-value"
    assert redact_url(url) == f"https://hooks.example/in?event=paid&{name}={REDACTED}"


@pytest.mark.parametrize("name", ORDINARY_HEADERS)
def test_ordinary_headers_are_kept(name: str) -> None:
    assert not is_credential_header(name)
    assert redact_headers([(name, "value")]) == [(name, "value")]


@pytest.mark.parametrize("name", ORDINARY_PARAMS)
def test_ordinary_params_are_kept(name: str) -> None:
    assert not is_credential_param(name)


def test_corpus_is_large_enough() -> None:
    assert len(CREDENTIAL_HEADERS) >= 40 and len(CREDENTIAL_PARAMS) >= 30


def test_names_normalise_across_case_and_separators() -> None:
    assert normalise("X-Api_Key") == normalise("x.api key") == normalise("xApiKey") == "x-api-key"
    assert {is_credential_header(n) for n in ("API_KEY", "Api.Key", "api key", "apiKey")} == {True}


def test_url_userinfo_fragment_and_encoded_names() -> None:
    assert redact_url("https://bob:hunter2@h.example/p") == f"https://bob:{REDACTED}@h.example/p"
    assert redact_url("https://ghp_tok@h.example/p") == f"https://{REDACTED}@h.example/p"
    assert (
        redact_url("https://h.example/cb#access_token=tok&token_type=bearer")
        == f"https://h.example/cb#access_token={REDACTED}&token_type=bearer"
    )
    assert redact_url("https://h.example/p#section-2") == "https://h.example/p#section-2"
    # A percent-encoded or plus-encoded name is judged decoded; the text is kept as sent.
    assert redact_url("https://h/p?api%5Fkey=x&a=%20") == f"https://h/p?api%5Fkey={REDACTED}&a=%20"
    assert redact_url("https://h/p?flag&token=") == f"https://h/p?flag&token={REDACTED}"
    assert redact_url("https://h/a@b/p?e=a@b.c") == "https://h/a@b/p?e=a@b.c"  # no userinfo
    assert redact_url("hooks.example:443") == "hooks.example:443"  # a CONNECT target
    plain = "https://hooks.example/in/42?event=paid"
    assert redact_url(plain) == plain


def test_policy_additions_add_and_cannot_remove() -> None:
    rules = Rules.adding(headers=["X-Tenant-Pin"], query=["ticket"])
    headers = [("X-Tenant-Pin", "1234"), ("Authorization", "Bearer x"), ("X-Other", "y")]
    assert redact_headers(headers, rules) == [
        ("X-Tenant-Pin", REDACTED),
        ("Authorization", REDACTED),
        ("X-Other", "y"),
    ]
    assert redact_url("https://h/p?ticket=t&token=u&x=1", rules) == (
        f"https://h/p?ticket={REDACTED}&token={REDACTED}&x=1"
    )
    assert redact_url("https://h/p?ticket=t") == "https://h/p?ticket=t"  # not built in


def test_signing_scheme_headers_are_redacted_but_its_id_and_timestamp_kept() -> None:
    owned = ("X-Convoy-Sig", "X-Convoy-Id", "X-Convoy-Timestamp")
    headers = [(name, "v") for name in owned]
    assert redact_headers(headers, owned=owned) == [
        ("X-Convoy-Sig", REDACTED),
        ("X-Convoy-Id", "v"),
        ("X-Convoy-Timestamp", "v"),
    ]


def test_event_urls_and_messages_are_redacted() -> None:
    event = {
        "url": "https://h/p?token=t1",
        "error": "redirect to https://o/x?sig=t2 refused: only https targets are followed",
        "would_deny_message": None,
        "redirect": {"status": 302, "location": "https://o/x?sig=t2", "action": "denied"},
        "host": "h",
    }
    out = redact_event(event)
    assert "t1" not in str(out) and "t2" not in str(out)
    assert out["redirect"]["status"] == 302 and out["host"] == "h"
    assert redact_text("no url here: token=abc") == "no url here: token=abc"
    # an origin-form target, as a refused request line shows it
    shown = redact_text("the request-target '/in?token=t3&a=1' is refused")
    assert shown == "the request-target '/in?token=[redacted]&a=1' is refused"
