"""ExchangeLog in process: exactly one ``exchange`` event per exchange, however it ends.

Driven through mitmproxy's addon dispatch behind the real Lifecycle and DestinationGuard
(literal addresses: no DNS), with a real policy. The event is read where operators read it,
the log line (structlog's captured events), and where the delivery store and the metrics
get it (the sink and the observer).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from mitmproxy import http
from mitmproxy.proxy.layers.tls import TlsFailedClientHook
from mitmproxy.proxy.server_hooks import ClientConnectedHook, ClientDisconnectedHook
from mitmproxy.test import tflow

from hookwall.core.denials import Denial, Reason
from hookwall.deliveries.addons.exchangelog import ExchangeLog
from hookwall.deliveries.logs import EXCHANGE_FIELDS
from hookwall.destinations.addons.guard import DestinationGuard
from hookwall.flow.headrefusal import HeadRefusal
from hookwall.flow.runtime import Runtime
from hookwall.forwarding.addons.lifecycle import Lifecycle
from tests.unit.support.flows import (
    assert_refused,
    connect_to,
    load,
    request_to,
    responded,
    runtime_for,
    state,
)
from tests.unit.support.mitm import (
    HttpConnectedHook,
    HttpConnectErrorHook,
    HttpConnectHook,
    HttpErrorHook,
    HttpRequestHeadersHook,
    HttpResponseHook,
    Step,
    run_hooks,
    tls_data,
)

POLICY = """\
version: 1
unsafe: true
logging: {redact: {query: [event]}}
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
destinations:
  - hosts: [127.0.0.3]
    network: {allow: [127.0.0.3/32]}
    tls: passthrough
