"""SSRF protection through the real running proxy, with real clients (httpx, requests, curl).

Layout: an "allowed" receiver on 127.0.0.2 (made public by a policy exception) and a
"forbidden" twin on 127.0.0.1 with the same port. Every refused case asserts the forbidden
twin saw zero connections; the test DNS server serves lvh.me-style, mixed and rebinding names.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from tests.support.dnsserver import TestDnsServer
from tests.support.hostile import head_and_body, through_tunnel
from tests.support.launcher import ProxyLauncher
from tests.support.netns import TEST_IPV6, needs_isolation
from tests.support.proxyproc import ProxyProcess, trusting
from tests.support.receivers import Receiver, Twins

pytestmark = pytest.mark.integration

POLICY = """\
version: 1
unsafe: true
dns:
  timeout: 500ms
defaults:
  network:
    deny: [special-purpose]
    allow: [127.0.0.2/32]
    ports: ["1-65535"]
  ca_bundle: {ca}
destinations:
  - hosts: [denied.hooks.test]
    action: deny
  - hosts: [passthrough.hooks.test]
    tls: passthrough
  - hosts: [upgrade.hooks.test]
    upgrade: true
  - hosts: [narrow.hooks.test]
    network: {ports: [443]}
"""
NAMES: dict[str, str | list[str]] = {
    "hooks.test": "127.0.0.2",
    "passthrough.hooks.test": "127.0.0.2",
    "upgrade.hooks.test": "127.0.0.2",
    "narrow.hooks.test": "127.0.0.2",
    "denied.hooks.test": "127.0.0.2",
    "foo.lvh.test": "127.0.0.1",
    "mixed.test": ["127.0.0.2", "10.0.0.1"],
    "mixed6.test": ["127.0.0.2", "::1"],
    "mapped.test": "::ffff:127.0.0.1",
    "nat64.test": "64:ff9b::7f00:1",
    "metadata.test": "169.254.169.254",
}


@pytest.fixture(scope="module")
def names(dns_server: TestDnsServer) -> TestDnsServer:
    """Hostile DNS: a rebinding name (127.0.0.2, then 127.0.0.1), SERVFAIL and silence."""
    dns_server.add_rounds("rebind.test", ["127.0.0.2"], ["127.0.0.1"], ttl=0)
    dns_server.servfail("servfail.test")
    dns_server.silent("silent.test")  # the proxy gives up after its dns.timeout (500 ms)
    return dns_server


@pytest.fixture(scope="module")
def proxy(start_module_proxy: ProxyLauncher, names: TestDnsServer) -> ProxyProcess:
    return start_module_proxy(POLICY, names=NAMES)


def proxies(proxy: ProxyProcess) -> dict[str, str]:
    return {"http": proxy.url, "https": proxy.url}


def assert_denied(
    response: requests.Response | httpx.Response, reason: str, status: int = 403
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["X-Hookwall-Reason"] == reason
    body: dict[str, Any] = json.loads(response.content)
    assert body["error"] == reason
    assert body["message"]
    assert body["request_id"].startswith("req_")
    return body


# -- allowed deliveries ------------------------------------------------------------------------


def test_plain_http_delivery_goes_through_unchanged(
    proxy: ProxyProcess, plain_twins: Twins
) -> None:
    allowed, forbidden = plain_twins
    before = len(allowed.requests)
    r = requests.post(
        f"http://hooks.test:{allowed.port}/hook?x=1",
        json={"type": "invoice.paid"},
        proxies=proxies(proxy),
        headers={
            "X-Custom": "kept",
            "Proxy-Authorization": "Basic c2VuZGVyOnNlY3JldA==",
            "Proxy-Connection": "keep-alive",
            "Connection": "keep-alive, X-Hop-Secret",
            "X-Hop-Secret": "for the proxy only",
            "Keep-Alive": "timeout=5",
            "Upgrade": "h2c",
            "X-Hookwall-Debug": "1",
        },
        timeout=10,
    )
    assert r.status_code == 200, r.text
    seen = allowed.requests[before]
    for hop in (
        "proxy-authorization",
        "proxy-connection",
        "x-hop-secret",
        "keep-alive",
        "upgrade",
        "x-hookwall-debug",
    ):
        assert hop not in seen.headers
    assert "c2VuZGVyOnNlY3JldA" not in json.dumps(proxy.events)
    assert (seen.method, seen.path) == ("POST", "/hook?x=1")
    assert seen.headers["host"] == f"hooks.test:{allowed.port}"
    assert seen.headers["x-custom"] == "kept"
    assert json.loads(seen.body) == {"type": "invoice.paid"}
    assert not any(h.startswith("proxy-") for h in seen.headers)
    event = proxy.exchange(host="hooks.test", method="POST", status=200)
    assert event["decision"] == "allow" and event["reason"] is None
    assert event["peer_ip"] == "127.0.0.2"
    assert event["resolved_ips"] == ["127.0.0.2"]
    assert event["url"] == f"http://hooks.test:{allowed.port}/hook?x=1"
    assert event["request_bytes"] == len(seen.body)
    assert forbidden.connections == 0


def test_https_delivery_is_intercepted_pinned_and_verified(
    proxy: ProxyProcess, tls_twins: Twins
) -> None:
    allowed, forbidden = tls_twins
    with httpx.Client(proxy=proxy.url, verify=trusting(proxy.ca_cert), timeout=10) as client:
        r = client.post(f"https://hooks.test:{allowed.port}/secure", json={"n": 1})
    assert r.status_code == 200, r.text
    assert allowed.requests[-1].path == "/secure"
    assert allowed.requests[-1].headers["host"] == f"hooks.test:{allowed.port}"
    event = proxy.exchange(
        host="hooks.test", method="POST", url=f"https://hooks.test:{allowed.port}/secure"
    )
    assert event["peer_ip"] == "127.0.0.2" and event["status"] == 200
    assert forbidden.connections == 0


def test_upstream_keepalive_survives_pinning(proxy: ProxyProcess, plain_twins: Twins) -> None:
    allowed, _ = plain_twins
    connections_before = allowed.connections
    with requests.Session() as session:
        for _ in range(5):
            r = session.post(
                f"http://hooks.test:{allowed.port}/ka",
                data=b"x",
                proxies=proxies(proxy),
                timeout=10,
            )
            assert r.status_code == 200
    assert allowed.connections - connections_before == 1


def test_curl_through_the_proxy(proxy: ProxyProcess, plain_twins: Twins) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    allowed, forbidden = plain_twins
    ok = subprocess.run(
        ["curl", "-sS", "-x", proxy.url, "-d", "{}", f"http://hooks.test:{allowed.port}/curl"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert ok.returncode == 0 and json.loads(ok.stdout) == {"ok": True}
    denied = subprocess.run(
        ["curl", "-sS", "-i", "-x", proxy.url, f"http://localhost:{forbidden.port}/"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert " 403 " in denied.stdout.splitlines()[0]
    assert "x-hookwall-reason: address-blocked" in denied.stdout.lower()
    assert forbidden.connections == 0


# -- refused deliveries ------------------------------------------------------------------------

LOOPBACK_SPELLINGS = [
    "localhost",
    "LOCALHOST.",
    "foo.localhost",
    "localhost.localdomain",
    "ip6-localhost",
    "127.0.0.1",
    "2130706433",
    "0x7f000001",
    "0x7f.1",
    "0177.0.0.1",
    "127.1",
    "127.0.1",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:0:0:1]",
    "foo.lvh.test",
    "mixed6.test",
    "mapped.test",
    "nat64.test",
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_loopback_in_any_spelling_is_refused_before_connecting(
    proxy: ProxyProcess, plain_twins: Twins, host: str
) -> None:
    _, forbidden = plain_twins
    r = requests.post(
        f"http://{host}:{forbidden.port}/hook", data=b"{}", proxies=proxies(proxy), timeout=10
    )
    body = assert_denied(r, "address-blocked")
    event = proxy.exchange(body["request_id"])
    assert event["decision"] == "deny" and event["status"] == 403
    assert event["reason"] == "address-blocked" and event["error"]
    assert event["peer_ip"] is None
    assert forbidden.connections == 0


# (httpx writes IPv6 CONNECT targets without brackets, which mitmproxy rejects as malformed;
# the raw-socket test below covers bracketed IPv6.)
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "foo.lvh.test", "2130706433"])
def test_connect_to_loopback_is_refused_inside_tls(
    proxy: ProxyProcess, tls_twins: Twins, host: str
) -> None:
    """The CONNECT is accepted and the request inside answered with the refusal
    (connect_refusals: inside-tls, tests/integration/test_tls_refusals.py)."""
    _, forbidden = tls_twins
    with httpx.Client(proxy=proxy.url, verify=trusting(proxy.ca_cert), timeout=10) as client:
        r = client.post(f"https://{host}:{forbidden.port}/")
    body = assert_denied(r, "address-blocked")
    event = proxy.exchange(body["request_id"], reason="address-blocked", port=forbidden.port)
    assert event["decision"] == "deny" and event["peer_ip"] is None
    assert forbidden.connections == 0


def test_connect_denial_carries_reason_and_json(proxy: ProxyProcess, tls_twins: Twins) -> None:
    _, forbidden = tls_twins
    authority = f"localhost:{forbidden.port}"
    connected, answer = through_tunnel(
        proxy, authority, f"GET / HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()
    )
    assert connected.startswith(b"HTTP/1.1 200"), connected
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403")
    assert b"X-Hookwall-Reason: address-blocked" in head
    assert json.loads(body)["error"] == "address-blocked"
    assert forbidden.connections == 0


def test_mixed_answers_with_one_internal_address_are_refused(
    proxy: ProxyProcess, plain_twins: Twins
) -> None:
    allowed, forbidden = plain_twins
    before = allowed.connections
    r = requests.get(f"http://mixed.test:{allowed.port}/", proxies=proxies(proxy), timeout=10)
    body = assert_denied(r, "address-blocked")
    assert "10.0.0.1" in body["message"]
    event = proxy.exchange(body["request_id"])
    assert sorted(event["resolved_ips"]) == ["10.0.0.1", "127.0.0.2"]
    assert allowed.connections == before and forbidden.connections == 0


def test_rebinding_name_is_refused_once_it_points_inside(
    proxy: ProxyProcess, plain_twins: Twins
) -> None:
    allowed, forbidden = plain_twins
    first = requests.get(
        f"http://rebind.test:{allowed.port}/one", proxies=proxies(proxy), timeout=10
    )
    assert first.status_code == 200  # first answer: 127.0.0.2, allowed
    for _ in range(3):  # TTL 0: every later request asks again and gets 127.0.0.1
        r = requests.get(
            f"http://rebind.test:{allowed.port}/two", proxies=proxies(proxy), timeout=10
        )
        assert_denied(r, "address-blocked")
    assert forbidden.connections == 0
    assert [s.path for s in allowed.requests if s.path in ("/one", "/two")] == ["/one"]


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("nx.test", "dns-failed"),
        ("servfail.test", "dns-failed"),
        ("silent.test", "dns-failed"),
        ("denied.hooks.test", "host-denied"),
        ("1.2.3.4.5", "invalid-host"),
        ("256.0.0.1", "invalid-host"),
        ("foo.123", "invalid-host"),
    ],
)
def test_other_refusals_have_their_reason(
    proxy: ProxyProcess, plain_twins: Twins, host: str, reason: str
) -> None:
    allowed, forbidden = plain_twins
    before = allowed.connections
    r = requests.get(f"http://{host}:{allowed.port}/", proxies=proxies(proxy), timeout=10)
    body = assert_denied(r, reason)
    assert proxy.exchange(body["request_id"])["reason"] == reason
    assert allowed.connections == before and forbidden.connections == 0


def test_port_not_in_the_rule_is_refused(proxy: ProxyProcess, plain_twins: Twins) -> None:
    allowed, _ = plain_twins
    before = allowed.connections
    r = requests.get(
        f"http://narrow.hooks.test:{allowed.port}/", proxies=proxies(proxy), timeout=10
    )
    assert_denied(r, "port-denied")
    assert allowed.connections == before


def test_host_header_inside_tunnel_must_match_connect(
    proxy: ProxyProcess, tls_twins: Twins
) -> None:
    allowed, _ = tls_twins
    before = len(allowed.requests)
    with httpx.Client(proxy=proxy.url, verify=trusting(proxy.ca_cert), timeout=10) as client:
        r = client.get(f"https://hooks.test:{allowed.port}/", headers={"Host": "other.hooks.test"})
    assert_denied(r, "host-mismatch")
    assert len(allowed.requests) == before


def test_the_proxy_itself_is_refused(proxy: ProxyProcess) -> None:
    r = requests.get(f"http://127.0.0.1:{proxy.port}/", proxies=proxies(proxy), timeout=10)
    assert_denied(r, "address-blocked")


# -- non-loopback targets: only inside the isolated test network --------------------------------


@pytest.mark.parametrize(
    "authority", ["bad\\host.test", "a@b.test", "%6cocalhost", "ex ample.test", "[::1%"]
)
def test_malformed_hosts_are_refused_without_connecting(
    proxy: ProxyProcess, plain_twins: Twins, authority: str
) -> None:
    _, forbidden = plain_twins
    head, body = head_and_body(
        proxy, f"GET http://{authority}:{forbidden.port}/ HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    status = int(head.split()[1])
    refusal = json.loads(body)
    # A space splits the request line itself: that is a framing fault, not a host.
    expected = "bad-framing" if " " in authority else "invalid-host"
    assert (status, refusal["error"]) == (400 if " " in authority else 403, expected), head
    assert refusal["request_id"].startswith("req_"), refusal
    assert proxy.exchange(refusal["request_id"])["reason"] == expected
    assert forbidden.connections == 0


@needs_isolation
@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.test/",
        "http://10.0.0.1/",
        "http://[fd00::1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://[64:ff9b::a00:1]/",
        "http://[2002:a00:1::]/",
        "http://192.168.1.1:8080/",
    ],
)
def test_internal_addresses_are_refused(proxy: ProxyProcess, url: str) -> None:
    assert_denied(requests.post(url, proxies=proxies(proxy), timeout=10), "address-blocked")


@needs_isolation
@pytest.mark.parametrize("target", ["[::ffff:10.0.0.1]:443", "169.254.169.254:443", "10.0.0.1:443"])
def test_internal_connect_targets_are_refused(proxy: ProxyProcess, target: str) -> None:
    connected, answer = through_tunnel(
        proxy, target, f"GET / HTTP/1.1\r\nHost: {target}\r\n\r\n".encode()
    )
    assert connected.startswith(b"HTTP/1.1 200"), connected  # refused inside TLS
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403")
    assert json.loads(body)["error"] == "address-blocked"


# -- TLS modes -----------------------------------------------------------------------------------


def test_passthrough_tunnel_is_pinned_but_not_intercepted(
    proxy: ProxyProcess, tls_twins: Twins, receiver_ca_file: Path
) -> None:
    allowed, forbidden = tls_twins
    # The client verifies the receiver's own certificate: proof that hookwall did not intercept.
    with httpx.Client(proxy=proxy.url, verify=trusting(receiver_ca_file), timeout=10) as client:
        r = client.post(f"https://passthrough.hooks.test:{allowed.port}/pt", content=b"{}")
    assert r.status_code == 200
    event = proxy.exchange(host="passthrough.hooks.test", method="CONNECT", tls="passthrough")
    assert event["peer_ip"] == "127.0.0.2"
    assert forbidden.connections == 0


def test_upgrade_sends_plain_http_over_tls(proxy: ProxyProcess, tls_twins: Twins) -> None:
    allowed, forbidden = tls_twins
    r = requests.post(
        f"http://upgrade.hooks.test:{allowed.port}/up",
        data=b"{}",
        proxies=proxies(proxy),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert allowed.requests[-1].path == "/up"
    assert allowed.requests[-1].headers["host"] == f"upgrade.hooks.test:{allowed.port}"
    assert proxy.exchange(host="upgrade.hooks.test", tls="upgrade")["status"] == 200
    assert forbidden.connections == 0


def test_upgrade_per_request_header_is_honoured_and_stripped(
    proxy: ProxyProcess, tls_twins: Twins
) -> None:
    allowed, _ = tls_twins
    r = requests.post(
        f"http://hooks.test:{allowed.port}/hdr",
        data=b"{}",
        headers={"X-Hookwall-Upgrade": "https"},
        proxies=proxies(proxy),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert "x-hookwall-upgrade" not in allowed.requests[-1].headers


def test_receiver_with_untrusted_certificate_fails_closed(
    proxy: ProxyProcess, plain_twins: Twins
) -> None:
    allowed, _ = plain_twins  # plain receiver: TLS to it cannot succeed
    before = len(allowed.requests)
    r = requests.post(
        f"http://upgrade.hooks.test:{allowed.port}/x",
        data=b"{}",
        proxies=proxies(proxy),
        timeout=10,
    )
    assert r.status_code == 502
    assert r.headers["X-Hookwall-Reason"] in ("tls-failed", "upstream-error")
    assert len(allowed.requests) == before


def test_unreachable_receiver_gets_json_502(proxy: ProxyProcess) -> None:
    with socket.socket() as s:  # a port on 127.0.0.2 with nobody listening
        s.bind(("127.0.0.2", 0))
        port = s.getsockname()[1]
    r = requests.get(f"http://hooks.test:{port}/", proxies=proxies(proxy), timeout=10)
    body = assert_denied(r, "upstream-error", status=502)
    event = proxy.exchange(body["request_id"])
    assert event["reason"] == "upstream-error" and event["status"] == 502


def test_ipv6_receiver_allowed_by_exception(
    start_proxy: ProxyLauncher, ipv6_receiver: Receiver
) -> None:
    proc = start_proxy(
        f"version: 1\nunsafe: true\ndefaults:\n  network:\n    allow: ['{TEST_IPV6}/128']\n"
        "    ports: ['1-65535']\n",
        names={"v6.hooks.test": TEST_IPV6, "v6mixed.hooks.test": [TEST_IPV6, "::1"]},
    )
    port = ipv6_receiver.port
    for host in (f"[{TEST_IPV6}]", "v6.hooks.test"):
        r = requests.get(f"http://{host}:{port}/v6", proxies=proxies(proc), timeout=10)
        assert r.status_code == 200, r.text
        assert ipv6_receiver.requests[-1].headers["host"] == f"{host}:{port}"
    for host in ("[::1]", "v6mixed.hooks.test", "localhost"):
        r = requests.get(f"http://{host}:{port}/v6", proxies=proxies(proc), timeout=10)
        assert_denied(r, "address-blocked")


# -- explain agrees with the proxy ---------------------------------------------------------------

AGREEMENT_URLS = [
    "http://hooks.test:{port}/",
    "http://localhost:{port}/",
    "http://2130706433:{port}/",
    "http://foo.lvh.test:{port}/",
    "http://mixed.test:{port}/",
    "http://mapped.test:{port}/",
    "http://nx.test:{port}/",
    "http://denied.hooks.test:{port}/",
    "http://narrow.hooks.test:{port}/",
    "http://1.2.3.4.5:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
]


@pytest.mark.parametrize("template", AGREEMENT_URLS)
def test_explain_agrees_with_the_proxy(
    proxy: ProxyProcess,
    names: TestDnsServer,
    plain_twins: Twins,
    template: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from hookwall.cli.main import main

    allowed, _ = plain_twins
    url = template.format(port=allowed.port)
    code = main(
        ["explain", url, "--policy", str(proxy.policy), "--dns-server", names.spec, "--json"]
    )
    explained = json.loads(capsys.readouterr().out)
    r = requests.get(url, proxies=proxies(proxy), timeout=10)
    proxied_reason = r.headers.get("X-Hookwall-Reason")
    assert explained["decision"] == ("allow" if proxied_reason is None else "deny")
    assert explained["reason"] == proxied_reason
    assert code == (0 if proxied_reason is None else 1)
    if proxied_reason is None:
        assert explained["connect_to"] == proxy.exchange(url=url)["peer_ip"]


def test_sender_that_does_not_trust_the_ca_gets_a_logged_hint(
    proxy: ProxyProcess, tls_twins: Twins
) -> None:
    allowed, _ = tls_twins
    before = len(allowed.requests)
    with (
        httpx.Client(proxy=proxy.url, timeout=10) as client,  # certifi only: no hookwall CA
        pytest.raises(httpx.ConnectError),
    ):
        client.post(f"https://hooks.test:{allowed.port}/untrusted")
    event = proxy.exchange(method="CONNECT", reason="tls-failed", host="hooks.test")
    assert "hookwall ca --path" in event["error"]
    assert event["request_id"].startswith("req_")
    assert len(allowed.requests) == before


def test_absolute_form_https_request_is_verified_against_the_name(
    proxy: ProxyProcess, tls_twins: Twins
) -> None:
    """`GET https://name/` sent to the proxy without CONNECT: TLS upstream, SNI is the name."""
    allowed, forbidden = tls_twins
    head, body = head_and_body(
        proxy, f"GET https://hooks.test:{allowed.port}/abs HTTP/1.1\r\nHost: hooks.test\r\n\r\n"
    )
    assert head.startswith(b"HTTP/1.1 200"), head
    assert json.loads(body) == {"ok": True}
    assert allowed.requests[-1].path == "/abs"
    assert forbidden.connections == 0
