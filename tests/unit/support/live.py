"""mitmproxy serving in the test's own process, for what only a live connection shows.

Some addons act on the connection itself (hookwall.flow.conns): a deadline writes a 408 and
closes the sender's socket, an idle one is closed, a receiver connection is dropped. With
test flows alone there is no connection to act on; here mitmproxy's own Proxyserver and
NextLayer serve ``127.0.0.1`` on a free port, with the addons under test in the same addon
manager, and the test talks to it over a real socket. An exception in one of the addons'
handlers (which the manager only logs) fails the test.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from mitmproxy import connection, http
from mitmproxy.addons import next_layer, proxyserver
from mitmproxy.proxy.server import ConnectionIO

from hookwall.destinations.addons.guard import DestinationGuard
from hookwall.flow.runtime import Runtime
from hookwall.forwarding.addons.hopheaders import HopHeaders
from hookwall.forwarding.addons.lifecycle import Lifecycle
from hookwall.redirects.addon import InternalHops
from tests.unit.support.mitm import AddonContext, addon_context, update_options


class _Last:
    """The last addon of the chain: what it has seen, every addon has (the connections, the
    flows, for the test to look at)."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = asyncio.Event()
        self.flows: list[http.HTTPFlow] = []

    def client_connected(self, client: connection.Client) -> None:
        self.count += 1
        self.changed.set()

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self.flows.append(flow)


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Receiver:
    """A receiver on ``127.0.0.2`` (a free port) that answers each request (without a body)
    with the next of ``answers`` (the last repeats; ``200 ok``) and keeps the connection
    open; a ``silent`` one reads requests and never answers, and the first ``hang_ups``
    connections are closed once their request is read. ``heads`` are the request heads."""

    def __init__(self, *answers: bytes, silent: bool = False, hang_ups: int = 0) -> None:
        self.server: asyncio.Server | None = None
        self.address = ("127.0.0.2", 0)
        self.answers, self.silent, self.hang_ups = answers or (OK,), silent, hang_ups
        self.heads: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []  # its open connections
        self.hung_up_on = 0  # connections the proxy closed
        self._changed = asyncio.Event()

    @property
    def authority(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    async def closed_by_proxy(self, count: int = 1) -> None:
        """Return once the proxy has closed ``count`` connections to it (5 s at most)."""
        async with asyncio.timeout(5):
            while self.hung_up_on < count:
                self._changed.clear()
                await self._changed.wait()

    def hang_up(self) -> None:
        """Close every connection to it, from its side."""
        for writer in self.writers:
            writer.close()

    async def __aenter__(self) -> Receiver:
        self.server = await asyncio.start_server(self._serve, "127.0.0.2", 0)
        self.address = self.server.sockets[0].getsockname()[:2]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):  # requests without a body
                self.heads.append(head)
                if self.hang_ups > 0:
                    self.hang_ups -= 1
                    break
                if not self.silent:
                    writer.write(self.answers[min(len(self.heads), len(self.answers)) - 1])
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            if not writer.is_closing():  # not its own hang_up: the proxy closed it
                self.hung_up_on += 1
                self._changed.set()
        finally:
            self.writers.remove(writer)
            writer.close()


