"""TransparentTls: a TLS connection on a transparent listener is judged as a CONNECT.

A redirected sender sends no CONNECT: the first thing hookwall sees is its TLS ClientHello,
whose SNI names the destination (none: the address it dialled is the host judged). So when the
ClientHello of such a connection arrives, hookwall makes the CONNECT the sender would have sent
through an explicit proxy (``CONNECT sni:dialled-port``) and runs the chain's ``http_connect``
handlers on it: the sender is known (AccessControl), the destination judged and pinned and the
dialled address judged too (DestinationGuard), a passthrough tunnel admitted (FloodControl),
the exchange begun and logged like any CONNECT. Then:

- allowed: the connection goes to the pinned IP, never to the address dialled; intercepted or
  passed through by SNI as the rule says (the guard's own ``tls_clienthello``, after this);
- refused: as a refused CONNECT is: answered inside TLS with hookwall's certificate for the
  name (``connect_refusals: inside-tls``, the guard keeps the refusal with the tunnel), or,
  for ``on-connect`` and passthrough rules, ended as a refused CONNECT (its one event) and
  closed before any handshake. Either way nothing was connected upstream.

Fails closed: an error here closes the connection.
"""

from __future__ import annotations

import logging
import time

from mitmproxy import ctx, http, tls
from mitmproxy.proxy.layers.http._hooks import (
    HttpConnectedHook,
    HttpConnectErrorHook,
    HttpConnectHook,
)

from hookwall.flow import conns
from hookwall.flow.state import TunnelState
from hookwall.flow.transparent import is_transparent, original_destination

logger = logging.getLogger(__name__)


class TransparentTls:
    def __init__(self, tunnels: dict[str, TunnelState]) -> None:
        self.tunnels = tunnels  # the guard's: client connection id -> its CONNECT

    async def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        client = data.context.client
        if not is_transparent(client) or client.id in self.tunnels:
            return  # an explicit proxy's tunnel, or a TLS layer inside one already judged
        try:
            dialled = original_destination(client)
            if dialled is None:
                raise RuntimeError("a transparent connection without its original destination")
            flow = connect_flow(data, data.client_hello.sni or dialled[0], dialled[1])
            addons = ctx.master.addons
            await addons.handle_lifecycle(HttpConnectHook(flow))
            response = flow.response
            if response is not None and not 200 <= response.status_code < 300:
                await addons.handle_lifecycle(HttpConnectErrorHook(flow))
                conns.close_refused(client)
                return
            # Where mitmproxy connects (lazily, once a request needs it): the pinned IP.
            data.context.server.address = (flow.request.host, flow.request.port)
            await addons.handle_lifecycle(HttpConnectedHook(flow))
        except Exception:
            logger.exception("judging a transparent TLS connection failed; closing it")
            conns.close_client(client.id)


def connect_flow(data: tls.ClientHelloData, host: str, port: int) -> http.HTTPFlow:
    """The CONNECT a sender on a transparent listener would have sent for this connection."""
    context = data.context
    flow = http.HTTPFlow(context.client, context.server, live=True)
    now = time.time()
    flow.request = http.Request(
        host=host,
        port=port,
        method=b"CONNECT",
        scheme=b"",
        authority=f"{host}:{port}".encode("utf-8", "surrogateescape"),
        path=b"",
        http_version=b"HTTP/1.1",
        headers=http.Headers(),
        content=b"",
        trailers=None,
        timestamp_start=now,
        timestamp_end=now,
    )
    return flow
