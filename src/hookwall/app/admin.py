"""The admin listener: ``/healthz``, ``/readyz`` and ``/metrics`` on an address of their own.

A deliberately small HTTP/1.1 server on asyncio and h11 (no web framework): GET and HEAD
only, small requests, keep-alive, every read bounded by a timeout and the number of
connections capped, so probes and scrapers can never tie up the proxy's event loop.

- ``/healthz``: 200 while the process is alive (liveness; open, no token).
- ``/readyz``: 200 once the proxy listens with a loaded policy; 503 while starting and while
  draining after SIGTERM (readiness; open, no token).
- ``/metrics``: Prometheus text format (OpenMetrics when the scraper asks for it); with a
  token configured (``HOOKWALL_ADMIN_TOKEN``) it needs ``Authorization: Bearer TOKEN``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import h11

Handler = Any  # ``handle(method, target, headers)``: an AdminResponse, or a coroutine of one

__all__ = ["AdminApp", "AdminResponse", "AdminServer", "Health"]

MAX_CONNECTIONS = 64
READ_TIMEOUT = 10.0  # seconds for a whole request to arrive
IDLE_TIMEOUT = 30.0  # seconds a keep-alive connection may wait for its next request
MAX_REQUEST_BYTES = 16 * 1024


@dataclass(slots=True)
class Health:
    """Liveness is the process answering; readiness is listening, with a policy, not draining."""

    listening: Callable[[], bool] = lambda: False
    draining: bool = False

    def readiness(self) -> tuple[bool, str]:
        if self.draining:
            return False, "draining"
        if not self.listening():
            return False, "starting"
        return True, "ready"


@dataclass(frozen=True, slots=True)
class AdminResponse:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = field(default=())


class AdminApp:
    """Routing and authorisation, without sockets (unit-tested directly)."""

    def __init__(
        self,
        health: Health,
        render_metrics: Callable[[str | None], tuple[bytes, str]],
        token: str | None = None,
    ) -> None:
        self.health = health
        self.render_metrics = render_metrics
        self._token = token.encode() if token else None

    def handle(self, method: str, target: str, headers: dict[str, str]) -> AdminResponse:
        path = target.split("?", 1)[0]
        if path not in ("/healthz", "/readyz", "/metrics"):
            return AdminResponse(404, b"not found; try /healthz, /readyz or /metrics\n")
        if method not in ("GET", "HEAD"):
            return AdminResponse(405, b"method not allowed\n", headers=(("Allow", "GET, HEAD"),))
        if path == "/healthz":
            return AdminResponse(200, b"ok\n")
        if path == "/readyz":
            ready, why = self.health.readiness()
            return AdminResponse(200 if ready else 503, why.encode() + b"\n")
        if not self._authorised(headers.get("authorization")):
            return AdminResponse(
                401,
                b"/metrics needs Authorization: Bearer <HOOKWALL_ADMIN_TOKEN>\n",
                headers=(("WWW-Authenticate", 'Bearer realm="hookwall-admin"'),),
            )
        body, content_type = self.render_metrics(headers.get("accept"))
        return AdminResponse(200, body, content_type)

    def _authorised(self, header: str | None) -> bool:
        if self._token is None:
            return True
        scheme, _, presented = (header or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(presented.strip().encode(), self._token)


class AdminServer:
    """Serves ``app`` on ``host:port``, or on the unix socket ``path`` (a worker's, which its
    supervisor scrapes: ``workeradmin.py``). ``app.handle`` may be a coroutine function."""

    def __init__(self, app: Handler, host: str, port: int, *, path: str | None = None) -> None:
        self.app = app
        self.host, self.port = host, port
        self.path = path
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        if self.path is not None:
            return self.path
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    async def start(self) -> str:
        """Bind (OSError if the address is taken) and return the bound ``host:port``."""
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)  # a crashed predecessor's socket file
            self._server = await asyncio.start_unix_server(self._accept, self.path)
            return self.path
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = sockname[0], sockname[1]
        return self.address

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(self._connections, timeout=2)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._connections) >= MAX_CONNECTIONS or task is None:
            writer.close()
            return
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (TimeoutError, ConnectionError, h11.ProtocolError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
        while True:
            try:
                request = await self._read_request(conn, reader)
            except h11.RemoteProtocolError as exc:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    response = AdminResponse(exc.error_status_hint, b"bad request\n")
                    with contextlib.suppress(h11.LocalProtocolError):
                        await self._send(conn, writer, "GET", response)
                return
            if request is None:
                return
            method = request.method.decode("ascii", "replace")
            headers = {
                name.decode("latin-1").lower(): value.decode("latin-1")
                for name, value in request.headers
            }
            target = request.target.decode("ascii", "replace")
            try:
                answer = self.app.handle(method, target, headers)
                response = await answer if inspect.isawaitable(answer) else answer
            except Exception as exc:  # never let a scrape take the listener down
                message = f"internal error ({type(exc).__name__})\n".encode()
                response = AdminResponse(500, message)
            await self._send(conn, writer, method, response)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> h11.Request | None:
        """The next request with its (discarded) body, or None when the client is done."""
        request: h11.Request | None = None
        first = True
        async with asyncio.timeout(IDLE_TIMEOUT) as deadline:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(8192)
                    conn.receive_data(data)
                    if first:  # the request started: it gets READ_TIMEOUT from now
                        first = False
                        deadline.reschedule(asyncio.get_running_loop().time() + READ_TIMEOUT)
                    continue
                if isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    pass  # probes send no body; a body is read and dropped
                elif isinstance(event, h11.EndOfMessage):
                    return request
                elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                    return None

    @staticmethod
    async def _send(
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        method: str,
        response: AdminResponse,
    ) -> None:
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            ("Cache-Control", "no-store"),
            *response.headers,
        ]
        if response.status in (400, 408, 413, 431, 500):
            headers.append(("Connection", "close"))
        reason = HTTPStatus(response.status).phrase.encode()
        data = conn.send(h11.Response(status_code=response.status, headers=headers, reason=reason))
        if method != "HEAD" and response.body:
            data = (data or b"") + (conn.send(h11.Data(data=response.body)) or b"")
        data = (data or b"") + (conn.send(h11.EndOfMessage()) or b"")
        writer.write(data)
        async with asyncio.timeout(READ_TIMEOUT):
            await writer.drain()
