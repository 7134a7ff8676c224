"""Access control through the real proxy: senders authenticate, get their own rules, never leak.

Senders here are real clients (requests, httpx, curl) that put their credentials where real
senders do: in the proxy URL (``http://name:token@proxy``, sent as ``Proxy-Authorization:
Basic``), or in a ``Bearer`` header. Every refusal asserts the receiver saw nothing, and the
module ends by grepping every log line and stderr for every token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from hookwall.access.decide import CHALLENGE
from tests.support.dnsserver import TestDnsServer
from tests.support.hostile import head_and_body
from tests.support.launcher import ProxyLauncher
from tests.support.netns import NETWORK_ISOLATED, needs_isolation
from tests.support.proxyproc import HOOKWALL, ProxyProcess, trusting
from tests.support.receivers import Twins, start_receiver

pytestmark = pytest.mark.integration

TOKENS = {name: secrets.token_urlsafe(24) for name in ("billing", "notify", "locked", "remote")}
TOKENS |= {name: secrets.token_urlsafe(24) for name in ("local5", "trial")}
GITHUB_SECRET = "billing's own github signing secret"
ENV = {f"HW_P_{name.upper()}": token for name, token in TOKENS.items()} | {"HW_P_GH": GITHUB_SECRET}

POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
  ca_bundle: {ca}
senders:
  billing: {credentials: [env:HW_P_BILLING]}
  notify: {credentials: [env:HW_P_NOTIFY]}
  locked: {credentials: [env:HW_P_LOCKED], default: deny}
  remote: {credentials: [env:HW_P_REMOTE], clients: [10.0.0.0/8]}
  local5: {credentials: [env:HW_P_LOCAL5], clients: [127.0.0.5/32]}
  trial: {credentials: [env:HW_P_TRIAL], clients: [10.0.0.0/8], default: deny, enforce: false}
destinations:
  - hosts: [pay.hooks.test]
    name: payments
    senders: [billing]
  - hosts: [shared.hooks.test]
    name: shared-all
  - hosts: [shared.hooks.test]
    name: shared-billing
    senders: [billing, locked]
    signing: {scheme: github, secrets: [env:HW_P_GH]}
  - hosts: [pilot.hooks.test]
    name: pilot
    senders: [billing]
    enforce: false
  - hosts: [soon-denied.hooks.test]
    action: deny
    enforce: false
  - hosts: [flood.hooks.test]
    limits: {concurrency: 1, queue: 1, queue_timeout: 300ms, per_sender: true}
"""
NAMES = [
    f"{name}.hooks.test" for name in ("pay", "shared", "pilot", "soon-denied", "flood", "open")
]


@pytest.fixture(scope="module")
def proxy(start_module_proxy: ProxyLauncher) -> Iterator[ProxyProcess]:
    proc = start_module_proxy(POLICY, names=NAMES, env=ENV)
    yield proc
    assert proc.stop() == 0
    assert_no_secret_in(proc)  # after every scenario of this module


def assert_no_secret_in(proc: ProxyProcess) -> None:
    logged = json.dumps(proc.events) + "".join(proc.stderr)
    for name, token in TOKENS.items():
        assert token not in logged
        assert base64.b64encode(f"{name}:{token}".encode()).decode() not in logged
    assert GITHUB_SECRET not in logged


def via(proxy: ProxyProcess, sender: str | None = None) -> dict[str, str]:
    """requests' proxies, with the sender's credentials in the proxy URL like HTTP_PROXY."""
    url = proxy.url
    if sender is not None:
        url = f"http://{sender}:{TOKENS[sender]}@{proxy.host}:{proxy.port}"
    return {"http": url, "https": url}


