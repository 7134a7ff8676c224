"""Reload safety through the real proxy: a reload never silently drops authentication, and a
reload that denies a host closes the passthrough tunnels already open to it.

No sleeps as synchronisation: every wait is on a log event or a socket (EOF, a bounded read).
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import trustme

from tests.support.hostile import closes_within, connect, gauges, status_of
from tests.support.launcher import ProxyLauncher
from tests.support.proxyproc import Event, ProxyProcess, trusting
from tests.support.receivers import Receiver, tls_server_context
from tests.support.reloads import rejected, reloaded, write
from tests.support.waits import wait_until

pytestmark = pytest.mark.integration

TOKEN = secrets.token_urlsafe(24)
ENV = {"HW_R_BILLING": TOKEN}
MAIN = """\
version: 1
unsafe: true  # the loopback receivers stand for public ones
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
destinations:
  - hosts: [a.safety.test]
"""
SENDERS = "version: 1\nsenders:\n  billing: {credentials: [env:HW_R_BILLING]}\n"
SENDERS_NONE = "version: 1\nsenders: none\n"
NAMES = ["a.safety.test", "pt.safety.test", "kept.safety.test"]


def get(proc: ProxyProcess, url: str, user: str | None = None) -> requests.Response:
    auth = f"{user}:{TOKEN}@" if user else ""
    proxy = f"http://{auth}{proc.host}:{proc.port}"
    return requests.get(url, proxies={"http": proxy}, timeout=15)


def test_a_reload_that_loses_the_senders_file_is_refused_unless_it_says_so(
    start_proxy: ProxyLauncher, tmp_path: Path, receiver: Receiver
) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    write(policy / "00-main.yaml", MAIN)
    write(policy / "10-senders.yaml", SENDERS)
    proc = start_proxy(policy, names=NAMES, env=ENV)  # edits are seen within 100 ms
    url = f"http://a.safety.test:{receiver.port}/"
    assert get(proc, url).status_code == 407
    assert get(proc, url, "billing").status_code == 200
    # A partial ConfigMap update: the senders file is gone, the rest still loads.
    mark = proc.mark()
    (policy / "10-senders.yaml").unlink()
    event = rejected(proc, mark)
    assert "senders: none" in event["errors"][0] and "billing" in event["errors"][0]
    assert event["in_force"] == [str(policy / "00-main.yaml"), str(policy / "10-senders.yaml")]
    r = get(proc, url)
    assert (r.status_code, r.headers["X-Hookwall-Reason"]) == (407, "auth-required")
    assert get(proc, url, "billing").status_code == 200
    assert not any(e.get("event") == "policy_reloaded" for e in proc.events[mark:])
    # Said explicitly: applied, with a warning.
    mark = proc.mark()
    write(policy / "10-senders.yaml", SENDERS_NONE)
    assert reloaded(proc, mark)["senders"] == 0
    warning = proc.wait_for(lambda e: e.get("event") == "authentication_dropped", start=mark)
    assert warning["level"] == "warning" and warning["dropped_senders"] == ["billing"]
    assert get(proc, url).status_code == 200
    # Senders back: credentials required again (tightening needs no statement).
    mark = proc.mark()
    write(policy / "10-senders.yaml", SENDERS)
    reloaded(proc, mark)
    assert get(proc, url).status_code == 407
    assert get(proc, url, "billing").status_code == 200
    assert proc.stop() == 0
    assert not any(TOKEN in str(e) for e in proc.events)


# -- passthrough tunnels -------------------------------------------------------------------

TUNNELS = """\
version: 1
unsafe: true  # the loopback receivers stand for public ones
defaults:
  network: {{allow: [127.0.0.2/32], ports: ["1-65535"]}}
destinations:
  - hosts: [pt.safety.test]
    tls: passthrough
{pt}  - hosts: [kept.safety.test]
    tls: passthrough
"""


class EchoServer:
    """A TLS echo receiver on 127.0.0.2 that notes when each connection ends, on its side."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.sock = socket.create_server(("127.0.0.2", 0))
        self.port = int(self.sock.getsockname()[1])
        self.closed: list[threading.Event] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            ended = threading.Event()
            with self._lock:
                self.closed.append(ended)
            threading.Thread(target=self._echo, args=(conn, ended), daemon=True).start()

    def _echo(self, raw: socket.socket, ended: threading.Event) -> None:
        try:
            with self.context.wrap_socket(raw, server_side=True) as conn:
                while data := conn.recv(4096):
                    conn.sendall(data)
        except OSError:
            pass
        finally:
            ended.set()

    def stop(self) -> None:
        # close() alone does not wake a thread blocked in accept() on Linux; shutdown() does
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive()


@pytest.fixture
def echo(receiver_ca: trustme.CA) -> Iterator[EchoServer]:
    server = EchoServer(tls_server_context(receiver_ca, "pt.safety.test", "kept.safety.test"))
    yield server
    server.stop()


