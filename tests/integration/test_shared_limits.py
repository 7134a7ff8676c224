"""Shared limits through real proxy processes and a real redis-server (``limits.backend``).

Two ``hookwall run`` processes play two replicas: one cap, one rate bucket and one circuit for
both; a replica killed with SIGKILL gives its slots back after the lease; Redis killed
mid-test degrades to local limits (or refuses, when configured) and recovers. Synchronisation
is by events (the receiver's gate, the proxies' log lines); the only waits are the leases and
cool-offs under test, kept short.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.support.adversary import Adversary
from tests.support.hostile import assert_no_slot_held
from tests.support.launcher import ProxyLauncher
from tests.support.proxyproc import Event, ProxyProcess
from tests.support.redisserver import RedisServer, needs_redis
from tests.support.waits import wait_until

pytestmark = [pytest.mark.integration, needs_redis]

POLICY = """\
version: 1
unsafe: true
limits: {{backend: "{url}", lease: 1s, on_backend_failure: {on_failure}}}
defaults:
  network: {{allow: [127.0.0.2/32], ports: ["1-65535"]}}
  timeouts: {{connect: 500ms, headers: 10s, response: 15s}}
destinations:
  - hosts: [capped.test]
    limits: {{concurrency: 2, queue: 50, queue_timeout: 10s}}
  - hosts: [three.test]
    limits: {{concurrency: 3, queue: 50, queue_timeout: 10s}}
  - hosts: [held.test]
    limits: {{concurrency: 2, queue: 20, queue_timeout: 8s}}
  - hosts: [rated.test]
    limits: {{rate: 1/s, burst: 1, queue_timeout: 100ms}}
  - hosts: [fragile.test]
    limits: {{circuit: {{failures: 2, cooloff: 1s}}}}
