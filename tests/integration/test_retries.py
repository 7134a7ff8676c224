"""Proxy-side retries through the real proxy: every attempt is its own exchange event."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import datetime

import pytest
import requests

from tests.support.adversary import Adversary
from tests.support.launcher import ProxyLauncher
from tests.support.proxyproc import ProxyProcess

pytestmark = pytest.mark.integration

POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
  timeouts: {connect: 500ms, headers: 3s, response: 6s}
destinations:
  - hosts: [flaky.test]
    retries: {attempts: 2, backoff: 50ms, max_backoff: 200ms}
  - hosts: [capped.test]
    retries: {attempts: 2, backoff: 20ms, max_backoff: 50ms}
  - hosts: [patient.test]
    retries: {attempts: 1, backoff: 10ms}
    limits: {retry_after_max: 30s}
  - hosts: [down.test]
    retries: {attempts: 1, backoff: 10ms}
  - hosts: [plain.test]
"""
NAMES = [f"{name}.test" for name in ("flaky", "capped", "patient", "down", "plain")]


class Flaky(Adversary):
    """``/flaky/<k>``: 503 for the first k requests to that path, then the usual 200."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, int] = {}
        self._count_lock = threading.Lock()

    def _respond(self, conn: socket.socket, target: str) -> None:
        path = target.split("?")[0]
        if path.startswith("/flaky/"):
            with self._count_lock:
                n = self.seen[path] = self.seen.get(path, 0) + 1
            target = "/status/503" if n <= int(path.rsplit("/", 1)[1]) else "/ok"
        super()._respond(conn, target)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Flaky]:
    flaky = Flaky()
    yield flaky
    flaky.stop()


@pytest.fixture(scope="module")
def proxy(start_module_proxy: ProxyLauncher) -> ProxyProcess:
    return start_module_proxy(POLICY, names=NAMES)


def send(proxy: ProxyProcess, url: str) -> requests.Response:
    return requests.post(url, data=b"{}", proxies={"http": proxy.url}, timeout=20)


def attempts(proxy: ProxyProcess, start: int, host: str, count: int) -> list[dict[str, object]]:
    """The exchange events of one delivery to ``host``, by attempt number."""
    first = proxy.exchange(start=start, host=host, attempt=1)
    rid = first["request_id"]
    events = [proxy.exchange(rid, start=start, attempt=n) for n in range(1, count + 1)]
    assert all(e["request_id"] == rid for e in events)
    return events


def test_a_503_is_retried_and_the_sender_gets_the_200(proxy: ProxyProcess, receiver: Flaky) -> None:
    mark = proxy.mark()
    response = send(proxy, f"http://flaky.test:{receiver.port}/flaky/1")
    assert response.status_code == 200
    assert receiver.seen["/flaky/1"] == 2
    first, second = attempts(proxy, mark, "flaky.test", 2)
    assert first["status"] == 503
    assert second["status"] == 200 and second["hop"] == 0
    extra = [e for e in proxy.events[mark:] if e.get("event") == "exchange"]
    assert len(extra) == 2  # one event per attempt, no third one


def test_attempts_are_capped(proxy: ProxyProcess, receiver: Flaky) -> None:
    mark = proxy.mark()
    response = send(proxy, f"http://capped.test:{receiver.port}/flaky/9")
    assert response.status_code == 503
    assert receiver.seen["/flaky/9"] == 3  # the first try and two retries
    events = attempts(proxy, mark, "capped.test", 3)
    assert [e["attempt"] for e in events] == [1, 2, 3]
    assert all(e.get("attempt") != 4 for e in proxy.events[mark:])


def test_retry_after_is_honoured(proxy: ProxyProcess, receiver: Flaky) -> None:
    mark = proxy.mark()
    response = send(proxy, f"http://patient.test:{receiver.port}/status/503?retry_after=1")
    assert response.status_code == 503
    first, second = attempts(proxy, mark, "patient.test", 2)
    # each event is logged when its attempt ends, in order: the retry waited >= 1 s
    gap = datetime.fromisoformat(str(second["ts"])) - datetime.fromisoformat(str(first["ts"]))
    assert gap.total_seconds() >= 0.95


def test_a_connect_failure_is_retried(proxy: ProxyProcess) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.2", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens: connection refused
    mark = proxy.mark()
    response = send(proxy, f"http://down.test:{port}/ok")
    assert response.status_code == 502
    assert response.headers["X-Hookwall-Reason"] == "upstream-error"
    first, second = attempts(proxy, mark, "down.test", 2)
    assert first["reason"] == second["reason"] == "upstream-error"
    assert response.headers["X-Hookwall-Request-Id"] == first["request_id"]


def test_retries_are_off_by_default(proxy: ProxyProcess, receiver: Flaky) -> None:
    mark = proxy.mark()
    response = send(proxy, f"http://plain.test:{receiver.port}/flaky/5")
    assert response.status_code == 503
    assert receiver.seen["/flaky/5"] == 1
    proxy.exchange(start=mark, host="plain.test", attempt=1)
    assert not any(e.get("attempt", 1) > 1 for e in proxy.events[mark:])
