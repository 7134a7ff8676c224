"""`decide` as a pure function: every denial reason, what an allowed decision pins, fail-closed.

decide never connects, so answers such as 10.x here are only judged, never reached. Its
resolver always asks the local TestDnsServer (never the system resolver).
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import TYPE_CHECKING

import pytest

from hookwall.destinations.addresses import IPAddress
from hookwall.destinations.decide import Decision, decide
from hookwall.destinations.resolver import DnsFailure, Resolution, Resolver
from hookwall.destinations.selfaddr import SelfAddresses
from hookwall.policy import Policy, Selection, Settings, load_policy

if TYPE_CHECKING:  # imported for annotations only: pytest would try to collect a Test* class
    from tests.support.dnsserver import TestDnsServer

POLICY = """\
version: 1
unsafe: true
defaults:
  network:
    allow: [127.0.0.2/32, fd00:1::2/128]
    ports: ["1-65535"]
destinations:
  - hosts: ["blocked.guard.test", "*.blocked.guard.test"]
    name: no-blocked
    action: deny
  - hosts: ["receiver.internal.test"]
    network: {allow: [10.1.0.0/16], ports: [8443]}
    tls: passthrough
  - hosts: ["web.guard.test"]
    network: {ports: [80, 443]}
"""

# name -> answers served by the test DNS server (TTL 300 unless the test says otherwise)
RECORDS: dict[str, tuple[str, ...]] = {
    "ok.guard.test": ("127.0.0.2",),
    "dual.guard.test": ("127.0.0.2", "fd00:1::2"),
    "v6.guard.test": ("fd00:1::2",),
    "lvh.guard.test": ("127.0.0.1",),
    "mixed.guard.test": ("127.0.0.2", "10.0.0.1"),
    "meta.guard.test": ("169.254.169.254",),
    "mapped.guard.test": ("::ffff:127.0.0.1",),
    "receiver.internal.test": ("10.1.2.3",),
    "other.internal.test": ("10.1.2.3",),
    "web.guard.test": ("127.0.0.2",),
}
V4 = ipaddress.ip_address("127.0.0.2")
V6 = ipaddress.ip_address("fd00:1::2")


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


def ip_or_none(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    path = tmp_path_factory.mktemp("guard") / "policy.yaml"
    path.write_text(POLICY)
    return load_policy(path)


@pytest.fixture(scope="module")
def served(dns_server: TestDnsServer) -> TestDnsServer:
    for name, answers in RECORDS.items():
        dns_server.add(name, *answers)
    return dns_server


@pytest.fixture
def resolver(served: TestDnsServer) -> Resolver:
    """A fresh resolver (empty cache) per test, aimed at the local test server only."""
    return Resolver([served.address], timeout=1.0)


def run(
    host: str,
    port: int,
    policy: object,
    resolver: object,
    self_addresses: SelfAddresses | None = None,
) -> Decision:
    own = self_addresses or SelfAddresses()
    return asyncio.run(decide(host, port, policy, resolver, self_addresses=own))  # type: ignore[arg-type]


def assert_denied(decision: Decision, reason: str) -> None:
    assert decision.allowed is False, decision
    assert decision.reason == reason, decision
    assert decision.pinned_ip is None
    assert decision.message


# --- invalid-host, host-denied, port-denied --------------------------------------------------


@pytest.mark.parametrize(
    "host", ["a@b", "1.2.3.4.5", "", "evil.test/x", "[::1", "256.1.1.1", "a..b", "1.1.1.1:80"]
)
def test_invalid_host(policy: Policy, resolver: Resolver, host: str) -> None:
    """A host that cannot be read one unambiguous way is refused before any lookup."""
    decision = run(host, 443, policy, resolver)
    assert_denied(decision, "invalid-host")
    assert decision.host == host
    assert decision.settings is None
    assert decision.answers == ()


@pytest.mark.parametrize(
    "host", ["blocked.guard.test", "x.blocked.guard.test", "BLOCKED.guard.test."]
)
def test_host_denied(policy: Policy, resolver: Resolver, host: str) -> None:
    """A deny rule refuses the name in any spelling, and the message says which rule."""
    decision = run(host, 443, policy, resolver)
    assert_denied(decision, "host-denied")
    assert "rule 'no-blocked'" in decision.message
    assert "policy.yaml:" in decision.message  # the rule's location, to go and edit it
    assert decision.rule == "no-blocked"
    assert decision.answers == ()  # denied by name: no DNS asked


@pytest.mark.parametrize(
    ("host", "port"),
    [
        ("ok.guard.test", 0),
        ("ok.guard.test", -1),
        ("ok.guard.test", 65536),
        ("ok.guard.test", 70000),
        ("127.0.0.2", 0),
        ("web.guard.test", 8080),  # rule narrows ports to 80, 443
        ("receiver.internal.test", 443),  # rule allows 8443 only
    ],
)
def test_port_denied(policy: Policy, resolver: Resolver, host: str, port: int) -> None:
    """Ports outside the effective set (or outside 1-65535 at all) are refused by name."""
    decision = run(host, port, policy, resolver)
    assert_denied(decision, "port-denied")
    assert f"port {port} " in decision.message
    assert all(a.allowed for a in decision.answers)  # the address was fine; the port was not


def test_address_reported_before_port(policy: Policy, resolver: Resolver) -> None:
    """`localhost:3000` is refused for what it really is (loopback), not for its port."""
    decision = run("localhost", 70000, policy, resolver)
    assert_denied(decision, "address-blocked")


@pytest.mark.parametrize(("host", "port"), [("web.guard.test", 443), ("web.guard.test", 80)])
def test_rule_ports_allowed(policy: Policy, resolver: Resolver, host: str, port: int) -> None:
    decision = run(host, port, policy, resolver)
    assert decision.allowed, decision
    assert decision.rule == "web.guard.test"


# --- dns-failed ------------------------------------------------------------------------------


def test_dns_failed(policy: Policy, resolver: Resolver) -> None:
    """A name that does not resolve is refused (fail closed), with the resolver's reason."""
    decision = run("nowhere.guard.test", 443, policy, resolver)
    assert_denied(decision, "dns-failed")
    assert "could not resolve nowhere.guard.test" in decision.message
    assert "NXDOMAIN" in decision.message
    assert decision.dns_ms is not None and decision.dns_ms >= 0
    assert decision.answers == ()


