"""The mitmproxy internals hookwall wraps are still where, and what, hookwall expects.

mitmproxy is pinned; these fail first when an upgrade moves a hook point, and the proxy tests
(tests/integration/test_hostile.py) fail when the wrapped behaviour itself changes.
"""

from __future__ import annotations

import inspect
import json

from mitmproxy.proxy import server
from mitmproxy.proxy.layers.http import _http1

from hookwall.flow import errorpages
from hookwall.mitm import crashguard, http1guard


def test_the_head_readers_are_wrapped() -> None:
    http1guard.install()
    assert _http1.Http1Server.read_headers is http1guard._server_read
    assert _http1.Http1Client.read_headers is http1guard._client_read
    # What the wrappers stand in front of: mitmproxy still reads heads without a bound.
    assert "FIXME: protect against header size DoS" in inspect.getsource(
        http1guard._server_read_headers
    )
    assert "maybe_extract_lines" in inspect.getsource(http1guard._client_read_headers)


def test_the_crash_guard_wraps_every_connection_and_mitmproxy_still_swallows_crashes() -> None:
    crashguard.install()
    assert server.ConnectionHandler.handle_client is crashguard._handle_client
    source = inspect.getsource(server.ConnectionHandler.server_event)
    assert "self.layer.handle_event(event)" in source
    assert "mitmproxy has crashed!" in source  # the exception is logged, the connection kept
    # One known way in: mitmproxy raises on HTTP/1 trailers (tested through the proxy).
    assert "HTTP trailers are not implemented" in inspect.getsource(
        _http1.Http1Connection.read_body
    )


def test_the_error_page_writer_is_wrapped() -> None:
    errorpages.install()
    assert _http1.Http1Server.send is errorpages._send
    assert _http1.make_error_response is errorpages._error_page


def test_an_error_page_without_a_pending_denial_still_has_an_id() -> None:
    """mitmproxy's fallback error page (no hookwall denial pending) is JSON with a fresh id."""
    raw = errorpages._error_page(502, "boom")
    head, _, body = raw.partition(b"\r\n\r\n")
    answer = json.loads(body)
    assert answer["request_id"].startswith("req_") and answer["error"] == "upstream-error"
    assert f"X-Hookwall-Request-Id: {answer['request_id']}".encode() in head
