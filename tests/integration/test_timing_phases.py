"""What the exchange event's connect_ms, ttfb_ms and duration_ms measure, per mode, through
the real proxy (deliveries/phases.py; the README's table under "Log events").

The receiver here takes a known time over its TLS handshake and over its answer (slept in
the receiver: the delay is what is measured, not a wait for something), so a test can tell
which phase a delay was counted in: the handshake in connect_ms, the answer in ttfb_ms.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import trustme
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_transparent import (
    SENDER_UID,
    curl_as_sender,
    readable,
    redirected_by_hookwall,
    transparent_port,
)
from tests.support.hostile import read_response
from tests.support.launcher import ProxyLauncher
from tests.support.netns import NETWORK_ISOLATED
from tests.support.proxyproc import Event, ProxyProcess, trusting
from tests.support.receivers import Receiver, tls_server_context

pytestmark = pytest.mark.integration

__all__ = ["readable"]  # the fixture, for the transparent case

HANDSHAKE_DELAY = 0.3  # seconds the slow receiver waits before its TLS handshake
ANSWER_DELAY = 0.2  # and before each answer
POLICY = """\
version: 1
unsafe: true
defaults:
  network:
    deny: [special-purpose]
    allow: [127.0.0.2/32]
    ports: ["1-65535"]
  ca_bundle: {ca}
destinations:
  - hosts: [passthrough.hooks.test]
    tls: passthrough
  - hosts: [upgrade.hooks.test]
    upgrade: true
  - hosts: [follow.hooks.test]
    redirects: {mode: follow, scope: any}
"""
NAMES = {
    "hooks.test": "127.0.0.2",
    "passthrough.hooks.test": "127.0.0.2",
    "upgrade.hooks.test": "127.0.0.2",
    "follow.hooks.test": "127.0.0.2",
    "blocked.hooks.test": "127.0.0.1",
}


@dataclass
class SlowTlsReceiver:
    """HTTP/1.1 over TLS on 127.0.0.2, keep-alive: each connection's handshake waits
    HANDSHAKE_DELAY, each answer ANSWER_DELAY."""

    context: ssl.SSLContext
    listener: socket.socket = field(init=False)
    connections: int = 0
    _threads: list[threading.Thread] = field(default_factory=list)
    _open: list[socket.socket] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.2", 0))
        self._threads.append(threading.Thread(target=self._accept, daemon=True))
        self._threads[0].start()

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed by stop()
            self.connections += 1
            self._open.append(conn)  # until the handshake detaches it
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            time.sleep(HANDSHAKE_DELAY)
            with self.context.wrap_socket(raw, server_side=True) as conn:
                self._open.append(conn)
                buffer = b""
                while True:
                    while b"\r\n\r\n" not in buffer:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buffer += chunk
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    while len(buffer) < length:
                        buffer += conn.recv(65536)
                    buffer = buffer[length:]
                    time.sleep(ANSWER_DELAY)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except (OSError, ssl.SSLError):
            return

    def stop(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self.listener.close()
        for conn in self._open:  # hookwall may keep them open for the next request
            with contextlib.suppress(OSError):  # closed already
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=15)


@pytest.fixture
def slow(receiver_ca: trustme.CA) -> Iterator[SlowTlsReceiver]:
    server = SlowTlsReceiver(tls_server_context(receiver_ca, "hooks.test", "*.hooks.test"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(start_module_proxy: ProxyLauncher) -> ProxyProcess:
    return start_module_proxy(POLICY, names=NAMES)


def events_for(proxy: ProxyProcess, start: int, urls: list[str]) -> list[Event]:
    return [proxy.exchange(url=url, start=start) for url in urls]


def phase_counts(proxy: ProxyProcess) -> dict[str, float]:
    """hookwall_exchange_phase_seconds' sample count per phase, allowed exchanges."""
    assert proxy.admin_url is not None
    text = requests.get(proxy.admin_url + "/metrics", timeout=10).text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels = sample.name, sample.labels
            if name == "hookwall_exchange_phase_seconds_count" and labels["decision"] == "allow":
                counts[labels["phase"]] = sample.value
    return counts


def assert_measured(event: Event, *, connect: float | None, ttfb: float) -> None:
    """connect_ms at least ``connect`` seconds (None: not measured), ttfb_ms at least
    ``ttfb`` and less than the handshake delay, duration_ms covering both."""
    if connect is None:
        assert event["connect_ms"] is None, event
    else:
        assert event["connect_ms"] >= connect * 1000, event
    assert ttfb * 1000 <= event["ttfb_ms"] < (ttfb + HANDSHAKE_DELAY) * 1000, event
    assert event["duration_ms"] >= event["ttfb_ms"] + (event["connect_ms"] or 0.0), event


def test_intercepted_https_counts_the_handshake_as_connect_once(
    proxy: ProxyProcess, slow: SlowTlsReceiver
) -> None:
    base = f"https://hooks.test:{slow.port}"
    start, before = proxy.mark(), phase_counts(proxy)
    with httpx.Client(proxy=proxy.url, verify=trusting(proxy.ca_cert), timeout=10) as client:
        for path in ("/first", "/second"):
            assert client.post(base + path, content=b"{}").status_code == 200
    first, second = events_for(proxy, start, [base + "/first", base + "/second"])
    assert slow.connections == 1  # the second went over the first's connection
    assert_measured(first, connect=HANDSHAKE_DELAY, ttfb=ANSWER_DELAY)  # TCP + TLS
    assert_measured(second, connect=None, ttfb=ANSWER_DELAY)  # a reused connection
    after = phase_counts(proxy)  # the connect histogram got the first one, once
    assert after["connect"] - before.get("connect", 0.0) == 1
    assert after["ttfb"] - before.get("ttfb", 0.0) == 2


