"""The packaged default policy, the repo's copy of it, the examples, and the summary."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hookwall.destinations.addresses import named_set
from hookwall.policy import (
    DnsSettings,
    Policy,
    PortSet,
    default_policy_path,
    load_default_policy,
    load_policy,
    summarize,
)
from tests.support.paths import POLICIES, REPO

EXAMPLES = sorted((REPO / "policies" / "examples").glob("*.yaml"))


def test_default_policy_is_package_data() -> None:
    path = default_policy_path()
    assert path.is_file()
    assert path.name == "default.yaml"
    assert path.parent.name == "policies"
    assert path.parent.parent.name == "hookwall"


def test_default_policy_has_the_built_in_settings() -> None:
    policy = load_default_policy()
    assert policy.sources == (str(default_policy_path()),)
    assert policy.dns == DnsSettings()
    assert policy.rules == ()
    assert policy.unsafe is False
    assert policy.ca_bundle is None
    defaults = policy.defaults
    assert defaults.network.deny == named_set("special-purpose")
    assert defaults.network.allow == ()
    assert defaults.network.ports == PortSet.of(80, 443)
    assert (defaults.action, defaults.tls, defaults.upgrade) == ("allow", "intercept", False)
    # Nothing matches a rule: every host gets the defaults.
    assert policy.settings_for("hooks.example.com") is defaults


def test_default_policy_equals_an_empty_policy(tmp_path: Path) -> None:
    """The file spells out exactly the built-in defaults, nothing more."""
    empty = tmp_path / "empty.yaml"
    empty.write_text("version: 1\n")
    default, minimal = load_default_policy(), load_policy(empty)
    assert (default.dns, default.defaults, default.rules) == (
        minimal.dns,
        minimal.defaults,
        minimal.rules,
    )


def test_repo_default_is_a_symlink_to_the_packaged_file() -> None:
    top = REPO / "policies" / "default.yaml"
    assert top.is_symlink()
    assert os.readlink(top) == "../src/hookwall/policies/default.yaml"
    assert top.samefile(REPO / "src" / "hookwall" / "policies" / "default.yaml")
    assert top.samefile(default_policy_path())


def test_default_policy_is_well_commented() -> None:
    lines = default_policy_path().read_text().splitlines()
    comments = [line for line in lines if line.lstrip().startswith("#")]
    assert len(comments) > len(lines) / 2


def test_commented_examples_in_the_default_policy_are_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Uncommenting the examples, as the file suggests, gives a loadable policy."""
    monkeypatch.setenv("ACME_WHSEC", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    head, marker, examples = default_policy_path().read_text().partition("# Examples (")
    assert marker
    text = head.replace("destinations: []", "destinations:") + "\n".join(
        line.replace("#  ", "  ", 1) if line.startswith("#  ") else line
        for line in examples.splitlines()[1:]
    )
    path = tmp_path / "uncommented.yaml"
    path.write_text(text)
    policy = load_policy(path)
    assert len(policy.rules) == 6
    assert policy.settings_for("hooks.health.example").logging.capture_body == 0
    assert policy.settings_for("unlisted.example").action == "deny"
    acme = policy.settings_for("hooks.acme.example")
    assert acme.limits.config.concurrency == 2 and acme.limits.config.queue == 100


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_load_and_summarize(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The signing example reads its secret from the environment, as real policies must.
    monkeypatch.setenv("DEMO_WHSEC", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    policy = load_policy(path)
    text = summarize(policy)
    for rule in policy.rules:
        assert rule.name in text


def test_examples_exist() -> None:
    assert EXAMPLES


GOOD = POLICIES / "good"


@pytest.fixture(scope="module")
def full() -> Policy:
    return load_policy(GOOD / "full.yaml")


def test_summary_mentions_files_defaults_and_every_rule(full: Policy) -> None:
    lines = summarize(full).splitlines()
    assert lines[0] == "policy from 1 file:"
    assert lines[1] == f"  {GOOD / 'full.yaml'}"
    assert lines[2] == (
        "dns: 1.1.1.1:53, 127.0.0.1:5353, [::1]:53; timeout 2s; max ttl 5m; cache 10000 entries"
    )
    assert lines[3].startswith("proxy: at most 2000 client connections (200 per client address)")
    assert lines[4].startswith("the delivery store keeps")
    assert lines[5] == f"extra upstream CAs: {(GOOD / 'extra-ca.pem').absolute()}"
    assert lines[6].startswith(
        "defaults: allow; tls intercept, connect_refusals inside-tls; upgrade off; "
        "ports 80, 443, 8000-8999; deny special-purpose, 198.51.100.0/24; allow 192.0.3.0/28; "
        "limits 8 in flight"
    )
    assert lines[7].startswith("4 destinations (the most specific host pattern wins")
    rule_lines = lines[8:12]
    assert len(full.rules) == 4
    assert lines[12:] == [
        "exceptions into special-purpose space:",
        f"  policy allow 10.1.0.0/16 ({GOOD / 'full.yaml'}:21:23) [name-scoped exception] "
        "reopens 10.1.0.0/16 of 10.0.0.0/8 private-use (RFC 1918) for receiver.internal.example",
    ]
    assert rule_lines[0].startswith(
        "  example: allow hooks.example.com, *.example.org; tls passthrough; upgrade off; "
        "ports 80, 443, 8000-8999; allow 192.0.3.0/28; limits 8 in flight"
    )
    assert rule_lines[0].endswith(f"  [{GOOD / 'full.yaml'}:17:5]")
    assert "ports 8443; allow 192.0.3.0/28, 10.1.0.0/16" in rule_lines[1]
    assert rule_lines[2] == (
        "  *.evil.example: deny *.evil.example; tls intercept, connect_refusals inside-tls  "
        f"[{GOOD / 'full.yaml'}:22:5]"
    )
    assert "upgrade on" in rule_lines[3]
    assert "deny special-purpose, 198.51.100.0/24, 203.0.113.0/24" in rule_lines[3]


def test_summary_of_default_and_unsafe_policies() -> None:
    text = summarize(load_default_policy())
    assert "dns: system resolvers; timeout 2s; max ttl 5m; cache 10000 entries" in text
    assert "no destinations: every host gets the defaults" in text
    assert "unsafe" not in text
    unsafe = summarize(load_policy(GOOD / "unsafe.yaml"))
    assert "unsafe: true" in unsafe
    assert "deny 192.0.2.0/24;" in unsafe


def test_summary_of_a_directory() -> None:
    text = summarize(load_policy(POLICIES / "dir-good"))
    assert text.startswith("policy from 2 files:\n")
    assert "3 destinations" in text
