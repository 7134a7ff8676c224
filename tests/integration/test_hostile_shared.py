"""The hostile classes of ``test_proxy_hostile`` against two replicas sharing limits in Redis.

A slot leaked by one replica is a lease it keeps renewing, so every replica would refuse the
destination: after each attack on replica A, a normal delivery through replica B to a
destination with one shared slot must get 200, and neither replica holds anything.
"""

from __future__ import annotations

import pytest
import requests

from tests.support import hostile
from tests.support.adversary import Adversary
from tests.support.hostile import assert_settled, reason_of, status_of
from tests.support.launcher import ProxyLauncher
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


Replicas = tuple[ProxyProcess, ProxyProcess]


@pytest.fixture(scope="module")
def replicas(redis_server: RedisServer, start_module_proxy: ProxyLauncher) -> Replicas:
    """Two replicas on one Redis (which outlives them: it is set up first)."""
    policy = POLICY.format(url=redis_server.url)
    a, b = start_module_proxy.fleet(2, policy, names=["one.test"])
    for proc in (a, b):
        proc.wait_for(lambda e: e.get("event") == "limits_backend")
    return a, b


def both_settled(replicas: Replicas, adversary: Adversary) -> None:
    a, b = replicas
    url = f"http://one.test:{adversary.port}/ok"
    assert_settled(a, url)
    assert_settled(b, url)  # one shared slot: a lease A kept would refuse this
    assert_settled(a, url)


def test_trailers_on_one_replica_never_wedge_the_fleet(
    replicas: Replicas, adversary: Adversary
) -> None:
    a, _ = replicas
    url = f"http://one.test:{adversary.port}/ok"
    body = b"2\r\nhi\r\n0\r\nX-Trailer: 1\r\n\r\n"
    for _ in range(3):
        answer = hostile.exchange(
            a, hostile.request("POST", url, ["Transfer-Encoding: chunked"], body)
        )
        assert status_of(answer) == 502 and reason_of(answer) == "proxy-error"
    r = requests.get(
        f"http://one.test:{adversary.port}/trailers", proxies={"http": a.url}, timeout=10
    )
    assert r.status_code == 502
    both_settled(replicas, adversary)


def test_departed_and_slow_senders_on_one_replica_hold_no_shared_slot(
    replicas: Replicas, adversary: Adversary
) -> None:
    a, _ = replicas
    url = f"http://one.test:{adversary.port}"
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
    both_settled(replicas, adversary)