def open_tunnel(
    proc: ProxyProcess, host: str, port: int, ca: Path, auth: str | None = None
) -> ssl.SSLSocket:
    sock = connect(proc)
    header = f"Proxy-Authorization: {auth}\r\n" if auth else ""
    head = f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n{header}\r\n"
    sock.sendall(head.encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        assert chunk, answer
        answer += chunk
    assert status_of(answer) == 200, answer
    tls = trusting(ca).wrap_socket(sock, server_hostname=host)  # the receiver's own cert
    tls.sendall(b"ping")
    assert tls.recv(4096) == b"ping"
    return tls


def test_a_reload_closes_the_passthrough_tunnels_it_now_denies(
    start_proxy: ProxyLauncher, echo: EchoServer, receiver_ca_file: Path
) -> None:
    proc = start_proxy(TUNNELS.format(pt=""), names=NAMES)
    policy = proc.policy
    assert policy is not None
    denied = open_tunnel(proc, "pt.safety.test", echo.port, receiver_ca_file)
    kept = open_tunnel(proc, "kept.safety.test", echo.port, receiver_ca_file)
    assert gauges(proc)["slots"] == 2
    # A reload that allows both: both tunnels go on.
    mark = proc.mark()
    write(policy, TUNNELS.format(pt="    limits: {concurrency: 5}\n"))
    reloaded(proc, mark)
    # A reload that denies pt.safety.test: its tunnel is closed at once, on both sides.
    mark = proc.mark()
    write(policy, TUNNELS.format(pt="    action: deny\n"))
    reloaded(proc, mark)
    closed, _ = closes_within(denied, 5)
    assert closed
    assert echo.closed[0].wait(5)  # the receiver's side of it ended too

    def connect_event(e: Event) -> bool:
        return (
            e.get("event") == "exchange"
            and e.get("method") == "CONNECT"
            and e.get("host") == "pt.safety.test"
        )

    event = proc.wait_for(connect_event, start=mark)
    assert (event["decision"], event["reason"], event["tls"]) == (
        "deny",
        "host-denied",
        "passthrough",
    )
    closing = proc.wait_for(lambda e: e.get("event") == "tunnel_closed", start=mark)
    assert (closing["reason"], closing["denial"]) == ("policy-reload", "host-denied")
    # The allowed tunnel still carries bytes, and only its slot is held.
    kept.sendall(b"still")
    assert kept.recv(4096) == b"still"
    assert not echo.closed[1].is_set()
    wait_until(lambda: gauges(proc) == {"in_flight": 0, "slots": 1, "queued": 0})
    kept.close()
    assert echo.closed[1].wait(5)
    wait_until(lambda: not any(gauges(proc).values()), what="every slot given back")
    events = [e for e in proc.events if connect_event(e)]
    assert len(events) == 1  # logged once
    denied.close()
    assert proc.stop() == 0


SECOND = secrets.token_urlsafe(24)
SENDER_TUNNELS = """\
version: 1
unsafe: true  # the loopback receivers stand for public ones
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
destinations:
  - hosts: [pt.safety.test]
    tls: passthrough
"""


def test_a_passthrough_tunnel_closes_when_its_senders_token_is_removed(
    start_proxy: ProxyLauncher, tmp_path: Path, echo: EchoServer, receiver_ca_file: Path
) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    write(policy / "00-main.yaml", SENDER_TUNNELS)
    write(policy / "10-senders.yaml", SENDERS)
    proc = start_proxy(policy, names=NAMES, env=ENV | {"HW_R_SECOND": SECOND})
    credentials = base64.b64encode(f"billing:{TOKEN}".encode()).decode()
    tunnel = open_tunnel(
        proc, "pt.safety.test", echo.port, receiver_ca_file, f"Basic {credentials}"
    )
    # The sender moves down a few lines and gets a second token: the tunnel goes on.
    mark = proc.mark()
    moved = "version: 1\n# rotating billing\n\nsenders:\n  billing:\n"
    write(
        policy / "10-senders.yaml",
        moved + "    credentials: [env:HW_R_BILLING, env:HW_R_SECOND]\n",
    )
    reloaded(proc, mark)
    tunnel.sendall(b"after the move")
    assert tunnel.recv(4096) == b"after the move"
    # The token it opened with is removed: the tunnel closes, both sides.
    mark = proc.mark()
    write(policy / "10-senders.yaml", moved + "    credentials: [env:HW_R_SECOND]\n")
    reloaded(proc, mark)
    closed, _ = closes_within(tunnel, 5)
    assert closed
    assert echo.closed[0].wait(5)
    event = proc.exchange(method="CONNECT", start=mark)
    assert (event["reason"], event["sender"]) == ("auth-required", "billing")
    wait_until(lambda: not any(gauges(proc).values()), what="the tunnel's slot given back")
    tunnel.close()
    assert proc.stop() == 0
    logged = str(proc.events)
    assert TOKEN not in logged and SECOND not in logged
