"""``identify``: the sender of a request without proxy credentials, where the operator said how.

A listener's ``--sender NAME`` names it (its ``clients`` still apply); a transparent listener
knows it by the client address (the most specific ``clients`` network). Anything else is left
to ``authenticate``, which asks for credentials.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hookwall.access.decide import identify, sender_problem
from hookwall.core.denials import Reason
from hookwall.core.exchange import Exchange
from hookwall.policy import Policy, load_policy

POLICY = """\
version: 1
senders:
  billing:
    credentials: [env:HW_ID_BILLING]
    clients: [10.20.0.0/16]
  billing-batch:
    credentials: [env:HW_ID_BATCH]
    clients: [10.20.30.0/24]
  anywhere:
    credentials: [env:HW_ID_ANY]
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    path = tmp_path_factory.mktemp("identify") / "p.yaml"
    path.write_text(POLICY)
    with pytest.MonkeyPatch.context() as env:
        for name in ("HW_ID_BILLING", "HW_ID_BATCH", "HW_ID_ANY"):
            env.setenv(name, f"{name.lower()}-token-0123456789abcdef")
        return load_policy(path)


def exchange(client: str, *headers: tuple[str, str]) -> Exchange:
    return Exchange("GET", "http://hooks.test/", tuple(headers), client=client)


@pytest.mark.parametrize(
    ("client", "sender"),
    [
        ("10.20.1.1", "billing"),
        ("10.20.30.4", "billing-batch"),
        ("::ffff:10.20.30.4", "billing-batch"),
    ],
)
def test_a_transparent_sender_is_known_by_its_most_specific_clients_network(
    policy: Policy, client: str, sender: str
) -> None:
    result = identify(policy.senders, exchange(client), None, transparent=True)
    assert result is not None and result.allowed and result.sender == sender


def test_a_transparent_client_no_sender_claims_is_refused_with_the_way_out(policy: Policy) -> None:
    result = identify(policy.senders, exchange("192.0.2.7"), None, transparent=True)
    assert result is not None and result.denial is not None
    assert result.denial.reason is Reason.SENDER_DENIED
    assert "--sender NAME" in result.denial.message and "clients:" in result.denial.message


def test_a_sender_without_clients_is_never_guessed_from_an_address(policy: Policy) -> None:
    """'anywhere' has no clients: an address proves nothing about it."""
    result = identify(policy.senders, exchange("127.0.0.1"), None, transparent=True)
    assert result is not None and result.sender is None and not result.allowed


def test_the_listener_sender_is_the_sender_of_requests_without_credentials(
    policy: Policy,
) -> None:
    for transparent in (False, True):
        result = identify(policy.senders, exchange("127.0.0.1"), "anywhere", transparent)
        assert result is not None and result.allowed and result.sender == "anywhere"


def test_the_listener_sender_keeps_its_clients(policy: Policy) -> None:
    result = identify(policy.senders, exchange("127.0.0.1"), "billing", transparent=True)
    assert result is not None and result.denial is not None
    assert result.denial.reason is Reason.SENDER_DENIED


def test_credentials_and_the_explicit_proxy_are_left_to_authenticate(policy: Policy) -> None:
    with_credentials = exchange("10.20.1.1", ("Proxy-Authorization", "Bearer x"))
    assert identify(policy.senders, with_credentials, "billing", transparent=True) is None
    assert identify(policy.senders, exchange("10.20.1.1"), None, transparent=False) is None


def test_without_senders_nobody_is_identified(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\n")
    assert identify(load_policy(path).senders, exchange("10.20.1.1"), None, True) is None


def test_the_listener_sender_must_be_defined(policy: Policy) -> None:
    assert sender_problem(None, policy) is None
    assert sender_problem("billing", policy) is None
    problem = sender_problem("billin", policy)
    assert problem is not None
    assert "no sender of that name" in problem and "anywhere, billing, billing-batch" in problem