@dataclass
class LiveProxy:
    """The running proxy: its address, mitmproxy's server (its connections), and helpers
    to talk to it as a sender and to wait for it."""

    tctx: AddonContext
    server: proxyserver.Proxyserver
    address: tuple[str, int]
    _last: _Last

    @property
    def flows(self) -> list[http.HTTPFlow]:
        """Every request the proxy has seen, in order."""
        return self._last.flows

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A sender's connection, once every addon's ``client_connected`` has run for it and
        mitmproxy reads from it (before that, it cannot be closed from outside its layers)."""
        seen = self._last.count
        reader, writer = await asyncio.open_connection(*self.address)
        async with asyncio.timeout(5):
            while self._last.count == seen:
                self._last.changed.clear()
                await self._last.changed.wait()
        await self.quiet()
        return reader, writer

    async def quiet(self) -> None:
        """Return once mitmproxy waits for more on every connection, senders' and receivers'
        (it has handled what arrived: no event says so, hence turns of the loop)."""
        for _ in range(100_000):
            ios = [io for h in self.server.connections.values() for io in h.transports.values()]
            if all(_reading(io) for io in ios):
                return
            await asyncio.sleep(0)
        raise AssertionError("mitmproxy never went back to reading its connections")

    async def get(
        self, writer: asyncio.StreamWriter, reader: asyncio.StreamReader, to: Receiver
    ) -> bytes:
        """One ``GET`` through the proxy to a receiver, on the sender's connection: the
        answer (head and body), once the proxy is done with it."""
        writer.write(
            f"GET http://{to.authority}/ HTTP/1.1\r\nHost: {to.authority}\r\n\r\n".encode()
        )
        await writer.drain()
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
            length = [
                line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
            ]
            body = await reader.readexactly(int(length[0].split(b":")[1])) if length else b""
        await self.quiet()
        return head + body

    async def until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` holds, which mitmproxy's tasks will make true once
        they have read what a socket says (a close): turns of the loop, 5 s at most."""
        async with asyncio.timeout(5):
            while not condition():  # noqa: ASYNC110  # no event to wait for: mitmproxy's state
                await asyncio.sleep(0.001)

    def open_to(self, receiver: Receiver) -> int:
        """How many connections to ``receiver`` the proxy holds open (over all senders)."""
        return sum(
            1
            for handler in self.server.connections.values()
            for conn in handler.transports
            if isinstance(conn, connection.Server)
            and conn.address == receiver.address
            and conn.state is not connection.ConnectionState.CLOSED
        )

    def client_ids(self) -> list[str]:
        return [key for key in self.server.connections if isinstance(key, str)]


def _reading(io: ConnectionIO | None) -> bool:
    """Whether mitmproxy's task for this connection waits for data, as it does between a
    sender's bytes: a task cancelled before it started, or while it handles data, never
    closes its socket (mitmproxy's ``handle_connection``); hookwall's deadlines fire long
    after either, a test's sweep must too. (A receiver connection being opened has no
    task yet: not quiet either.)"""
    if io is None or io.handler is None:
        return False
    awaiting: object = io.handler.get_coro()  # down the chain of coroutines it is suspended in
    while inspect.iscoroutine(awaiting):
        if awaiting.__qualname__ == "StreamReader.read":  # suspends only once all is read
            return True
        awaiting = awaiting.cr_await
    return False


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def own_listener(runtime: Runtime) -> list[object]:
    """The part of hookwall's chain a redirect hop or a retry meets at hookwall's own
    listener: recognised (InternalHops), begun and ended (Lifecycle), judged like any request
    (DestinationGuard), its marker stripped (HopHeaders)."""
    lifecycle = Lifecycle(runtime, {})
    guard = DestinationGuard(runtime)
    return [InternalHops(runtime), lifecycle, guard, HopHeaders(), lifecycle.end]


@asynccontextmanager
async def live_proxy(*addons: object) -> AsyncIterator[LiveProxy]:
    """The addons behind a listening mitmproxy (regular mode, ``127.0.0.1:0``)."""
    server = proxyserver.Proxyserver()  # type: ignore[no-untyped-call]  # mitmproxy, unannotated
    errors = _Errors()
    manager_log = logging.getLogger("mitmproxy.addonmanager")
    manager_log.addHandler(errors)
    try:
        last = _Last()
        with addon_context(server, next_layer.NextLayer(), *addons, last) as tctx:
            update_options(tctx.options, mode=["regular@127.0.0.1:0"])
            assert await server.setup_servers()
            server.is_running = True  # what its ``running`` hook does
            host, port, *_ = server.listen_addrs()[0]
            try:
                yield LiveProxy(tctx, server, (str(host), int(port)), last)
            finally:
                await server.servers.update([])
    finally:
        manager_log.removeHandler(errors)
    assert not errors.messages, errors.messages
