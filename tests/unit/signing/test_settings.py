"""The signing section of a policy: secret references, scheme options, and clear load errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookwall.policy import PolicyError, load_policy, summarize

WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\n" + body)
    return path


def errors(path: Path) -> str:
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    return str(info.value)


@pytest.fixture(autouse=True)
def _secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_WHSEC", WHSEC)
    monkeypatch.delenv("MISSING_WHSEC", raising=False)


def test_env_and_file_references_load(tmp_path: Path) -> None:
    (tmp_path / "old.key").write_text(WHSEC + "\n")
    path = write(
        tmp_path,
        "destinations:\n"
        "  - hosts: [hooks.acme.test]\n"
        "    signing:\n"
        "      scheme: standard-webhooks\n"
        "      secrets: [env:ACME_WHSEC, {secret: file:old.key, not_after: 2030-01-01}]\n",
    )
    policy = load_policy(path)
    signing = policy.settings_for("hooks.acme.test").signing
    assert signing is not None and signing.scheme.name == "standard-webhooks"
    assert len(signing.keys) == 2
    assert signing.keys[0].key_id == signing.keys[1].key_id  # same secret, same id
    assert signing.keys[1].not_after is not None and signing.keys[1].not_after.year == 2030
    text = summarize(policy) + repr(policy) + repr(signing)
    assert WHSEC not in text and WHSEC[6:] not in text
    assert "env:ACME_WHSEC" in summarize(policy)


@pytest.mark.parametrize(
    ("signing", "line", "message"),
    [
        (
            "{scheme: standard-webhooks, secrets: [" + WHSEC + "]}",
            4,
            "literal secrets are not allowed",
        ),
        ("{scheme: github, secrets: [12345678]}", 4, "literal secrets are not allowed"),
        (
            "{scheme: standard-webhooks, secrets: [env:MISSING_WHSEC]}",
            4,
            "MISSING_WHSEC is not set",
        ),
        ("{scheme: standard-webhooks, secrets: [file:nope.key]}", 4, "cannot read"),
        (
            "{scheme: sha256-magic, secrets: [env:ACME_WHSEC]}",
            4,
            "expected one of standard-webhooks",
        ),
        ("{scheme: standard-webhooks}", 4, "missing 'secrets'"),
        ("{scheme: standard-webhooks, secrets: []}", 4, "non-empty list"),
        ("{scheme: github, secrets: [env:ACME_WHSEC], header: X-Sig}", 4, "unknown key 'header'"),
        ("{scheme: hmac, secrets: [env:ACME_WHSEC]}", 4, "header"),
        (
            "{scheme: hmac, secrets: [env:ACME_WHSEC], header: X-S, value: '{sig}'}",
            4,
            "placeholder",
        ),
        (
            "{scheme: standard-webhooks, secrets: [{secret: env:ACME_WHSEC, not_after: soon}]}",
            4,
            "date-time",
        ),
        (
            "{scheme: standard-webhooks, secrets: [env:ACME_WHSEC], header_prefix: svix-}",
            4,
            "header_prefix: expected one of webhook, svix",
        ),
        ("{scheme: github, secrets: [env:ACME_WHSEC], header_prefix: svix}", 4, "unknown key"),
    ],
)
def test_signing_errors_are_clear_and_located(
    tmp_path: Path, signing: str, line: int, message: str
) -> None:
    path = write(tmp_path, f"destinations:\n  - hosts: [hooks.acme.test]\n    signing: {signing}\n")
    text = errors(path)
    assert f"{path}:{line}:" in text
    assert message in text
    assert WHSEC not in text and WHSEC[6:] not in text and "12345678" not in text


def test_standard_webhooks_header_prefix_svix(tmp_path: Path) -> None:
    """Receivers built on Svix's libraries read svix-id/-timestamp/-signature."""
    path = write(
        tmp_path,
        "destinations:\n  - hosts: [svix.acme.test]\n    signing:\n"
        "      {scheme: standard-webhooks, secrets: [env:ACME_WHSEC], header_prefix: svix}\n"
        "  - hosts: [sw.acme.test]\n"
        "    signing: {scheme: standard-webhooks, secrets: [env:ACME_WHSEC]}\n",
    )
    policy = load_policy(path)
    svix = policy.settings_for("svix.acme.test").signing
    plain = policy.settings_for("sw.acme.test").signing
    assert svix is not None and plain is not None
    assert svix.scheme.owned_headers == ("svix-id", "svix-timestamp", "svix-signature")
    assert plain.scheme.owned_headers == ("webhook-id", "webhook-timestamp", "webhook-signature")


def test_a_secret_that_does_not_fit_the_scheme_is_named_by_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BAD_WHSEC", "whsec_!!!not-base64!!!")
    path = write(
        tmp_path,
        "destinations:\n  - hosts: [a.test]\n"
        "    signing: {scheme: standard-webhooks, secrets: [env:BAD_WHSEC]}\n",
    )
    text = errors(path)
    assert "env:BAD_WHSEC" in text
    assert "not-base64" not in text


def test_signing_on_a_passthrough_destination_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "destinations:\n  - hosts: [a.test]\n    tls: passthrough\n"
        "    signing: {scheme: standard-webhooks, secrets: [env:ACME_WHSEC]}\n",
    )
    assert "tls is passthrough" in errors(path)


def test_signing_under_passthrough_defaults_names_the_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "defaults:\n  tls: passthrough\n"
        "destinations:\n  - hosts: [a.test]\n"
        "    signing: {scheme: standard-webhooks, secrets: [env:ACME_WHSEC]}\n",
    )
    text = errors(path)
    assert "tls is passthrough (defaults at" in text


def test_signing_is_not_a_defaults_key(tmp_path: Path) -> None:
    path = write(tmp_path, "defaults:\n  signing: {scheme: github, secrets: [env:ACME_WHSEC]}\n")
    assert "signing belongs in a destination" in errors(path)
