"""``hookwall doctor`` as a sender runs it: a subprocess with an environment of its own, against a
real proxy. A good environment exits 0; each broken one exits 1 and prints the line that fixes
it; a token is never printed.

The doctor's environment is built from nothing (``doctor_env``): no variable of the test run
leaks into it, so every proxy and CA variable it sees is the test's.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.launcher import ProxyLauncher
from tests.support.proxyproc import HOOKWALL, ProxyProcess

pytestmark = pytest.mark.integration

TOKEN = secrets.token_urlsafe(24)
SENDERS = """\
version: 1
senders:
  billing: {credentials: [env:HW_DR_BILLING]}
"""
CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "CURL_CA_BUNDLE")


def doctor_env(proxy_url: str | None, ca: Path | None, **extra: str) -> dict[str, str]:
    """A sender's environment: the proxy in both cases, every CA variable at ``ca``."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    if "PYTHONPATH" in os.environ:  # the code under test, as the test run imports it
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    if proxy_url is not None:
        for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
            env[name] = proxy_url
    if ca is not None:
        env |= dict.fromkeys(CA_VARIABLES, str(ca))
    return env | extra


def doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HOOKWALL), "doctor", "--timeout", "5", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def with_credentials(proxy: ProxyProcess, name: str, token: str) -> str:
    return f"http://{name}:{token}@{proxy.host}:{proxy.port}"


@pytest.fixture(scope="module")
def open_proxy(start_module_proxy: ProxyLauncher) -> ProxyProcess:
    return start_module_proxy(None)


@pytest.fixture(scope="module")
def senders_proxy(start_module_proxy: ProxyLauncher) -> ProxyProcess:
    return start_module_proxy(SENDERS, env={"HW_DR_BILLING": TOKEN})


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it), not
    listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_a_good_environment_exits_0(open_proxy: ProxyProcess) -> None:
    mark = open_proxy.mark()
    result = doctor(doctor_env(open_proxy.url, open_proxy.ca_cert))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all is well." in result.stdout
    assert "answered by hookwall" in result.stdout and "mode regular" in result.stdout
    assert f"SSL_CERT_FILE={open_proxy.ca_cert}: trusts hookwall's CA" in result.stdout
    # The plain probe and one handshake (one bundle, four variables) reached hookwall.
    events = open_proxy.wait_count(lambda e: e.get("host") == "hookwall.invalid", 2, start=mark)
    assert {e["url"] for e in events} >= {
        "http://hookwall.invalid/whoami",
        "https://hookwall.invalid/whoami",
    }


