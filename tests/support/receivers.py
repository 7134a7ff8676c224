"""Local webhook receivers that record every connection and request they get.

A test proves "no packet reached the forbidden address" by asserting a receiver bound there
saw zero connections, so connections are counted at accept time, before any HTTP parsing.
"""

from __future__ import annotations

import functools
import http.server
import socket
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme


def tls_server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    """A receiver's server context, with a certificate for ``names`` issued by ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    host: str
    port: int
    tls: bool
    connections: int = 0
    requests: list[Seen] = field(default_factory=list)
    # When set, each request is recorded, ``arrived`` is set, and the answer waits for ``gate``.
    gate: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)
    _server: http.server.ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    receiver: Receiver

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.receiver.requests.append(
            Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        self.receiver.arrived.set()
        if self.receiver.gate is not None:
            self.receiver.gate.wait(timeout=30)
        if self.path == "/loop":  # redirects to itself, forever
            self.path = "/redirect?to=%2Floop"
        elif self.path.startswith("/hops?n="):  # /hops?n=3 -> /hops?n=2 -> ... -> 200 at n=0
            left = int(self.path.split("=", 1)[1])
            if left > 0:
                self.path = f"/redirect?to=%2Fhops%3Fn%3D{left - 1}"
        if self.path.startswith("/redirect?"):  # /redirect?to=URL&code=302: a redirecting receiver
            query = parse_qs(urlsplit(self.path).query)
            self.send_response(int(query.get("code", ["302"])[0]))
            if "to" in query:
                self.send_header("Location", query["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        reply = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_PUT = _handle


STOP_POLL = 0.05  # seconds: how soon a receiver notices it is being stopped
Twins = tuple[Receiver, Receiver]  # (allowed at 127.0.0.2, forbidden at 127.0.0.1), one port


def start_receiver(host: str, port: int = 0, ssl_context: ssl.SSLContext | None = None) -> Receiver:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    receiver = Receiver(host, 0, ssl_context is not None)

    class Server(http.server.ThreadingHTTPServer):
        address_family = family
        daemon_threads = True

        def get_request(self) -> tuple[socket.socket, Any]:
            sock, addr = super().get_request()
            receiver.connections += 1
            if ssl_context is not None:
                sock = ssl_context.wrap_socket(
                    sock, server_side=True, do_handshake_on_connect=False
                )
            return sock, addr

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # failed TLS handshakes etc. are expected in tests

    handler = type("Handler", (_Handler,), {"receiver": receiver})
    server = Server((host, port), handler)
    receiver.port = server.server_address[1]
    receiver._server = server
    # shutdown() waits for the loop to look again: every 50 ms, not the default 500 ms.
    serve = functools.partial(server.serve_forever, poll_interval=STOP_POLL)
    receiver._thread = threading.Thread(target=serve, daemon=True)
    receiver._thread.start()
    return receiver


def start_twin_receivers(
    allowed_host: str, forbidden_host: str, ssl_context: ssl.SSLContext | None = None
) -> tuple[Receiver, Receiver]:
    """Two receivers on the same port number at two addresses (for rebinding tests)."""
    for _ in range(50):
        allowed = start_receiver(allowed_host, 0, ssl_context)
        try:
            forbidden = start_receiver(forbidden_host, allowed.port, ssl_context)
        except OSError:
            allowed.stop()
            continue
        return allowed, forbidden
    raise RuntimeError("could not find a port free on both addresses")
