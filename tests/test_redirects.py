"""The redirect decision as a pure function: every rule of the policy, without a proxy."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookwall.policy import PolicyError, load_policy
from hookwall.redirects import Chain, RedirectSettings, decide_redirect

FOLLOW = RedirectSettings(mode="follow", scope="any", max_hops=3)
ORIGIN = "https://hooks.acme.com/in"


def decide(settings=FOLLOW, location="https://hooks.acme.com/next", status=302, url=ORIGIN,
           visited=None, method="POST"):  # fmt: skip
    chain = Chain("hooks.acme.com", visited=list(visited or [url]))
    return decide_redirect(settings, chain, url, method, status, location)


@pytest.mark.parametrize("status", [200, 204, 300, 304, 305, 400, 500])
def test_non_redirect_statuses_are_left_alone(status: int) -> None:
    assert decide(status=status).action == "none"


def test_deny_is_the_default_and_names_the_target() -> None:
    d = decide(RedirectSettings(), location="/moved")
    assert d.action == "deny" and d.target == "https://hooks.acme.com/moved"
    assert "update the webhook URL" in d.message


def test_pass_relays() -> None:
    assert decide(RedirectSettings(mode="pass")).action == "pass"


@pytest.mark.parametrize(
    ("location", "target"),
    [
        ("/relative", "https://hooks.acme.com/relative"),
        ("next", "https://hooks.acme.com/next"),
        ("//other.acme.com/x", "https://other.acme.com/x"),
        ("https://hooks.acme.com/a#frag", "https://hooks.acme.com/a"),
        ("  https://hooks.acme.com/sp  ", "https://hooks.acme.com/sp"),
    ],
)
def test_locations_are_resolved(location: str, target: str) -> None:
    d = decide(location=location)
    assert d.action == "follow" and d.target == target


@pytest.mark.parametrize(
    ("location", "words"),
    [
        (None, "without a Location"),
        ("", "without a Location"),
        ("file:///etc/passwd", "not an http(s) URL"),
        ("javascript:alert(1)", "not an http(s) URL"),
        ("https://user:pw@hooks.acme.com/", "not an http(s) URL"),
        ("https://hooks.acme.com:99999/", "not an http(s) URL"),
        ("http:///nohost", "not an http(s) URL"),
    ],
)
def test_missing_and_malformed_locations(location: str | None, words: str) -> None:
    d = decide(location=location)
    assert d.action == "deny" and words in d.message


@pytest.mark.parametrize(
    ("status", "method", "choice", "next_method", "body"),
    [
        (307, "POST", "get", "POST", True),
        (308, "PUT", "get", "PUT", True),
        (301, "POST", "keep-method", "POST", True),
        (302, "POST", "get", "GET", False),
        (303, "POST", "get", "GET", False),
    ],
)
def test_methods(status, method, choice, next_method, body) -> None:
    settings = RedirectSettings(mode="follow", scope="any", method=choice)
    d = decide(settings, status=status, method=method)
    assert (d.method, d.keep_body) == (next_method, body)


def test_hops_loops_scope_https_and_downgrade() -> None:
    visited = [ORIGIN, "https://hooks.acme.com/1", "https://hooks.acme.com/2", "https://x/3"]
    assert "more than 3" in decide(visited=visited).message
    assert "loop" in decide(location=ORIGIN).message
    same_host = RedirectSettings(mode="follow", scope="same_host")
    assert decide(same_host, "https://other.acme.com/").action == "deny"
    assert decide(same_host, "https://hooks.acme.com/x").action == "follow"
    same_site = RedirectSettings(mode="follow", scope="same_site")
    assert decide(same_site, "https://other.acme.com/").action == "follow"
    assert decide(same_site, "https://acme.org/").action == "deny"
    assert (
        decide(same_site, "https://evil.github.io/", url="https://acme.github.io/").action == "deny"
    )
    assert "only https" in decide(RedirectSettings(mode="follow", scope="any", https_only=True),
                                  "http://hooks.acme.com/").message  # fmt: skip
    assert "https to http" in decide(location="http://hooks.acme.com/").message
    lenient = RedirectSettings(mode="follow", scope="any", allow_downgrade=True)
    assert decide(lenient, "http://hooks.acme.com/").action == "follow"


def test_invalid_hosts_in_location_are_refused() -> None:
    d = decide(location="http://1.2.3.4.5/")
    assert d.action == "deny"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("{mode: folow}", "expected one of deny, pass, follow"),
        ("{max_hops: 0}", "a whole number from 1 to 10"),
        ("{scope: same-host}", "expected one of same_host, same_site, any"),
        ("{method: post}", "expected one of keep-method, get"),
        ("{follow: true}", "unknown key 'follow'"),
    ],
)
def test_policy_errors(tmp_path: Path, section: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"version: 1\ndefaults:\n  redirects: {section}\n")
    with pytest.raises(PolicyError, match=message):
        load_policy(path)


def test_policy_merges_field_by_field(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "version: 1\ndefaults:\n  redirects: {mode: follow, max_hops: 5}\n"
        "destinations:\n  - hosts: [a.test]\n    redirects: {scope: same_host}\n"
    )
    policy = load_policy(path)
    assert policy.settings_for("a.test").redirects == RedirectSettings(
        mode="follow", max_hops=5, scope="same_host"
    )
