"""Hostile senders as raw bytes on a socket, and the invariants checked after them.

Every attack here ends, and then ``assert_settled`` asks the proxy itself (``/metrics``) that
nothing is left in flight or queued, and sends a normal delivery that must get 200.
"""

from __future__ import annotations

import signal
import socket
import ssl
import time
from collections.abc import Iterable
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.proxyproc import ProxyProcess
from tests.support.waits import wait_until


def connect(proxy: ProxyProcess, source: str = "127.0.0.1", timeout: float = 10) -> socket.socket:
    """A TCP connection to the proxy from ``source`` (any 127/8 address: another client)."""
    sock = socket.create_connection((proxy.host, proxy.port), timeout, (source, 0))
    sock.settimeout(timeout)
    return sock


def read_all(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    """Everything until the peer closes (or the socket's timeout, or ``limit`` bytes)."""
    out = b""
    try:
        while len(out) < limit:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def exchange(
    proxy: ProxyProcess, data: bytes, *, close: bool = False, timeout: float = 10
) -> bytes:
    """Send raw bytes, read the answer until the proxy closes; ``close``: hang up at once."""
    with connect(proxy, timeout=timeout) as sock:
        sock.sendall(data)
        if close:
            return b""
        return read_all(sock)


def read_response(sock: socket.socket) -> bytes:
    """One whole answer (head, then its Content-Length body): no waiting for the proxy to close
    a connection it may keep open for the next request."""
    out = b""
    while b"\r\n\r\n" not in out:
        chunk = sock.recv(65536)
        if not chunk:
            return out
        out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length and (chunk := sock.recv(65536)):
        body += chunk
    return head + b"\r\n\r\n" + body


def answer(proxy: ProxyProcess, data: bytes, *, timeout: float = 10) -> bytes:
    """Send raw bytes on a new connection and read the proxy's one answer to them."""
    with connect(proxy, timeout=timeout) as sock:
        sock.sendall(data)
        return read_response(sock)


def head_and_body(
    proxy: ProxyProcess, request: str, source: str = "127.0.0.1"
) -> tuple[bytes, bytes]:
    """Send one raw request from ``source``: the proxy's answer, split at its blank line."""
    with connect(proxy, source) as sock:
        sock.sendall(request.encode())
        head, _, body = read_response(sock).partition(b"\r\n\r\n")
    return head, body


def through_tunnel(proxy: ProxyProcess, authority: str, request: bytes) -> tuple[bytes, bytes]:
    """``CONNECT authority``, then, if it is accepted, ``request`` inside TLS trusting
    hookwall's CA (a refused destination is answered there): the CONNECT's answer, and the
    answer inside (b"" when the CONNECT was refused)."""
    host = authority.rpartition(":")[0].strip("[]")
    with connect(proxy) as sock:
        sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        head = read_response(sock)
        if not head.startswith(b"HTTP/1.1 200"):
            return head, b""
        context = ssl.create_default_context(cafile=str(proxy.ca_cert))
        with context.wrap_socket(sock, server_hostname=host) as inner:
            inner.sendall(request)
            return head, read_response(inner)


def assert_no_slot_held(proxy: ProxyProcess) -> None:
    """Nothing in flight or queued at any destination (the proxy's own SIGUSR1 snapshot)."""
    mark = proxy.mark()
    proxy.proc.send_signal(signal.SIGUSR1)
    snapshot = proxy.wait_for(lambda e: e.get("event") == "limits_snapshot", start=mark)
    leaks = [d for d in snapshot["destinations"] if d["in_flight"] or d["queued"]]
    assert not leaks, leaks


def closes_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the proxy closed the connection within ``seconds`` (and what it said)."""
    sock.settimeout(seconds)
    out = b""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                return True, out
            out += chunk
    except TimeoutError:
        return False, out
    except ConnectionResetError:
        return True, out
    return False, out


def trickle(sock: socket.socket, data: bytes, every: float, budget: float) -> tuple[float, bytes]:
    """Send ``data`` one byte every ``every`` seconds (the attack) until the proxy closes the
    connection or ``budget`` seconds pass; how long the proxy let it go on, and its answer."""
    start = time.monotonic()
    sock.settimeout(every)
    answer = b""
    for byte in data:
        if time.monotonic() - start > budget:
            break
        try:
            sock.sendall(bytes([byte]))
            chunk = sock.recv(65536)  # the wait between bytes; the proxy may answer meanwhile
            if not chunk:
                return time.monotonic() - start, answer
            answer += chunk
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - start, answer
    return time.monotonic() - start, answer


def status_of(answer: bytes) -> int | None:
    try:
        return int(answer.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def reason_of(answer: bytes) -> str | None:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"x-hookwall-reason":
            return value.strip().decode()
    return None


def request(method: str, url: str, headers: Iterable[str] = (), body: bytes = b"") -> bytes:
    """An absolute-form request head (and body) as a sender would write it to a proxy."""
    authority = url.split("/", 3)[2]
    lines = [f"{method} {url} HTTP/1.1", f"Host: {authority}", *headers]
    if body and not any(
        h.lower().startswith(("content-length", "transfer-encoding")) for h in headers
    ):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def gauges(proxy: ProxyProcess) -> dict[str, float]:
    """In flight (exchanges), slots held and requests queued, summed over destinations."""
    assert proxy.admin_url is not None
    text = requests.get(proxy.admin_url + "/metrics", timeout=10).text
    totals = {"in_flight": 0.0, "slots": 0.0, "queued": 0.0}
    names = {
        "hookwall_requests_in_flight": "in_flight",
        "hookwall_destination_in_flight": "slots",
        "hookwall_destination_queue_depth": "queued",
    }
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in names:
                totals[names[sample.name]] += sample.value
    return totals


def assert_settled(proxy: ProxyProcess, normal_url: str, timeout: float = 10.0) -> None:
    """Nothing in flight, no slot held, nothing queued; then a normal delivery gets 200."""
    last: dict[str, float] = {}

    def settled() -> bool:
        last.update(gauges(proxy))
        return not any(last.values())

    try:
        wait_until(settled, timeout, "gauges back to 0")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {last}") from None
    r = requests.post(normal_url, data=b"{}", proxies={"http": proxy.url}, timeout=20)
    assert r.status_code == 200, (r.status_code, r.text)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")
