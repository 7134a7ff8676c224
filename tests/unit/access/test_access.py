"""Access control as pure functions: credentials, sources, rule choice per sender, start-up.

No proxy here: ``authenticate`` judges header values, ``Policy.select``/``decide`` judge
(host, sender), ``listen_refusal`` judges the listen address. The proxy tests
(test_proxy_access.py) prove the adapter wires these in.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hookwall.access import settings as senders_module
from hookwall.access.decide import (
    CHALLENGE,
    MAX_HEADER_BYTES,
    AccessResult,
    authenticate,
    is_loopback_listen,
    listen_refusal,
)
from hookwall.core.denials import Denial, Reason
from hookwall.core.exchange import Exchange
from hookwall.destinations.decide import Decision, decide
from hookwall.destinations.resolver import Resolution, Resolver
from hookwall.policy import Policy, PolicyError, load_policy, summarize

TOKENS = {
    "BILLING": "billing-token-0123456789abcdef",
    "BILLING_NEXT": "billing-token-next-0123456789ab",
    "NOTIFY": "notify-token-0123456789abcdefgh",
    "LOCKED": "locked-token-0123456789abcdefgh",
    "REMOTE": "remote-token-0123456789abcdefgh",
    "TRIAL": "trial-token-0123456789abcdefghij",
    "EXPIRED": "expired-token-0123456789abcdefg",
}

POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
senders:
  billing:
    credentials: [env:HW_A_BILLING, file:billing-next.token]
  notify:
    credentials: [env:HW_A_NOTIFY, {secret: env:HW_A_EXPIRED, not_after: 2001-01-01}]
  locked:
    credentials: [env:HW_A_LOCKED]
    default: deny
  remote:
    credentials: [env:HW_A_REMOTE]
    clients: [10.0.0.0/8, "fd00:77::/32"]
  trial:
    credentials: [env:HW_A_TRIAL]
    clients: [10.0.0.0/8]
    default: deny
    enforce: false
destinations:
  - hosts: [pay.a.test]
    senders: [billing]
    name: payments
  - hosts: [shared.a.test, "*.wild.a.test"]
    name: shared-all
  - hosts: [shared.a.test, "*.wild.a.test"]
    senders: [billing, locked]
    name: shared-scoped
    network: {ports: [443]}
  - hosts: ["*.a.test"]
    name: everything-else
  - hosts: [pilot.a.test]
    senders: [billing]
    enforce: false
  - hosts: [soon-denied.a.test]
    action: deny
    enforce: false
  - hosts: [denied.a.test]
    action: deny
"""


@pytest.fixture(autouse=True)
def _tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, token in TOKENS.items():
        monkeypatch.setenv(f"HW_A_{name}", token)


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    (tmp_path / "billing-next.token").write_text(TOKENS["BILLING_NEXT"] + "\n")
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return load_policy(path)


