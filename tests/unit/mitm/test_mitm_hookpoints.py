"""The mitmproxy internals hookwall wraps are still where, and what, hookwall expects.

mitmproxy is pinned; these fail first when an upgrade moves a hook point, and the proxy tests
(tests/integration/test_hostile.py) fail when the wrapped behaviour itself changes.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import socket

from mitmproxy import http as mitm_http
from mitmproxy import master
from mitmproxy.addonmanager import AddonManager
from mitmproxy.addons import errorcheck, proxyserver
from mitmproxy.proxy import mode_servers, server
from mitmproxy.proxy.layers.http import _http1

from hookwall.flow import errorpages as pending_pages
from hookwall.mitm import connect, crashguard, errorpages, http1guard, listener, typechecks
from hookwall.mitm.startup import StartupErrors


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
    assert _http1.make_error_response is pending_pages.fallback_page


def test_an_error_page_without_a_pending_denial_still_has_an_id() -> None:
    """mitmproxy's fallback error page (no hookwall denial pending) is JSON with a fresh id."""
    raw = pending_pages.fallback_page(502, "boom")
    head, _, body = raw.partition(b"\r\n\r\n")
    answer = json.loads(body)
    assert answer["request_id"].startswith("req_") and answer["error"] == "upstream-error"
    assert f"X-Hookwall-Request-Id: {answer['request_id']}".encode() in head


def test_upstream_connects_still_go_through_the_module_asyncio_the_timeout_replaces() -> None:
    """connect.py bounds ``asyncio.open_connection`` as mitmproxy's server module sees it."""
    assert "asyncio.open_connection(" in inspect.getsource(server.ConnectionHandler.open_connection)
    before = server.asyncio  # type: ignore[attr-defined]
    try:
        connect.install(lambda host, port: 1.0)
        patched = server.asyncio  # type: ignore[attr-defined]
        assert (
            patched.open_connection.__func__ is connect._AsyncioWithConnectTimeout.open_connection
        )
        assert patched.sleep is asyncio.sleep  # everything else is the real asyncio
    finally:
        server.asyncio = before  # type: ignore[attr-defined]


def test_listeners_still_open_through_the_module_asyncio_that_adds_reuse_port() -> None:
    """listener.py adds SO_REUSEPORT to ``asyncio.start_server`` as mode_servers sees it."""
    source = inspect.getsource(mode_servers.AsyncioServerInstance)
    assert "asyncio.start_server(" in source
    before = mode_servers.asyncio  # type: ignore[attr-defined]
    try:
        listener.install()
        asyncio.run(_listen_and_read_reuse_port())
    finally:
        mode_servers.asyncio = before  # type: ignore[attr-defined]


async def _listen_and_read_reuse_port() -> None:
    start = mode_servers.asyncio.start_server  # type: ignore[attr-defined]
    srv = await start(lambda r, w: None, "127.0.0.1", 0)
    try:
        [sock] = srv.sockets
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
    finally:
        srv.close()
        await srv.wait_closed()


def test_messages_are_still_type_checked_only_in_post_init_under_debug() -> None:
    """typechecks.py replaces ``MessageData.__post_init__``: mitmproxy's check lives there."""
    source = inspect.getsource(mitm_http.MessageData)
    assert "def __post_init__(self)" in source and "if __debug__" in source
    assert "check_option_type" in source
    typechecks.install()
    assert mitm_http.MessageData.__post_init__ is typechecks._skip


def test_the_proxyserver_still_keeps_one_handler_per_client_with_its_transports() -> None:
    """conns.py closes connections through the proxyserver addon's handlers."""
    assert isinstance(proxyserver.Proxyserver().connections, dict)  # type: ignore[no-untyped-call]
    for name in ("close_connection", "transports", "client"):
        assert name in inspect.getsource(server.ConnectionHandler)
    assert "self.transports[" in inspect.getsource(server.ConnectionHandler.close_connection)


def test_the_addon_manager_still_dispatches_through_the_methods_the_cache_overrides() -> None:
    """dispatch.py overrides these AddonManager methods; each must still exist and be used."""
    for name in ("register", "add", "remove", "clear", "handle_lifecycle", "trigger_event"):
        assert callable(getattr(AddonManager, name)), name
    assert "self.trigger_event(" in inspect.getsource(AddonManager)
    assert "self.chain" in inspect.getsource(AddonManager.add)


def test_the_startup_error_check_still_reads_the_errors_logged_while_starting() -> None:
    """startup.py replaces ErrorCheck's exit, which reads ``logger.has_errored``."""
    assert StartupErrors.name == "errorcheck"
    assert 'self.addons.get("errorcheck")' in inspect.getsource(master.Master)
    assert "await ec.shutdown_if_errored()" in inspect.getsource(master.Master)
    source = inspect.getsource(errorcheck)
    assert "async def shutdown_if_errored" in source and "has_errored" in source


def test_transparent_mode_still_keeps_the_dialled_address_as_the_clients_sockname() -> None:
    """flow/transparent.py reads what a redirected sender dialled from ``client.sockname``,
    which mitmproxy sets from SO_ORIGINAL_DST for a transparent listener's connection."""
    source = inspect.getsource(mode_servers.AsyncioServerInstance.handle_stream)
    assert "original_dst = platform.original_addr(s)" in source
    assert "handler.layer.context.client.sockname = original_dst" in source
    assert "handler.layer.context.server.address = original_dst" in source


def test_the_connect_hooks_transparent_tls_runs_still_take_the_flow() -> None:
    """TransparentTls runs the chain's http_connect, http_connected and http_connect_error
    handlers on the CONNECT it makes from a ClientHello: the hooks must still be those names,
    taking the flow alone."""
    from mitmproxy.proxy.layers.http import _hooks

    flow = mitm_http.HTTPFlow(None, None)  # type: ignore[arg-type]  # only the arguments matter
    for hook, name in (
        (_hooks.HttpConnectHook, "http_connect"),
        (_hooks.HttpConnectedHook, "http_connected"),
        (_hooks.HttpConnectErrorHook, "http_connect_error"),
    ):
        assert hook.name == name
        assert hook(flow).args() == [flow]
