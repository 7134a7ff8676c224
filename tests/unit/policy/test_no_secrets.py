"""``--no-secrets``: a policy checked where its secrets are absent (CI, pre-commit hooks).

References are still checked for their form; values are neither read nor required; the policy
that results is marked, shows no key ids, and no runtime accepts it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hookwall.cli.main import main
from hookwall.destinations.resolver import Resolver
from hookwall.flow.runtime import Runtime
from hookwall.policy import PolicyError, load_policy, summarize

POLICY = """\
version: 1
senders:
  billing:
    credentials: [env:HW_TEST_ABSENT_TOKEN, file:/nonexistent/hookwall/token]
limits:
  backend: redis://127.0.0.1:6379/0
  password: env:HW_TEST_ABSENT_REDIS_PASSWORD
destinations:
  - name: acme
    hosts: [hooks.acme.example]
    signing:
      scheme: standard-webhooks
      secrets:
        - env:HW_TEST_ABSENT_WHSEC
        - {secret: file:missing/whsec.txt, not_after: 2030-01-01T00:00:00Z}
  - name: gh
    hosts: [gh.example]
    signing: {scheme: github, secrets: [env:HW_TEST_ABSENT_GH]}
  - name: sha512
    hosts: [h512.example]
    signing: {scheme: hmac, header: X-Sig, algorithm: sha512, secrets: [env:HW_TEST_ABSENT_HMAC]}
"""


@pytest.fixture
def policy_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("TOKEN", "REDIS_PASSWORD", "WHSEC", "GH", "HMAC"):
        monkeypatch.delenv(f"HW_TEST_ABSENT_{name}", raising=False)
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


def test_without_the_secrets_the_policy_does_not_load(policy_file: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(policy_file)
    text = str(caught.value)
    assert "HW_TEST_ABSENT_WHSEC is not set" in text
    assert "cannot read" in text  # the file: references


def test_no_secrets_checks_the_references_only(policy_file: Path) -> None:
    policy = load_policy(policy_file, read_secrets=False)
    assert not policy.secrets_read
    summary = summarize(policy)
    assert "secrets: not read (--no-secrets)" in summary
    assert "env:HW_TEST_ABSENT_WHSEC (not read)" in summary
    assert "file:missing/whsec.txt (not read)" in summary


def test_stand_ins_are_random_and_no_ones(policy_file: Path) -> None:
    """Two loads give different stand-ins: nothing predictable authenticates or signs."""
    first = load_policy(policy_file, read_secrets=False)
    second = load_policy(policy_file, read_secrets=False)
    senders = [p.senders.get("billing") for p in (first, second)]
    tokens = [c.basic for s in senders if s is not None for c in s.credentials]
    assert len(set(tokens)) == len(tokens) == 4
    keys = [
        key.material
        for p in (first, second)
        for settings in [p.settings_for("hooks.acme.example")]
        for key in (settings.signing.keys if settings.signing else ())
    ]
    assert len(set(keys)) == len(keys) == 4


def test_no_runtime_accepts_a_policy_without_its_secrets(policy_file: Path) -> None:
    policy = load_policy(policy_file, read_secrets=False)
    with pytest.raises(ValueError, match="--no-secrets"):
        Runtime(policy=policy, resolver=Resolver([("127.0.0.1", 53)]))


@pytest.mark.parametrize(
    ("written", "says"),
    [
        ("[whsec_literal]", "literal secrets are not allowed"),
        ('["env:"]', "literal secrets are not allowed"),
        ("[{not_after: 2030-01-01}]", "missing 'secret: env:NAME'"),
        ("[{secret: env:X, not_after: soon}]", "expected a date-time"),
        ("[]", "expected a non-empty list"),
    ],
)
def test_no_secrets_still_refuses_malformed_references(
    tmp_path: Path, written: str, says: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        textwrap.dedent(f"""\
            version: 1
            destinations:
              - name: acme
                hosts: [hooks.acme.example]
                signing: {{scheme: standard-webhooks, secrets: {written}}}
            """)
    )
    with pytest.raises(PolicyError, match=says):
        load_policy(path, read_secrets=False)


def test_check_no_secrets_on_the_command_line(
    policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(policy_file)]) == 1
    assert "HW_TEST_ABSENT_WHSEC is not set" in capsys.readouterr().err
    assert main(["check", "--no-secrets", str(policy_file)]) == 0
    out = capsys.readouterr().out
    assert "secrets: not read" in out
    assert out.rstrip().endswith("policy OK")


def test_explain_no_secrets(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """explain's exit status is the decision's (1: denied), once the policy loads at all."""
    argv = ["explain", "http://127.0.0.1/", "--policy", str(policy_file), "--sender", "billing"]
    assert main(argv) == 1
    assert "HW_TEST_ABSENT_WHSEC is not set" in capsys.readouterr().err
    assert main([*argv, "--no-secrets", "--json"]) == 1
    captured = capsys.readouterr()
    assert '"address-blocked"' in captured.out
    assert captured.err == ""
