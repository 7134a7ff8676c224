"""Hostile senders and receivers through the real proxy: every exchange ends exactly once and
every resource is bounded before it is committed.

Each test attacks with raw bytes (or a receiver that misbehaves on purpose), then asserts the
invariants through the proxy itself: nothing in flight, no slot held, nothing queued, and a
normal delivery to a destination with ``concurrency: 1, queue: 0`` (which a single leaked slot
would refuse) still gets 200. The attacks' own waits (a byte every 100 ms) are the attack, not
synchronisation; the timeouts under test are kept short.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
import requests
import trustme

from tests.support import hostile
from tests.support.adversary import Adversary, BlackHole
from tests.support.hostile import assert_settled, gauges, reason_of, status_of
from tests.support.launcher import ProxyLauncher
from tests.support.proxyproc import ProxyProcess, trusting
from tests.support.receivers import Receiver, start_receiver, tls_server_context
from tests.support.waits import wait_until

pytestmark = pytest.mark.integration

POLICY = """\
version: 1
unsafe: true
proxy:
  max_connections: 200
  max_connections_per_client: 100
  head_timeout: 500ms
  idle_timeout: 1s
  max_header_bytes: 8KiB
  max_header_fields: 40
  max_idle_upstream_per_client: 2
  max_idle_upstream: 4
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
  timeouts: {connect: 500ms, headers: 10s, response: 10s, body: 1s}
  ca_bundle: "{ca}"
destinations:
  - hosts: [one.test]
    limits: {concurrency: 1, queue: 0}
  - hosts: [queued.test]
    limits: {concurrency: 1, queue: 5, queue_timeout: 20s}
  - hosts: [down.test]
    limits: {circuit: {failures: 2, cooloff: 60s}}
  - hosts: [slow.test]
    timeouts: {headers: 5s, response: 5s}
  - hosts: [tunnel.hooks.test]
    tls: passthrough
    limits: {concurrency: 1, queue: 0}
    timeouts: {response: 1500ms}
  - hosts: [deadtunnel.hooks.test]
    tls: passthrough
    limits: {circuit: {failures: 1, cooloff: 60s}}
  - hosts: [hops.test]
    redirects: {mode: follow, scope: any}
  - hosts: [retry.test]
    retries: {attempts: 2, backoff: 50ms, on: [503]}
"""
NAMES = [
    *(f"{name}.test" for name in ("one", "queued", "down", "slow", "hops", "retry", "many")),
    "tunnel.hooks.test",
    "deadtunnel.hooks.test",
]


@pytest.fixture(scope="module")
def tls_receiver(receiver_ca: trustme.CA) -> Iterator[Receiver]:
    server = start_receiver("127.0.0.2", 0, tls_server_context(receiver_ca, "tunnel.hooks.test"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(start_module_proxy: ProxyLauncher) -> ProxyProcess:
    return start_module_proxy(POLICY, names=NAMES)


def normal(adversary: Adversary) -> str:
    return f"http://one.test:{adversary.port}/ok"


def settled(proxy: ProxyProcess, adversary: Adversary) -> None:
    assert_settled(proxy, normal(adversary))


def free_port() -> int:
    """A port on 127.0.0.2 where nothing listens: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.2", 0))
        return int(sock.getsockname()[1])


# -- 1. every exchange ends exactly once ------------------------------------------------------
def test_chunked_trailers_from_senders_never_wedge_a_destination(
    proxy: ProxyProcess, adversary: Adversary
) -> None:
    url = normal(adversary)
    body = b"2\r\nhi\r\n0\r\nX-Trailer: 1\r\n\r\n"
    for _ in range(3):  # concurrency 1: a single leaked slot would refuse the next delivery
        answer = hostile.exchange(
            proxy, hostile.request("POST", url, ["Transfer-Encoding: chunked"], body)
        )
        assert status_of(answer) == 502 and reason_of(answer) == "proxy-error", answer[:300]
        assert b"X-Hookwall-Request-Id: req_" in answer
    event = proxy.exchange(reason="proxy-error")
    assert "trailers" in event["error"].lower()
    settled(proxy, adversary)


def test_chunked_trailers_from_a_receiver_end_the_exchange(
    proxy: ProxyProcess, adversary: Adversary
) -> None:
    r = requests.get(
        f"http://one.test:{adversary.port}/trailers", proxies={"http": proxy.url}, timeout=10
    )
    assert r.status_code == 502 and r.headers["X-Hookwall-Reason"] == "proxy-error"
    settled(proxy, adversary)