"""
NAMES = [f"{name}.test" for name in ("capped", "three", "held", "rated", "fragile", "ok")]
Replicas = tuple[ProxyProcess, ProxyProcess]


def policy(redis: RedisServer, on_failure: str = "local") -> str:
    return POLICY.format(url=redis.url, on_failure=on_failure)


def connected(proc: ProxyProcess) -> ProxyProcess:
    """Once the proxy has connected to its Redis (or given up on it)."""
    proc.wait_for(lambda e: e.get("event") in ("limits_backend", "limits_backend_degraded"))
    return proc


@pytest.fixture(scope="module")
def replicas(redis_server: RedisServer, start_module_proxy: ProxyLauncher) -> Iterator[Replicas]:
    """Two replicas on one Redis (which outlives them: it is set up first)."""
    a, b = map(connected, start_module_proxy.fleet(2, policy(redis_server), names=NAMES))
    yield a, b
    for proc in (a, b):  # no slot leaks, and Redis was there all along
        assert_no_slot_held(proc)
        assert not proc.events_named("limits_backend_degraded")


def send(proxy: ProxyProcess, url: str, timeout: float = 30) -> requests.Response:
    return requests.post(url, data=b"{}", proxies={"http": proxy.url}, timeout=timeout)


def test_two_proxies_share_one_concurrency_cap(replicas: Replicas, adversary: Adversary) -> None:
    a, b = replicas
    adversary.gate.clear()
    adversary.max_active = 0
    url = f"http://capped.test:{adversary.port}/gate"
    try:
        with ThreadPoolExecutor(12) as pool:
            futures = [pool.submit(send, proxy, url) for proxy in (a, b) * 6]
            wait_until(lambda: adversary.active == 2)
            time.sleep(0.5)  # long enough for a wrong admission to show up
            assert adversary.max_active == 2  # not 2 per proxy: one cap across both
            adversary.gate.set()
            assert [f.result().status_code for f in futures] == [200] * 12
    finally:
        adversary.gate.set()
    assert adversary.max_active == 2
    capped = [p.wait_count(lambda e: e.get("host") == "capped.test", 6) for p in (a, b)]
    waited = [e["queue_ms"] for events in capped for e in events]
    assert sum(1 for ms in waited if ms > 100) >= 8  # queued, in both replicas


def test_rate_limit_is_shared(replicas: Replicas, adversary: Adversary) -> None:
    a, b = replicas
    assert send(a, f"http://rated.test:{adversary.port}/ok").status_code == 200  # the burst
    r = send(b, f"http://rated.test:{adversary.port}/ok")  # the other replica: same bucket
    assert r.status_code == 429
    assert r.headers["X-Hookwall-Reason"] == "rate-limited"


def test_circuit_is_shared(replicas: Replicas, adversary: Adversary) -> None:
    a, b = replicas
    base = f"http://fragile.test:{adversary.port}"
    mark_a, mark_b = a.mark(), b.mark()
    assert send(a, f"{base}/status/500").status_code == 500
    assert send(b, f"{base}/status/500").status_code == 500  # 2 in a row, across replicas
    before = len(adversary.paths)
    for proxy in (a, b):
        r = send(proxy, f"{base}/ok")
        assert r.status_code == 503 and r.headers["X-Hookwall-Reason"] == "circuit-open"
    assert len(adversary.paths) == before  # nobody bothered the failing receiver

    def opened() -> list[Event]:
        return [
            e
            for p, m in ((a, mark_a), (b, mark_b))
            for e in p.events[m:]
            if e.get("event") == "circuit_opened"
        ]

    deadline = time.monotonic() + 10
    while not opened():  # the lines reach us through a reader thread per process
        assert time.monotonic() < deadline, "no circuit_opened event"
        time.sleep(0.01)
    assert len(opened()) == 1  # logged once, by the replica that opened it
    deadline = time.monotonic() + 5
    while (r := send(b, f"{base}/ok")).status_code != 200:  # after the 1 s cool-off
        assert r.headers["X-Hookwall-Reason"] == "circuit-open"
        assert time.monotonic() < deadline
        time.sleep(0.1)
    b.wait_for(lambda e: e.get("event") == "circuit_closed", start=mark_b)
    assert send(a, f"{base}/ok").status_code == 200  # closed for the other replica too


def test_workers_with_the_backend_share_one_cap_instead_of_dividing_it(
    start_proxy: ProxyLauncher, redis_server: RedisServer, adversary: Adversary
) -> None:
    """concurrency 3, --workers 2: a divided cap would allow 1 + 1; the shared one 3."""
    proc = connected(start_proxy(policy(redis_server), names=NAMES, workers=2))
    adversary.gate.clear()
    adversary.max_active = 0
    try:
        supervisor = proc.wait_for(lambda e: e.get("event") == "supervisor_started")
        assert supervisor["limits_backend"].startswith("redis://")
        with ThreadPoolExecutor(12) as pool:
            futures = [
                pool.submit(send, proc, f"http://three.test:{adversary.port}/gate")
                for _ in range(12)
            ]
            wait_until(lambda: adversary.active == 3)
            time.sleep(0.3)
            assert adversary.max_active == 3
            adversary.gate.set()
            assert [f.result().status_code for f in futures] == [200] * 12
    finally:
        adversary.gate.set()


def test_a_killed_replica_gives_its_slots_back_after_the_lease(
    replicas: Replicas, start_proxy: ProxyLauncher, redis_server: RedisServer
) -> None:
    a, _ = replicas
    receiver = Adversary()
    doomed = start_proxy(policy(redis_server), names=NAMES, exit_code=None)  # killed below
    connected(doomed)
    try:
        url = f"http://held.test:{receiver.port}"
        with ThreadPoolExecutor(2) as pool:
            for _ in range(2):  # both slots of held.test, held by the doomed replica
                pool.submit(send, doomed, f"{url}/gate", 10)
            wait_until(lambda: receiver.active == 2)
            doomed.proc.kill()  # SIGKILL: no release, no goodbye
            doomed.proc.wait(timeout=10)
            killed = time.monotonic()
            r = send(a, f"{url}/ok")  # waits in the queue until the leases run out
            waited = time.monotonic() - killed
        assert r.status_code == 200
        assert 0.5 < waited < 5, waited  # lease: 1 s
        event = a.exchange(r.headers["X-Hookwall-Request-Id"])
        assert event["queue_ms"] > 400
    finally:
        receiver.stop()


def test_redis_killed_mid_test_degrades_to_local_limits_or_refuses(
    start_proxy: ProxyLauncher, tmp_path: Path, adversary: Adversary
) -> None:
    server = RedisServer(tmp_path / "redis").start()  # one of its own, to kill and restart
    try:
        local = connected(start_proxy(policy(server), names=NAMES))
        refuse = connected(start_proxy(policy(server, "refuse"), names=NAMES))
        url = f"http://ok.test:{adversary.port}/ok"
        assert send(local, url).status_code == 200
        assert send(refuse, url).status_code == 200
        mark_local, mark_refuse = local.mark(), refuse.mark()
        server.kill()
        for _ in range(5):  # deliveries keep flowing, on each process's own limits
            assert send(local, url).status_code == 200
        degraded = local.wait_for(
            lambda e: e.get("event") == "limits_backend_degraded", start=mark_local
        )
        assert degraded["level"] == "warning" and degraded["on_backend_failure"] == "local"
        assert degraded["backend"] == server.url
        r = send(refuse, url)
        assert r.status_code == 503
        assert r.headers["X-Hookwall-Reason"] == "limits-unavailable"
        assert int(r.headers["Retry-After"]) >= 1
        assert r.json()["error"] == "limits-unavailable"
        refuse.wait_for(lambda e: e.get("event") == "limits_backend_degraded", start=mark_refuse)
        server.start()  # same port: both recover within the health-check interval
        for proc, mark in ((local, mark_local), (refuse, mark_refuse)):
            proc.wait_for(lambda e: e.get("event") == "limits_backend_restored", start=mark)
        assert send(refuse, url).status_code == 200
        assert send(local, url).status_code == 200
    finally:
        start_proxy.stop_all()  # before their Redis goes
        server.stop()