def basic(name: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{token}".encode()).decode()


def request(*values: str, client: str | None = "127.0.0.1") -> Exchange:
    """A request carrying these Proxy-Authorization values, from ``client``."""
    headers = tuple(("Proxy-Authorization", value) for value in values)
    return Exchange("POST", "http://a.test/", headers, client=client)


def auth(policy: Policy, *values: str, client: str = "127.0.0.1") -> AccessResult:
    return authenticate(policy.senders, request(*values, client=client))


# -- credentials -------------------------------------------------------------------------------


def test_basic_and_bearer_credentials_identify_the_sender(policy: Policy) -> None:
    assert auth(policy, basic("billing", TOKENS["BILLING"])) == AccessResult("billing")
    assert auth(policy, basic("billing", TOKENS["BILLING_NEXT"])).sender == "billing"  # rotation
    assert auth(policy, "Bearer " + TOKENS["NOTIFY"]).sender == "notify"
    assert auth(policy, "bearer   " + TOKENS["NOTIFY"] + "  ").sender == "notify"
    assert auth(policy, "BASIC " + basic("notify", TOKENS["NOTIFY"])[6:]).sender == "notify"


def test_without_senders_nobody_authenticates(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\n")
    open_policy = load_policy(path)
    assert auth(open_policy) == AccessResult(None)
    assert auth(open_policy, "Basic garbage!!") == AccessResult(None)


def required(result: AccessResult) -> str:
    assert result.sender is None
    assert result.denial is not None
    assert result.denial.reason is Reason.AUTH_REQUIRED
    assert result.denial.status == 407
    return result.denial.message


@pytest.mark.parametrize(
    ("values", "detail"),
    [
        ([], "requires proxy credentials"),
        (["Basic !!!not-base64!!!"], "not valid base64"),
        (["Basic " + base64.b64encode(b"billing").decode()], "no ':'"),
        (["Basic " + base64.b64encode(b"billing:").decode()], "empty name or token"),
        (["Basic " + base64.b64encode(b":" + TOKENS["BILLING"].encode()).decode()], "empty"),
        (["Basic"], "empty Basic credentials"),
        (["Basic " + "QUJD" * 1100], f"longer than {MAX_HEADER_BYTES} bytes"),
        (["Bearer"], "empty Bearer token"),
        (["Bearer two words"], "whitespace"),
        ([""], "empty header"),
        (["   "], "empty header"),
        (["Basic\t" + base64.b64encode(b"x").decode()], "no ':'"),  # a tab is whitespace too
        (["Digest username=billing"], "unsupported scheme"),
        ([TOKENS["BILLING"]], "unsupported scheme"),  # a bare token
        (["Basic " + base64.b64encode(b"x:y").decode()] * 2, "more than one"),
        (["Basic " + "é" * 8], "not valid base64"),
    ],
)
def test_missing_and_malformed_credentials_are_407(
    policy: Policy, values: list[str], detail: str
) -> None:
    message = required(auth(policy, *values))
    assert detail in message
    for token in TOKENS.values():
        assert token not in message


@pytest.mark.parametrize(
    ("value", "attempted"),
    [
        (basic("billing", "wrong-token-0123456789abcdef"), "billing"),
        (basic("billing", TOKENS["BILLING"][:-1]), "billing"),  # truncated
        (basic("billing", TOKENS["BILLING"] + "x"), "billing"),
        (basic("notify", TOKENS["BILLING"]), "notify"),  # another sender's token
        (basic("nobody", TOKENS["BILLING"]), None),  # unknown name: never logged
        (basic(TOKENS["BILLING"], "x"), None),  # a token in the name field: never logged
        (basic("notify", TOKENS["EXPIRED"]), "notify"),  # past not_after
        ("Bearer " + TOKENS["BILLING"][:-1], None),
        ("Bearer " + TOKENS["EXPIRED"], None),
        ("Bearer " + "billing:" + TOKENS["BILLING"], None),
    ],
)
def test_wrong_credentials_are_407_and_alike(policy: Policy, value: str, attempted: str) -> None:
    result = auth(policy, value)
    assert required(result) == "the proxy credentials are not valid"
    assert result.attempted == attempted


def test_unknown_names_and_wrong_tokens_cost_the_same(
    policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One keyed digest per check, whether the name exists or not: timing tells nothing."""
    calls: list[bytes] = []
    real = senders_module.keyed_digest

    def counting(material: bytes) -> bytes:
        calls.append(material)
        return real(material)

    monkeypatch.setattr(senders_module, "keyed_digest", counting)
    for value in (
        basic("billing", "wrong-token-0123456789abcdef"),
        basic("nobody-at-all", "wrong-token-0123456789abcdef"),
        basic("billing", TOKENS["BILLING"]),
        "Bearer " + TOKENS["NOTIFY"],
        "Bearer wrong-token-0123456789abcdef",
    ):
        calls.clear()
        auth(policy, value)
        assert len(calls) == 1


def test_the_policy_keeps_no_token(policy: Policy) -> None:
    text = repr(policy) + repr(policy.senders) + summarize(policy)
    text += "".join(repr(c) for s in policy.senders for c in s.credentials)
    for token in TOKENS.values():
        assert token not in text
    assert "env:HW_A_BILLING" in summarize(policy)
    assert "billing: credentials env:HW_A_BILLING, file:billing-next.token" in summarize(policy)


# -- source addresses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "allowed"),
    [
        ("10.1.2.3", True),
        ("::ffff:10.1.2.3", True),  # an IPv4 client on a dual-stack listener
        ("fd00:77::5", True),
        ("127.0.0.1", False),
        ("192.168.1.1", False),
        (None, False),
        ("not-an-ip", False),
    ],
)
def test_right_credentials_from_the_wrong_source(
    policy: Policy, client: str | None, allowed: bool
) -> None:
    result = authenticate(policy.senders, request(basic("remote", TOKENS["REMOTE"]), client=client))
    assert result.sender == "remote"  # the sender is known (and logged) either way
    if allowed:
        assert result.denial is None
    else:
        assert result.denial is not None and result.denial.reason is Reason.SENDER_DENIED
        assert result.denial.status == 403


def test_report_only_sender_from_the_wrong_source_is_let_through(policy: Policy) -> None:
    result = auth(policy, "Bearer " + TOKENS["TRIAL"], client="127.0.0.1")
    assert result.allowed and result.sender == "trial"
    assert [reason for reason, _ in result.would_deny] == ["sender-denied"]


# -- which rule applies ------------------------------------------------------------------------


def select(policy: Policy, host: str, sender: str | None) -> tuple[str | None, str | None, bool]:
    """(rule name, denial reason, enforced)"""
    chosen = policy.select(host, sender)
    rule = chosen.settings.rule.name if chosen.settings.rule else None
    denial = chosen.denial.reason if chosen.denial else None
    return rule, denial, bool(chosen.denial and chosen.denial.enforced)


@pytest.mark.parametrize(
    ("host", "sender", "rule", "denial"),
    [
        # a sender-scoped rule beats an unscoped one of equal specificity (exact and wildcard)
        ("shared.a.test", "billing", "shared-scoped", None),
        ("shared.a.test", "notify", "shared-all", None),
        ("x.wild.a.test", "billing", "shared-scoped", None),
        ("x.wild.a.test", "notify", "shared-all", None),
        # ...but never a more specific one: the most specific pattern still wins
        ("other.a.test", "billing", "everything-else", None),
        # a host only another sender may reach
        ("pay.a.test", "billing", "payments", None),
        ("pay.a.test", "notify", "payments", "sender-denied"),
        ("pay.a.test", "locked", "payments", "sender-denied"),
        # a default-deny sender reaches only what is scoped to it
        ("shared.a.test", "locked", "shared-scoped", None),
        ("other.a.test", "locked", "everything-else", "sender-denied"),
        ("unlisted.example", "locked", None, "sender-denied"),
        ("unlisted.example", "notify", None, None),
        # no sender (a policy without senders cannot have scoped rules; explain may ask)
        ("pay.a.test", None, "payments", "sender-denied"),
        ("shared.a.test", None, "shared-all", None),
    ],
)
def test_rule_choice_per_sender(
    policy: Policy, host: str, sender: str | None, rule: str | None, denial: str | None
) -> None:
    assert select(policy, host, sender)[:2] == (rule, denial)
    assert policy.settings_for(host, sender).rule == policy.select(host, sender).settings.rule


def test_denials_tell_the_sender_nothing_about_other_senders(policy: Policy) -> None:
    chosen = policy.select("pay.a.test", "notify")
    assert chosen.denial is not None
    assert "billing" not in chosen.denial.message and "payments" not in chosen.denial.message


def test_report_only_rules_and_senders_report_and_fall_through(policy: Policy) -> None:
    # A rule scoped to billing with enforce: false: others are reported, and get what applies
    # without it (here the *.a.test rule), never billing's rule.
    pilot = policy.select("pilot.a.test", "notify")
    assert pilot.denial is None
    assert [v.reason for v in pilot.would_deny] == ["sender-denied"]
    assert pilot.settings.rule is not None and pilot.settings.rule.name == "everything-else"
    assert policy.select("pilot.a.test", "billing").would_deny == ()
    # action: deny with enforce: false
    soon = policy.select("soon-denied.a.test", "notify")
    assert soon.denial is None and [v.reason for v in soon.would_deny] == ["host-denied"]
    assert soon.settings.rule is not None and soon.settings.rule.name == "everything-else"
    # an enforced deny is still a deny (decide turns it into host-denied)
    assert policy.select("denied.a.test", "notify").settings.action == "deny"
    # a report-only default-deny sender
    trial = policy.select("unlisted.example", "trial")
    assert trial.denial is None and [v.reason for v in trial.would_deny] == ["sender-denied"]


def test_unknown_sender_is_an_error_not_a_pass(policy: Policy) -> None:
    with pytest.raises(KeyError):
        policy.select("shared.a.test", "mallory")


class StaticResolver(Resolver):
    """Every name is 127.0.0.2, without a DNS query."""

    def __init__(self) -> None:
        super().__init__([("127.0.0.1", 9)])

    async def resolve(self, name: str) -> Resolution:
        return Resolution(name, (ipaddress.ip_address("127.0.0.2"),), ttl=0)


def judge(policy: Policy, host: str, port: int, sender: str | None) -> Decision:
    return asyncio.run(decide(host, port, policy, StaticResolver(), sender=sender))


def test_decide_passes_the_sender_through(policy: Policy) -> None:
    assert judge(policy, "shared.a.test", 8080, "notify").allowed
    scoped = judge(policy, "shared.a.test", 8080, "billing")  # its rule: ports [443]
    assert scoped.reason == "port-denied" and scoped.rule == "shared-scoped"
    assert judge(policy, "shared.a.test", 443, "billing").allowed
    denied = judge(policy, "pay.a.test", 443, "notify")
    assert (denied.allowed, denied.reason, denied.sender) == (False, "sender-denied", "notify")
    assert denied.pinned_ip is None and denied.answers == ()  # refused before DNS
    trial = judge(policy, "unlisted.example", 443, "trial")
    assert trial.allowed and [r for r, _ in trial.would_deny] == ["sender-denied"]
    unknown = judge(policy, "shared.a.test", 443, "mallory")
    assert unknown.reason == "internal-error"  # fails closed


def test_scoped_lookups_stay_a_few_dict_gets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_A_S", "s-token-0123456789abcdefghij")
    lines = [
        "version: 1",
        "senders:",
        "  s: {credentials: [env:HW_A_S]}",
        "destinations:",
    ]
    for i in range(3000):
        lines.append(f'  - {{hosts: ["*.w{i}.example.net"], name: r{i}}}')
        lines.append(f'  - {{hosts: ["*.w{i}.example.net"], name: s{i}, senders: [s]}}')
    path = tmp_path / "big.yaml"
    path.write_text("\n".join(lines) + "\n")
    policy = load_policy(path)
    matcher = policy._matcher
    gets = 0

    class Counting[T](dict[str, T]):
        # Only the one- and two-argument forms the matcher calls, not dict.get's overloads.
        def get(self, key: str, default: T | None = None) -> T | None:  # type: ignore[override]
            nonlocal gets
            gets += 1
            return super().get(key, default)

    matcher._exact = Counting(matcher._exact)
    matcher._wildcards = Counting(matcher._wildcards)
    host = "x.y.z.w2999.example.net"
    rule = policy.settings_for(host, "s").rule
    assert rule is not None and rule.name == "s2999"
    assert gets <= 2 * (host.count(".") + 1)


# -- start-up ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.77.0.1", False),
        ("203.0.113.7", False),
        ("proxy.internal", False),
    ],
)
def test_loopback_listen_addresses(host: str, loopback: bool) -> None:
    assert is_loopback_listen(host) is loopback
    refusal = listen_refusal(host, has_senders=False, allow_unauthenticated=False)
    assert (refusal is None) is loopback
    if refusal:
        assert "open proxy" in refusal and "--allow-unauthenticated" in refusal
    assert listen_refusal(host, has_senders=True, allow_unauthenticated=False) is None
    assert listen_refusal(host, has_senders=False, allow_unauthenticated=True) is None


def test_407_carries_the_challenge() -> None:
    headers = Denial(Reason.AUTH_REQUIRED, "x").headers("req_1")
    assert headers["Proxy-Authenticate"] == CHALLENGE
    assert CHALLENGE == 'Basic realm="hookwall", Bearer realm="hookwall"'
    assert "Proxy-Authenticate" not in Denial(Reason.SENDER_DENIED, "x").headers("req_1")


# -- the senders section: load errors ----------------------------------------------------------


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\n" + body)
    return path


def errors(path: Path) -> str:
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    text = str(info.value)
    for token in TOKENS.values():
        assert token not in text
    return text


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        (
            "senders:\n  billing: {credentials: [env:HW_A_BILLING]}\n"
            "destinations:\n  - hosts: [a.test]\n    senders: [biling]\n",
            6,
            "destinations[0].senders[0]: unknown sender 'biling'; did you mean 'billing'?",
        ),
        (
            "destinations:\n  - hosts: [a.test]\n    senders: [billing]\n",
            4,
            "unknown sender 'billing'; define it under the top-level 'senders:'",
        ),
        ("senders:\n  billing: {credentials: [" + TOKENS["BILLING"] + "]}\n", 3, "literal"),
        ("senders:\n  billing: {credentials: [env:HW_A_NOPE]}\n", 3, "HW_A_NOPE is not set"),
        ("senders:\n  billing: {credentials: [file:nope.token]}\n", 3, "cannot read"),
        ("senders:\n  billing: {credentials: []}\n", 3, "non-empty list"),
        ("senders:\n  billing: {clients: [10.0.0.0/8]}\n", 3, "missing 'credentials'"),
        ("senders:\n  billing: {credentials: [env:HW_A_SHORT]}\n", 3, "at least 16 characters"),
        ("senders:\n  billing: {credentials: [env:HW_A_SPACE]}\n", 3, "visible ASCII"),
        ("senders:\n  'bil:ling': {credentials: [env:HW_A_BILLING]}\n", 3, "invalid sender name"),
        (
            "senders:\n  billing: {credentials: [env:HW_A_BILLING], clients: [10.0.0.1/8]}\n",
            3,
            "senders.billing.clients[0]: '10.0.0.1/8' is not a CIDR",
        ),
        (
            "senders:\n  billing: {credentials: [env:HW_A_BILLING], default: block}\n",
            3,
            "senders.billing.default: expected one of allow, deny",
        ),
        (
            "senders:\n  billing: {credentials: [env:HW_A_BILLING], enforce: maybe}\n",
            3,
            "senders.billing.enforce: expected true or false",
        ),
        (
            "senders:\n  billing: {credentials: [env:HW_A_BILLING], token: x}\n",
            3,
            "unknown key 'token'",
        ),
        (
            "senders:\n  a: {credentials: [env:HW_A_BILLING]}\n"
            "  b: {credentials: [env:HW_A_BILLING_COPY]}\n",
            4,
            "the same token as env:HW_A_BILLING of sender 'a'",
        ),
        (
            "senders:\n  a: {credentials: [env:HW_A_BILLING]}\n"
            "destinations:\n  - hosts: [a.test]\n    senders: a\n",
            6,
            "expected a list of sender names",
        ),
        (
            "senders:\n  a: {credentials: [env:HW_A_BILLING]}\n"
            "destinations:\n  - hosts: [a.test]\n    enforce: 0\n",
            6,
            "destinations[0].enforce: expected true or false",
        ),
        (
            "senders:\n  a: {credentials: [env:HW_A_BILLING]}\n"
            "destinations:\n  - {hosts: [a.test], senders: [a]}\n"
            "  - {hosts: [a.test], senders: [a]}\n",
            6,
            "host pattern 'a.test' for sender 'a' is already used by destination",
        ),
        (
            "destinations:\n  - {hosts: [a.test]}\n  - {hosts: [a.test]}\n",
            4,
            "host pattern 'a.test' is already used by destination",
        ),
        ("defaults:\n  senders: {}\n", 3, "senders is a top-level section"),
    ],
)
def test_senders_section_errors_have_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, line: int, message: str
) -> None:
    monkeypatch.setenv("HW_A_SHORT", "short")
    monkeypatch.setenv("HW_A_SPACE", "a token with spaces in it!")
    monkeypatch.setenv("HW_A_BILLING_COPY", TOKENS["BILLING"])
    monkeypatch.delenv("HW_A_NOPE", raising=False)
    path = write(tmp_path, body)
    text = errors(path)
    assert f"{path}:{line}:" in text, text
    assert message in text, text
    assert "a token with spaces" not in text


def test_senders_across_files_of_a_directory(tmp_path: Path) -> None:
    (tmp_path / "10-senders.yaml").write_text(
        "version: 1\nsenders:\n  billing: {credentials: [env:HW_A_BILLING]}\n"
    )
    (tmp_path / "20-rules.yaml").write_text(
        "version: 1\ndestinations:\n  - {hosts: [pay.test], senders: [billing]}\n"
    )
    policy = load_policy(tmp_path)
    assert select(policy, "pay.test", "billing")[1] is None
    (tmp_path / "30-more.yaml").write_text(
        "version: 1\nsenders:\n  billing: {credentials: [env:HW_A_NOTIFY]}\n"
    )
    assert "senders.billing: already defined at" in errors(tmp_path)


def test_the_default_policy_has_no_senders_and_its_commented_example_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hookwall.policy import default_policy_path, load_default_policy

    assert not load_default_policy().senders
    lines = default_policy_path().read_text().splitlines()

    def block(first: str) -> list[str]:
        taken = []
        for line in lines[lines.index(first) :]:
            if not line.startswith("# "):
                break
            taken.append(line[2:])
        return taken

    yaml_text = "\n".join(["version: 1", *block("# senders:"), *block("# destinations:")])
    old = tmp_path / "billing-old"
    old.write_text("an-older-billing-token-0123456789")
    yaml_text = yaml_text.replace("/run/secrets/billing-old", str(old))
    monkeypatch.setenv("BILLING_PROXY_TOKEN", TOKENS["BILLING"])
    monkeypatch.setenv("NOTIFY_PROXY_TOKEN", TOKENS["NOTIFY"])
    monkeypatch.setenv("BILLING_STRIPE_WHSEC", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    path = tmp_path / "senders.yaml"
    path.write_text(yaml_text + "\n")
    policy = load_policy(path)
    assert [s.name for s in policy.senders] == ["billing", "notifications"]
    # notifications is report-only: let through, logged, and never given billing's rule or key
    trial = policy.select("api.payments.example", "notifications")
    assert trial.denial is None and [v.reason for v in trial.would_deny] == ["sender-denied"]
    assert trial.settings.rule is None and trial.settings.signing is None
    billing = policy.select("api.payments.example", "billing")
    assert billing.denial is None and billing.settings.signing is not None
    assert [v.reason for v in policy.select("x.partners.example", "notifications").would_deny] == [
        "sender-denied"
    ]


def test_not_after_is_honoured_at_check_time(policy: Policy) -> None:
    early = datetime(2000, 1, 1, tzinfo=UTC)
    expired = request("Bearer " + TOKENS["EXPIRED"], client="::1")
    assert authenticate(policy.senders, expired, early).sender
    assert authenticate(policy.senders, expired).sender is None