def test_senders_gone_mid_body_or_while_queued_give_everything_back(
    proxy: ProxyProcess, adversary: Adversary
) -> None:
    # Gone mid-body: the head promises 1000 bytes, 10 arrive, the sender hangs up.
    head = hostile.request("POST", normal(adversary), ["Content-Length: 1000"])
    hostile.exchange(proxy, head + b"0123456789", close=True)
    # Gone while queued: one request holds queued.test's only slot, the next waits, then leaves.
    adversary.gate.clear()
    held = ThreadPoolExecutor(1).submit(
        requests.post,
        f"http://queued.test:{adversary.port}/gate",
        data=b"{}",
        proxies={"http": proxy.url},
        timeout=30,
    )
    try:
        wait_until(lambda: adversary.active == 1, what="the slot holder at the receiver")
        with hostile.connect(proxy) as sock:
            sock.sendall(
                hostile.request("POST", f"http://queued.test:{adversary.port}/ok", body=b"{}")
            )
            wait_until(lambda: gauges(proxy)["queued"] == 1, what="the second request queued")
        wait_until(
            lambda: gauges(proxy)["queued"] == 0, what="the departed sender leaving the queue"
        )
        assert gauges(proxy)["slots"] == 1  # the holder still holds its slot, nothing else
    finally:
        adversary.gate.set()
    assert held.result().status_code == 200
    settled(proxy, adversary)


def test_a_receiver_gone_mid_response_ends_the_exchange(
    proxy: ProxyProcess, adversary: Adversary
) -> None:
    r = requests.get(
        f"http://one.test:{adversary.port}/partial", proxies={"http": proxy.url}, timeout=10
    )
    assert r.status_code == 502 and r.headers["X-Hookwall-Reason"] == "upstream-error"
    settled(proxy, adversary)


def test_connect_errors_and_timeouts_open_the_circuit_of_that_port_only(
    proxy: ProxyProcess, adversary: Adversary
) -> None:
    hole = BlackHole()
    try:
        refused = f"http://down.test:{free_port()}/x"
        timed_out = f"http://down.test:{hole.port}/x"
        reasons = []
        for url in (refused, refused, timed_out, timed_out):
            r = requests.post(url, data=b"{}", proxies={"http": proxy.url}, timeout=10)
            reasons.append(r.headers["X-Hookwall-Reason"])
        assert reasons == ["upstream-error", "upstream-error", "connect-timeout", "connect-timeout"]
        # Both ports' circuits are open now: a receiver that is down is not hit again.
        for url in (refused, timed_out):
            r = requests.post(url, data=b"{}", proxies={"http": proxy.url}, timeout=10)
            assert r.headers["X-Hookwall-Reason"] == "circuit-open", r.text
        # Another port of the same host has a circuit of its own (limits key: host-port).
        r = requests.post(
            f"http://down.test:{adversary.port}/ok",
            data=b"{}",
            proxies={"http": proxy.url},
            timeout=10,
        )
        assert r.status_code == 200
    finally:
        hole.stop()
    settled(proxy, adversary)


def test_drain_waits_for_the_redirect_hops_and_retries_it_started(
    start_proxy: ProxyLauncher, tmp_path: Path, adversary: Adversary
) -> None:
    proc = start_proxy(POLICY, names=NAMES)
    adversary.gate.clear()
    try:
        hop_target = f"http://one.test:{adversary.port}/gate"
        urls = {
            "hop": f"http://hops.test:{adversary.port}/redirect?to={hop_target}",
            "retry": f"http://retry.test:{adversary.port}/flip-gate?key={tmp_path.name}",
        }
        with ThreadPoolExecutor(2) as pool:
            futures = {
                what: pool.submit(
                    requests.post, url, data=b"{}", proxies={"http": proc.url}, timeout=30
                )
                for what, url in urls.items()
            }
            # The hop and the retry wait at the receiver; the senders' exchanges are not over.
            wait_until(lambda: adversary.active == 2, what="the hop and the retry at the receiver")
            mark = proc.mark()
            proc.terminate()  # SIGTERM
            proc.wait_for(lambda e: e.get("event") == "proxy_draining", start=mark)
            adversary.gate.set()
            answers = {what: f.result() for what, f in futures.items()}
    finally:
        adversary.gate.set()
    for what, r in answers.items():
        assert r.status_code == 200, (what, r.status_code, r.text)
        assert r.content == b'{"ok": true}'
    assert proc.proc.wait(timeout=15) == 0
    assert not [e for e in proc.events if e.get("event") == "proxy_drain_timeout"]
    attempts = [e for e in proc.events if e.get("event") == "exchange" and e.get("attempt") == 2]
    hops = [e for e in proc.events if e.get("event") == "exchange" and e.get("hop") == 1]
    assert attempts and attempts[0]["status"] == 200 and hops and hops[0]["status"] == 200