# --- address-blocked -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "canonical", "source"),
    [
        ("127.0.0.1", "127.0.0.1", "literal"),
        ("2130706433", "127.0.0.1", "literal"),
        ("0x7f.1", "127.0.0.1", "literal"),
        ("0177.0.0.1", "127.0.0.1", "literal"),
        ("127.1", "127.0.0.1", "literal"),
        ("[::1]", "::1", "literal"),
        ("::1", "::1", "literal"),
        ("[0:0:0:0:0:0:0:1]", "::1", "literal"),
        ("::ffff:127.0.0.1", ip("::ffff:127.0.0.1").compressed, "literal"),
        ("[::ffff:7f00:1]", ip("::ffff:127.0.0.1").compressed, "literal"),
        ("0.0.0.0", "0.0.0.0", "literal"),
        ("localhost", "localhost", "loopback-name"),
        ("LOCALHOST.", "localhost", "loopback-name"),
        ("foo.localhost", "foo.localhost", "loopback-name"),
        ("ip6-localhost", "ip6-localhost", "loopback-name"),
    ],
)
def test_loopback_spellings_blocked(
    policy: Policy, resolver: Resolver, host: str, canonical: str, source: str
) -> None:
    """Every spelling of loopback is refused; loopback names are not even sent to DNS."""
    decision = run(host, 80, policy, resolver)
    assert_denied(decision, "address-blocked")
    assert decision.host == canonical
    assert decision.dns_source == source
    assert decision.dns_ms is None
    assert decision.answers and not all(a.allowed for a in decision.answers)
    if source == "loopback-name":
        assert decision.resolved_ips == ["127.0.0.1", "::1"]
        assert decision.message.startswith(f"{canonical} is a loopback name; ")


