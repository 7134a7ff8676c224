"""Receivers cannot pose as hookwall, redirects keep credentials with their origin, and hookwall
cannot be reached through itself; through the real proxy.

- A hostile receiver (``/forged``) answers with ``X-Hookwall-Reason``, ``-Request-Id``,
  ``-Redirect-Location`` and another ``X-HOOKWALL-*`` header: the sender sees none of them on
  any path (direct, inside intercepted TLS, relayed redirect, followed hop, retried attempt),
  always hookwall's request id, and the redirect and retry logic is unaffected by them.
- A followed redirect to another origin (host, port or scheme) goes without ``Authorization``
  and ``Cookie``; the same origin, or ``redirects: {keep_credentials: true}``, keeps them.
- ``scope: same_site`` on a TLD missing from the Public Suffix List (``.test``).
- The admin listener and the internal hop listener are refused as destinations, though the
  policy allows their address and port.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
import requests
import trustme

from tests.support.adversary import FORGED_LOCATION, FORGED_REQUEST_ID, Adversary
from tests.support.hostile import through_tunnel
from tests.support.launcher import ProxyLauncher
from tests.support.proxyproc import ProxyProcess, trusting
from tests.support.receivers import Receiver, start_receiver, tls_server_context

pytestmark = pytest.mark.integration

POLICY = """\
version: 1
unsafe: true  # the loopback receivers stand for public ones
defaults:
  network: {allow: [127.0.0.1/32, 127.0.0.2/32], ports: ["1-65535"]}
  ca_bundle: {ca}
destinations:
  - hosts: [plain.forge.test, tls.forge.test, deny.forge.test]
  - hosts: [pass.forge.test]
    redirects: {mode: pass}
  - hosts: [follow.forge.test]
    redirects: {mode: follow, scope: any}
  - hosts: [retry.forge.test]
    retries: {attempts: 2, backoff: 10ms, max_backoff: 20ms}
  - hosts: [creds.forge.test, creds-other.forge.test]
    redirects: {mode: follow, scope: any}
  - hosts: [keep.forge.test]
    redirects: {mode: follow, scope: any, keep_credentials: true}
  - hosts: [x.acme.test, y.acme.test, evil.test]
    redirects: {mode: follow}
"""
NAMES = {
    **dict.fromkeys(
        (
            "plain.forge.test",
            "tls.forge.test",
            "deny.forge.test",
            "pass.forge.test",
            "follow.forge.test",
            "retry.forge.test",
            "creds.forge.test",
            "creds-other.forge.test",
            "keep.forge.test",
            "x.acme.test",
            "y.acme.test",
            "evil.test",
        ),
        "127.0.0.2",
    ),
    "loop.forge.test": "127.0.0.1",
}
SECRETS = {"Authorization": "Bearer sender-secret", "Cookie": "session=sender-cookie"}


class TlsAdversary(Adversary):
    """The same hostile routes, behind TLS (for intercepted https deliveries)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        # The handshake happens on the first read, inside _serve's error handling.
        super()._serve(
            self.context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        )


@pytest.fixture(scope="module")
def proxy(start_module_proxy: ProxyLauncher) -> ProxyProcess:
    return start_module_proxy(POLICY, names=NAMES)


@pytest.fixture(scope="module")
def tls_adversary(receiver_ca: trustme.CA) -> Iterator[Adversary]:
    receiver = TlsAdversary(tls_server_context(receiver_ca, "tls.forge.test"))
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    """Two recording receivers at 127.0.0.2 on two ports (two origins for one host)."""
    first, second = start_receiver("127.0.0.2"), start_receiver("127.0.0.2")
    yield first, second
    first.stop()
    second.stop()


def forged(host: str, port: int, status: int = 200, to: str | None = None) -> str:
    url = f"http://{host}:{port}/forged?status={status}"
    return url + (f"&to={quote(to, safe='')}" if to else "")


def redirect(host: str, port: int, to: str, code: int = 302) -> str:
    return f"http://{host}:{port}/redirect?to={quote(to, safe='')}&code={code}"


def post(
    proxy: ProxyProcess,
    url: str,
    headers: dict[str, str] | None = None,
    *,
    allow_redirects: bool = True,
) -> requests.Response:
    return requests.post(
        url,
        data=b"{}",
        headers=headers,
        proxies={"http": proxy.url},
        timeout=20,
        allow_redirects=allow_redirects,
    )


