"""The exchange event, built from a flow and its state: the same fields, in the same order,
with the same values as the event the log and the store have always had."""

from __future__ import annotations

from typing import Any

from mitmproxy.test import tflow

from hookwall.core.denials import Denial, Reason
from hookwall.deliveries.addons.exchangelog import ExchangeLog, exchange_event
from hookwall.deliveries.event import EVENT_FIELDS, ExchangeEvent, request_line_parts
from hookwall.deliveries.logs import EXCHANGE_FIELDS
from hookwall.destinations.decide import Decision
from hookwall.flow.headrefusal import HeadRefusal
from hookwall.flow.holds import Holds
from hookwall.flow.respond import deny
from hookwall.flow.state import start_state
from hookwall.policy import load_default_policy

# The documented order (README.md, "Log events"), as the store's columns and the CLI read it.
DOCUMENTED = (
    "request_id", "sender", "attempted_sender", "client", "method", "url", "host", "port",
    "rule", "resolved_ips", "peer_ip", "decision", "reason", "would_deny",
    "would_deny_message", "status", "error", "webhook_id", "signed", "key_ids", "redirect",
    "hop", "attempt", "replay_of", "tls", "queue_ms", "dns_ms", "connect_ms", "ttfb_ms",
    "duration_ms", "request_bytes", "response_bytes",
)  # fmt: skip


def test_the_event_has_the_documented_fields_in_order() -> None:
    assert EVENT_FIELDS == EXCHANGE_FIELDS == DOCUMENTED
    assert list(ExchangeEvent().fields()) == list(DOCUMENTED)
    assert set(ExchangeEvent().fields().values()) == {None}


def test_an_allowed_exchange() -> None:
    flow = tflow.tflow(resp=True)  # request 0-1 s, receiver's connection 2-3 s (TCP)
    assert flow.response is not None
    flow.response.timestamp_start, flow.response.timestamp_end = 946681204.0, 946681205.0
    state = start_state(flow, load_default_policy(), None)
    state.decision = Decision(
        True,
        None,
        "allowed",
        "receiver.test",
        22,
        dns_ms=1.23456,
        would_deny=((Reason.SENDER_DENIED, "b"),),
    )
    state.would_deny.append((Reason.HOST_DENIED, "a"))
    state.original_url = "http://receiver.test:22/path"
    state.signed, state.key_ids, state.queue_ms = "standard-webhooks", ("k1",), 0.5
    state.redirect = {"status": 302, "location": "http://x.test/", "action": "passed"}
    event = exchange_event(flow, state).fields()
    assert event == {
        "request_id": state.request_id,
        "sender": None,
        "attempted_sender": None,
        "client": "127.0.0.1:22",
        "method": "GET",
        "url": "http://receiver.test:22/path",
        "host": "receiver.test",
        "port": 22,
        "rule": None,
        "resolved_ips": [],
        "peer_ip": "192.168.0.1",
        "decision": "allow",
        "reason": None,
        "would_deny": "host-denied",
        "would_deny_message": "a; b",
        "status": 200,
        "error": None,
        "webhook_id": None,
        "signed": "standard-webhooks",
        "key_ids": ["k1"],
        "redirect": {"status": 302, "location": "http://x.test/", "action": "passed"},
        "hop": 0,
        "attempt": 1,
        "replay_of": None,
        "tls": None,
        "queue_ms": 0.5,
        "dns_ms": 1.235,
        "connect_ms": 1000.0,  # opened for this request: it started after the request did
        "ttfb_ms": 1000.0,  # from the connection being ready to the response head
        "duration_ms": 5000.0,
        "request_bytes": 7,
        "response_bytes": 7,
    }
    assert type(event["would_deny"]) is str


def test_a_refused_exchange_says_what_the_sender_was_told() -> None:
    flow = tflow.tflow()
    flow.request.headers["webhook-id"] = "msg_1"
    state = start_state(flow, load_default_policy(), None)
    deny(flow, state, Denial(Reason.HOST_DENIED, "not here"), error="low-level")
    event = exchange_event(flow, state).fields()
    assert (event["decision"], event["reason"], event["status"]) == ("deny", "host-denied", 403)
    assert type(event["reason"]) is str  # the wire value, not the enum
    assert event["error"] == "not here" and event["webhook_id"] == "msg_1"
    assert (event["host"], event["port"], event["url"]) == ("address", 22, "http://address:22/path")
    assert event["ttfb_ms"] is None and event["signed"] is False


def test_a_refused_request_head_has_its_one_event() -> None:
    seen: list[dict[str, Any]] = []
    log = ExchangeLog({}, lambda _client: Holds(), sink=lambda flow, event: seen.append(event))
    denial = Denial(Reason.BAD_FRAMING, "obs-fold")
    log.head_refused(HeadRefusal("c1", ("10.0.0.1", 5000), "req_9", denial, b"GET /\x00x HTTP/1.1"))
    (event,) = seen
    assert list(event) == list(DOCUMENTED)
    assert {k: v for k, v in event.items() if v is not None} == {
        "request_id": "req_9",
        "client": "10.0.0.1:5000",
        "method": "GET",
        "url": "/\\x00x",
        "resolved_ips": [],
        "decision": "deny",
        "reason": "bad-framing",
        "status": 400,
        "error": "obs-fold",
        "signed": False,
        "key_ids": [],
        "request_bytes": 0,
        "response_bytes": 0,
    }


def test_a_hostile_request_line_is_logged_printable() -> None:
    assert request_line_parts(b"GET /a HTTP/1.1\r") == ("GET", "/a")
    assert request_line_parts(b"\xff\xfe") == (r"\\xff\\xfe", None)  # escaped twice
    assert request_line_parts(b"") == (None, None)
