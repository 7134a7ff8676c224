"""Flood and DoS control through the real proxy, against receivers that misbehave on purpose.

Synchronisation is by events (the receiver's gate, the proxy's log lines), never by sleeping;
the only waits are the timeouts under test, kept short.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.adversary import Adversary, BlackHole
from tests.support.hostile import assert_no_slot_held
from tests.support.launcher import ProxyLauncher
from tests.support.proxyproc import ProxyProcess
from tests.support.waits import wait_until

pytestmark = pytest.mark.integration

POLICY = """\
version: 1
unsafe: true
proxy: {max_connections: 40}
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
  timeouts: {connect: 500ms, headers: 3s, response: 6s}
destinations:
  - hosts: [capped.test]
    limits: {concurrency: 2, queue: 20, queue_timeout: 10s}
  - hosts: [tiny.test]
    limits: {concurrency: 1, queue: 1, queue_timeout: 300ms}
  - hosts: [rated.test]
    limits: {rate: 1/s, burst: 1, queue_timeout: 100ms}
  - hosts: [flappy.test]
    limits: {queue_timeout: 300ms, retry_after_max: 30s}
  - hosts: [fragile.test]
    limits: {circuit: {failures: 2, cooloff: 500ms}}
  - hosts: [hasty.test]
    timeouts: {headers: 300ms, response: 1s}
  - hosts: [small.test]
    max_request_body: 1KiB
    max_response_body: 4KiB