@pytest.mark.parametrize(
    ("host", "blocked", "label"),
    [
        ("lvh.guard.test", "127.0.0.1", "loopback"),
        ("meta.guard.test", "169.254.169.254", "link-local"),
        ("mapped.guard.test", str(ip("::ffff:127.0.0.1")), "loopback"),
    ],
)
def test_name_resolving_to_blocked_address(
    policy: Policy, resolver: Resolver, host: str, blocked: str, label: str
) -> None:
    """What a name resolves to is judged, not the name: lvh.me-style names are refused."""
    decision = run(host, 80, policy, resolver)
    assert_denied(decision, "address-blocked")
    assert decision.dns_source == "dns"
    assert decision.message.startswith(f"{host} resolves to {blocked}; ")
    assert label in decision.message


def test_mixed_answer_is_denied_whole(policy: Policy, resolver: Resolver) -> None:
    """One bad answer poisons the name: a later connect could pick it, so nothing is allowed."""
    decision = run("mixed.guard.test", 443, policy, resolver)
    assert_denied(decision, "address-blocked")
    assert "10.0.0.1" in decision.message
    assert "private-use" in decision.message
    verdicts = {str(a.address): a.allowed for a in decision.answers}
    assert verdicts == {"127.0.0.2": True, "10.0.0.1": False}
    assert set(decision.resolved_ips) == {"127.0.0.2", "10.0.0.1"}
    assert all(a.why for a in decision.answers)


@pytest.mark.parametrize(
    ("host", "answer", "allowed"),
    [
        ("receiver.internal.test", "10.1.2.3", True),  # the rule's own exception
        ("other.internal.test", "10.1.2.3", False),  # same address, name without the rule
        ("receiver.internal.test", "10.2.0.1", False),  # the rule's name, outside its exception
        ("10.1.2.3", "10.1.2.3", False),  # the literal is not the scoped name
    ],
)
def test_name_scoped_exception(
    policy: Policy, served: TestDnsServer, host: str, answer: str, allowed: bool
) -> None:
    """An allow exception belongs to its destination's names, never to the address itself."""
    is_name = ip_or_none(host) is None
    if is_name:
        served.add(host, answer)
    try:
        decision = run(host, 8443, policy, Resolver([served.address], timeout=1.0))
    finally:
        if is_name:
            served.add(host, *RECORDS[host])
    assert decision.allowed is allowed, decision
    if allowed:
        assert decision.pinned_ip == ip(answer)
        assert decision.rule == "receiver.internal.test"
        assert decision.settings is not None and decision.settings.tls == "passthrough"
    else:
        assert decision.reason == "address-blocked"
        assert answer in decision.message


@pytest.mark.parametrize(
    ("host", "port", "allowed"),
    [
        ("127.0.0.2", 8080, False),
        ("127.0.0.2", 8081, True),
        ("ok.guard.test", 8080, False),  # a name that resolves to the listener is no better
        ("ok.guard.test", 8081, True),
        ("::ffff:127.0.0.2", 8080, False),  # the IPv4-mapped spelling reaches the same socket
        ("[::ffff:7f00:2]", 8080, False),
        ("::ffff:127.0.0.2", 8081, True),
    ],
)
def test_own_listening_address(
    policy: Policy, resolver: Resolver, host: str, port: int, allowed: bool
) -> None:
    """The proxy never connects to itself, even where the policy allows its address."""
    own = SelfAddresses()
    own.add_listener("127.0.0.2", 8080)
    decision = run(host, port, policy, resolver, own)
    assert decision.allowed is allowed, decision
    if not allowed:
        assert decision.reason == "address-blocked"
        assert "own listening address" in decision.message
        assert decision.pinned_ip is None
        assert decision.answers  # the checks are still reported for explain


# --- allowed decisions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "pinned", "ips"),
    [
        ("dual.guard.test", V4, ["127.0.0.2", "fd00:1::2"]),  # both allowed: IPv4 preferred
        ("v6.guard.test", V6, ["fd00:1::2"]),  # only IPv6: falls back to it
        ("ok.guard.test", V4, ["127.0.0.2"]),
        ("127.0.0.2", V4, ["127.0.0.2"]),
        ("[fd00:1::2]", V6, ["fd00:1::2"]),
    ],
)
def test_allowed_pins_one_address(
    policy: Policy, resolver: Resolver, host: str, pinned: IPAddress, ips: list[str]
) -> None:
    """An allowed decision names the exact IP to connect to: the one that was checked."""
    decision = run(host, 443, policy, resolver)
    assert decision.allowed is True, decision
    assert decision.reason is None
    assert decision.pinned_ip == pinned
    assert decision.resolved_ips == ips
    assert all(a.allowed for a in decision.answers)
    assert decision.rule is None
    assert f"connecting to {pinned}" in decision.message