def basic(name: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{token}".encode()).decode()


def assert_refused(
    response: requests.Response | httpx.Response, reason: str, status: int
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["X-Hookwall-Reason"] == reason
    body: dict[str, Any] = json.loads(response.content)
    assert body["error"] == reason and body["message"]
    assert body["request_id"].startswith("req_")
    if status == 407:
        assert response.headers["Proxy-Authenticate"] == CHALLENGE
        # No keep-alive without credentials: a sender without them cannot hold a connection.
        assert response.headers["Connection"] == "close"
    return body


# -- authentication ----------------------------------------------------------------------------


def test_no_credentials_is_407_with_a_challenge(proxy: ProxyProcess, plain_twins: Twins) -> None:
    allowed, forbidden = plain_twins
    before = len(allowed.requests)
    r = requests.post(
        f"http://open.hooks.test:{allowed.port}/hook", data=b"{}", proxies=via(proxy), timeout=10
    )
    body = assert_refused(r, "auth-required", 407)
    assert "Proxy-Authorization" in body["message"]
    event = proxy.exchange(body["request_id"])
    assert (event["decision"], event["status"], event["reason"]) == ("deny", 407, "auth-required")
    assert event["sender"] is None and event["attempted_sender"] is None
    assert len(allowed.requests) == before and forbidden.connections == 0


MALFORMED = {
    "bad base64": "Basic !!not*base64!!",
    "no colon": "Basic " + base64.b64encode(b"billing").decode(),
    "empty token": basic("billing", ""),
    "empty name": basic("", TOKENS["billing"]),
    "huge header": "Basic " + base64.b64encode(b"billing:" + b"x" * 6000).decode(),
    "unknown scheme": "Negotiate " + TOKENS["billing"],
    "bare token": TOKENS["billing"],
    "empty bearer": "Bearer ",
    "empty header": "",
    "bearer with spaces": "Bearer " + TOKENS["billing"] + " extra",
}
WRONG = {
    "wrong token": (basic("billing", secrets.token_urlsafe(24)), "billing"),
    "truncated token": (basic("billing", TOKENS["billing"][:-1]), "billing"),
    "another sender's token": (basic("billing", TOKENS["notify"]), "billing"),
    "unknown sender": (basic("mallory", TOKENS["billing"]), None),
    "token as the name": (basic(TOKENS["billing"], "x"), None),
    "truncated bearer": ("Bearer " + TOKENS["billing"][:-1], None),
}


@pytest.mark.parametrize("header", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_credentials_are_407(
    proxy: ProxyProcess, plain_twins: Twins, header: str
) -> None:
    allowed, _ = plain_twins
    before = len(allowed.requests)
    r = requests.get(
        f"http://open.hooks.test:{allowed.port}/",
        headers={"Proxy-Authorization": header},
        proxies=via(proxy),
        timeout=10,
    )
    body = assert_refused(r, "auth-required", 407)
    assert "malformed" in body["message"]
    assert TOKENS["billing"] not in r.text
    event = proxy.exchange(body["request_id"])
    assert event["sender"] is None and event["attempted_sender"] is None
    assert len(allowed.requests) == before


@pytest.mark.parametrize(("header", "attempted"), WRONG.values(), ids=WRONG.keys())
def test_wrong_credentials_are_407_and_log_only_a_configured_name(
    proxy: ProxyProcess, plain_twins: Twins, header: str, attempted: str | None
) -> None:
    allowed, _ = plain_twins
    before = len(allowed.requests)
    r = requests.get(
        f"http://open.hooks.test:{allowed.port}/",
        headers={"Proxy-Authorization": header},
        proxies=via(proxy),
        timeout=10,
    )
    body = assert_refused(r, "auth-required", 407)
    assert body["message"] == "the proxy credentials are not valid"  # same for every case
    event = proxy.exchange(body["request_id"])
    assert event["sender"] is None and event["attempted_sender"] == attempted
    assert len(allowed.requests) == before


def test_right_credentials_deliver_and_never_reach_the_receiver(
    proxy: ProxyProcess, plain_twins: Twins
) -> None:
    allowed, forbidden = plain_twins
    r = requests.post(
        f"http://open.hooks.test:{allowed.port}/basic",
        json={"n": 1},
        proxies=via(proxy, "billing"),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    seen = allowed.requests[-1]
    assert seen.path == "/basic"
    assert not any(h.startswith("proxy-") for h in seen.headers)
    assert all(TOKENS["billing"] not in v for v in seen.headers.values())
    event = proxy.exchange(url=f"http://open.hooks.test:{allowed.port}/basic")
    assert (event["sender"], event["decision"], event["status"]) == ("billing", "allow", 200)

    r = requests.post(
        f"http://open.hooks.test:{allowed.port}/bearer",
        data=b"{}",
        headers={"Proxy-Authorization": f"Bearer {TOKENS['notify']}"},
        proxies=via(proxy),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert "proxy-authorization" not in allowed.requests[-1].headers
    assert proxy.exchange(url=f"http://open.hooks.test:{allowed.port}/bearer")["sender"] == "notify"
    assert forbidden.connections == 0
    assert_no_secret_in(proxy)


def test_sender_is_logged_on_other_denials_too(proxy: ProxyProcess, plain_twins: Twins) -> None:
    _, forbidden = plain_twins
    r = requests.get(
        f"http://localhost:{forbidden.port}/", proxies=via(proxy, "notify"), timeout=10
    )
    body = assert_refused(r, "address-blocked", 403)
    assert proxy.exchange(body["request_id"])["sender"] == "notify"
    assert forbidden.connections == 0


def test_curl_with_credentials_in_the_proxy_url(proxy: ProxyProcess, plain_twins: Twins) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    allowed, _ = plain_twins
    url = f"http://open.hooks.test:{allowed.port}/curl"
    ok = subprocess.run(
        ["curl", "-sS", "-x", via(proxy, "billing")["http"], "-d", "{}", url],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert ok.returncode == 0 and json.loads(ok.stdout) == {"ok": True}, ok.stderr
    assert proxy.exchange(url=url)["sender"] == "billing"
    refused = subprocess.run(
        ["curl", "-sS", "-i", "-x", proxy.url, url], capture_output=True, text=True, timeout=20
    )
    assert " 407 " in refused.stdout.splitlines()[0]
    assert "proxy-authenticate: basic realm=" in refused.stdout.lower()


# -- source addresses --------------------------------------------------------------------------


def test_right_credentials_from_the_wrong_source(proxy: ProxyProcess, plain_twins: Twins) -> None:
    allowed, _ = plain_twins
    before = len(allowed.requests)
    r = requests.get(
        f"http://open.hooks.test:{allowed.port}/", proxies=via(proxy, "remote"), timeout=10
    )
    body = assert_refused(r, "sender-denied", 403)
    assert "127.0.0.1" in body["message"]
    event = proxy.exchange(body["request_id"])
    assert event["sender"] == "remote" and event["reason"] == "sender-denied"
    assert len(allowed.requests) == before


def test_clients_cidr_admits_its_own_source(proxy: ProxyProcess, plain_twins: Twins) -> None:
    allowed, _ = plain_twins
    url = f"http://open.hooks.test:{allowed.port}/local5"
    request = (
        f"GET {url} HTTP/1.1\r\nHost: open.hooks.test\r\nConnection: close\r\n"
        f"Proxy-Authorization: {basic('local5', TOKENS['local5'])}\r\n\r\n"
    )
    head, body = head_and_body(proxy, request, source="127.0.0.5")  # clients: [127.0.0.5/32]
    assert head.startswith(b"HTTP/1.1 200"), head
    event = proxy.exchange(url=url)
    assert event["sender"] == "local5" and event["client"].startswith("127.0.0.5:")
    head, body = head_and_body(proxy, request)  # from 127.0.0.1
    assert head.startswith(b"HTTP/1.1 403") and json.loads(body)["error"] == "sender-denied"


# -- per-sender rules --------------------------------------------------------------------------


def test_a_sender_cannot_reach_a_host_only_another_sender_may_reach(
    proxy: ProxyProcess, plain_twins: Twins
) -> None:
    allowed, _ = plain_twins
    url = f"http://pay.hooks.test:{allowed.port}/pay"
    before = len(allowed.requests)
    for sender in ("notify", "locked"):
        r = requests.post(url, data=b"{}", proxies=via(proxy, sender), timeout=10)
        body = assert_refused(r, "sender-denied", 403)
        assert "billing" not in body["message"] and "payments" not in body["message"]
        assert proxy.exchange(body["request_id"])["sender"] == sender
    assert len(allowed.requests) == before
    r = requests.post(url, data=b"{}", proxies=via(proxy, "billing"), timeout=10)
    assert r.status_code == 200
    assert proxy.exchange(url=url, sender="billing")["rule"] == "payments"


def test_a_default_deny_sender_reaches_only_its_hosts(
    proxy: ProxyProcess, plain_twins: Twins
) -> None:
    allowed, _ = plain_twins
    before = len(allowed.requests)
    r = requests.get(
        f"http://open.hooks.test:{allowed.port}/", proxies=via(proxy, "locked"), timeout=10
    )
    assert_refused(r, "sender-denied", 403)
    assert len(allowed.requests) == before
    r = requests.get(
        f"http://shared.hooks.test:{allowed.port}/locked", proxies=via(proxy, "locked"), timeout=10
    )
    assert r.status_code == 200


def github_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()


def test_a_sender_scoped_rule_beats_the_unscoped_one(
    proxy: ProxyProcess, plain_twins: Twins
) -> None:
    allowed, _ = plain_twins
    payload = b'{"event": "invoice.paid"}'
    url = f"http://shared.hooks.test:{allowed.port}/shared"
    r = requests.post(url, data=payload, proxies=via(proxy, "billing"), timeout=10)
    assert r.status_code == 200
    assert allowed.requests[-1].headers["x-hub-signature-256"] == github_signature(payload)
    event = proxy.exchange(url=url, sender="billing")
    assert (event["rule"], event["signed"]) == ("shared-billing", "github")

    r = requests.post(url, data=payload, proxies=via(proxy, "notify"), timeout=10)
    assert r.status_code == 200
    assert "x-hub-signature-256" not in allowed.requests[-1].headers  # not billing's key
    event = proxy.exchange(url=url, sender="notify")
    assert (event["rule"], event["signed"]) == ("shared-all", False)


# -- CONNECT -----------------------------------------------------------------------------------


def test_credentials_on_connect_hold_for_the_whole_tunnel(
    proxy: ProxyProcess, tls_twins: Twins
) -> None:
    allowed, forbidden = tls_twins
    base = f"https://shared.hooks.test:{allowed.port}"
    mark = proxy.mark()
    with httpx.Client(
        proxy=via(proxy, "billing")["https"], verify=trusting(proxy.ca_cert), timeout=10
    ) as client:
        for path in ("/t1", "/t2", "/t3"):  # one tunnel, three requests without credentials
            assert client.post(base + path, content=b"{}").status_code == 200
    for path in ("/t1", "/t2", "/t3"):
        event = proxy.exchange(url=base + path, start=mark)
        assert (event["sender"], event["rule"], event["signed"]) == (
            "billing",
            "shared-billing",
            "github",
        )
    assert allowed.connections >= 1
    assert all("proxy-authorization" not in s.headers for s in allowed.requests)
    assert forbidden.connections == 0


def test_connect_without_or_with_bad_credentials_is_407(
    proxy: ProxyProcess, tls_twins: Twins
) -> None:
    allowed, _ = tls_twins
    before = allowed.connections
    with (
        httpx.Client(proxy=proxy.url, verify=trusting(proxy.ca_cert), timeout=10) as client,
        pytest.raises(httpx.ProxyError) as info,
    ):
        client.post(f"https://open.hooks.test:{allowed.port}/")
    assert "407" in str(info.value)
    event = proxy.exchange(method="CONNECT", reason="auth-required", port=allowed.port)
    assert event["sender"] is None and event["status"] == 407
    for header in (MALFORMED["bad base64"], WRONG["wrong token"][0], MALFORMED["huge header"]):
        head, body = head_and_body(
            proxy,
            f"CONNECT open.hooks.test:{allowed.port} HTTP/1.1\r\nHost: open.hooks.test\r\n"
            f"Proxy-Authorization: {header}\r\n\r\n",
        )
        assert head.startswith(b"HTTP/1.1 407"), head
        assert f"Proxy-Authenticate: {CHALLENGE}".encode() in head
        assert json.loads(body)["error"] == "auth-required"
    assert allowed.connections == before  # nothing was opened upstream


def test_connect_to_another_senders_host_is_refused_on_the_connect(
    proxy: ProxyProcess, tls_twins: Twins
) -> None:
    allowed, _ = tls_twins
    before = allowed.connections
    with (
        httpx.Client(
            proxy=via(proxy, "notify")["https"], verify=trusting(proxy.ca_cert), timeout=10
        ) as client,
        pytest.raises(httpx.ProxyError) as info,
    ):
        client.post(f"https://pay.hooks.test:{allowed.port}/")
    assert "403" in str(info.value)
    event = proxy.exchange(method="CONNECT", reason="sender-denied", sender="notify")
    assert event["host"] == "pay.hooks.test"
    assert allowed.connections == before


# -- report-only -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sender", "host", "would_deny", "rule"),
    [
        ("trial", "open", "sender-denied", None),  # wrong source and default deny: both logged
        ("notify", "pilot", "sender-denied", None),  # billing's report-only rule
        ("notify", "soon-denied", "host-denied", None),  # action: deny, enforce: false
    ],
)
def test_report_only_logs_would_deny_and_lets_through(
    proxy: ProxyProcess,
    plain_twins: Twins,
    sender: str,
    host: str,
    would_deny: str,
    rule: str | None,
) -> None:
    allowed, _ = plain_twins
    url = f"http://{host}.hooks.test:{allowed.port}/report-only"
    mark = proxy.mark()
    r = requests.post(url, data=b"{}", proxies=via(proxy, sender), timeout=10)
    assert r.status_code == 200, r.text
    assert "x-hookwall-reason" not in {k.lower() for k in r.headers}
    event = proxy.exchange(url=url, sender=sender, start=mark)
    assert event["decision"] == "allow" and event["reason"] is None
    assert event["would_deny"] == would_deny and event["would_deny_message"]
    assert event["rule"] == rule  # never the rule of another sender
    if sender == "trial":
        assert "may not connect from 127.0.0.1" in event["would_deny_message"]
        assert "may reach only the destinations listed" in event["would_deny_message"]


def test_report_only_inside_a_tunnel(proxy: ProxyProcess, tls_twins: Twins) -> None:
    allowed, _ = tls_twins
    url = f"https://open.hooks.test:{allowed.port}/trial"
    with httpx.Client(
        proxy=via(proxy, "trial")["https"], verify=trusting(proxy.ca_cert), timeout=10
    ) as client:
        assert client.post(url, content=b"{}").status_code == 200
    event = proxy.exchange(url=url, sender="trial")
    assert event["would_deny"] == "sender-denied"
    assert "may not connect from" in event["would_deny_message"]


# -- flood control per sender ------------------------------------------------------------------


def test_per_sender_budgets_keep_senders_apart(proxy: ProxyProcess) -> None:
    receiver = start_receiver("127.0.0.2")
    receiver.gate = threading.Event()
    url = f"http://flood.hooks.test:{receiver.port}/"
    try:
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(requests.get, url, proxies=via(proxy, "billing"), timeout=20)
            assert receiver.arrived.wait(10)  # billing holds its one slot
            receiver.arrived.clear()
            second = pool.submit(requests.get, url, proxies=via(proxy, "notify"), timeout=20)
            assert receiver.arrived.wait(10)  # notify has a budget of its own
            again = requests.get(url, proxies=via(proxy, "billing"), timeout=10)
            assert_refused(again, "queue-timeout", 503)  # billing's budget is full
            receiver.gate.set()
            assert first.result().status_code == 200 and second.result().status_code == 200
        assert len(receiver.requests) == 2
    finally:
        receiver.gate.set()
        receiver.stop()


# -- explain agrees with the proxy -------------------------------------------------------------


@pytest.mark.parametrize(
    ("sender", "host"),
    [
        (None, "open"),
        ("billing", "pay"),
        ("notify", "pay"),
        ("locked", "open"),
        ("locked", "shared"),
        ("billing", "shared"),
        ("notify", "soon-denied"),
        ("trial", "open"),
    ],
)
def test_explain_sender_agrees_with_the_proxy(
    proxy: ProxyProcess,
    dns_server: TestDnsServer,
    plain_twins: Twins,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sender: str | None,
    host: str,
) -> None:
    from hookwall.cli.main import main

    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    allowed, _ = plain_twins
    url = f"http://{host}.hooks.test:{allowed.port}/explain"
    args = ["explain", url, "--policy", str(proxy.policy), "--dns-server", dns_server.spec]
    args.append("--json")
    code = main([*args, "--sender", sender] if sender else args)
    explained = json.loads(capsys.readouterr().out)
    mark = proxy.mark()
    r = requests.post(url, data=b"{}", proxies=via(proxy, sender), timeout=10)
    proxied = r.headers.get("X-Hookwall-Reason")
    assert explained["reason"] == proxied
    assert explained["decision"] == ("allow" if proxied is None else "deny")
    assert code == (0 if proxied is None else 1)
    assert explained["sender"] == sender
    if proxied is None:
        event = proxy.exchange(url=url, start=mark)
        assert explained["rule"] == event["rule"]
        assert [w["reason"] for w in explained["would_deny"]][:1] == (
            [event["would_deny"]] if event["would_deny"] else []
        )


def test_explain_rejects_an_unknown_sender(
    proxy: ProxyProcess, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hookwall.cli.main import main

    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    code = main(
        ["explain", "http://open.hooks.test/", "--policy", str(proxy.policy), "--sender", "x"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown sender 'x'" in err and "billing" in err


# -- start-up: never an open proxy -------------------------------------------------------------


def run_hookwall(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HOOKWALL), "run", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0", "proxy.example:0"])
def test_a_public_listen_address_without_senders_refuses_to_start(
    tmp_path: Path, listen: str
) -> None:
    result = run_hookwall("--listen", listen, "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 1
    assert "open proxy" in result.stderr and "--allow-unauthenticated" in result.stderr
    assert "senders" in result.stderr
    assert "proxy_started" not in result.stdout  # refused before binding anything
    assert not (tmp_path / "d").exists()  # nor creating anything


def test_allow_unauthenticated_warns_at_every_start(
    start_proxy: ProxyLauncher, tmp_path: Path
) -> None:
    for _ in range(2):
        proc = start_proxy(None, args=["--allow-unauthenticated"], data_dir=tmp_path / "d")
        warning = proc.wait_for(lambda e: e.get("event") == "unauthenticated_listener")
        assert warning["level"] == "warning" and "define senders" in warning["message"]
        assert proc.stop() == 0


def test_run_help_shows_the_flag(run_help: str) -> None:
    assert "--allow-unauthenticated" in run_help


@pytest.fixture
def public_address() -> Iterator[str]:
    """A non-loopback address on ``lo``: only inside the test's own network namespace."""
    if not NETWORK_ISOLATED:
        pytest.skip("needs the test network namespace")
    address = "10.77.0.1"
    subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)
    try:
        yield address
    finally:
        subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], check=False)


OPEN = (
    'version: 1\nunsafe: true\ndefaults:\n  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}\n'
)


@needs_isolation
def test_public_listen_address_needs_senders_or_the_flag(
    start_proxy: ProxyLauncher, tmp_path: Path, public_address: str, plain_twins: Twins
) -> None:
    allowed, _ = plain_twins
    listen = f"{public_address}:0"
    data = tmp_path / "d"
    refused = run_hookwall("--listen", listen, "--data-dir", str(data))
    assert refused.returncode == 1 and "open proxy" in refused.stderr

    flagged = start_proxy(
        OPEN, names=NAMES, listen=listen, args=["--allow-unauthenticated"], data_dir=data
    )
    assert flagged.host == public_address
    warning = flagged.wait_for(lambda e: e.get("event") == "unauthenticated_listener")
    assert warning["listen"] == [listen]
    r = requests.get(f"http://open.hooks.test:{allowed.port}/", proxies=via(flagged), timeout=10)
    assert r.status_code == 200
    assert flagged.stop() == 0

    guarded = start_proxy(POLICY, names=NAMES, listen=listen, env=ENV, data_dir=data)
    assert not any(e.get("event") == "unauthenticated_listener" for e in guarded.events)
    url = f"http://open.hooks.test:{allowed.port}/"
    assert_refused(requests.get(url, proxies=via(guarded), timeout=10), "auth-required", 407)
    r = requests.get(url, proxies=via(guarded, "billing"), timeout=10)
    assert r.status_code == 200
    assert guarded.stop() == 0
    assert_no_secret_in(guarded)


def test_loopback_with_senders_still_requires_credentials(proxy: ProxyProcess) -> None:
    assert proxy.host == "127.0.0.1"
    r = requests.get("http://open.hooks.test/", proxies=via(proxy), timeout=10)
    assert_refused(r, "auth-required", 407)