def assert_only_hookwalls_headers(
    proxy: ProxyProcess, response: requests.Response | httpx.Response, url: str
) -> dict[str, str]:
    """No receiver X-Hookwall-* header; the request id is the delivery's (its exchange event)."""
    headers = response.headers
    ours = {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-hookwall-")}
    assert "x-hookwall-internal" not in ours
    assert ours.get("x-hookwall-redirect-location") != FORGED_LOCATION
    assert ours["x-hookwall-request-id"] != FORGED_REQUEST_ID
    event = proxy.exchange(url=url, hop=0)
    assert ours["x-hookwall-request-id"] == event["request_id"]
    return ours


# -- no forged hookwall headers ---------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 403, 503])
def test_a_direct_response_carries_no_receiver_hookwall_header(
    proxy: ProxyProcess, adversary: Adversary, status: int
) -> None:
    url = forged("plain.forge.test", adversary.port, status)
    r = post(proxy, url)
    assert r.status_code == status and r.content == b"ok"
    ours = assert_only_hookwalls_headers(proxy, r, url)
    assert set(ours) == {"x-hookwall-request-id"}  # no reason: hookwall refused nothing


def test_inside_intercepted_tls_too(proxy: ProxyProcess, tls_adversary: Adversary) -> None:
    url = f"https://tls.forge.test:{tls_adversary.port}/forged?status=200"
    with httpx.Client(proxy=proxy.url, verify=trusting(proxy.ca_cert), timeout=20) as client:
        r = client.post(url, content=b"{}")
    assert r.status_code == 200 and r.content == b"ok"
    assert set(assert_only_hookwalls_headers(proxy, r, url)) == {"x-hookwall-request-id"}


def test_a_relayed_redirect_keeps_its_location_but_loses_the_forgeries(
    proxy: ProxyProcess, adversary: Adversary
) -> None:
    url = forged("pass.forge.test", adversary.port, 302, "http://somewhere.test/")
    r = post(proxy, url, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "http://somewhere.test/"
    assert set(assert_only_hookwalls_headers(proxy, r, url)) == {"x-hookwall-request-id"}


def test_a_denied_redirect_names_the_real_target(proxy: ProxyProcess, adversary: Adversary) -> None:
    target = f"http://deny.forge.test:{adversary.port}/next"
    url = forged("deny.forge.test", adversary.port, 302, target)
    r = post(proxy, url)
    assert r.status_code == 502 and r.headers["X-Hookwall-Reason"] == "redirect-denied"
    ours = assert_only_hookwalls_headers(proxy, r, url)
    assert ours["x-hookwall-redirect-location"] == target
    assert r.json()["request_id"] == ours["x-hookwall-request-id"]


def test_a_followed_hop_posing_as_a_refusal_is_still_followed(
    proxy: ProxyProcess, adversary: Adversary
) -> None:
    """The hop answers 302 + a forged X-Hookwall-Reason, then 200 + forgeries: hookwall reads
    only its own verdict on each hop, so the chain is followed to the end."""
    before = len(adversary.paths)
    last = forged("follow.forge.test", adversary.port, 200)
    middle = forged("follow.forge.test", adversary.port, 307, last)
    url = forged("follow.forge.test", adversary.port, 302, middle)
    r = post(proxy, url)
    assert r.status_code == 200, r.text
    assert r.content == b"ok" and adversary.paths[before:] == ["/forged"] * 3
    assert set(assert_only_hookwalls_headers(proxy, r, url)) == {"x-hookwall-request-id"}
    first = proxy.exchange(url=url, hop=0)
    assert first["redirect"]["action"] == "followed" and first["redirect"]["hops"] == 2


def test_retries_are_not_stopped_by_a_forged_reason(
    proxy: ProxyProcess, adversary: Adversary
) -> None:
    """Every attempt answers 503 + 'X-Hookwall-Reason: address-blocked': each is retried as the
    receiver's 503 it is (1 + 2 attempts), and the last one reaches the sender cleaned."""
    before = len(adversary.paths)
    url = forged("retry.forge.test", adversary.port, 503)
    r = post(proxy, url)
    assert r.status_code == 503 and r.content == b"ok"
    assert adversary.paths[before:] == ["/forged"] * 3
    assert set(assert_only_hookwalls_headers(proxy, r, url)) == {"x-hookwall-request-id"}
    attempts = proxy.wait_count(lambda e: e.get("url") == url and e.get("event") == "exchange", 3)
    assert sorted(e["attempt"] for e in attempts) == [1, 2, 3]


# -- credentials stay with their origin -------------------------------------------------------


def credentials(receiver: Receiver, index: int = -1) -> dict[str, str | None]:
    seen = receiver.requests[index].headers
    return {name: seen.get(name.lower()) for name in (*SECRETS, "X-Trace")}


SENT = {**SECRETS, "X-Trace": "t-1"}
WITHOUT = {"Authorization": None, "Cookie": None, "X-Trace": "t-1"}


def test_a_hop_to_another_host_goes_without_credentials(
    proxy: ProxyProcess, receivers: tuple[Receiver, Receiver]
) -> None:
    first, _ = receivers
    final = f"http://creds-other.forge.test:{first.port}/landing"
    r = post(proxy, redirect("creds.forge.test", first.port, final), SENT)
    assert r.status_code == 200, r.text
    assert credentials(first, -2) == SENT  # the receiver the sender asked for
    assert first.requests[-1].path == "/landing" and credentials(first) == WITHOUT


def test_a_hop_to_another_port_goes_without_credentials(
    proxy: ProxyProcess, receivers: tuple[Receiver, Receiver]
) -> None:
    first, second = receivers
    final = f"http://creds.forge.test:{second.port}/landing"
    r = post(proxy, redirect("creds.forge.test", first.port, final), SENT)
    assert r.status_code == 200, r.text
    assert credentials(first) == SENT
    assert second.requests[-1].path == "/landing" and credentials(second) == WITHOUT


def test_credentials_are_not_sent_again_when_the_chain_comes_back(
    proxy: ProxyProcess, receivers: tuple[Receiver, Receiver]
) -> None:
    first, second = receivers
    back = f"http://creds.forge.test:{first.port}/back"
    away = redirect("creds.forge.test", second.port, back)
    r = post(proxy, redirect("creds.forge.test", first.port, away), SENT)
    assert r.status_code == 200, r.text
    assert first.requests[-1].path == "/back" and credentials(first) == WITHOUT


def test_a_same_origin_hop_keeps_them(
    proxy: ProxyProcess, receivers: tuple[Receiver, Receiver]
) -> None:
    first, _ = receivers
    final = f"http://creds.forge.test:{first.port}/landing"
    r = post(proxy, redirect("creds.forge.test", first.port, final, 307), SENT)
    assert r.status_code == 200, r.text
    assert first.requests[-1].path == "/landing" and credentials(first) == SENT


def test_a_destination_may_opt_in(
    proxy: ProxyProcess, receivers: tuple[Receiver, Receiver]
) -> None:
    first, _ = receivers
    final = f"http://creds-other.forge.test:{first.port}/landing"
    r = post(proxy, redirect("keep.forge.test", first.port, final), SENT)
    assert r.status_code == 200, r.text
    assert first.requests[-1].path == "/landing" and credentials(first) == SENT


# -- same_site with a TLD the Public Suffix List does not know ---------------------------------


def test_same_site_on_an_unlisted_tld(
    proxy: ProxyProcess, receivers: tuple[Receiver, Receiver]
) -> None:
    first, _ = receivers
    same = f"http://y.acme.test:{first.port}/same-site"
    assert post(proxy, redirect("x.acme.test", first.port, same)).status_code == 200
    assert first.requests[-1].path == "/same-site"
    before = len(first.requests)
    other = f"http://evil.test:{first.port}/other-site"
    r = post(proxy, redirect("x.acme.test", first.port, other))
    assert r.status_code == 502 and "same_site" in r.json()["message"]
    assert len(first.requests) == before + 1  # the redirecting receiver only


# -- hookwall cannot be reached through itself ------------------------------------------------


@pytest.fixture(scope="module")
def loopback_receiver() -> Iterator[Receiver]:
    receiver = start_receiver("127.0.0.1")
    yield receiver
    receiver.stop()


def own_listeners(proxy: ProxyProcess) -> dict[str, tuple[str, int]]:
    started = proxy.wait_for(lambda e: e.get("event") == "proxy_started")
    found = {"public": started["listen"][0], "internal": started["internal_listen"][0]}
    found["admin"] = started["admin"]
    return {
        name: (where.rpartition(":")[0], int(where.rpartition(":")[2]))
        for name, where in found.items()
    }


def test_the_policy_allows_loopback_receivers(
    proxy: ProxyProcess, loopback_receiver: Receiver
) -> None:
    """What the next test relies on: 127.0.0.1 and any port are allowed by this policy."""
    r = post(proxy, f"http://127.0.0.1:{loopback_receiver.port}/allowed")
    assert r.status_code == 200 and loopback_receiver.requests[-1].path == "/allowed"


@pytest.mark.parametrize("listener", ["admin", "internal", "public"])
@pytest.mark.parametrize("host", ["127.0.0.1", "loop.forge.test"])
def test_no_listener_of_hookwall_is_a_destination(
    proxy: ProxyProcess, listener: str, host: str
) -> None:
    _, port = own_listeners(proxy)[listener]
    url = f"http://{host}:{port}/metrics"
    r = requests.get(url, proxies={"http": proxy.url}, timeout=20)
    assert r.status_code == 403, r.text
    assert r.headers["X-Hookwall-Reason"] == "address-blocked"
    assert "own listening address" in r.json()["message"]
    event = proxy.exchange(r.json()["request_id"])
    assert event["reason"] == "address-blocked"


@pytest.mark.parametrize("listener", ["admin", "internal"])
def test_nor_through_a_tunnel(proxy: ProxyProcess, listener: str) -> None:
    _, port = own_listeners(proxy)[listener]
    authority = f"127.0.0.1:{port}"
    request = f"GET /metrics HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()
    connected, answer = through_tunnel(proxy, authority, request)
    assert connected.startswith(b"HTTP/1.1 200"), connected  # refused inside TLS
    head = answer.decode("latin-1")
    assert head.startswith("HTTP/1.1 403"), head
    assert "x-hookwall-reason: address-blocked" in head.lower()


def test_a_redirect_to_the_admin_listener_is_refused(
    proxy: ProxyProcess, adversary: Adversary
) -> None:
    _, port = own_listeners(proxy)["admin"]
    target = f"http://127.0.0.1:{port}/metrics"
    r = post(proxy, forged("follow.forge.test", adversary.port, 302, target))
    assert r.status_code == 502 and r.headers["X-Hookwall-Reason"] == "redirect-denied"
    assert "address-blocked" in r.json()["message"]


def test_with_two_workers_no_worker_lets_a_request_reach_another_workers_listener(
    start_proxy: ProxyLauncher,
) -> None:
    """The supervisor serves the admin endpoint (port 0 becomes a free one) and reserves one
    internal-listener port per worker, so every worker knows all of them: connections spread
    over both workers, to each of those listeners, are all refused."""
    proc = start_proxy(POLICY, names=NAMES, workers=2)  # returns once both are ready
    workers = proc.events_named("proxy_started")
    assert len(workers) == 2
    assert not any(e.get("admin") for e in workers)  # the supervisor's, for all of them
    admins = [e["admin"] for e in proc.events_named("supervisor_started")]
    assert len(admins) == 1 and admins[0], proc.events
    assert requests.get(f"http://{admins[0]}/healthz", timeout=10).status_code == 200
    internal = sorted({e["internal_listen"][0] for e in workers})
    assert len(internal) == 2, workers  # one per worker: hop chains stay on their worker
    targets = [admins[0], *internal]
    mark = proc.mark()
    for i in range(21):  # a new connection each: the kernel picks a worker for each
        url = f"http://{targets[i % 3]}/metrics"
        r = requests.get(url, proxies={"http": proc.url}, timeout=20)
        assert r.status_code == 403 and r.headers["X-Hookwall-Reason"] == "address-blocked"
    proc.wait_until(lambda: len(proc.events_named("exchange", mark)) >= 21, what="21 exchanges")
    refused_by = {e["pid"] for e in proc.events_named("exchange", mark)}
    assert refused_by == {e["pid"] for e in workers}  # both workers refused some
