"""Good policies load into the right effective settings (merge, specificity, directories)."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hookwall.destinations.addresses import Prefix, named_set
from hookwall.policy import (
    DnsSettings,
    Policy,
    PortSet,
    Settings,
    load_policy,
)
from tests.support.paths import POLICIES

GOOD = POLICIES / "good"
SPECIAL = named_set("special-purpose")


def _write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _cidrs(prefixes: tuple[Prefix, ...]) -> list[str]:
    return [str(p.network) for p in prefixes if p not in SPECIAL]


@pytest.fixture(scope="module")
def full() -> Policy:
    return load_policy(GOOD / "full.yaml")


def test_full_top_level(full: Policy) -> None:
    assert full.sources == (str(GOOD / "full.yaml"),)
    assert full.dns == DnsSettings(
        servers=(("1.1.1.1", 53), ("127.0.0.1", 5353), ("::1", 53)),
        timeout=2.0,
        max_ttl=300.0,
        cache_size=10000,
    )
    assert full.ca_bundle == str((GOOD / "extra-ca.pem").absolute())
    assert full.unsafe is False
    assert [rule.name for rule in full.rules] == [
        "example",
        "receiver.internal.example",
        "*.evil.example",
        "plain.example",
    ]


def test_full_defaults(full: Policy) -> None:
    defaults = full.defaults
    assert defaults.rule is None
    assert defaults.action == "allow"
    assert defaults.network.deny[: len(SPECIAL)] == SPECIAL
    assert _cidrs(defaults.network.deny) == ["198.51.100.0/24"]
    assert _cidrs(defaults.network.allow) == ["192.0.3.0/28"]
    assert str(defaults.network.ports) == "80, 443, 8000-8999"
    assert (defaults.tls, defaults.upgrade) == ("intercept", False)


# host, rule name (None: defaults), action, tls, upgrade, ports, extra deny, allow
FULL_CASES = [
    ("hooks.example.com", "example", "allow", "passthrough", False, "80, 443, 8000-8999",
     ["198.51.100.0/24"], ["192.0.3.0/28"]),
    ("a.example.org", "example", "allow", "passthrough", False, "80, 443, 8000-8999",
     ["198.51.100.0/24"], ["192.0.3.0/28"]),
    ("example.org", None, "allow", "intercept", False, "80, 443, 8000-8999",
     ["198.51.100.0/24"], ["192.0.3.0/28"]),
    ("receiver.internal.example", "receiver.internal.example", "allow", "intercept", False,
     "8443", ["198.51.100.0/24"], ["192.0.3.0/28", "10.1.0.0/16"]),
    ("x.y.evil.example", "*.evil.example", "deny", "intercept", False, "80, 443, 8000-8999",
     ["198.51.100.0/24"], ["192.0.3.0/28"]),
    ("plain.example", "plain.example", "allow", "intercept", True, "80, 443, 8000-8999",
     ["198.51.100.0/24", "203.0.113.0/24"], ["192.0.3.0/28"]),
    ("unlisted.example", None, "allow", "intercept", False, "80, 443, 8000-8999",
     ["198.51.100.0/24"], ["192.0.3.0/28"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("host", "rule", "action", "tls", "upgrade", "ports", "deny", "allow"), FULL_CASES
)
def test_full_effective_settings(
    full: Policy,
    host: str,
    rule: str | None,
    action: str,
    tls: str,
    upgrade: bool,
    ports: str,
    deny: list[str],
    allow: list[str],
) -> None:
    settings = full.settings_for(host)
    assert (settings.rule.name if settings.rule else None) == rule
    assert (settings.action, settings.tls, settings.upgrade) == (action, tls, upgrade)
    assert str(settings.network.ports) == ports
    # A rule can add to the deny list but never remove the built-in set.
    assert settings.network.deny[: len(SPECIAL)] == SPECIAL
    assert _cidrs(settings.network.deny) == deny
    assert _cidrs(settings.network.allow) == allow


def test_unmatched_host_gets_the_defaults_object(full: Policy) -> None:
    assert full.settings_for("unlisted.example") is full.defaults


def test_rule_keeps_only_its_own_overrides(full: Policy) -> None:
    receiver = full.rules[1]
    assert receiver.ports == PortSet.of(8443)
    assert receiver.tls is None and receiver.upgrade is None
    assert _cidrs(receiver.allow) == ["10.1.0.0/16"]
    assert receiver.deny == ()
    assert receiver.location.line == 20 and receiver.location.column == 5


def test_policy_cidr_labels_say_where_they_came_from(full: Policy) -> None:
    receiver_allow = full.rules[1].allow[0]
    assert receiver_allow.label == (
        f"policy allow 10.1.0.0/16 ({GOOD / 'full.yaml'}:21:23) [name-scoped exception]"
    )
    extra_deny = next(p for p in full.defaults.network.deny if p not in SPECIAL)
    assert extra_deny.label.startswith("policy deny 198.51.100.0/24 (")


@pytest.mark.parametrize("name", ["minimal.yaml", "nulls.yaml"])
def test_built_in_defaults(name: str) -> None:
    policy = load_policy(GOOD / name)
    assert policy.dns == DnsSettings()
    assert policy.defaults == Settings(
        rule=None,
        action="allow",
        network=policy.defaults.network,
        tls="intercept",
        upgrade=False,
    )
    assert policy.defaults.network.deny == SPECIAL
    assert policy.defaults.network.allow == ()
    assert policy.defaults.network.ports == PortSet.of(80, 443)
    assert policy.rules == ()
    assert policy.ca_bundle is None


def test_unsafe_allows_dropping_special_purpose() -> None:
    policy = load_policy(GOOD / "unsafe.yaml")
    assert policy.unsafe is True
    assert [str(p.network) for p in policy.defaults.network.deny] == ["192.0.2.0/24"]


def test_partial_defaults_keep_the_other_built_ins(tmp_path: Path) -> None:
    policy = load_policy(
        _write(tmp_path, "version: 1\ndefaults:\n  network: {allow: [10.0.0.0/8]}\n")
    )
    network = policy.defaults.network
    assert network.deny == SPECIAL
    assert network.ports == PortSet.of(80, 443)
    assert _cidrs(network.allow) == ["10.0.0.0/8"]


def test_anchors_and_merge_keys() -> None:
    policy = load_policy(GOOD / "anchors.yaml")
    a = policy.settings_for("a.internal.example")
    b = policy.settings_for("b.internal.example")
    assert (a.tls, b.tls) == ("passthrough", "intercept")
    assert a.network.ports == b.network.ports == PortSet.of(8443)
    assert _cidrs(b.network.allow) == ["10.9.0.0/16"]


SPECIFICITY_POLICY = """\
version: 1
destinations:
  - {hosts: ["*"], name: star}
  - {hosts: ["*.example.com"], name: short}
  - {hosts: ["*.eu.example.com"], name: long}
  - {hosts: ["api.eu.example.com"], name: exact}
  - {hosts: ["203.0.113.7", "2001:DB8:0:0::1"], name: ips}
  - {hosts: ["Bücher.Example."], name: idn}
  - {hosts: ["*.xn--bcher-kva.example"], name: idn-wild}
