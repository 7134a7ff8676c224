"""The command line as a user meets it: help texts, check, explain, ca."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hookwall.cli.main import main
from tests.support.dnsserver import TestDnsServer
from tests.support.paths import POLICIES

HOOKWALL = Path(sys.executable).with_name("hookwall")
GOOD = POLICIES / "good"
BAD = POLICIES / "bad"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HOOKWALL), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_help_teaches_the_commands() -> None:
    out = run("--help").stdout
    for word in ("run", "check", "explain", "ca", "HTTP_PROXY"):
        assert word in out
    run_help = run("run", "--help").stdout
    for flag in ("--policy", "--listen", "--dns-server", "--data-dir", "--log-file"):
        assert flag in run_help


def test_check_accepts_a_good_policy_and_summarises_it() -> None:
    policy = next(GOOD.glob("*.yaml"))
    result = run("check", str(policy))
    assert result.returncode == 0, result.stderr
    assert "policy OK" in result.stdout


def test_check_lists_every_error_with_file_and_line() -> None:
    policy = BAD / "cidrs.yaml"
    result = run("check", str(policy))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if str(policy) in line]
    assert len(lines) >= 2
    assert all(line.split(":")[1].isdigit() for line in lines)


def test_check_of_a_missing_file_is_a_clear_error() -> None:
    result = run("check", "/nonexistent/policy.yaml")
    assert result.returncode == 1
    assert "/nonexistent/policy.yaml" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_with_a_broken_policy_refuses_to_start(tmp_path: Path) -> None:
    policy = tmp_path / "broken.yaml"
    policy.write_text("version: 1\ndefaults:\n  network:\n    allow: [10.0.0.0/33]\n")
    result = run("run", "--policy", str(policy), "--listen", "127.0.0.1:0")
    assert result.returncode == 1
    assert f"{policy}:4" in result.stderr


@pytest.mark.parametrize(
    ("value", "says"),
    [("5ms", "expected 100ms to 1h"), ("2h", "expected 100ms to 1h"), ("often", "duration")],
)
def test_the_policy_poll_interval_is_bounded(value: str, says: str) -> None:
    result = run("run", "--policy-poll", value, "--listen", "127.0.0.1:0")
    assert result.returncode == 2 and says in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://localhost:3000/hook", "address-blocked"),
        ("http://169.254.169.254/latest/meta-data/", "address-blocked"),
        ("https://[::ffff:10.0.0.1]/", "address-blocked"),
        ("http://2130706433/", "address-blocked"),
        ("http://1.2.3.4.5/", "invalid-host"),
    ],
)
def test_explain_without_sending(url: str, reason: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", url, "--dns-server", "127.0.0.1:9"]) == 1
    out = capsys.readouterr().out
    assert f"DENY ({reason})" in out


def test_explain_shows_dns_answers(
    dns_server: TestDnsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    dns_server.add("foo.lvh.test", "127.0.0.1")
    assert main(["explain", "http://foo.lvh.test/", "--dns-server", dns_server.spec]) == 1
    out = capsys.readouterr().out
    assert "127.0.0.1 is in 127.0.0.0/8 loopback" in out
    assert "(dns)" in out


def test_explain_rejects_other_schemes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "ftp://example.com/"]) == 2


def test_ca_is_created_once_with_a_private_key(tmp_path: Path) -> None:
    result = run("ca", "--path", "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 0
    cert = Path(result.stdout.strip())
    assert cert.is_file() and "BEGIN CERTIFICATE" in cert.read_text()
    key = tmp_path / "d" / "mitmproxy-ca.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = run("ca", "--path", "--data-dir", str(tmp_path / "d"))
    assert Path(again.stdout.strip()).read_text() == cert.read_text()
    pem = run("ca", "--data-dir", str(tmp_path / "d")).stdout
    assert pem.startswith("-----BEGIN CERTIFICATE-----")


@pytest.mark.parametrize("scheme", ["standard-webhooks", "github", "stripe", "hmac"])
def test_generated_keys_load_into_a_policy(tmp_path: Path, scheme: str) -> None:
    result = run("keys", "generate", "--scheme", scheme)
    assert result.returncode == 0
    secret = result.stdout.strip()
    assert "\n" not in secret and "key id:" in result.stderr and secret not in result.stderr
    (tmp_path / "k").write_text(secret)
    extra = ", header: X-Sig" if scheme == "hmac" else ""
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "version: 1\ndestinations:\n  - hosts: [a.test]\n"
        f"    signing: {{scheme: {scheme}, secrets: [file:k]{extra}}}\n"
    )
    checked = run("check", str(policy))
    assert checked.returncode == 0, checked.stderr
    assert secret not in checked.stdout


def test_ed25519_keys_print_the_public_key_for_receivers() -> None:
    result = run("keys", "generate", "--scheme", "standard-webhooks", "--ed25519", "--json")
    fields = json.loads(result.stdout)
    assert fields["secret"].startswith("whsk_") and fields["public_key"].startswith("whpk_")
    assert fields["key_id"].startswith("ed25519:")


def test_run_uses_a_provided_ca(tmp_path: Path, dns_server: TestDnsServer) -> None:
    """--ca: every replica intercepts with the one CA senders trust."""
    import trustme

    from tests.support.proxyproc import ProxyProcess

    ca = trustme.CA(organization_name="shared hookwall CA")
    pem = tmp_path / "ca.pem"
    pem.write_bytes(ca.private_key_pem.bytes() + ca.cert_pem.bytes())
    proc = ProxyProcess(
        None, tmp_path / "data", dns=[dns_server.spec], extra_args=["--ca", str(pem)]
    )
    try:
        assert proc.ca_cert.read_bytes() == ca.cert_pem.bytes()
    finally:
        assert proc.stop() == 0
    broken = tmp_path / "broken.pem"
    broken.write_bytes(ca.cert_pem.bytes())  # no key
    result = run(
        "run", "--ca", str(broken), "--data-dir", str(tmp_path / "d2"), "--listen", "127.0.0.1:0"
    )
    assert result.returncode != 0 and "--ca" in result.stderr
