"""DeliveryStore in process: every exchange event also lands in the delivery store, with its
headers and bodies redacted and capped (what ``hookwall logs`` reads back).

Wired as the pipeline wires it (ExchangeLog's sink), driven through mitmproxy's addon
dispatch behind the real Lifecycle and DestinationGuard, writing a real SQLite store in a
temporary data dir; read back with the store's own reader.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import structlog
from mitmproxy import http
from mitmproxy.proxy.server_hooks import ClientConnectedHook

from hookwall.deliveries.addons.exchangelog import ExchangeLog
from hookwall.deliveries.addons.store import DeliveryStore
from hookwall.deliveries.store import REDACTED, Filters, Row, Store, store_path
from hookwall.destinations.addons.guard import DestinationGuard
from hookwall.flow.runtime import Runtime
from hookwall.forwarding.addons.lifecycle import Lifecycle
from tests.unit.support.flows import load, request_to, responded, runtime_for, state
from tests.unit.support.mitm import (
    HttpRequestHeadersHook,
    HttpResponseHook,
    addon_context,
    tls_data,
)

POLICY = """\
version: 1
unsafe: true
logging: {capture_body: 8, redact: {headers: [X-Tenant-Pin]}}
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
destinations:
  - hosts: [127.0.0.3]
    network: {allow: [127.0.0.3/32]}
    logging: {capture_body: 0}
"""
BODY = b'{"type": "invoice.paid"}'


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    return runtime_for(load(tmp_path, POLICY))


def stored(runtime: Runtime, data_dir: Path, *flows: http.HTTPFlow) -> list[Row]:
    """Each flow delivered (answered 200) through the chain with the store running; then
    the store's rows in full (what ``hookwall logs show`` reads), once its writer stopped."""
    guard = DestinationGuard(runtime)
    lifecycle = Lifecycle(runtime, guard.tunnels)
    store = DeliveryStore(runtime, data_dir)
    log = ExchangeLog(guard.tunnels, lifecycle.connection_holds, store.record)

    async def go() -> None:
        with addon_context(lifecycle, guard, log, store, lifecycle.end) as tctx:
            store.running()
            try:
                for flow in flows:
                    await tctx.hook(
                        ClientConnectedHook(flow.client_conn), HttpRequestHeadersHook(flow)
                    )
                    responded(flow, 200, b"received, thank you")
                    await tctx.hook(HttpResponseHook(flow))
            finally:
                store.done()

    asyncio.run(go())
    reader = Store.open_readonly(store_path(data_dir))
    try:
        rows = sorted(reader.query(Filters(), limit=None), key=lambda row: row.id)
        full = [reader.get(row.request_id or "") for row in rows]
    finally:
        reader.close()
    assert all(full)
    return [row for row in full if row is not None]


def test_an_exchange_is_stored_with_its_event_and_its_parts(
    runtime: Runtime, tmp_path: Path
) -> None:
    flow = request_to("127.0.0.2", 8080, body=BODY)
    flow.request.headers["Authorization"] = "Bearer the-senders-secret"
    flow.request.headers["X-Tenant-Pin"] = "1234"
    (row,) = stored(runtime, tmp_path / "data", flow)
    assert row.request_id == state(flow).request_id
    assert (row.event["status"], row.event["decision"]) == (200, "allow")
    assert row.request_headers is not None and row.response_headers is not None
    assert ("Authorization", REDACTED) in row.request_headers  # never kept in clear
    assert ("X-Tenant-Pin", REDACTED) in row.request_headers  # nor what the policy adds
    assert ("Content-Type", "application/json") in row.request_headers
    assert (row.request_body, row.request_truncated) == (BODY[:8], True)  # capture_body: 8
    assert (row.response_body, row.response_truncated) == (b"received", True)


def test_a_destination_may_keep_no_bodies(runtime: Runtime, tmp_path: Path) -> None:
    (row,) = stored(runtime, tmp_path / "data", request_to("127.0.0.3", 8080, body=BODY))
    assert row.request_body is None and row.response_body is None
    assert row.request_headers  # the headers still are


def test_rows_come_in_the_order_of_the_exchanges(runtime: Runtime, tmp_path: Path) -> None:
    flows = [request_to("127.0.0.2", 8080, body=BODY) for _ in range(3)]
    rows = stored(runtime, tmp_path / "data", *flows)
    assert sorted(rows, key=lambda row: row.id) and [
        row.request_id for row in sorted(rows, key=lambda row: row.id)
    ] == [state(flow).request_id for flow in flows]


def test_an_event_without_a_flow_is_stored_as_logged(runtime: Runtime, tmp_path: Path) -> None:
    """A sender refusing hookwall's certificate: ExchangeLog's event has no flow."""
    store = DeliveryStore(runtime, tmp_path / "data")
    log = ExchangeLog({}, Lifecycle(runtime, {}).connection_holds, store.record)
    flow = request_to("127.0.0.2", 443)

    async def go() -> None:
        with addon_context(log, store):
            store.running()
            try:
                log.tls_failed_client(tls_data(flow.client_conn, ("127.0.0.2", 443)))
            finally:
                store.done()

    with structlog.testing.capture_logs():
        asyncio.run(go())
    reader = Store.open_readonly(store_path(tmp_path / "data"))
    (row,) = reader.query(Filters(), limit=None)
    reader.close()
    assert (row.event["reason"], row.event["method"]) == ("tls-failed", "CONNECT")
    assert row.request_headers is None and row.request_body is None


def test_a_record_that_cannot_be_built_costs_nothing_but_its_row(
    runtime: Runtime, tmp_path: Path
) -> None:
    store = DeliveryStore(runtime, tmp_path / "data")
    store.record(None, {"request_id": object()})  # nothing the store can write
    store.done()  # and nothing raised