def test_a_departed_sender_stops_its_retries_and_hops(
    proxy: ProxyProcess, adversary: Adversary, tmp_path: Path
) -> None:
    adversary.gate.clear()
    seen = len(adversary.paths)
    key = f"gone-{tmp_path.name}"
    paths = {
        "retry": f"http://retry.test:{adversary.port}/flip-gate?key={key}",
        "hop": f"http://hops.test:{adversary.port}/redirect?to=http://one.test:{adversary.port}/gate",
    }
    try:
        for waiting, url in enumerate(paths.values(), start=1):
            with hostile.connect(proxy) as sock:
                sock.sendall(hostile.request("POST", url, body=b"{}"))
                # The retry (or the hop) waits at the receiver; then the sender hangs up.
                wait_until(
                    partial(lambda w: adversary.active == w, waiting), what="the retry or hop"
                )
            # Nobody is left to answer: hookwall stops the work it was doing for the sender
            # (the receiver's own thread still waits at the closed gate), well before the
            # retry's own deadline (20s) would have ended it.
            wait_until(lambda: not any(gauges(proxy).values()), 3, "everything given back")
    finally:
        adversary.gate.set()
        wait_until(lambda: adversary.active == 0, what="the receiver's threads done")
    # The first attempt and one retry (no more), and the hop.
    assert adversary.paths[seen:].count("/flip-gate") == 2
    settled(proxy, adversary)


# -- 2. time and resources are bounded before they are committed ----------------------------
def test_slowloris_heads_are_cut_at_head_timeout(proxy: ProxyProcess, adversary: Adversary) -> None:
    head = hostile.request("POST", normal(adversary), body=b"{}")
    with hostile.connect(proxy, source="127.0.0.7") as sock:
        lasted, answer = hostile.trickle(sock, head * 10, every=0.1, budget=8)
    assert lasted < 4, lasted  # head_timeout is 500ms; idle_timeout (1s) never restarts
    assert status_of(answer) == 408 and reason_of(answer) == "request-timeout", answer
    # Silence after connecting, and a CONNECT whose TLS handshake never comes, the same.
    with hostile.connect(proxy, source="127.0.0.7") as sock:
        assert hostile.closes_within(sock, 4)[0]
    with hostile.connect(proxy, source="127.0.0.7") as sock:
        sock.sendall(b"CONNECT one.test:443 HTTP/1.1\r\nHost: one.test:443\r\n\r\n")
        closed, answer = hostile.closes_within(sock, 4)
        assert closed and status_of(answer) == 200, answer
    settled(proxy, adversary)


def test_a_trickled_body_holds_no_slot_and_is_cut_at_timeouts_body(
    proxy: ProxyProcess, adversary: Adversary
) -> None:
    url = normal(adversary)
    with hostile.connect(proxy) as sock:
        sock.sendall(hostile.request("POST", url, ["Content-Length: 100"]))
        result: dict[str, object] = {}
        attacker = threading.Thread(
            target=lambda: result.update(
                zip(
                    ("lasted", "answer"),
                    hostile.trickle(sock, b"x" * 100, every=0.1, budget=8),
                    strict=True,
                )
            )
        )
        attacker.start()
        # While the body trickles, the destination's only slot is free for a normal delivery.
        r = requests.post(url, data=b"{}", proxies={"http": proxy.url}, timeout=10)
        assert r.status_code == 200
        attacker.join()
    answer = result["answer"]
    assert isinstance(answer, bytes) and status_of(answer) == 408, answer
    assert reason_of(answer) == "request-timeout"
    assert result["lasted"] < 4  # type: ignore[operator]
    settled(proxy, adversary)


def test_a_sender_that_asks_for_close_is_not_kept_open(
    proxy: ProxyProcess, adversary: Adversary
) -> None:
    with hostile.connect(proxy) as sock:
        sock.sendall(hostile.request("POST", normal(adversary), ["Connection: close"], b"{}"))
        closed, answer = hostile.closes_within(sock, 5)
    assert closed and status_of(answer) == 200 and b"Connection: close" in answer


