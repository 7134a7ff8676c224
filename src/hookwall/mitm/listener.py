"""SO_REUSEPORT for mitmproxy's listener, so several worker processes share one port.

mitmproxy has no option for it: ``AsyncioServerInstance.listen`` in
``mitmproxy.proxy.mode_servers`` opens the TCP listener with
``asyncio.start_server(self.handle_stream, host, port)``. As ``connect.py`` does for upstream
connects, we give that module its own view of ``asyncio`` whose ``start_server`` also passes
``reuse_port=True``; everything else is the real asyncio. mitmproxy is pinned (12.3.1) and
``tests/integration/test_workers.py`` fails if the hook point moves.

Linux spreads new connections over every listening socket of the group by a hash of the
4-tuple. Only sockets of the same effective user may join the group: another user cannot bind
the port and steal connections (the same user can, as it can ptrace hookwall anyway).
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import types
from typing import Any

from mitmproxy.proxy import mode_servers

from hookwall.core.listen import Listener

__all__ = ["install", "installed", "pin_free_ports", "reserve"]


class _AsyncioWithReusePort(types.ModuleType):
    def __init__(self) -> None:
        super().__init__("asyncio")

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def start_server(self, *args: Any, **kwargs: Any) -> asyncio.Server:
        kwargs.setdefault("reuse_port", True)
        return await asyncio.start_server(*args, **kwargs)


def install() -> None:
    """Every TCP listener mitmproxy opens from now on joins a SO_REUSEPORT group."""
    if not installed():
        mode_servers.asyncio = _AsyncioWithReusePort()  # type: ignore[attr-defined]


def installed() -> bool:
    return isinstance(getattr(mode_servers, "asyncio", None), _AsyncioWithReusePort)


def reserve(host: str, port: int) -> list[socket.socket]:
    """Bind (without listening) ``host:port`` with SO_REUSEPORT: a port of 0 becomes a free
    one, shared by every worker, and nobody else can take it while these sockets live.

    A bound socket that does not listen is not in the kernel's accept group, so it never gets
    a connection. One socket per address ``host`` resolves to (asyncio.start_server binds them
    all); the first decides the port. OSError (address in use, ...) for the caller to report.
    """
    infos = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )
    sockets: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address[0]) in seen:
                continue
            seen.add((family, address[0]))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address[0], port, *address[2:]))
            port = sock.getsockname()[1]
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def pin_free_ports(listeners: list[Listener]) -> tuple[list[Listener], list[socket.socket]]:
    """Give every ``HOST:0`` listener its own free port now, when two of them share a host.

    mitmproxy refuses two listeners on one address, and ``127.0.0.1:0`` twice (a regular and a
    transparent listener in a test) is one address to it. Each such port is reserved here
    (``reserve``) and joined by mitmproxy's listener (``install``); keep the sockets for the
    life of the process, as the supervisor of ``--workers`` does.
    """
    zero_hosts = [item.host for item in listeners if item.port == 0]
    if len(zero_hosts) == len(set(zero_hosts)):
        return listeners, []
    install()
    pinned: list[Listener] = []
    sockets: list[socket.socket] = []
    for item in listeners:
        if item.port == 0:
            reserved = reserve(item.host, 0)
            sockets += reserved
            item = dataclasses.replace(item, port=reserved[0].getsockname()[1])
        pinned.append(item)
    return pinned, sockets
