"""The ``logging`` policy section: what the delivery store captures and keeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookwall.deliveries.settings import DestinationLogging, LoggingSettings
from hookwall.policy import Policy, PolicyError, load_default_policy, load_policy


def load(tmp_path: Path, text: str) -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return load_policy(path)


def errors(tmp_path: Path, text: str) -> str:
    with pytest.raises(PolicyError) as info:
        load(tmp_path, text)
    return str(info.value)


def test_defaults(tmp_path: Path) -> None:
    policy = load(tmp_path, "version: 1\n")
    assert policy.logging == LoggingSettings(65536, None, 7 * 86400, 1024**3)
    assert policy.defaults.logging == DestinationLogging(65536, None)
    assert load_default_policy().logging == policy.logging  # the file spells out the defaults


def test_top_level_and_per_destination(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        "version: 1\n"
        "logging: {capture_body: 4KiB, retention: 2d, max_size: 100MiB, id_header: X-Event-Id}\n"
        "destinations:\n"
        "  - hosts: [secret.example]\n"
        "    logging: {capture_body: 0}\n"
        "  - hosts: [other.example]\n"
        "    logging: {id_header: X-Other}\n",
    )
    assert policy.logging == LoggingSettings(4096, "x-event-id", 2 * 86400, 100 * 1024**2)
    assert policy.settings_for("secret.example").logging == DestinationLogging(0, "x-event-id")
    assert policy.settings_for("other.example").logging == DestinationLogging(4096, "x-other")
    assert policy.settings_for("any.example").logging == DestinationLogging(4096, "x-event-id")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("logging: {capture_body: -1}\n", "logging.capture_body"),
        ("logging: {capture_body: lots}\n", "logging.capture_body"),
        ("logging: {retention: 0s}\n", "logging.retention: must be longer than 0s"),
        ("logging: {max_size: 0}\n", "logging.max_size: must be more than 0 bytes"),
        ("logging: {capture: 1KiB}\n", "did you mean 'capture_body'"),
        ("logging: {id_header: 'X Event'}\n", "is not a header name"),
        (
            "destinations:\n  - hosts: [a.example]\n    logging: {retention: 1d}\n",
            "applies to the whole store; set it in the top-level logging section",
        ),
        (
            "destinations:\n  - hosts: [a.example]\n    logging: {bodies: 0}\n",
            "destinations[0].logging.bodies: unknown key",
        ),
        ("logging: {redact: [X-Pin]}\n", "logging.redact: expected a mapping"),
        ("logging: {redact: {header: [X-Pin]}}\n", "did you mean 'headers'"),
        ("logging: {redact: {headers: X-Pin}}\n", "logging.redact.headers: expected a list"),
        ("logging: {redact: {headers: ['X Pin']}}\n", "'X Pin' is not a header name"),
        ("logging: {redact: {query: [1]}}\n", "logging.redact.query: expected a query"),
        ("logging: {redact: {query: ['']}}\n", "logging.redact.query: an empty name"),
        (
            "destinations:\n  - hosts: [a.example]\n    logging: {redact: {query: [x]}}\n",
            "redact applies to the whole store; set it in the top-level logging section",
        ),
    ],
)
def test_errors_name_the_place(tmp_path: Path, text: str, message: str) -> None:
    out = errors(tmp_path, "version: 1\n" + text)
    assert message in out
    assert "policy.yaml:" in out


def test_redact_additions(tmp_path: Path) -> None:
    from hookwall.deliveries.redaction import BUILT_IN, REDACTED, redact_headers, redact_url

    policy = load(
        tmp_path,
        "version: 1\nlogging:\n  redact:\n    headers: [X-Tenant-Pin]\n"
        "    query: [ticket, Session_Key]\n",
    )
    rules = policy.logging.redact
    assert redact_headers([("x-tenant-pin", "1")], rules) == [("x-tenant-pin", REDACTED)]
    assert redact_url("https://h/?ticket=1&session-key=2", rules).count(REDACTED) == 2
    assert load(tmp_path, "version: 1\n").logging.redact == BUILT_IN
    from hookwall.policy import summarize

    shown = summarize(policy)
    assert "redacted besides the built-in credential names: header x-tenant-pin, " in shown
    assert "?session-key, ?ticket" in shown


def test_logging_in_one_file_of_a_directory_only(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("version: 1\nlogging: {retention: 1d}\n")
    (tmp_path / "b.yaml").write_text("version: 1\nlogging: {retention: 2d}\n")
    with pytest.raises(PolicyError, match="logging: already defined in"):
        load_policy(tmp_path)


def test_check_shows_what_the_store_keeps(tmp_path: Path) -> None:
    from hookwall.policy import summarize

    text = summarize(
        load(
            tmp_path,
            "version: 1\nlogging: {retention: 2d, max_size: 512MiB}\n"
            "destinations:\n  - hosts: [pii.example]\n    logging: {capture_body: 0}\n",
        )
    )
    assert "the delivery store keeps 2d, at most 512MiB" in text
    assert "defaults: allow;" in text and "store bodies up to 64KiB" in text
    assert "pii.example" in text and "store no bodies" in text
