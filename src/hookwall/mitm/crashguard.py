"""When one of mitmproxy's layers raises, end the connection instead of leaving it wedged.

mitmproxy catches an exception from a connection's layer stack (``ConnectionHandler.
server_event``: "mitmproxy has crashed!"), logs it and carries on with the connection open and
its layers in an unknown state: the flow being handled gets neither ``response`` nor ``error``
(a chunked message with a trailer section does this: "HTTP trailers are not implemented yet").
We wrap each connection's root layer: on an exception, the sender is told (a 502 on a
plain-HTTP connection; inside TLS the connection just closes), the connection is closed, and
every later event is swallowed. Closing the connection runs ``client_disconnected``, where
Lifecycle ends every exchange still open on it and gives back what it held.
mitmproxy is pinned; ``tests/unit/mitm/test_mitm_hookpoints.py`` fails if the hook point moves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from typing import Any

from mitmproxy.proxy import commands, events, server

logger = logging.getLogger(__name__)

# Called with (client connection id, the exception); returns the bytes to write to the sender
# before closing (None: just close). Lifecycle marks the open exchanges as failed here.
on_crash: list[Callable[[str, BaseException], bytes | None]] = []


class _CrashGuard:
    """Stands in for a connection's root layer; delegates everything else to it."""

    def __init__(self, layer: Any, client: Any) -> None:
        self._layer = layer
        self._client = client
        self.crashed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._layer, name)

    def handle_event(self, event: events.Event) -> Generator[commands.Command, Any, None]:
        if self.crashed:
            return
        try:
            yield from self._layer.handle_event(event)
        except Exception as exc:
            self.crashed = True
            logger.error("hookwall closed a connection after a proxy error: %r", exc)
            final: bytes | None = None
            for listener in on_crash:
                final = listener(self._client.id, exc) or final
            if final is not None and not self._client.tls:
                yield commands.SendData(self._client, final)
            yield commands.CloseConnection(self._client)


_original_handle_client = server.ConnectionHandler.handle_client


async def _handle_client(self: Any) -> None:
    # The server instance sets the connection's top layer after __init__; wrap it here.
    if not isinstance(self.layer, _CrashGuard):
        self.layer = _CrashGuard(self.layer, self.client)
    await _original_handle_client(self)


def install() -> None:
    """Wrap the root layer of every connection handled from now on (idempotent)."""
    server.ConnectionHandler.handle_client = _handle_client  # type: ignore[method-assign]
