"""The hostile classes of ``test_proxy_hostile`` against two replicas sharing limits in Redis.

A slot leaked by one replica is a lease it keeps renewing, so every replica would refuse the
destination: after each attack on replica A, a normal delivery through replica B to a
destination with one shared slot must get 200, and neither replica holds anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support import hostile
from tests.support.adversary import Adversary
from tests.support.dnsserver import TestDnsServer
from tests.support.hostile import assert_settled, reason_of, status_of
from tests.support.proxyproc import ProxyProcess
from tests.support.redisserver import RedisServer, needs_redis

pytestmark = [pytest.mark.integration, needs_redis]

POLICY = """\
version: 1
unsafe: true
limits: {{backend: "{url}", lease: 2s, on_backend_failure: refuse}}
proxy: {{head_timeout: 1s, max_header_fields: 40}}
defaults:
  network: {{allow: [127.0.0.2/32], ports: ["1-65535"]}}
  timeouts: {{connect: 500ms, headers: 10s, response: 10s, body: 1s}}
destinations:
  - hosts: [one.test]
    limits: {{concurrency: 1, queue: 0}}
"""


@pytest.fixture(scope="module")
def receiver() -> Iterator[Adversary]:
    adversary = Adversary()
    yield adversary
    adversary.stop()


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, dns_server: TestDnsServer
) -> Iterator[tuple[ProxyProcess, ProxyProcess]]:
    dns_server.add("one.test", "127.0.0.2")
    tmp = tmp_path_factory.mktemp("hostile-shared")
    redis = RedisServer(tmp / "redis").start()
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY.format(url=redis.url))
    procs: list[ProxyProcess] = []
    try:
        for name in ("a", "b"):
            proc = ProxyProcess(policy, tmp / name, dns=[dns_server.spec])
            proc.wait_for(lambda e: e.get("event") == "limits_backend")
            procs.append(proc)
        yield procs[0], procs[1]
    finally:
        for proc in procs:
            assert proc.stop() == 0
        redis.stop()


def both_settled(replicas: tuple[ProxyProcess, ProxyProcess], receiver: Adversary) -> None:
    a, b = replicas
    url = f"http://one.test:{receiver.port}/ok"
    assert_settled(a, url)
    assert_settled(b, url)  # one shared slot: a lease A kept would refuse this
    assert_settled(a, url)


def test_trailers_on_one_replica_never_wedge_the_fleet(replicas, receiver, tmp_path: Path) -> None:
    a, _ = replicas
    url = f"http://one.test:{receiver.port}/ok"
    body = b"2\r\nhi\r\n0\r\nX-Trailer: 1\r\n\r\n"
    for _ in range(3):
        answer = hostile.exchange(
            a, hostile.request("POST", url, ["Transfer-Encoding: chunked"], body)
        )
        assert status_of(answer) == 502 and reason_of(answer) == "proxy-error"
    r = requests.get(
        f"http://one.test:{receiver.port}/trailers", proxies={"http": a.url}, timeout=10
    )
    assert r.status_code == 502
    both_settled(replicas, receiver)


def test_departed_and_slow_senders_on_one_replica_hold_no_shared_slot(replicas, receiver) -> None:
    a, _ = replicas
    url = f"http://one.test:{receiver.port}"
    hostile.exchange(
        a, hostile.request("POST", url + "/ok", ["Content-Length: 500"]) + b"x", close=True
    )
    hostile.exchange(a, hostile.request("POST", url + "/sleep?s=0.5", body=b"{}"), close=True)
    with hostile.connect(a) as sock:
        sock.sendall(hostile.request("POST", url + "/ok", ["Content-Length: 50"]))
        _, answer = hostile.closes_within(sock, 5)
    assert status_of(answer) == 408
    r = requests.get(url + "/partial", proxies={"http": a.url}, timeout=10)
    assert r.status_code == 502
    both_settled(replicas, receiver)