"""
Event = MutableMapping[str, Any]


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    return runtime_for(load(tmp_path, POLICY))


class Bench:
    """The chain an exchange goes through to its event; what was logged, sunk, observed."""

    def __init__(self, runtime: Runtime) -> None:
        self.guard = DestinationGuard(runtime)
        self.lifecycle = Lifecycle(runtime, self.guard.tunnels)
        self.sunk: list[tuple[http.HTTPFlow | None, dict[str, Any]]] = []
        self.observed: list[tuple[dict[str, Any], str | None]] = []
        self.log = ExchangeLog(
            self.guard.tunnels,
            self.lifecycle.connection_holds,
            sink=lambda flow, event: self.sunk.append((flow, event)),
            observer=lambda event, key: self.observed.append((event, key)),
        )
        self.lifecycle.on_abandoned.append(self.log.abandoned)  # as the pipeline wires it
        self.logged: list[Event] = []

    def run(self, *steps: Step) -> list[Event]:
        """The steps through the chain; the exchange events they logged."""
        chain = [self.lifecycle, self.guard, self.log, self.lifecycle.end]
        with structlog.testing.capture_logs() as logs:
            run_hooks(chain, *steps)
        return [event for event in logs if event["event"] == "exchange"]


@pytest.fixture
def bench(runtime: Runtime) -> Bench:
    return Bench(runtime)


def begun(flow: http.HTTPFlow) -> list[Step]:
    return [ClientConnectedHook(flow.client_conn), HttpRequestHeadersHook(flow)]


def fields(event: Event) -> dict[str, Any]:
    """The documented fields, as the log line has them (without structlog's own)."""
    assert set(EXCHANGE_FIELDS) <= set(event), set(EXCHANGE_FIELDS) - set(event)
    return {name: event[name] for name in EXCHANGE_FIELDS}


def test_a_delivered_exchange_is_one_event_with_what_happened(bench: Bench) -> None:
    flow = request_to("127.0.0.2", 8080, path="/hook?event=paid&n=1")
    flow.request.headers["webhook-id"] = "evt_1"
    (event,) = bench.run(
        *begun(flow),
        lambda: responded(flow, 201, b"created"),
        HttpResponseHook(flow),
        HttpErrorHook(flow),  # a late second end logs nothing more
    )
    assert event["log_level"] == "info"
    logged = fields(event)
    assert logged["request_id"] == state(flow).request_id
    assert {k: logged[k] for k in ("decision", "reason", "status", "method", "host", "port")} == {
        "decision": "allow",
        "reason": None,
        "status": 201,
        "method": "POST",
        "host": "127.0.0.2",
        "port": 8080,
    }
    assert logged["url"] == "http://127.0.0.2:8080/hook?event=[redacted]&n=1"  # policy's rule
    assert logged["resolved_ips"] == ["127.0.0.2"] and logged["webhook_id"] == "evt_1"
    assert (logged["request_bytes"], logged["response_bytes"]) == (2, 7)
    assert (logged["hop"], logged["attempt"], logged["signed"]) == (0, 1, False)
    # The store and the metrics get that very event, with the flow and the budget's key.
    assert [(f, fields(e)) for f, e in bench.sunk] == [(flow, logged)]
    assert [(fields(e), key) for e, key in bench.observed] == [(logged, None)]


def test_a_refused_exchange_says_why_as_the_sender_was_told(bench: Bench) -> None:
    flow = request_to("127.0.0.1", 8080)
    (event,) = bench.run(*begun(flow), HttpResponseHook(flow))
    found = assert_refused(flow, 403, "address-blocked")
    logged = fields(event)
    assert (logged["decision"], logged["reason"], logged["status"]) == (
        "deny",
        "address-blocked",
        403,
    )
    assert found.denial is not None and logged["error"] == found.denial.message


@pytest.mark.parametrize(
    ("message", "why", "status"),
    [
        ("[Errno 111] Connect call failed ('127.0.0.2', 8080)", "upstream-error", 502),
        ("TLS handshake failed: certificate verify failed", "tls-failed", 502),
    ],
)
def test_a_failed_exchange_is_logged_with_its_classified_reason(
    bench: Bench, message: str, why: str, status: int
) -> None:
    flow = request_to("127.0.0.2", 8080)

    def failed() -> None:
        flow.error = tflow.terr(message)

    (event,) = bench.run(*begun(flow), failed, HttpErrorHook(flow))
    logged = fields(event)
    assert (logged["decision"], logged["reason"], logged["status"]) == ("deny", why, status)
    assert message in logged["error"]


def test_an_exchange_mitmproxy_dropped_is_logged_when_its_connection_ends(bench: Bench) -> None:
    flow = request_to("127.0.0.2", 8080)
    (event,) = bench.run(*begun(flow), ClientDisconnectedHook(flow.client_conn))
    logged = fields(event)
    assert (logged["decision"], logged["reason"], logged["status"]) == (
        "deny",
        "client-closed",
        499,
    )


def test_a_connect_that_cannot_reach_the_receiver_is_refused_and_logged(bench: Bench) -> None:
    tunnel = connect_to("127.0.0.2", 443)

    def mitmproxy_could_not_connect() -> None:
        tunnel.response = http.Response.make(502, b"Connection refused")

    (event,) = bench.run(
        ClientConnectedHook(tunnel.client_conn),
        HttpConnectHook(tunnel),
        mitmproxy_could_not_connect,
        HttpConnectErrorHook(tunnel),
    )
    found = assert_refused(tunnel, 502, "upstream-error")
    assert found.denial is not None and "Connection refused" in found.denial.message
    assert (fields(event)["method"], fields(event)["reason"]) == ("CONNECT", "upstream-error")


@pytest.mark.parametrize(("connected", "why"), [(True, None), (False, "upstream-error")])
def test_a_passthrough_tunnel_is_one_event_when_it_ends(
    bench: Bench, connected: bool, why: str | None
) -> None:
    tunnel = connect_to("127.0.0.3", 443)
    events_while_open: list[int] = []

    def receiver_side() -> None:
        server = tunnel.server_conn
        if not connected:
            server.timestamp_tcp_setup, server.error = None, "Connection refused"

    events = bench.run(
        ClientConnectedHook(tunnel.client_conn),
        HttpConnectHook(tunnel),
        receiver_side,
        HttpConnectedHook(tunnel),
        lambda: events_while_open.append(len(bench.sunk)),
        ClientDisconnectedHook(tunnel.client_conn),
    )
    assert events_while_open == [0]  # not while the tunnel carries bytes
    (event,) = events
    logged = fields(event)
    assert (logged["tls"], logged["reason"], logged["method"]) == ("passthrough", why, "CONNECT")


def test_a_sender_refusing_hookwalls_certificate_is_its_own_event(bench: Bench) -> None:
    tunnel = connect_to("127.0.0.2", 443)
    data = tls_data(tunnel.client_conn, ("127.0.0.2", 443))
    data.conn = tunnel.client_conn
    tunnel.client_conn.error = "unknown ca"
    (event,) = bench.run(
        ClientConnectedHook(tunnel.client_conn),
        HttpConnectHook(tunnel),
        HttpConnectedHook(tunnel),
        TlsFailedClientHook(data),
    )
    logged = fields(event)
    assert event["log_level"] == "warning"
    assert (logged["method"], logged["host"], logged["reason"]) == (
        "CONNECT",
        "127.0.0.2",
        "tls-failed",
    )
    assert logged["request_id"] == state(tunnel).request_id
    assert "hookwall ca --path" in logged["error"] and "unknown ca" in logged["error"]
    assert [flow for flow, _ in bench.sunk] == [None]  # no flow: the store gets the event


def test_a_broken_metrics_observer_costs_neither_the_delivery_nor_its_line(
    runtime: Runtime,
) -> None:
    bench = Bench(runtime)

    def broken(event: dict[str, Any], key: str | None) -> None:
        raise RuntimeError("metrics down")

    bench.log.observer = broken
    flow = request_to("127.0.0.2", 8080)
    (event,) = bench.run(*begun(flow), lambda: responded(flow), HttpResponseHook(flow))
    assert fields(event)["status"] == 200 and len(bench.sunk) == 1


def test_a_head_refused_before_it_became_a_flow_is_its_own_event(bench: Bench) -> None:
    """http1guard refused the head (no flow, no state): the refusal is the event, its hostile
    bytes made printable; inside a tunnel, it is the tunnel's destination and sender."""
    tunnel = connect_to("127.0.0.2", 443)
    refusal = HeadRefusal(
        client_id=tunnel.client_conn.id,
        peername=("127.0.0.1", 40000),
        request_id="req_refused",
        denial=Denial(Reason.HEADER_TOO_LARGE, "the request head has more than 100 fields"),
        start_line=b"POST /hook\x00\xff HTTP/1.1",
    )
    (event,) = bench.run(
        ClientConnectedHook(tunnel.client_conn),
        HttpConnectHook(tunnel),
        lambda: bench.log.head_refused(refusal),
    )
    logged = fields(event)
    assert event["log_level"] == "warning"
    assert (logged["request_id"], logged["reason"], logged["status"]) == (
        "req_refused",
        "header-too-large",
        431,
    )
    assert logged["method"] == "POST" and logged["url"].startswith("/hook\\x00")
    assert logged["url"].isascii() and logged["url"].isprintable()  # the bytes, made safe
    assert (logged["host"], logged["port"], logged["client"]) == (
        "127.0.0.2",
        443,
        "127.0.0.1:40000",
    )
    assert [flow for flow, _ in bench.sunk] == [None]
