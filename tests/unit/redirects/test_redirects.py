"""The redirect decision as a pure function: every rule of the policy, without a proxy."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from hookwall.deliveries.redaction import is_credential_header
from hookwall.policy import PolicyError, load_policy
from hookwall.policy.summary import summarize
from hookwall.redirects import Chain, RedirectDecision, RedirectSettings, decide_redirect
from hookwall.redirects.credentials import (
    credentials_to_drop,
    same_origin,
)
from hookwall.redirects.sites import same_site

FOLLOW = RedirectSettings(mode="follow", scope="any", max_hops=3)
ORIGIN = "https://hooks.acme.com/in"


def decide(
    settings: RedirectSettings = FOLLOW,
    location: str | None = "https://hooks.acme.com/next",
    status: int = 302,
    url: str = ORIGIN,
    visited: list[str] | None = None,
    method: str = "POST",
) -> RedirectDecision:
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
def test_methods(
    status: int, method: str, choice: Literal["keep-method", "get"], next_method: str, body: bool
) -> None:
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


# --- same_site: the Public Suffix List, with its implicit "*" rule --------------------------


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("x.a.test", "y.a.test", True),
        ("a.test", "b.test", False),  # an unknown TLD is a public suffix, not one site
        ("hooks.a.internal", "evil.b.internal", False),
        ("x.b.internal", "b.internal", True),
        ("printer.local", "nas.local", False),
        ("a.acme.co.uk", "b.acme.co.uk", True),
        ("acme.co.uk", "evil.co.uk", False),
        ("acme.github.io", "evil.github.io", False),  # the PRIVATE section counts, as in browsers
        ("hooks.acme.com", "acme.com", True),
        ("acme.com", "acme.org", False),
        ("co.uk", "co.uk", True),  # a public suffix is its own site
        ("127.0.0.2", "127.0.0.3", False),  # an IP literal is its own site
        ("127.0.0.2", "127.0.0.2", True),
        ("[::1]", "::1", True),
        ("10.0.0.1", "0.1", False),
    ],
)
def test_same_site(a: str, b: str, same: bool) -> None:
    assert same_site(a, b) is same
    assert same_site(b, a) is same


def test_same_site_scope_on_unlisted_tlds() -> None:
    settings = RedirectSettings(mode="follow")  # scope: same_site is the default
    chain = Chain("x.acme.test", visited=["http://x.acme.test/"])
    follow = decide_redirect(
        settings, chain, "http://x.acme.test/", "POST", 302, "http://y.acme.test/"
    )
    assert follow.action == "follow"
    chain = Chain("x.acme.test", visited=["http://x.acme.test/"])
    deny = decide_redirect(settings, chain, "http://x.acme.test/", "POST", 302, "http://evil.test/")
    assert deny.action == "deny" and "same_site" in deny.message


# --- credentials stay with their origin ----------------------------------------------------

NAMES = ["Authorization", "Cookie", "cookie2", "Proxy-Authorization", "Content-Type", "X-Api"]


@pytest.mark.parametrize(
    ("previous", "following", "same"),
    [
        ("https://hooks.acme.com/a", "https://hooks.acme.com/b?x=1", True),
        ("https://hooks.acme.com/a", "https://HOOKS.acme.com:443/b", True),
        ("http://hooks.acme.com/a", "http://hooks.acme.com:80/b", True),
        ("https://hooks.acme.com/a", "https://other.acme.com/a", False),  # host
        ("https://hooks.acme.com/a", "https://hooks.acme.com:8443/a", False),  # port
        ("https://hooks.acme.com/a", "http://hooks.acme.com/a", False),  # scheme
        ("http://hooks.acme.com/a", "https://hooks.acme.com/a", False),  # scheme, upgrade too
        ("http://127.0.0.2:80/", "http://2130706434/", True),  # one canonical host
        ("http://hooks.acme.com/", "not a url", False),
    ],
)
def test_origin_changes(previous: str, following: str, same: bool) -> None:
    assert same_origin(previous, following) is same
    dropped = credentials_to_drop(
        NAMES, previous, following, keep_credentials=False, is_credential=is_credential_header
    )
    expected = set() if same else {"authorization", "cookie", "cookie2", "proxy-authorization"}
    assert dropped == expected


def test_credentials_opt_in_and_a_broader_classifier() -> None:
    other = ("https://a.test/", "https://b.test/")
    assert (
        credentials_to_drop(
            NAMES, *other, keep_credentials=True, is_credential=is_credential_header
        )
        == frozenset()
    )
    broader = credentials_to_drop(
        NAMES, *other, keep_credentials=False, is_credential=lambda n: n.lower() == "x-api"
    )
    assert broader == {"x-api"}
    assert is_credential_header("COOKIE") and not is_credential_header("Content-Type")
    # the proxy's classifier is the redaction rule set: API keys stay with their origin too
    api_keys = ["X-Api-Key", "Ocp-Apim-Subscription-Key", "X-Request-Id"]
    dropped = credentials_to_drop(
        api_keys, *other, keep_credentials=False, is_credential=is_credential_header
    )
    assert dropped == {"x-api-key", "ocp-apim-subscription-key"}


@pytest.mark.parametrize(
    "location", ["http://user:pw@hooks.acme.com/", "http://:pw@hooks.acme.com/", "//u@x.test/"]
)
def test_a_location_with_userinfo_is_never_followed(location: str) -> None:
    d = decide(location=location)
    assert d.action == "deny" and "not an http(s) URL" in d.message


def test_keep_credentials_in_the_policy_and_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "version: 1\ndestinations:\n  - hosts: [a.test]\n"
        "    redirects: {mode: follow, keep_credentials: true}\n"
    )
    policy = load_policy(path)
    assert policy.settings_for("a.test").redirects.keep_credentials is True
    assert policy.settings_for("b.test").redirects.keep_credentials is False
    assert "keeping credentials" in summarize(policy)
    path.write_text(
        "version: 1\ndestinations:\n  - hosts: [a.test]\n    redirects: {keep_credentials: 1}\n"
    )
    with pytest.raises(PolicyError, match=r"p\.yaml:4:\d+: .*keep_credentials"):
        load_policy(path)


def test_the_suffix_list_is_preloaded_only_for_policies_that_need_it(tmp_path: Path) -> None:
    from hookwall.app.master import follows_same_site

    path = tmp_path / "p.yaml"
    path.write_text("version: 1\ndestinations:\n  - hosts: [a.test]\n    redirects: {mode: pass}\n")
    assert not follows_same_site(load_policy(path))
    path.write_text(
        "version: 1\ndestinations:\n  - hosts: [a.test]\n    redirects: {mode: follow}\n"
    )
    assert follows_same_site(load_policy(path))
