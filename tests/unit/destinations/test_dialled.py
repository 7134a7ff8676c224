"""``judge_dialled``: what a redirected sender dialled is judged beside the name it asked for."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from hookwall.core.denials import Reason
from hookwall.destinations.decide import Decision, judge_dialled
from hookwall.destinations.selfaddr import SelfAddresses
from hookwall.policy import Policy, load_policy

POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
destinations:
  - hosts: [internal.test]
    network: {allow: [10.1.0.0/16]}
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    path: Path = tmp_path_factory.mktemp("dialled") / "p.yaml"
    path.write_text(POLICY)
    return load_policy(path)


def allowed(policy: Policy, host: str, pinned: str, port: int = 80) -> Decision:
    settings = policy.select(host, None).settings
    ip = ipaddress.ip_address(pinned)
    return Decision(True, None, "ok", host, port, settings=settings, pinned_ip=ip)


@pytest.mark.parametrize("dialled", ["127.0.0.2", "1.1.1.1", "93.184.215.14"])
def test_an_address_the_rules_allow_keeps_the_decision(policy: Policy, dialled: str) -> None:
    decision = allowed(policy, "hooks.test", "127.0.0.2")
    assert judge_dialled(decision, ipaddress.ip_address(dialled)) is decision


@pytest.mark.parametrize(
    "dialled", ["127.0.0.1", "169.254.169.254", "10.0.0.1", "::1", "192.0.2.10"]
)
def test_a_blocked_address_is_refused_though_the_name_is_allowed(
    policy: Policy, dialled: str
) -> None:
    judged = judge_dialled(
        allowed(policy, "hooks.test", "127.0.0.2"), ipaddress.ip_address(dialled)
    )
    assert not judged.allowed and judged.reason is Reason.ADDRESS_BLOCKED
    assert judged.pinned_ip is None  # nothing may connect on this decision
    assert f"dialled to {dialled}" in judged.message


def test_the_rule_of_the_name_decides_which_addresses_are_blocked(policy: Policy) -> None:
    """internal.test's rule reopens 10.1/16: a sender that dialled inside it is let through."""
    decision = allowed(policy, "internal.test", "10.1.2.3")
    assert judge_dialled(decision, ipaddress.ip_address("10.1.9.9")).allowed
    assert not judge_dialled(decision, ipaddress.ip_address("10.2.0.1")).allowed


def test_a_connection_dialled_to_hookwall_itself_was_not_redirected(policy: Policy) -> None:
    own = SelfAddresses()
    own.add_listener("127.0.0.2", 8081)
    decision = allowed(policy, "hooks.test", "127.0.0.2", port=8081)
    judged = judge_dialled(decision, ipaddress.ip_address("127.0.0.2"), own)
    assert not judged.allowed and "instead of being redirected" in judged.message


def test_a_refusal_stays_the_refusal_it_was(policy: Policy) -> None:
    refused = Decision(False, Reason.HOST_DENIED, "no", "hooks.test", 80)
    assert judge_dialled(refused, ipaddress.ip_address("127.0.0.1")) is refused