class FixedResolver:
    """Returns one answer in a fixed order (AAAA before A), to prove the IPv4 preference."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = tuple(ip(a) for a in addresses)
        self.calls = 0

    async def resolve(self, name: str) -> Resolution:
        self.calls += 1
        return Resolution(name, self.addresses, 300.0)


def test_ipv4_preferred_whatever_the_order(policy: Policy) -> None:
    decision = run("dual.guard.test", 443, policy, FixedResolver("fd00:1::2", "127.0.0.2"))
    assert decision.allowed is True, decision
    assert decision.pinned_ip == V4
    assert decision.resolved_ips == ["fd00:1::2", "127.0.0.2"]


def test_dns_source_dns_then_cache(policy: Policy, resolver: Resolver) -> None:
    """explain and the logs say whether DNS was asked or the cached answer was used."""
    first = run("ok.guard.test", 443, policy, resolver)
    second = run("ok.guard.test", 443, policy, resolver)
    assert (first.dns_source, second.dns_source) == ("dns", "cache")
    assert first.dns_ms is not None and second.dns_ms is not None
    assert first.pinned_ip == second.pinned_ip == V4


@pytest.mark.parametrize(("host", "source"), [("127.0.0.2", "literal"), ("[fd00:1::2]", "literal")])
def test_literals_never_reach_the_resolver(policy: Policy, host: str, source: str) -> None:
    stub = FixedResolver("10.0.0.1")
    decision = run(host, 443, policy, stub)
    assert decision.allowed is True
    assert decision.dns_source == source
    assert decision.dns_ms is None
    assert stub.calls == 0


def test_loopback_names_never_reach_the_resolver(policy: Policy) -> None:
    stub = FixedResolver("127.0.0.2")
    decision = run("localhost", 443, policy, stub)
    assert_denied(decision, "address-blocked")
    assert decision.dns_source == "loopback-name"
    assert stub.calls == 0


def test_rule_property(policy: Policy, resolver: Resolver) -> None:
    assert run("receiver.internal.test", 8443, policy, resolver).rule == "receiver.internal.test"
    assert run("ok.guard.test", 443, policy, resolver).rule is None
    assert run("a@b", 443, policy, resolver).rule is None  # no settings at all


# --- fail closed -----------------------------------------------------------------------------


class RaisingResolver:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    async def resolve(self, name: str) -> Resolution:
        raise self.exc


class RaisingPolicy:
    """Policy is a frozen dataclass; a stub stands in for one whose lookup breaks."""

    def settings_for(self, host: str, sender: str | None = None) -> Settings:
        raise RuntimeError("policy lookup exploded")

    def select(self, host: str, sender: str | None = None) -> Selection:
        raise RuntimeError("policy lookup exploded")


@pytest.mark.parametrize(
    ("policy_stub", "resolver_stub", "detail"),
    [
        (None, RaisingResolver(RuntimeError("resolver exploded")), "RuntimeError"),
        (None, RaisingResolver(KeyError("k")), "KeyError"),
        (RaisingPolicy(), None, "policy lookup exploded"),
    ],
)
def test_unexpected_errors_fail_closed(
    policy: Policy,
    resolver: Resolver,
    policy_stub: object | None,
    resolver_stub: object | None,
    detail: str,
) -> None:
    """A bug anywhere below decide is a denial, never an exception and never an allow."""
    decision = run("ok.guard.test", 443, policy_stub or policy, resolver_stub or resolver)
    assert_denied(decision, "internal-error")
    assert detail in decision.message
    assert decision.host == "ok.guard.test"
    assert decision.port == 443


def test_dns_failure_from_any_resolver_is_dns_failed(policy: Policy) -> None:
    decision = run("ok.guard.test", 443, policy, RaisingResolver(DnsFailure("boom")))
    assert_denied(decision, "dns-failed")
    assert decision.message == "could not resolve ok.guard.test: boom"