def test_idle_timeout_never_cuts_a_delivery_waiting_for_a_slow_receiver(
    proxy: ProxyProcess, adversary: Adversary
) -> None:
    # idle_timeout is 1s, the receiver answers after 1.5s, slow.test allows 5s.
    r = requests.post(
        f"http://slow.test:{adversary.port}/sleep?s=1.5",
        data=b"{}",
        proxies={"http": proxy.url},
        timeout=20,
    )
    assert r.status_code == 200 and r.content == b'{"ok": true}'
    settled(proxy, adversary)


@pytest.mark.parametrize(
    ("headers", "what"),
    [
        (["X-Big: " + "a" * 9000], "bytes"),
        ([f"X-F{i}: v" for i in range(41)], "fields"),
    ],
)
def test_request_heads_over_the_caps_get_431(
    proxy: ProxyProcess, adversary: Adversary, headers: list[str], what: str
) -> None:
    before = adversary.connections
    answer = hostile.exchange(proxy, hostile.request("POST", normal(adversary), headers, b"{}"))
    assert status_of(answer) == 431 and reason_of(answer) == "header-too-large", answer[:200]
    assert what in answer.decode("latin-1")
    assert adversary.connections == before  # nothing went upstream
    settled(proxy, adversary)


@pytest.mark.parametrize("path", ["/bighead?bytes=9000", "/manyfields?n=50"])
def test_response_heads_over_the_caps_get_502(
    proxy: ProxyProcess, adversary: Adversary, path: str
) -> None:
    r = requests.get(
        f"http://one.test:{adversary.port}{path}", proxies={"http": proxy.url}, timeout=10
    )
    assert r.status_code == 502 and r.headers["X-Hookwall-Reason"] == "response-head-too-large"
    settled(proxy, adversary)


def test_idle_receiver_connections_are_bounded_per_client_and_in_all(proxy: ProxyProcess) -> None:
    receivers = [Adversary() for _ in range(6)]
    sessions = [requests.Session() for _ in range(3)]
    try:
        for session, bound in zip(sessions, (2, 4, 4), strict=True):
            session.proxies = {"http": proxy.url}  # one keep-alive connection to the proxy
            for server in receivers[:4]:
                r = session.get(f"http://many.test:{server.port}/ok", timeout=10)
                assert r.status_code == 200
            # At most 2 idle per sender connection, at most 4 in all.
            wait_until(
                partial(lambda b: sum(r.open for r in receivers) <= b, bound),
                what=f"<= {bound} open",
            )
        assert sum(r.connections for r in receivers) == 12  # every exchange was served
    finally:
        for session in sessions:
            session.close()
        for server in receivers:
            server.stop()


def test_passthrough_tunnels_count_against_their_destination(
    proxy: ProxyProcess, adversary: Adversary, tls_receiver: Receiver, receiver_ca_file: Path
) -> None:
    context = trusting(receiver_ca_file)
    target = f"tunnel.hooks.test:{tls_receiver.port}"

    def open_tunnel() -> tuple[socket.socket, bytes]:
        sock = hostile.connect(proxy)
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        return sock, answer

    first, answer = open_tunnel()
    assert status_of(answer) == 200
    tls = context.wrap_socket(first, server_hostname="tunnel.hooks.test")
    tls.sendall(b"GET /pt HTTP/1.1\r\nHost: tunnel.hooks.test\r\nContent-Length: 0\r\n\r\n")
    assert tls.recv(4096).startswith(b"HTTP/1.1 200")  # the receiver's own certificate held
    second, answer = open_tunnel()  # concurrency 1, queue 0: refused on the CONNECT itself
    second.close()
    assert status_of(answer) == 503 and reason_of(answer) == "queue-full", answer
    # The tunnel lives at most timeouts.response (1.5s), then its slot is free again.
    closed, _ = hostile.closes_within(tls, 5)
    tls.close()
    assert closed
    wait_until(lambda: gauges(proxy)["slots"] == 0, what="the tunnel's slot given back")
    third, answer = open_tunnel()
    third.close()
    assert status_of(answer) == 200
    event = proxy.exchange(method="CONNECT", tls="passthrough")
    assert event["peer_ip"] == "127.0.0.2" and event["decision"] == "allow"
    settled(proxy, adversary)


