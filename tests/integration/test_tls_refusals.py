"""Refusals every HTTPS client can read, through the real proxy.

A CONNECT to an intercepted destination that the destination decision refuses is accepted,
hookwall completes TLS with its own certificate for the name, and the first request inside is
answered with the refusal: httpx, requests, undici and Go's net/http each get an ordinary 403
response with ``X-Hookwall-Reason``, the JSON body and the request id, where a refusal on the
CONNECT gives them only "tunnel failed". The refused destination's address is a canary that
counts accepted connections: it must see none, not even a TCP connect. Passthrough
destinations and ``connect_refusals: on-connect`` keep refusing on the CONNECT.

Every case ends with the proxy settled: no exchange in flight, no slot, no sender connection
open; and with exactly one ``exchange`` event for the refused CONNECT.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from hookwall.cli.main import main
from tests.support.dnsserver import TestDnsServer
from tests.support.hostile import closes_within, connect, read_all, read_response, status_of
from tests.support.launcher import ProxyLauncher
from tests.support.paths import REPO
from tests.support.proxyproc import Event, ProxyProcess, trusting
from tests.support.receivers import Twins
from tests.support.reloads import reloaded, write
from tests.support.waits import wait_until

pytestmark = pytest.mark.integration

POLICY = """\
version: 1
unsafe: true
proxy:
  head_timeout: HEAD_TIMEOUT
defaults:
  network:
    deny: [special-purpose]
    allow: [127.0.0.2/32]
    ports: ["1-65535"]
  ca_bundle: {ca}
destinations:
  - hosts: [narrow.tls.test]
    network: {ports: [443]}
  - hosts: [passthrough.tls.test]
    tls: passthrough
  - hosts: [closed.tls.test]
    connect_refusals: on-connect
