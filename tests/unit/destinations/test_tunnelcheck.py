"""After a reload, may a passthrough tunnel go on? (``tunnelcheck``, no proxy.)"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from hookwall.core.denials import Reason
from hookwall.destinations.decide import Decision
from hookwall.destinations.tunnelcheck import sender_after_reload, tunnel_after_reload
from hookwall.policy import Policy, load_policy

HEAD = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ['1-65535']}
"""
PT = "destinations:\n  - hosts: [pt.test]\n    tls: passthrough\n"


def policy(tmp_path: Path, text: str, name: str = "p.yaml") -> Policy:
    path = tmp_path / name
    path.write_text(HEAD + text)
    return load_policy(path)


def decision(p: Policy, allowed: bool = True) -> Decision:
    settings = p.settings_for("pt.test")
    ip = ipaddress.ip_address("127.0.0.2")
    return Decision(
        allowed,
        None if allowed else Reason.HOST_DENIED,
        "no",
        "pt.test",
        443,
        settings,
        pinned_ip=ip,
    )


def test_a_tunnel_still_passed_through_to_an_allowed_address_goes_on(tmp_path: Path) -> None:
    p = policy(tmp_path, PT)
    assert tunnel_after_reload(decision(p), ipaddress.ip_address("127.0.0.2")) is None


def test_a_denied_host_a_blocked_address_or_interception_closes_it(tmp_path: Path) -> None:
    p = policy(tmp_path, PT)
    denied = tunnel_after_reload(decision(p, allowed=False), ipaddress.ip_address("127.0.0.2"))
    assert denied is not None and denied.reason == "host-denied"
    blocked = tunnel_after_reload(decision(p), ipaddress.ip_address("10.0.0.1"))
    assert blocked is not None and blocked.reason == "address-blocked"
    intercepted = policy(tmp_path, "destinations:\n  - hosts: [pt.test]\n", "i.yaml")
    closed = tunnel_after_reload(decision(intercepted), ipaddress.ip_address("127.0.0.2"))
    assert closed is not None and "no longer passed through" in closed.message


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_TC_A", "first-token-long-enough")
    monkeypatch.setenv("HW_TC_B", "second-token-long-enough")


def test_the_sender_must_still_exist_with_the_same_credentials_and_clients(
    tmp_path: Path, tokens: None
) -> None:
    old = policy(tmp_path, "senders:\n  billing: {credentials: [env:HW_TC_A]}\n", "a.yaml")
    same = policy(tmp_path, "senders:\n  billing: {credentials: [env:HW_TC_A]}\n", "b.yaml")
    before = old.senders.get("billing")
    assert sender_after_reload(before, same.senders, "billing", "127.0.0.1") is None
    both = policy(tmp_path, "senders:\n  billing: {credentials: [env:HW_TC_A, env:HW_TC_B]}\n")
    assert sender_after_reload(before, both.senders, "billing", "127.0.0.1") is None  # added
    rotated = policy(tmp_path, "senders:\n  billing: {credentials: [env:HW_TC_B]}\n", "c.yaml")
    denial = sender_after_reload(before, rotated.senders, "billing", "127.0.0.1")
    assert denial is not None and denial.reason == "auth-required"
    gone = policy(tmp_path, "senders:\n  other: {credentials: [env:HW_TC_B]}\n", "d.yaml")
    denial = sender_after_reload(before, gone.senders, "billing", "127.0.0.1")
    assert denial is not None and denial.reason == "auth-required"
    narrowed = policy(
        tmp_path,
        "senders:\n  billing: {credentials: [env:HW_TC_A], clients: [10.0.0.0/8]}\n",
        "e.yaml",
    )
    denial = sender_after_reload(
        narrowed.senders.get("billing"), narrowed.senders, "billing", "127.0.0.1"
    )
    assert denial is not None and denial.reason == "sender-denied"


def test_a_tunnel_without_credentials_closes_once_they_are_required(
    tmp_path: Path, tokens: None
) -> None:
    now = policy(tmp_path, "senders:\n  billing: {credentials: [env:HW_TC_A]}\n")
    denial = sender_after_reload(None, now.senders, None, "127.0.0.1")
    assert denial is not None and denial.reason == "auth-required"
    assert sender_after_reload(None, policy(tmp_path, "", "n.yaml").senders, None, None) is None