"""
NAMES = [
    f"{name}.test"
    for name in (
        "capped",
        "tiny",
        "rated",
        "flappy",
        "fragile",
        "hasty",
        "small",
        "healthy",
        "hole",
    )
]


@pytest.fixture(scope="module")
def healthy() -> Iterator[Adversary]:
    receiver = Adversary()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def proxy(start_module_proxy: ProxyLauncher) -> Iterator[ProxyProcess]:
    proc = start_module_proxy(POLICY, names=NAMES)
    yield proc
    assert_no_slot_held(proc)  # after every scenario of this module


def send(
    proxy: ProxyProcess, url: str, data: bytes | Iterable[bytes] = b"{}", timeout: float = 20
) -> requests.Response:
    return requests.post(url, data=data, proxies={"http": proxy.url}, timeout=timeout)


def test_concurrency_cap_holds_at_the_receiver_and_the_queue_drains(
    proxy: ProxyProcess, adversary: Adversary
) -> None:
    adversary.gate.clear()
    adversary.max_active = 0
    url = f"http://capped.test:{adversary.port}/gate"
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(send, proxy, url) for _ in range(8)]
        wait_until(lambda: adversary.active == 2)
        assert adversary.max_active == 2  # six wait in hookwall's queue, not at the receiver
        adversary.gate.set()
        statuses = [f.result().status_code for f in futures]
    assert statuses == [200] * 8
    assert adversary.max_active == 2
    queued = proxy.wait_count(lambda e: e.get("host") == "capped.test", 8)
    assert max(e["queue_ms"] for e in queued) > 0


def test_a_saturated_receiver_does_not_slow_a_healthy_one(
    proxy: ProxyProcess, adversary: Adversary, healthy: Adversary
) -> None:
    adversary.gate.clear()
    slow = f"http://capped.test:{adversary.port}/gate"
    with ThreadPoolExecutor(12) as pool:
        stuck = [pool.submit(send, proxy, slow) for _ in range(10)]
        wait_until(lambda: adversary.active == 2)
        for _ in range(10):  # while the slow receiver holds its slots and queue
            r = send(proxy, f"http://healthy.test:{healthy.port}/ok")
            assert r.status_code == 200
        assert not any(f.done() for f in stuck)
        adversary.gate.set()
        assert all(f.result().status_code == 200 for f in stuck)


def test_queue_full_and_queue_timeout_say_when_to_come_back(
    proxy: ProxyProcess, adversary: Adversary
) -> None:
    adversary.gate.clear()
    url = f"http://tiny.test:{adversary.port}/gate"
    with ThreadPoolExecutor(2) as pool:
        holder = pool.submit(send, proxy, url)
        wait_until(lambda: adversary.active == 1)
        waiter = pool.submit(send, proxy, url)  # takes the single queue place...
        wait_until(lambda: _queued(proxy, "tiny.test") == 1)
        full = send(proxy, url)  # ...so this one finds the queue full
        assert full.status_code == 503
        assert full.headers["X-Hookwall-Reason"] == "queue-full"
        assert int(full.headers["Retry-After"]) >= 1
        timed_out = waiter.result()  # 300 ms later
        assert timed_out.status_code == 503
        assert timed_out.headers["X-Hookwall-Reason"] == "queue-timeout"
        assert int(timed_out.headers["Retry-After"]) >= 1
        adversary.gate.set()
        assert holder.result().status_code == 200


def _queued(proxy: ProxyProcess, host: str) -> int:
    mark = proxy.mark()
    proxy.proc.send_signal(signal.SIGUSR1)
    snapshot = proxy.wait_for(lambda e: e.get("event") == "limits_snapshot", start=mark)
    return sum(d["queued"] for d in snapshot["destinations"] if str(d["key"]).startswith(host))


def test_rate_limit_answers_429_when_it_cannot_be_served_in_time(
    proxy: ProxyProcess, adversary: Adversary
) -> None:
    url = f"http://rated.test:{adversary.port}/ok"
    assert send(proxy, url).status_code == 200  # the burst token
    r = send(proxy, url)  # the next token is ~1 s away; the queue timeout is 100 ms
    assert r.status_code == 429
    assert r.headers["X-Hookwall-Reason"] == "rate-limited"
    assert int(r.headers["Retry-After"]) >= 1


def test_receiver_backpressure_pauses_the_destination_for_everyone(
    proxy: ProxyProcess, adversary: Adversary
) -> None:
    throttled = send(proxy, f"http://flappy.test:{adversary.port}/status/503?retry_after=20")
    assert throttled.status_code == 503  # the receiver's own answer, passed through
    assert "X-Hookwall-Reason" not in throttled.headers
    before = len(adversary.paths)
    r = send(proxy, f"http://flappy.test:{adversary.port}/ok")
    assert r.status_code == 503 and r.headers["X-Hookwall-Reason"] == "queue-timeout"
    assert 1 <= int(r.headers["Retry-After"]) <= 20
    assert len(adversary.paths) == before  # the paused receiver was not contacted


def test_circuit_opens_after_failures_and_closes_after_a_good_probe(
    proxy: ProxyProcess, adversary: Adversary
) -> None:
    base = f"http://fragile.test:{adversary.port}"
    for _ in range(2):
        assert send(proxy, f"{base}/status/500").status_code == 500
    before = len(adversary.paths)
    r = send(proxy, f"{base}/ok")
    assert r.status_code == 503 and r.headers["X-Hookwall-Reason"] == "circuit-open"
    assert int(r.headers["Retry-After"]) >= 1
    assert len(adversary.paths) == before  # failing fast: the receiver is left alone
    proxy.wait_for(lambda e: e.get("event") == "circuit_opened")
    deadline = time.monotonic() + 5
    while (r := send(proxy, f"{base}/ok")).status_code != 200:  # after the 500 ms cool-off
        assert r.headers["X-Hookwall-Reason"] == "circuit-open"
        assert time.monotonic() < deadline
        time.sleep(0.1)
    proxy.wait_for(lambda e: e.get("event") == "circuit_closed")


def test_hanging_receiver_gets_response_timeout(proxy: ProxyProcess, adversary: Adversary) -> None:
    started = time.monotonic()
    r = send(proxy, f"http://hasty.test:{adversary.port}/hang")
    assert r.status_code == 504 and r.headers["X-Hookwall-Reason"] == "response-timeout"
    assert time.monotonic() - started < 3
    event = proxy.exchange(r.json()["request_id"])
    assert event["reason"] == "response-timeout" and event["status"] == 504


def test_trickling_receiver_is_cut_at_the_deadline(
    proxy: ProxyProcess, adversary: Adversary
) -> None:
    started = time.monotonic()
    r = send(proxy, f"http://hasty.test:{adversary.port}/trickle")
    assert r.status_code == 504 and r.headers["X-Hookwall-Reason"] == "response-timeout"
    assert time.monotonic() - started < 4


def test_black_hole_receiver_gets_connect_timeout(proxy: ProxyProcess) -> None:
    hole = BlackHole()
    try:
        started = time.monotonic()
        r = send(proxy, f"http://hole.test:{hole.port}/")
        assert r.status_code == 504, r.text
        assert r.headers["X-Hookwall-Reason"] == "connect-timeout"
        assert time.monotonic() - started < 3
    finally:
        hole.stop()


def test_request_too_large(proxy: ProxyProcess, adversary: Adversary) -> None:
    before = len(adversary.paths)
    r = send(proxy, f"http://small.test:{adversary.port}/ok", data=b"x" * 2048)
    assert r.status_code == 413 and r.headers["X-Hookwall-Reason"] == "request-too-large"
    chunked = send(proxy, f"http://small.test:{adversary.port}/ok", data=iter([b"x" * 1500]))
    assert chunked.status_code == 413
    assert len(adversary.paths) == before


@pytest.mark.parametrize("path", ["/huge-declared", "/huge-chunked"])
def test_response_too_large(proxy: ProxyProcess, adversary: Adversary, path: str) -> None:
    started = time.monotonic()
    r = send(proxy, f"http://small.test:{adversary.port}{path}")
    assert r.status_code == 502
    assert r.headers["X-Hookwall-Reason"] == "response-too-large"
    assert time.monotonic() - started < 3


def test_client_connection_cap(proxy: ProxyProcess) -> None:
    sockets = []
    try:
        for _ in range(40):
            sockets.append(socket.create_connection((proxy.host, proxy.port), timeout=5))
        extra = socket.create_connection((proxy.host, proxy.port), timeout=5)
        try:  # closed without an answer (a reset if our request was still unread)
            extra.sendall(b"GET http://healthy.test/ HTTP/1.1\r\nHost: healthy.test\r\n\r\n")
            assert extra.recv(100) == b""
        except ConnectionResetError:
            pass
        finally:
            extra.close()
        proxy.wait_for(lambda e: e.get("event") == "client_refused")
    finally:
        for s in sockets:
            s.close()


def test_mixed_outcomes_leave_no_slot_behind(
    proxy: ProxyProcess, adversary: Adversary, healthy: Adversary
) -> None:
    """Hundreds of exchanges ending every way; the module teardown checks the snapshot."""
    adversary.gate.set()
    cases = [  # (host, path): every way an exchange can end
        ("capped.test", "/ok"),
        ("healthy.test", "/ok"),
        ("fragile.test", "/status/404"),
        ("capped.test", "/status/500"),
        ("hasty.test", "/hang"),  # response-timeout after 300 ms
        ("small.test", "/huge-declared"),  # response-too-large
        ("tiny.test", "/ok"),  # queue-full / queue-timeout under this load
        ("capped.test", "/status/503?retry_after=0"),
    ]

    def one(i: int) -> int:
        host, path = cases[i % len(cases)]
        port = healthy.port if host == "healthy.test" else adversary.port
        try:  # every 7th client gives up early: its slot must still come back
            return send(
                proxy, f"http://{host}:{port}{path}", timeout=0.2 if i % 7 == 0 else 20
            ).status_code
        except requests.RequestException:
            return 0

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(240)))
    assert results.count(200) > 0