"""
NAMES: dict[str, str | list[str]] = {
    "hooks.test": "127.0.0.2",
    "blocked.tls.test": "127.0.0.1",  # the forbidden twin's address: special-purpose
    "narrow.tls.test": "127.0.0.2",  # the allowed twin, but not on its port
    "passthrough.tls.test": "127.0.0.1",
    "closed.tls.test": "127.0.0.1",
}
NODE_DIR = REPO / "tests" / "clients" / "node"
GO_DIR = REPO / "tests" / "clients" / "go"


def policy(head_timeout: str = "10s") -> str:
    return POLICY.replace("HEAD_TIMEOUT", head_timeout)


@pytest.fixture(scope="module")
def proxy(start_module_proxy: ProxyLauncher) -> ProxyProcess:
    return start_module_proxy(policy(), names=NAMES)


# -- what every case checks ---------------------------------------------------------------------


def gauges(proxy: ProxyProcess) -> dict[str, float]:
    """In flight (exchanges), slots held, requests queued and sender connections open."""
    assert proxy.admin_url is not None
    text = requests.get(proxy.admin_url + "/metrics", timeout=10).text
    names = {
        "hookwall_requests_in_flight": "in_flight",
        "hookwall_destination_in_flight": "slots",
        "hookwall_destination_queue_depth": "queued",
        "hookwall_client_connections_open": "connections",
    }
    totals = dict.fromkeys(names.values(), 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in names:
                totals[names[sample.name]] += sample.value
    return totals


def settled(proxy: ProxyProcess) -> None:
    zero = dict.fromkeys(("in_flight", "slots", "queued", "connections"), 0.0)
    last: dict[str, float] = {}

    def done() -> bool:
        last.update(gauges(proxy))
        return last == zero

    try:
        wait_until(done, what="the proxy settled")
    except AssertionError:
        raise AssertionError(f"not settled: {last}") from None


def one_event(proxy: ProxyProcess, start: int, request_id: str | None = None) -> Event:
    """The one exchange event since ``start``, once the proxy has settled (a second one would
    be logged by then)."""
    proxy.wait_count(lambda e: e.get("event") == "exchange", 1, start=start)
    settled(proxy)
    events = [e for e in proxy.events[start:] if e.get("event") == "exchange"]
    assert len(events) == 1, events
    if request_id is not None:
        assert events[0]["request_id"] == request_id
    return events[0]


def assert_refusal(status: int, headers: dict[str, str], body: str, reason: str) -> str:
    """An ordinary response per the denial contract; its request id."""
    lowered = {name.lower(): value for name, value in headers.items()}
    assert status == 403, (status, headers, body)
    assert lowered["x-hookwall-reason"] == reason
    document = json.loads(body)
    assert document["error"] == reason and document["message"]
    request_id = document["request_id"]
    assert request_id.startswith("req_") and lowered["x-hookwall-request-id"] == request_id
    assert lowered["content-type"] == "application/json"
    return str(request_id)


# -- the four clients -----------------------------------------------------------------------------

Client = Callable[[ProxyProcess, str], tuple[int, dict[str, str], str]]


def with_httpx(proxy: ProxyProcess, url: str) -> tuple[int, dict[str, str], str]:
    with httpx.Client(proxy=proxy.url, verify=trusting(proxy.ca_cert), timeout=10) as client:
        r = client.post(url, json={"type": "invoice.paid"})
    return r.status_code, dict(r.headers), r.text


def with_requests(proxy: ProxyProcess, url: str) -> tuple[int, dict[str, str], str]:
    proxies = {"http": proxy.url, "https": proxy.url}
    with requests.Session() as session:
        r = session.post(
            url,
            json={"type": "invoice.paid"},
            proxies=proxies,
            verify=str(proxy.ca_cert),
            timeout=10,
        )
    return r.status_code, dict(r.headers), r.text


def _printed(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert "error" not in answer, answer
    return answer


def with_undici(proxy: ProxyProcess, url: str) -> tuple[int, dict[str, str], str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules" / "undici").is_dir():
        pytest.skip(f"undici is not installed: run `npm ci` in {NODE_DIR} (.ci/run does)")
    answer = _printed([node, str(NODE_DIR / "post.mjs"), proxy.url, url, str(proxy.ca_cert)])
    headers = {k: v if isinstance(v, str) else ", ".join(v) for k, v in answer["headers"].items()}
    return int(answer["status"]), headers, str(answer["body"])


@pytest.fixture(scope="session")
def go_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go client, built once per session in a directory of its own: standard library
    only, no module download, no toolchain download."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("go is not installed")
    work = tmp_path_factory.mktemp("go-client")
    env = os.environ | {
        "GOFLAGS": "-mod=mod",
        "GOTOOLCHAIN": "local",
        "GOPROXY": "off",
        "GOCACHE": str(work / "cache"),
        "GOPATH": str(work / "gopath"),
        "CGO_ENABLED": "0",
    }
    binary = work / "post"
    done = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=GO_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return binary


def with_go(binary: Path) -> Client:
    def send(proxy: ProxyProcess, url: str) -> tuple[int, dict[str, str], str]:
        args = [str(binary), "-proxy", proxy.url, "-url", url, "-ca", str(proxy.ca_cert)]
        answer = _printed(args)
        return int(answer["status"]), dict(answer["headers"]), str(answer["body"])

    return send


@pytest.fixture(params=["httpx", "requests", "undici", "go"])
def client(request: pytest.FixtureRequest) -> Client:
    name = request.param
    if name == "go":
        return with_go(request.getfixturevalue("go_client"))
    clients: dict[str, Client] = {"httpx": with_httpx, "requests": with_requests}
    clients["undici"] = with_undici
    return clients[name]


# -- every client reads the refusal --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "twin", "reason"),
    [
        ("blocked.tls.test", "forbidden", "address-blocked"),
        ("narrow.tls.test", "allowed", "port-denied"),
        ("127.0.0.1", "forbidden", "address-blocked"),  # a literal: no name to fail on
    ],
)
def test_every_client_reads_the_refusal_and_nothing_is_connected(
    proxy: ProxyProcess, tls_twins: Twins, client: Client, name: str, twin: str, reason: str
) -> None:
    """blocked.tls.test resolves to the forbidden twin's address; narrow.tls.test to the
    allowed twin's, on a port its rule does not allow: the canary is the twin it names. (With
    a name, a connect that went around every guard would still need the system resolver,
    which the test namespace does not have; the literal address needs none.)"""
    allowed, forbidden = tls_twins
    canary = forbidden if twin == "forbidden" else allowed
    before = canary.connections
    start = proxy.mark()
    status, headers, body = client(proxy, f"https://{name}:{canary.port}/hook?n=1")
    request_id = assert_refusal(status, headers, body, reason)
    event = one_event(proxy, start, request_id)
    assert (event["reason"], event["status"], event["decision"]) == (reason, 403, "deny")
    assert event["method"] == "POST" and event["url"] == f"https://{name}:{canary.port}/hook?n=1"
    assert event["peer_ip"] is None and event["connect_ms"] is None
    assert canary.connections == before  # not even a TCP connect


# -- what stays on the CONNECT ---------------------------------------------------------------------


def _connect(proxy: ProxyProcess, authority: str) -> tuple[socket.socket, bytes]:
    sock = connect(proxy)
    sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    return sock, read_response(sock)


@pytest.mark.parametrize(
    ("name", "reason"),
    [("passthrough.tls.test", "address-blocked"), ("closed.tls.test", "address-blocked")],
)
def test_passthrough_and_on_connect_destinations_refuse_on_the_connect(
    proxy: ProxyProcess, tls_twins: Twins, name: str, reason: str
) -> None:
    _, forbidden = tls_twins
    before = forbidden.connections
    start = proxy.mark()
    sock, answer = _connect(proxy, f"{name}:{forbidden.port}")
    with sock:
        assert status_of(answer) == 403, answer
        head, _, body = answer.partition(b"\r\n\r\n")
        assert f"X-Hookwall-Reason: {reason}".encode() in head
        request_id = json.loads(body)["request_id"]
    event = one_event(proxy, start, request_id)
    assert (event["method"], event["reason"], event["status"]) == ("CONNECT", reason, 403)
    assert forbidden.connections == before
    with pytest.raises(httpx.ProxyError):  # what a client makes of it
        with_httpx(proxy, f"https://{name}:{forbidden.port}/")
    settled(proxy)


# -- what a hostile or broken sender can do inside ------------------------------------------------


@pytest.fixture
def tunnel(proxy: ProxyProcess, tls_twins: Twins) -> Iterator[Callable[[], ssl.SSLSocket]]:
    """TLS inside an accepted CONNECT to blocked.tls.test (the forbidden twin's address),
    trusting hookwall's CA; the forbidden twin must see no connection."""
    _, forbidden = tls_twins
    before = forbidden.connections
    opened: list[socket.socket] = []

    def open_tunnel() -> ssl.SSLSocket:
        sock, answer = _connect(proxy, f"blocked.tls.test:{forbidden.port}")
        opened.append(sock)
        assert status_of(answer) == 200, answer
        inner = trusting(proxy.ca_cert).wrap_socket(sock, server_hostname="blocked.tls.test")
        opened.append(inner)
        return inner

    yield open_tunnel
    for sock in opened:
        sock.close()
    assert forbidden.connections == before


def _inner_request(host: str, version: str = "HTTP/1.1", path: str = "/hook") -> bytes:
    return f"POST {path} {version}\r\nHost: {host}\r\nContent-Length: 2\r\n\r\n{{}}".encode()


def test_pipelined_requests_get_one_refusal_then_the_connection_closes(
    proxy: ProxyProcess, tunnel: Callable[[], ssl.SSLSocket]
) -> None:
    start = proxy.mark()
    inner = tunnel()
    inner.sendall(_inner_request("blocked.tls.test", path="/a") + _inner_request("x", path="/b"))
    answers = read_all(inner)
    assert status_of(answers) == 403 and b"X-Hookwall-Reason: address-blocked" in answers
    assert b"Connection: close" in answers
    assert answers.count(b"HTTP/1.1 403") == 1, answers  # then closed: no second answer
    event = one_event(proxy, start)
    assert event["url"] == f"https://blocked.tls.test:{event['port']}/a"


def test_a_request_naming_another_host_gets_the_connects_refusal(
    proxy: ProxyProcess, tls_twins: Twins, tunnel: Callable[[], ssl.SSLSocket]
) -> None:
    allowed, _ = tls_twins
    before = allowed.connections
    start = proxy.mark()
    inner = tunnel()
    inner.sendall(_inner_request(f"hooks.test:{allowed.port}"))
    answer = read_all(inner)
    assert status_of(answer) == 403 and b"X-Hookwall-Reason: address-blocked" in answer
    one_event(proxy, start)
    assert allowed.connections == before


def test_an_http_1_0_request_inside_gets_the_refusal(
    proxy: ProxyProcess, tunnel: Callable[[], ssl.SSLSocket]
) -> None:
    start = proxy.mark()
    inner = tunnel()
    inner.sendall(_inner_request("blocked.tls.test", "HTTP/1.0"))
    answer = read_all(inner)
    assert status_of(answer) == 403 and b"X-Hookwall-Reason: address-blocked" in answer
    request_id = json.loads(answer.partition(b"\r\n\r\n")[2])["request_id"]
    one_event(proxy, start, request_id)


def test_a_sender_that_does_not_trust_the_ca_is_logged_once_with_the_refusal(
    proxy: ProxyProcess, tls_twins: Twins
) -> None:
    _, forbidden = tls_twins
    before = forbidden.connections
    start = proxy.mark()
    untrusting = httpx.Client(proxy=proxy.url, verify=ssl.create_default_context(), timeout=10)
    with untrusting, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        untrusting.post(f"https://blocked.tls.test:{forbidden.port}/hook")
    event = one_event(proxy, start)
    assert (event["method"], event["reason"], event["status"]) == (
        "CONNECT",
        "address-blocked",
        None,
    )
    assert event["request_id"].startswith("req_")
    assert "did not accept hookwall's certificate" in event["error"]
    assert forbidden.connections == before


# -- the deadlines bound a sender that sends nothing ----------------------------------------------


@pytest.fixture
def impatient(start_proxy: ProxyLauncher) -> ProxyProcess:
    """A proxy that waits 300 ms for a head (and for a CONNECT's handshake and first request)."""
    return start_proxy(policy("300ms"), names=NAMES)


@pytest.mark.parametrize("handshake", [False, True], ids=["no-handshake", "no-request"])
def test_a_tunnel_with_no_request_is_closed_at_the_head_deadline_and_logged_once(
    impatient: ProxyProcess, tls_twins: Twins, handshake: bool
) -> None:
    _, forbidden = tls_twins
    start = impatient.mark()
    sock, answer = _connect(impatient, f"blocked.tls.test:{forbidden.port}")
    assert status_of(answer) == 200, answer
    with sock:
        if handshake:
            with trusting(impatient.ca_cert).wrap_socket(
                sock, server_hostname="blocked.tls.test"
            ) as inner:
                is_closed, _ = closes_within(inner, 5)
        else:
            is_closed, _ = closes_within(sock, 5)
    assert is_closed, "the proxy held the tunnel past its head deadline"
    event = one_event(impatient, start)
    assert (event["method"], event["reason"], event["status"]) == (
        "CONNECT",
        "address-blocked",
        None,
    )
    assert "sent no request inside the tunnel" in event["error"]
    assert forbidden.connections == 0


# -- a reload between the CONNECT and the request -------------------------------------------------


def test_a_reload_in_between_does_not_reopen_a_refused_tunnel(
    start_proxy: ProxyLauncher, tls_twins: Twins, receiver_ca_file: Path
) -> None:
    """The new policy would allow the name; the refused tunnel stays refused (its next
    CONNECT is judged afresh), and the forbidden twin still sees nothing."""
    _, forbidden = tls_twins
    proc = start_proxy(policy(), names=NAMES)
    before = forbidden.connections
    sock, answer = _connect(proc, f"blocked.tls.test:{forbidden.port}")
    assert status_of(answer) == 200, answer
    with trusting(proc.ca_cert).wrap_socket(sock, server_hostname="blocked.tls.test") as inner:
        mark = proc.mark()
        assert proc.policy is not None
        opened = policy().replace("allow: [127.0.0.2/32]", "allow: [127.0.0.0/8]")
        write(proc.policy, opened.replace("{ca}", str(receiver_ca_file)))
        reloaded(proc, mark)
        inner.sendall(_inner_request("blocked.tls.test"))
        answer = read_all(inner)
    assert status_of(answer) == 403 and b"X-Hookwall-Reason: address-blocked" in answer
    one_event(proc, mark)
    assert forbidden.connections == before


# -- hookwall explain says where -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "tls", "connect_refusals", "refused_at"),
    [
        ("https://127.0.0.1:9443/", "intercept", "inside-tls", "inside-tls"),
        ("https://closed.tls.test/", "intercept", "on-connect", "on-connect"),
        ("https://passthrough.tls.test/", "passthrough", None, "on-connect"),
        ("http://127.0.0.1:9443/", "intercept", "inside-tls", None),  # no CONNECT at all
        ("https://hooks.test/", "intercept", "inside-tls", None),  # allowed
    ],
)
def test_explain_says_where_a_refusal_is_answered(
    tmp_path: Path,
    dns_server: TestDnsServer,
    receiver_ca_file: Path,
    capsys: pytest.CaptureFixture[str],
    url: str,
    tls: str,
    connect_refusals: str | None,
    refused_at: str | None,
) -> None:
    for name, address in NAMES.items():
        dns_server.add(name, *([address] if isinstance(address, str) else address))
    path = tmp_path / "policy.yaml"
    path.write_text(policy().replace("{ca}", str(receiver_ca_file)))
    args = ["explain", url, "--policy", str(path), "--dns-server", dns_server.spec]
    main([*args, "--json"])
    report = json.loads(capsys.readouterr().out)
    assert (report["tls"], report["connect_refusals"], report["refused_at"]) == (
        tls,
        connect_refusals,
        refused_at,
    )
    main(args)
    text = capsys.readouterr().out
    if connect_refusals:
        assert f"tls: {tls}, connect_refusals: {connect_refusals}" in text
    if refused_at == "inside-tls":
        assert "answered     inside TLS" in text
    elif refused_at == "on-connect":
        assert "answered     on the CONNECT" in text
    else:
        assert "answered" not in text


def test_the_node_client_is_pinned_by_its_lock_file() -> None:
    """.ci/run installs exactly what the lock file says (npm ci)."""
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/undici"]["version"] == "6.21.3"
    assert "npm ci" in (REPO / ".ci" / "run").read_text()
