"""hookwall.invalid through the real proxy: answered by hookwall itself, over http:// and through
a CONNECT (https://), never resolved, never connected to, logged as one exchange each.

The clients are httpx through the proxy, trusting exactly the CA in the proxy's data dir. The
test DNS server would answer hookwall.invalid (``_bait``) and counts the queries for it: none
ever comes.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from tests.integration.test_transparent import (
    SENDER_UID,
    curl_as_sender,
    redirected,
    transparent_port,
)
from tests.support.dnsserver import TestDnsServer
from tests.support.launcher import ProxyLauncher
from tests.support.netns import NETWORK_ISOLATED
from tests.support.proxyproc import ProxyProcess, trusting
from tests.support.receivers import Receiver, start_receiver

pytestmark = pytest.mark.integration

TOKEN = secrets.token_urlsafe(24)
SENDERS = """\
version: 1
senders:
  billing: {credentials: [env:HW_SA_BILLING]}
"""
LIMITED = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
  limits: {concurrency: 1, queue: 0}
"""


def _sha256(pem_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(pem_path.read_bytes())
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def _bait(dns: TestDnsServer) -> None:
    """Make hookwall.invalid resolvable here, so a lookup of it would be seen (and counted)."""
    dns.add("hookwall.invalid", "127.0.0.2")


def _client(proxy: ProxyProcess, url: str | None = None, **kwargs: Any) -> httpx.Client:
    return httpx.Client(
        proxy=url or proxy.url, verify=trusting(proxy.ca_cert), timeout=10, **kwargs
    )


def test_whoami_over_http_is_answered_by_hookwall(
    start_proxy: ProxyLauncher, dns_server: TestDnsServer
) -> None:
    _bait(dns_server)
    proxy = start_proxy(None)
    with _client(proxy) as client:
        response = client.get("http://hookwall.invalid/whoami")
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["through_hookwall"] is True
    assert doc["request_id"] == response.headers["X-Hookwall-Request-Id"]
    assert (doc["sender"], doc["senders_required"], doc["mode"]) == (None, False, "regular")
    assert doc["client"].startswith("127.0.0.1:") and doc["tls"] is False and doc["ca"] is None
    assert doc["ca_sha256"] == _sha256(proxy.ca_cert)
    assert "X-Hookwall-Reason" not in response.headers
    event = proxy.exchange(doc["request_id"])
    assert (event["decision"], event["reason"], event["status"]) == ("allow", None, 200)
    assert event["host"] == "hookwall.invalid" and event["peer_ip"] is None
    assert event["resolved_ips"] == [] and event["url"] == "http://hookwall.invalid/whoami"
    assert dns_server.queries["hookwall.invalid"] == 0


def test_whoami_over_https_is_answered_inside_hookwalls_tls(
    start_proxy: ProxyLauncher, dns_server: TestDnsServer
) -> None:
    _bait(dns_server)
    proxy = start_proxy(None)
    with _client(proxy) as client:
        response = client.get("https://hookwall.invalid/whoami")
        again = client.get("https://hookwall.invalid/nothing-here")  # the same tunnel
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["through_hookwall"] is True and doc["tls"] is True
    assert "handshake" in doc["ca"] and doc["ca_sha256"] == _sha256(proxy.ca_cert)
    assert again.status_code == 404 and "/whoami" in again.json()["paths"]
    event = proxy.exchange(doc["request_id"])
    assert event["url"] == "https://hookwall.invalid/whoami" and event["status"] == 200
    assert event["peer_ip"] is None
    assert dns_server.queries["hookwall.invalid"] == 0


def test_a_client_without_hookwalls_ca_fails_the_handshake(start_proxy: ProxyLauncher) -> None:
    proxy = start_proxy(None)
    with (
        httpx.Client(proxy=proxy.url, verify=ssl.create_default_context(), timeout=10) as c,
        pytest.raises(httpx.ConnectError),
    ):
        c.get("https://hookwall.invalid/whoami")
    event = proxy.exchange(reason="tls-failed", host="hookwall.invalid")
    assert "hookwall ca" in event["error"]


def test_ca_pem_root_and_methods(start_proxy: ProxyLauncher) -> None:
    proxy = start_proxy(None)
    with _client(proxy) as client:
        pem = client.get("http://hookwall.invalid/ca.pem")
        root = client.get("http://hookwall.invalid/")
        head = client.head("http://hookwall.invalid/whoami")
        post = client.post("http://hookwall.invalid/whoami", content=b"{}")
        after = client.get("http://hookwall.invalid/whoami")  # the connection still works
    assert pem.status_code == 200 and pem.content == proxy.ca_cert.read_bytes()
    assert pem.headers["content-type"] == "application/x-pem-file"
    assert b"PRIVATE" not in pem.content
    assert root.json()["name"] == "hookwall.invalid" and "/whoami" in root.json()["paths"]
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) > 0
    assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"
    assert "X-Hookwall-Reason" not in post.headers
    assert after.status_code == 200
    event = proxy.exchange(post.json()["request_id"])
    assert (event["decision"], event["reason"], event["status"]) == ("allow", None, 405)