"""


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("api.eu.example.com", "exact"),
        ("web.eu.example.com", "long"),
        ("a.b.eu.example.com", "long"),
        ("eu.example.com", "short"),  # the apex of *.eu.example.com
        ("x.example.com", "short"),
        ("example.com", "star"),  # the apex of *.example.com
        ("example.org", "star"),
        ("203.0.113.7", "ips"),
        ("2001:db8::1", "ips"),
        ("203.0.113.8", "star"),
        ("2001:db8::2", "star"),
        ("xn--bcher-kva.example", "idn"),
        ("www.xn--bcher-kva.example", "idn-wild"),
        ("localhost", "star"),
    ],
)
def test_specificity(tmp_path: Path, host: str, expected: str) -> None:
    policy = load_policy(_write(tmp_path, SPECIFICITY_POLICY))
    settings = policy.settings_for(host)
    assert settings.rule is not None and settings.rule.name == expected


def test_canonical_hosts_in_rules(tmp_path: Path) -> None:
    policy = load_policy(_write(tmp_path, SPECIFICITY_POLICY))
    assert policy.rules[4].hosts == ("203.0.113.7", str(ipaddress.ip_address("2001:db8::1")))
    assert policy.rules[5].hosts == ("xn--bcher-kva.example",)


def test_rule_name_defaults_to_first_canonical_pattern(tmp_path: Path) -> None:
    policy = load_policy(_write(tmp_path, 'version: 1\ndestinations: [{hosts: ["A.Example."]}]\n'))
    assert policy.rules[0].name == "a.example"


DIR_GOOD = POLICIES / "dir-good"


def test_directory_loads_sorted_yaml_files_only() -> None:
    policy = load_policy(DIR_GOOD)
    assert policy.sources == (str(DIR_GOOD / "10-base.yaml"), str(DIR_GOOD / "20-more.yml"))
    assert policy.dns.servers == (("9.9.9.9", 53),)
    assert [rule.name for rule in policy.rules] == ["partner", "partner-api", "*"]
    assert policy.rules[1].location.file == str(DIR_GOOD / "20-more.yml")
    api = policy.settings_for("api.partner.example")
    assert (api.rule and api.rule.name, api.tls, str(api.network.ports)) == (
        "partner-api",
        "passthrough",
        "443",  # from the defaults in the other file
    )
    assert policy.settings_for("other.example").action == "deny"
    assert policy.settings_for("www.partner.example").action == "allow"


def test_directory_path_as_string(tmp_path: Path) -> None:
    _write(tmp_path, "version: 1\n", "b.yaml")
    _write(tmp_path, "version: 1\ndestinations: [{hosts: [a.example]}]\n", "a.yml")
    policy = load_policy(str(tmp_path))
    assert policy.sources == (str(tmp_path / "a.yml"), str(tmp_path / "b.yaml"))


def test_dns_server_forms(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
        version: 1
        dns:
          servers: ["1.1.1.1", "127.0.0.1:5353", "[::1]:53", "::1", "[2001:DB8::53]", "9.9.9.9:53"]
          timeout: 250ms
          max_ttl: 0
          cache_size: 0
        """,
    )
    dns = load_policy(path).dns
    assert dns.servers == (
        ("1.1.1.1", 53),
        ("127.0.0.1", 5353),
        ("::1", 53),
        ("::1", 53),
        ("2001:db8::53", 53),
        ("9.9.9.9", 53),
    )
    assert (dns.timeout, dns.max_ttl, dns.cache_size) == (0.25, 0.0, 0)


def test_policy_is_frozen_and_comparable(full: Policy) -> None:
    again = load_policy(GOOD / "full.yaml")
    assert again == full
    with pytest.raises(AttributeError):
        full.unsafe = True  # type: ignore[misc]


def test_policy_built_by_hand_matches_rules(full: Policy) -> None:
    """Other modules (and tests) may construct a Policy directly; lookups still work."""
    policy = Policy(
        sources=(),
        dns=DnsSettings(),
        defaults=full.defaults,
        rules=full.rules[:1],
        ca_bundle=None,
        unsafe=False,
    )
    assert policy.settings_for("x.example.org").tls == "passthrough"
    assert policy.settings_for("receiver.internal.example") is policy.defaults


def test_policy_layer_does_not_import_mitmproxy() -> None:
    """The policy layer is pure Python: `hookwall check` must work without the proxy."""
    code = (
        "import sys, hookwall.policy, hookwall.config.units; "
        "sys.exit(any(m.split('.')[0] == 'mitmproxy' for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
