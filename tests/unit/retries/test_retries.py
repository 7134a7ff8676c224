"""Proxy-side retries: the backoff arithmetic, what is retriable, and the policy section."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from hookwall.policy import PolicyError, load_policy
from hookwall.retries.plan import RetrySettings, backoff, retriable


def test_backoff_is_full_jitter_below_an_exponential_cap() -> None:
    rng = random.Random(7)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (10, 5.0), (500, 5.0)):
        waits = [backoff(attempt, 0.5, 5.0, rng) for _ in range(200)]
        assert all(0.0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8  # spread over the whole range, not fixed
        assert min(waits) < ceiling * 0.2


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (503, None, True),
        (502, None, True),
        (500, None, False),
        (200, None, False),
        (502, "upstream-error", True),
        (504, "connect-timeout", True),
        (504, "response-timeout", True),
        (503, "queue-full", False),  # hookwall's own load answers are never retried
        (503, "circuit-open", False),
        (403, "address-blocked", False),
    ],
)
def test_retriable_defaults(status: int, reason: str | None, expected: bool) -> None:
    assert retriable(status, reason, RetrySettings().on) is expected


def test_retriable_follows_the_list() -> None:
    assert not retriable(502, "upstream-error", (503,))
    assert not retriable(504, "response-timeout", ("connect-error",))
    assert retriable(429, None, (429,))


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(body)
    return path


def test_off_by_default_and_merged_field_by_field(tmp_path: Path) -> None:
    policy = load_policy(
        write(
            tmp_path,
            'version: 1\ndefaults:\n  retries: {backoff: 200ms, "on": [503, timeout]}\n'
            "destinations:\n  - hosts: [a.test]\n    retries: {attempts: 3}\n"
            "  - hosts: [b.test]\n",
        )
    )
    assert policy.defaults.retries.attempts == 0
    assert policy.settings_for("b.test").retries.attempts == 0
    assert policy.settings_for("a.test").retries == RetrySettings(
        attempts=3, backoff=0.2, max_backoff=10.0, on=(503, "timeout")
    )
    assert load_policy(write(tmp_path, "version: 1\n")).defaults.retries == RetrySettings()


@pytest.mark.parametrize(
    "section",
    [
        "{attempts: 11}",
        "{attempts: -1}",
        "{attempts: yes}",
        "{backoff: 0s}",
        "{max_backoff: soon}",
        '{"on": [404]}',
        '{"on": [connect-errors]}',
        '{"on": 503}',
        "{tries: 2}",
        "[1, 2]",
    ],
)
def test_bad_sections_are_load_errors(tmp_path: Path, section: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(write(tmp_path, f"version: 1\ndefaults:\n  retries: {section}\n"))
    assert "retries" in str(info.value)


def test_a_bare_on_key_is_a_name_not_a_boolean(tmp_path: Path) -> None:
    """YAML 1.1 reads `on:` as true; policy keys are names, so `on:` works unquoted."""
    from hookwall.policy import load_policy

    path = tmp_path / "p.yaml"
    path.write_text("version: 1\ndefaults:\n  retries: {attempts: 2, on: [503]}\n")
    assert (
        load_policy(path).defaults.retries.on == (503,)
        or 503 in load_policy(path).defaults.retries.on
    )