def test_senders_authenticate_first(start_proxy: ProxyLauncher) -> None:
    proxy = start_proxy(SENDERS, env={"HW_SA_BILLING": TOKEN})
    authed = f"http://billing:{TOKEN}@{proxy.host}:{proxy.port}"
    with _client(proxy) as anonymous:
        refused = anonymous.get("http://hookwall.invalid/whoami")
    assert refused.status_code == 407
    assert refused.headers["X-Hookwall-Reason"] == "auth-required"
    with _client(proxy, authed) as client:
        plain = client.get("http://hookwall.invalid/whoami").json()
        tls = client.get("https://hookwall.invalid/whoami").json()
    for doc in (plain, tls):
        assert (doc["sender"], doc["senders_required"]) == ("billing", True)
    with (
        _client(proxy, f"http://billing:wrong@{proxy.host}:{proxy.port}") as wrong,
        pytest.raises(httpx.ProxyError, match="407"),
    ):
        wrong.get("https://hookwall.invalid/whoami")
    assert not any(TOKEN in json.dumps(e) for e in proxy.events)


def test_never_counted_against_a_destinations_limits(start_proxy: ProxyLauncher) -> None:
    """Concurrency 1 and no queue for every destination: open whoami exchanges, one after
    another on kept-alive connections and side by side, are never refused by flood control."""
    proxy = start_proxy(LIMITED)
    with _client(proxy) as first, _client(proxy) as second:
        answers = [c.get("http://hookwall.invalid/whoami") for c in (first, second) * 3]
    assert [a.status_code for a in answers] == [200] * 6
    events = proxy.wait_count(lambda e: e.get("host") == "hookwall.invalid", 6)
    assert all(e["queue_ms"] is None for e in events)


# -- a transparent listener: the sender has no proxy settings; the kernel redirects it ---------


@pytest.fixture
def dialled() -> Iterator[Receiver]:
    """Where the redirected sender dials hookwall.invalid (``--resolve``): it sees nothing."""
    server = start_receiver("127.0.0.1")
    yield server
    server.stop()


@pytest.mark.skipif(
    not NETWORK_ISOLATED or not shutil.which("iptables") or not shutil.which("setpriv"),
    reason="needs root in the test network namespace, iptables and setpriv",
)
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_whoami_on_a_transparent_listener(
    start_proxy: ProxyLauncher, dns_server: TestDnsServer, dialled: Receiver, scheme: str
) -> None:
    _bait(dns_server)
    proxy = start_proxy(None, args=["--listen", "transparent@127.0.0.1:0"])
    url = f"{scheme}://hookwall.invalid:{dialled.port}/whoami"
    resolve = f"hookwall.invalid:{dialled.port}:127.0.0.1"
    with tempfile.TemporaryDirectory(prefix="hookwall-sender-") as directory:
        ca = Path(directory) / "ca.pem"  # a copy the sender's user may read
        shutil.copyfile(proxy.ca_cert, ca)
        Path(directory).chmod(0o755)
        ca.chmod(0o644)
        with redirected(SENDER_UID, transparent_port(proxy)):
            answer = curl_as_sender(url, "--resolve", resolve, ca=ca)
    assert answer["status"] == 200, answer
    doc = json.loads(answer["body"])
    assert (doc["mode"], doc["tls"], doc["through_hookwall"]) == (
        "transparent",
        scheme == "https",
        True,
    )
    assert dialled.connections == 0  # the address dialled never saw a connection
    assert dns_server.queries["hookwall.invalid"] == 0
    event = proxy.exchange(doc["request_id"])
    assert (event["decision"], event["status"], event["peer_ip"]) == ("allow", 200, None)


BOUNDED = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
  max_request_body: 1KiB
  timeouts: {body: 300ms}
destinations:
  - hosts: [big.hooks.test]
    max_request_body: 1MiB
"""


def _raw(proxy: ProxyProcess, data: bytes) -> bytes:
    """Send ``data`` on a connection of its own; everything the proxy sends until it closes."""
    with socket.create_connection((proxy.host, proxy.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_trickled_body_is_cut_by_the_defaults_body_timeout(start_proxy: ProxyLauncher) -> None:
    """No destination is judged for hookwall.invalid: the defaults' timeouts.body bounds it."""
    proxy = start_proxy(BOUNDED)
    head = b"POST http://hookwall.invalid/whoami HTTP/1.1\r\nHost: hookwall.invalid\r\n"
    answer = _raw(proxy, head + b"Content-Length: 10\r\n\r\nx")  # 1 byte of 10, then nothing
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request-timeout" in answer


def test_a_body_larger_than_the_defaults_cap_is_refused(start_proxy: ProxyLauncher) -> None:
    """A destination may take 1 MiB (so mitmproxy reads it); hookwall.invalid, the defaults'."""
    proxy = start_proxy(BOUNDED)
    with _client(proxy) as client:
        refused = client.post("http://hookwall.invalid/whoami", content=b"x" * 2048)
        small = client.post("http://hookwall.invalid/whoami", content=b"x" * 10)
    assert refused.status_code == 413
    assert refused.headers["X-Hookwall-Reason"] == "request-too-large"
    assert small.status_code == 405  # within the cap: the answer to a POST