def test_a_passthrough_tunnel_whose_receiver_is_down_counts_for_the_circuit(
    proxy: ProxyProcess, adversary: Adversary, receiver_ca_file: Path
) -> None:
    target = f"deadtunnel.hooks.test:{free_port()}"
    with hostile.connect(proxy) as sock:
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")  # admitted; no connection yet
        with pytest.raises((ssl.SSLError, OSError)):  # the receiver is down: the tunnel ends
            trusting(receiver_ca_file).wrap_socket(sock, server_hostname="deadtunnel.hooks.test")
    event = proxy.exchange(host="deadtunnel.hooks.test", method="CONNECT")
    assert event["reason"] == "upstream-error" and event["tls"] == "passthrough"
    answer = hostile.answer(proxy, f"CONNECT {target} HTTP/1.1\r\n\r\n".encode(), timeout=5)
    assert status_of(answer) == 503 and reason_of(answer) == "circuit-open", answer
    settled(proxy, adversary)


def test_the_internal_listener_serves_only_hookwalls_own_requests(
    proxy: ProxyProcess, adversary: Adversary
) -> None:
    started = proxy.wait_for(lambda e: e.get("event") == "proxy_started")
    host, _, port = started["internal_listen"][0].rpartition(":")
    before = adversary.connections
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(hostile.request("POST", normal(adversary), body=b"{}"))
        answer = hostile.read_response(sock)
    assert status_of(answer) == 400 and reason_of(answer) == "bad-request"
    assert b"internal listener" in answer and adversary.connections == before
    settled(proxy, adversary)