def test_the_json_report(open_proxy: ProxyProcess) -> None:
    result = doctor(doctor_env(open_proxy.url, open_proxy.ca_cert), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["ok"] is True and report["problems"] == 0
    assert report["whoami"]["through_hookwall"] is True
    assert report["whoami"]["mode"] == "regular"
    assert {f["topic"] for f in report["findings"]} >= {"proxy", "whoami", "ca"}


def test_a_good_environment_with_senders_authenticates(senders_proxy: ProxyProcess) -> None:
    url = with_credentials(senders_proxy, "billing", TOKEN)
    result = doctor(doctor_env(url, senders_proxy.ca_cert))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sender billing" in result.stdout and "accepted: sender billing" in result.stdout
    assert TOKEN not in result.stdout + result.stderr
    assert "billing:****@" in result.stdout


def test_upper_case_only_exits_1_with_the_fix(open_proxy: ProxyProcess) -> None:
    env = doctor_env(open_proxy.url, open_proxy.ca_cert)
    del env["http_proxy"], env["https_proxy"]
    result = doctor(env)
    assert result.returncode == 1, result.stdout
    assert 'fix: export http_proxy="$HTTP_PROXY"' in result.stdout
    assert 'fix: export https_proxy="$HTTPS_PROXY"' in result.stdout
    assert "2 problems found" in result.stdout


def test_missing_credentials_exit_1_with_the_fix(senders_proxy: ProxyProcess) -> None:
    result = doctor(doctor_env(senders_proxy.url, senders_proxy.ca_cert))
    assert result.returncode == 1, result.stdout
    assert "asks for proxy credentials" in result.stdout
    assert f"NAME:TOKEN@{senders_proxy.host}:{senders_proxy.port}" in result.stdout


def test_wrong_credentials_exit_1_and_are_never_printed(senders_proxy: ProxyProcess) -> None:
    wrong = secrets.token_urlsafe(16)
    result = doctor(doctor_env(with_credentials(senders_proxy, "billing", wrong), None))
    assert result.returncode == 1, result.stdout
    assert "refused the credentials of sender 'billing'" in result.stdout
    assert wrong not in result.stdout + result.stderr


def test_a_bundle_with_another_ca_exits_1(open_proxy: ProxyProcess, receiver_ca_file: Path) -> None:
    env = doctor_env(open_proxy.url, open_proxy.ca_cert, REQUESTS_CA_BUNDLE=str(receiver_ca_file))
    result = doctor(env)
    assert result.returncode == 1, result.stdout
    line = next(x for x in result.stdout.splitlines() if "REQUESTS_CA_BUNDLE=" in x)
    assert "does not trust hookwall's CA" in line and "none of them hookwall's CA" in line
    assert 'export REQUESTS_CA_BUNDLE="$PWD/hookwall-ca.pem"' in result.stdout


def test_a_bundle_that_is_not_there_exits_1(open_proxy: ProxyProcess, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    result = doctor(doctor_env(open_proxy.url, open_proxy.ca_cert, CURL_CA_BUNDLE=str(missing)))
    assert result.returncode == 1, result.stdout
    assert f"CURL_CA_BUNDLE={missing}: no such file" in result.stdout
    assert "http://hookwall.invalid/ca.pem" in result.stdout


def test_the_fix_for_a_missing_ca_fetches_hookwalls(
    open_proxy: ProxyProcess, tmp_path: Path
) -> None:
    """The CA the fix line fetches (through the proxy, from hookwall.invalid) is trusted."""
    fetched = tmp_path / "hookwall-ca.pem"
    import httpx

    with httpx.Client(proxy=open_proxy.url, timeout=10) as client:
        fetched.write_bytes(client.get("http://hookwall.invalid/ca.pem").content)
    result = doctor(doctor_env(open_proxy.url, fetched))
    assert result.returncode == 0, result.stdout


def test_no_proxy_star_exits_1(open_proxy: ProxyProcess) -> None:
    env = doctor_env(open_proxy.url, open_proxy.ca_cert, no_proxy="*", NO_PROXY="*")
    result = doctor(env)
    assert result.returncode == 1, result.stdout
    assert "fix: unset no_proxy NO_PROXY" in result.stdout


def test_an_https_proxy_url_exits_1(open_proxy: ProxyProcess) -> None:
    https_url = open_proxy.url.replace("http://", "https://")
    env = doctor_env(open_proxy.url, open_proxy.ca_cert, https_proxy=https_url)
    env["HTTPS_PROXY"] = https_url
    result = doctor(env)
    assert result.returncode == 1, result.stdout
    assert "plain HTTP" in result.stdout
    assert 'https_proxy="${https_proxy/#https:/http:}"' in result.stdout


def test_no_proxy_set_exits_1(open_proxy: ProxyProcess) -> None:
    result = doctor(doctor_env(None, open_proxy.ca_cert))
    assert result.returncode == 1, result.stdout
    assert "no proxy is set" in result.stdout and "fix: export http_proxy=" in result.stdout


def test_a_proxy_not_listening_exits_1(closed_port: int, tmp_path: Path) -> None:
    result = doctor(doctor_env(f"http://127.0.0.1:{closed_port}", tmp_path / "none.pem"))
    assert result.returncode == 1, result.stdout
    assert f"nothing answered at http://127.0.0.1:{closed_port}" in result.stdout
    assert result.stdout.count("nothing answered") == 1  # said once, for both probes


def test_proxy_overrides_the_environment(open_proxy: ProxyProcess, closed_port: int) -> None:
    env = doctor_env(f"http://127.0.0.1:{closed_port}", open_proxy.ca_cert)
    result = doctor(env, "--proxy", open_proxy.url)
    assert result.returncode == 0, result.stdout
    assert "answered by hookwall" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--timeout", "0"],
        ["--timeout", "x"],
        ["--bogus"],
        ["--proxy", "socks5://127.0.0.1:1080"],
        ["--proxy", "http://"],
        ["--destination", "ftp://example.com/"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = doctor(doctor_env(None, None), *args)
    assert result.returncode == 2, result.stdout + result.stderr


def test_a_usage_error_never_prints_the_token() -> None:
    result = doctor(doctor_env(None, None), "--proxy", f"socks5://billing:{TOKEN}@127.0.0.1:1")
    assert result.returncode == 2 and "billing:****@" in result.stderr
    assert TOKEN not in result.stdout + result.stderr


def test_help_teaches() -> None:
    result = doctor(doctor_env(None, None), "--help")
    assert result.returncode == 0
    for word in ("hookwall.invalid", "HTTPS_PROXY", "NODE_EXTRA_CA_CERTS", "--json", "exit status"):
        assert word in result.stdout