def test_upgrade_counts_the_handshake_it_makes_as_connect(
    proxy: ProxyProcess, slow: SlowTlsReceiver
) -> None:
    base = f"http://upgrade.hooks.test:{slow.port}"
    start = proxy.mark()
    with httpx.Client(proxy=proxy.url, timeout=10) as client:
        for path in ("/first", "/second"):
            assert client.post(base + path, content=b"{}").status_code == 200
    first, second = events_for(proxy, start, [base + "/first", base + "/second"])
    assert (first["tls"], second["tls"]) == ("upgrade", "upgrade")
    assert_measured(first, connect=HANDSHAKE_DELAY, ttfb=ANSWER_DELAY)
    assert_measured(second, connect=None, ttfb=ANSWER_DELAY)


def test_plain_http_connect_is_the_tcp_connect(proxy: ProxyProcess, receiver: Receiver) -> None:
    base = f"http://hooks.test:{receiver.port}"
    start = proxy.mark()
    with httpx.Client(proxy=proxy.url, timeout=10) as client:
        for path in ("/first", "/second"):
            assert client.post(base + path, content=b"{}").status_code == 200
    first, second = events_for(proxy, start, [base + "/first", base + "/second"])
    assert receiver.connections == 1
    assert first["connect_ms"] > 0 and second["connect_ms"] is None
    assert first["ttfb_ms"] > 0 and second["ttfb_ms"] > 0


def test_a_followed_redirect_measures_the_first_receivers_answer(
    proxy: ProxyProcess, receiver: Receiver, slow: SlowTlsReceiver
) -> None:
    """The exchange's ttfb_ms is the 3xx's; the hop to the slow receiver is its own event, and
    only the exchange's duration_ms covers it (what the sender waited)."""
    target = f"https://hooks.test:{slow.port}/final"
    url = f"http://follow.hooks.test:{receiver.port}/redirect?to={target}"  # a 302
    start = proxy.mark()
    assert httpx.post(url, content=b"{}", proxy=proxy.url, timeout=10).status_code == 200
    (event,) = events_for(proxy, start, [url])
    hop = proxy.exchange(url=target, start=start)
    assert event["redirect"]["action"] == "followed" and hop["hop"] == 1
    assert event["ttfb_ms"] < ANSWER_DELAY * 1000, event
    assert_measured(hop, connect=HANDSHAKE_DELAY, ttfb=ANSWER_DELAY)
    assert event["duration_ms"] >= (HANDSHAKE_DELAY + ANSWER_DELAY) * 1000


def test_a_denied_exchange_measures_only_its_duration(proxy: ProxyProcess) -> None:
    url = "http://blocked.hooks.test:9/"
    start = proxy.mark()
    assert httpx.post(url, content=b"{}", proxy=proxy.url, timeout=10).status_code == 403
    (event,) = events_for(proxy, start, [url])
    assert event["reason"] == "address-blocked"
    assert (event["connect_ms"], event["ttfb_ms"]) == (None, None)
    assert event["duration_ms"] >= 0


def test_a_passthrough_tunnel_measures_tcp_and_its_whole_life(
    proxy: ProxyProcess, tls_twins: tuple[Receiver, Receiver], receiver_ca: trustme.CA
) -> None:
    allowed, _ = tls_twins
    start = proxy.mark()
    held = 0.3
    with socket.create_connection((proxy.host, proxy.port), timeout=10) as raw:
        target = f"passthrough.hooks.test:{allowed.port}"
        raw.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        assert read_response(raw).startswith(b"HTTP/1.1 200"), "the tunnel was not opened"
        context = ssl.create_default_context()
        receiver_ca.configure_trust(context)
        with context.wrap_socket(raw, server_hostname="passthrough.hooks.test") as tls:
            tls.sendall(b"GET /through HTTP/1.1\r\nHost: passthrough.hooks.test\r\n\r\n")
            assert tls.recv(65536).startswith(b"HTTP/1.")
            opened = time.monotonic()
            time.sleep(held)  # the tunnel's life, which its duration must cover
            lived = time.monotonic() - opened
    event = proxy.exchange(method="CONNECT", tls="passthrough", start=start)
    assert event["connect_ms"] > 0 and event["ttfb_ms"] is None
    assert event["duration_ms"] >= lived * 1000


@pytest.mark.skipif(
    not NETWORK_ISOLATED or not shutil.which("iptables-restore") or not shutil.which("setpriv"),
    reason="needs root in the test network namespace, iptables-restore and setpriv",
)
def test_transparent_tls_counts_the_handshake_as_connect_once(
    start_proxy: ProxyLauncher, slow: SlowTlsReceiver, readable: Callable[[Path], Path]
) -> None:
    proxy = start_proxy(POLICY, names=NAMES, listen="transparent@127.0.0.1:0")
    base = f"https://hooks.test:{slow.port}"
    with redirected_by_hookwall(SENDER_UID, transparent_port(proxy)):
        answer: dict[str, Any] = curl_as_sender(
            base + "/first", base + "/second",
            "--resolve", f"hooks.test:{slow.port}:127.0.0.2", ca=readable(proxy.ca_cert),
        )  # fmt: skip
    assert answer["status"] == 200, answer
    first, second = events_for(proxy, 0, [base + "/first", base + "/second"])
    assert slow.connections == 1
    assert_measured(first, connect=HANDSHAKE_DELAY, ttfb=ANSWER_DELAY)
    assert_measured(second, connect=None, ttfb=ANSWER_DELAY)