def test_an_intercepted_connect_opens_no_receiver_connection_before_a_request(
    proxy: ProxyProcess, adversary: Adversary
) -> None:
    # Nothing listens on the target port: an eager connect would answer the CONNECT 502.
    with hostile.connect(proxy) as sock:
        sock.sendall(f"CONNECT one.test:{free_port()} HTTP/1.1\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    settled(proxy, adversary)


def variant(timeouts: str | None = None, **proxy: str) -> str:
    """POLICY with these ``proxy:`` settings (replaced, or added), and these defaults'
    ``timeouts``."""
    lines = POLICY.splitlines()
    for name, value in proxy.items():
        setting = f"  {name}: {value}"
        at = next((i for i, line in enumerate(lines) if line.startswith(f"  {name}: ")), None)
        if at is None:
            lines.insert(lines.index("defaults:"), setting)
        else:
            lines[at] = setting
    if timeouts is not None:
        at = next(i for i, line in enumerate(lines) if line.startswith("  timeouts: "))
        lines[at] = f"  timeouts: {timeouts}"
    return "\n".join(lines) + "\n"


def test_request_bodies_in_memory_are_bounded_in_all(
    start_proxy: ProxyLauncher, adversary: Adversary
) -> None:
    proc = start_proxy(variant(max_buffered_bodies="2KiB"), names=NAMES)
    url = f"http://queued.test:{adversary.port}/ok"
    with hostile.connect(proc) as slow:
        slow.sendall(hostile.request("POST", url, ["Content-Length: 1500"]) + b"x")
        wait_until(lambda: gauges(proc)["in_flight"] == 1, what="the slow body in flight")
        r = requests.post(url, data=b"y" * 1000, proxies={"http": proc.url}, timeout=10)
        assert r.status_code == 503 and r.headers["X-Hookwall-Reason"] == "proxy-busy"
        assert r.headers["Retry-After"] == "1" and "max_buffered_bodies" in r.text
        # The trickler is cut at timeouts.body (1s); its reservation goes back with it.
        assert status_of(hostile.closes_within(slow, 5)[1]) == 408
    assert_settled(proc, url)
    r = requests.post(url, data=b"y" * 1000, proxies={"http": proc.url}, timeout=10)
    assert r.status_code == 200


def test_connections_per_client_address_are_capped(
    start_proxy: ProxyLauncher, adversary: Adversary
) -> None:
    proc = start_proxy(variant(max_connections_per_client="5", head_timeout="30s"), names=NAMES)
    held: list[socket.socket] = []
    try:
        held = [hostile.connect(proc, source="127.0.0.9") for _ in range(5)]
        extra = hostile.connect(proc, source="127.0.0.9")
        closed, _ = hostile.closes_within(extra, 5)
        extra.close()
        assert closed  # the sixth from the same address is closed at once
        for sock in held:  # the first five are still open
            assert hostile.closes_within(sock, 0.05) == (False, b"")
        proc.wait_for(lambda e: e.get("reason") == "max-connections-per-client")
        # Another client address is served meanwhile.
        assert_settled(proc, normal(adversary))
    finally:
        for sock in held:
            sock.close()


# -- the soak: every class above, mixed, a thousand times -------------------------------------
Attack = Callable[[ProxyProcess], object]  # one hostile exchange; what the proxy answered


def _attacks(adversary: Adversary) -> list[Attack]:
    one = f"http://one.test:{adversary.port}"
    slow = f"http://slow.test:{adversary.port}"

    def raw(data: bytes, *, close: bool = False) -> Attack:
        return lambda proxy: hostile.exchange(proxy, data, close=close)

    def trickled(data: bytes) -> Attack:
        def attack(proxy: ProxyProcess) -> bytes:
            with hostile.connect(proxy) as sock:
                return hostile.trickle(sock, data, every=0.1, budget=5)[1]

        return attack

    def silent_tunnel(proxy: ProxyProcess) -> bytes:
        with hostile.connect(proxy) as sock:
            sock.sendall(b"CONNECT one.test:443 HTTP/1.1\r\n\r\n")
            return hostile.closes_within(sock, 5)[1]

    def delivery(path: str) -> Attack:
        return lambda proxy: requests.get(one + path, proxies={"http": proxy.url}, timeout=20)

    chunked = ["Transfer-Encoding: chunked"]
    return [
        raw(hostile.request("POST", one + "/ok", chunked, b"2\r\nhi\r\n0\r\nX-T: 1\r\n\r\n")),
        raw(hostile.request("POST", one + "/ok", ["Content-Length: 999"]) + b"12", close=True),
        raw(hostile.request("POST", one + "/ok", ["X-Big: " + "a" * 9000], b"{}")),
        raw(hostile.request("POST", one + "/ok", [f"X-{i}: v" for i in range(50)], b"{}")),
        raw(hostile.request("POST", slow + "/sleep?s=0.3", body=b"{}"), close=True),
        trickled(hostile.request("POST", one + "/ok", body=b"{}")),
        trickled(hostile.request("POST", one + "/ok", ["Content-Length: 50"])),
        silent_tunnel,
        delivery("/trailers"),
        delivery("/partial"),
        delivery("/bighead?bytes=9000"),
        delivery("/ok"),
    ]


# The same classes of attack, with shorter deadlines to cut them at: the trickles, silent
# tunnels and slow bodies end in 300 ms instead of 500 ms to 1 s, so the soak takes a few
# seconds, not half a minute. And one.test's circuit is off: three of the four deliveries to
# it in each round fail on purpose, and with 16 senders at once five failures in a row (which
# open a circuit, for 30 s) come up now and then, so the closing normal delivery would be
# refused for the circuit, not for anything left behind.
ONE_TEST = "  - hosts: [one.test]\n    limits: {concurrency: 1, queue: 0}\n"
SOAK = variant(
    head_timeout="300ms", timeouts="{connect: 500ms, headers: 10s, response: 10s, body: 300ms}"
).replace(ONE_TEST, ONE_TEST.replace("queue: 0}", "queue: 0, circuit: {failures: 0}}"))
assert SOAK.count("circuit: {failures: 0}") == 1


def test_soak_a_thousand_hostile_exchanges_leave_nothing_behind(
    start_proxy: ProxyLauncher, adversary: Adversary
) -> None:
    proc = start_proxy(SOAK, names=NAMES)
    attacks = _attacks(adversary)

    def run(count: int) -> int:
        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(attacks[i % len(attacks)], proc) for i in range(count)]
            return sum(1 for f in futures if f.result() is not None)

    assert run(120) == 120  # warm-up: caches, pools and lazy imports settle
    assert_settled(proc, normal(adversary))
    before = hostile.rss_bytes(proc.proc.pid)
    assert run(1000) == 1000
    assert_settled(proc, normal(adversary), timeout=20)
    grown = hostile.rss_bytes(proc.proc.pid) - before
    print(f"soak: RSS {before / 2**20:.1f} MiB, +{grown / 2**20:.1f} MiB after 1000")
    assert grown < 20 * 1024 * 1024, f"RSS grew by {grown / 2**20:.1f} MiB"
    crashed = [e for e in proc.events if "crashed" in str(e.get("message", ""))]
    assert not crashed  # every layer failure was turned into a closed connection
