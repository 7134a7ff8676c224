"""A receiver that misbehaves on request: slow, hanging, trickling, huge, flapping.

The path picks the behaviour, so one listener serves every scenario:
  /ok                     200 at once
  /gate                   waits until the test opens ``gate`` (a slow receiver)
  /hang                   reads the request, never answers
  /trickle                headers, then one body byte every 100 ms, forever
  /huge-declared          Content-Length: 2 GiB, then a few bytes and silence
  /huge-chunked           chunked body without end
  /status/<code>          that status; ``?retry_after=N`` adds Retry-After
  /trailers               a chunked 200 whose body ends with a trailer section
  /bighead?bytes=N        a 200 whose head carries one header of N bytes
  /manyfields?n=N         a 200 with N header fields
  /sleep?s=X              a 200 after X seconds (a slow receiver, within its timeouts)
  /partial                headers promising 100 bytes, 10 of them, then the connection closes
  /redirect?to=URL        302 to URL
  /flip-gate?key=K        503 the first time for K, then like /gate
  /forged?status=N&to=URL N (default 200) posing as hookwall: X-Hookwall-Reason,
                          X-Hookwall-Request-Id, X-Hookwall-Redirect-Location and another
                          X-HOOKWALL-* header; ``to`` adds Location (a forged redirect)
  /raw?hex=H              exactly the bytes H (hex), then the connection closes
It counts connections (and those still open), concurrent requests, and the maximum
concurrency it ever saw.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

# path -> the raw answer (from the query) of the receivers that misbehave in one write
RawAnswer = Callable[[dict[str, list[str]]], bytes]


class Adversary:
    _RAW: ClassVar[dict[str, RawAnswer]] = {}

    def __init__(self, host: str = "127.0.0.2") -> None:
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(128)
        self.host, self.port = self.sock.getsockname()[:2]
        self.gate = threading.Event()
        self.connections = 0
        self.open = 0  # connections not yet closed (by either side)
        self.flipped: set[str] = set()
        self.active = 0
        self.max_active = 0
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.gate.set()
        self.sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self.open += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        buffer = b""
        try:
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                target = lines[0].split(" ")[1]
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                self._respond(conn, target)
        except OSError:
            pass
        finally:
            conn.close()
            with self._lock:
                self.open -= 1

    # One branch per hostile route, on purpose: the whole catalogue of misbehaviours reads as
    # one table of paths (see the module docstring).
    def _respond(self, conn: socket.socket, target: str) -> None:  # noqa: C901
        url = urlsplit(target)
        query = parse_qs(url.query)
        with self._lock:
            self.paths.append(url.path)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        counted = [True]  # until the request stops counting as active (once)

        def done() -> None:
            with self._lock:
                if counted:
                    counted.clear()
                    self.active -= 1

        try:
            if url.path == "/flip-gate":
                key = query.get("key", [""])[0]
                with self._lock:
                    first = key not in self.flipped
                    self.flipped.add(key)
                if first:
                    conn.sendall(b"HTTP/1.1 503 X\r\nContent-Length: 4\r\n\r\nflip")
                    return
                self.gate.wait(timeout=30)
            elif url.path in self._RAW:
                conn.sendall(self._RAW[url.path](query))
                if url.path in ("/partial", "/raw"):
                    conn.shutdown(socket.SHUT_RDWR)
                return
            elif url.path == "/sleep":
                self._stop.wait(timeout=float(query["s"][0]))
            elif url.path == "/gate":
                self.gate.wait(timeout=30)
            elif url.path == "/hang":
                self._stop.wait(timeout=30)
                return
            elif url.path == "/trickle":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                for _ in range(1000):
                    if self._stop.wait(0.1):
                        return
                    conn.sendall(b"x")
                return
            elif url.path == "/huge-declared":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2147483648\r\n\r\nabc")
                self._stop.wait(timeout=30)
                return
            elif url.path == "/huge-chunked":
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                chunk = b"%x\r\n%s\r\n" % (65536, b"y" * 65536)
                deadline = time.monotonic() + 30
                while not self._stop.is_set() and time.monotonic() < deadline:
                    conn.sendall(chunk)
                return
            status = 200
            extra = ""
            if url.path.startswith("/status/"):
                status = int(url.path.rsplit("/", 1)[1])
                if "retry_after" in query:
                    extra = f"Retry-After: {query['retry_after'][0]}\r\n"
            body = b'{"ok": true}'
            # No longer active once its answer is on the way: the proxy may send the next
            # request as soon as it has read this one, before this thread runs on.
            done()
            conn.sendall(
                f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body
            )
        finally:
            done()


def _ok_with(extra: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + extra + b"Content-Length: 2\r\n\r\nok"


FORGED_REQUEST_ID = "forged-request-id"
FORGED_LOCATION = "http://forged.invalid/elsewhere"


def _forged(query: dict[str, list[str]]) -> bytes:
    """A response that poses as a hookwall refusal (and, with ``to``, as a redirect)."""
    status = int(query.get("status", ["200"])[0])
    head = [
        f"HTTP/1.1 {status} X",
        "X-Hookwall-Reason: address-blocked",
        f"X-Hookwall-Request-Id: {FORGED_REQUEST_ID}",
        f"X-Hookwall-Redirect-Location: {FORGED_LOCATION}",
        "x-HOOKWALL-internal: forged",
        *([f"Location: {query['to'][0]}"] if "to" in query else []),
        "Content-Length: 2",
    ]
    return "\r\n".join([*head, "", ""]).encode() + b"ok"


Adversary._RAW |= {
    "/trailers": lambda q: (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n"
    ),
    "/bighead": lambda q: _ok_with(b"X-Big: " + b"a" * int(q["bytes"][0]) + b"\r\n"),
    "/manyfields": lambda q: _ok_with(b"".join(b"X-F%d: v\r\n" % i for i in range(int(q["n"][0])))),
    "/raw": lambda q: bytes.fromhex(q["hex"][0]),
    "/partial": lambda q: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
    "/forged": _forged,
    "/redirect": lambda q: (
        b"HTTP/1.1 302 Found\r\nLocation: " + q["to"][0].encode() + b"\r\nContent-Length: 0\r\n\r\n"
    ),
}


class BlackHole:
    """A listener whose accept queue is full: new connections never complete (SYNs dropped)."""

    def __init__(self, host: str = "127.0.0.2") -> None:
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(0)
        self.host, self.port = self.sock.getsockname()[:2]
        self._fillers: list[socket.socket] = []
        # Fill the backlog; once full, further handshakes stall.
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect((host, self.port))
            self._fillers.append(filler)

    def stop(self) -> None:
        for filler in self._fillers:
            filler.close()
        self.sock.close()
