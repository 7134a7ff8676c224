"""mitmproxy's own error responses in hookwall's denial contract.

mitmproxy writes a small HTML page from deep inside its HTTP/1 layer when it fails a request
itself. This wraps ``Http1Server.send`` so that a flow's error response is what is pending
for its connection (``flow/errorpages.py``: a denial with its id and reason, or a retry's
answer), even where mitmproxy would write nothing (a killed flow), and replaces
``make_error_response`` for the rest. mitmproxy is pinned and
``tests/unit/mitm/test_mitm_hookpoints.py`` fails if the hook points move.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from mitmproxy.connection import ConnectionState
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.layers.http._events import ResponseProtocolError

from hookwall.flow.errorpages import fallback_page, render, take_pending

_original_send = _http1.Http1Server.send


def _send(self: Any, event: Any) -> Generator[commands.Command, Any, None]:
    """Like ``Http1Server.send``, but a flow's error response carries its id and reason."""
    if isinstance(event, ResponseProtocolError):
        pending = take_pending(self.conn)
        can_write = bool(self.conn.state & ConnectionState.CAN_WRITE)
        # What is pending is ours to send, even where mitmproxy would send nothing (kills).
        if pending is not None and can_write and not self.response:
            if isinstance(pending, bytes):
                yield commands.SendData(self.conn, pending)
            else:
                denial, request_id = pending
                yield commands.SendData(self.conn, render(denial.status, denial, request_id))
            yield commands.CloseConnection(self.conn)
            return
    yield from _original_send(self, event)


def install() -> None:
    """Swap in our error pages (idempotent)."""
    _http1.make_error_response = fallback_page  # type: ignore[assignment]
    _http1.Http1Server.send = _send  # type: ignore[method-assign]
