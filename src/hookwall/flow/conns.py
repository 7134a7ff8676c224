"""Close a connection mitmproxy is serving, from outside its layers (a timer of ours).

mitmproxy closes connections only when a layer says so; hookwall's deadlines fire between
events, so they ask the connection's handler directly, as mitmproxy's own inactivity timeout
does. A refusal may be written first on a plain-HTTP client connection that is between
responses (its bytes go straight to the socket); inside TLS the connection is only closed.
"""

from __future__ import annotations

import weakref
from typing import Any

from mitmproxy import connection, ctx

from hookwall.core.denials import Denial
from hookwall.flow import errorpages


def _handler(client_id: str) -> Any:
    return ctx.master.addons.get("proxyserver").connections.get(client_id)


def close_client(client_id: str, final: bytes | None = None) -> bool:
    """Close a sender's connection (and every receiver connection it has); False if gone."""
    handler = _handler(client_id)
    if handler is None:
        return False
    client = handler.client
    io = handler.transports.get(client)
    if io is None or io.handler is None or client.state is connection.ConnectionState.CLOSED:
        return False
    if final and not client.tls and io.writer is not None and not io.writer.is_closing():
        io.writer.write(final)
    handler.close_connection(client)
    return True


# Connections closed after their one exchange was refused and logged (a redirected TLS
# connection refused before its handshake): the handshake that fails next is no new event.
_refused: weakref.WeakSet[connection.Client] = weakref.WeakSet()


def close_refused(client: connection.Client) -> bool:
    """Close a connection whose refusal has been logged; its failing handshake is not news."""
    _refused.add(client)
    return close_client(client.id)


def was_refused(client: connection.Client) -> bool:
    return client in _refused


def refuse_and_close(client_id: str, denial: Denial, request_id: str = "") -> bool:
    """Answer the sender with ``denial`` (plain HTTP only) and close its connection."""
    return close_client(client_id, errorpages.render(denial.status, denial, request_id))


def close_server(client_id: str, server: connection.Server) -> bool:
    """Close one receiver connection of a sender's; False if it is not open."""
    handler = _handler(client_id)
    if handler is None or server not in handler.transports:
        return False
    if handler.transports[server].handler is None:
        return False
    handler.close_connection(server)
    return True


def idle_servers(client_id: str) -> list[connection.Server]:
    """The sender's open receiver connections, oldest first (idle when the caller knows the
    sender has nothing in flight)."""
    handler = _handler(client_id)
    if handler is None:
        return []
    servers = [
        conn
        for conn, io in handler.transports.items()
        if isinstance(conn, connection.Server)
        and io.handler is not None
        and conn.state is not connection.ConnectionState.CLOSED
        and conn.timestamp_tcp_setup is not None
    ]
    return sorted(servers, key=lambda conn: conn.timestamp_tcp_setup or 0.0)
