"""Metrics without a proxy: labels, bounded destination cardinality, the exposition."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hookwall.deliveries.metrics import (
    OTHER,
    DestinationLabels,
    Metrics,
    destination_of,
    reason_label,
    status_class,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scrape(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def labels(**kv: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(kv.items()))


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, "2xx"), (302, "3xx"), (403, "4xx"), (599, "5xx"), (None, "none"), (True, "none"),
     (0, "none"), ("200", "none")],
)  # fmt: skip
def test_status_class(status: object, expected: str) -> None:
    assert status_class(status) == expected


def test_reason_label_is_bounded() -> None:
    assert reason_label("queue-full") == "queue-full"
    assert reason_label(None) == "none"
    assert reason_label("Not A Code") == OTHER
    assert reason_label("x" * 80) == OTHER
    assert reason_label(42) == OTHER


def test_destination_of_drops_the_sender_part() -> None:
    assert destination_of("hooks.example.com|billing") == "hooks.example.com"
    assert destination_of("hooks.example.com:8443") == "hooks.example.com:8443"
    assert destination_of("[::1]") == "[::1]"


def test_destination_labels_are_bounded_and_sticky() -> None:
    clock = Clock()
    retired: list[str] = []
    table = DestinationLabels(
        2, retire_after=60, interval=1e9, clock=clock, on_retire=retired.append
    )
    assert table.label("a") == "a" and table.label("b") == "b"
    assert table.label("c") == OTHER  # full
    assert table.peek("a") == "a" and table.peek("c") == OTHER
    # Nobody idle: c waits, the labels stay (counters stay monotonic).
    table.maintain()
    assert table.labelled == {"a", "b"}
    # a goes idle; c and d are busy: the busier one takes a's label.
    clock.now += 30
    table.label("b")
    for _ in range(3):
        table.label("d")
    table.label("c")
    clock.now += 40
    table.maintain()
    assert table.labelled == {"b", "d"} and retired == ["a"]
    assert table.label("a") == OTHER


def test_destination_labels_zero_limit_is_all_other() -> None:
    table = DestinationLabels(0)
    assert table.label("a") == OTHER


def test_observe_exchange_counts_and_phases() -> None:
    m = Metrics(process=False)
    deny: dict[str, Any] = {"decision": "deny", "reason": "address-blocked", "status": 403,
                            "duration_ms": 1.5, "dns_ms": 0.5, "queue_ms": None}  # fmt: skip
    allow: dict[str, Any] = {"decision": "allow", "reason": None, "status": 200, "queue_ms": 250.0,
                             "connect_ms": 2.0, "ttfb_ms": 10.0, "duration_ms": 20.0}  # fmt: skip
    m.observe_exchange(deny, None)
    m.observe_exchange(allow, "hooks.example.com|billing")
    m.observe_exchange({"decision": "deny", "reason": "dns-failed", "status": 403}, None)
    full = {"decision": "deny", "reason": "queue-full", "status": 503, "queue_ms": None}
    m.observe_exchange(full, "hooks.example.com|other")
    got = scrape(m)
    requests = "hookwall_requests_total"
    assert got[(requests, labels(decision="deny", reason="address-blocked", status_class="4xx"))]
    assert got[(requests, labels(decision="allow", reason="none", status_class="2xx"))] == 1
    assert got[("hookwall_dns_failures_total", ())] == 1
    phase = "hookwall_exchange_phase_seconds_sum"
    assert got[(phase, labels(phase="queue", decision="allow"))] == pytest.approx(0.25)
    assert got[(phase, labels(phase="ttfb", decision="allow"))] == pytest.approx(0.01)
    assert (phase, labels(phase="connect", decision="deny")) not in got  # never measured
    waits = "hookwall_queue_wait_seconds_bucket"
    assert got[(waits, labels(destination="hooks.example.com", le="0.25"))] == 1
    assert got[(waits, labels(destination="hooks.example.com", le="0.1"))] == 0
    rejected = "hookwall_flood_rejections_total"
    assert got[(rejected, labels(destination="hooks.example.com", reason="queue-full"))] == 1


def test_live_gauges_fold_unlabelled_destinations_into_other() -> None:
    m = Metrics(top_destinations=2, process=False)
    rows = [
        {"key": "a|s1", "in_flight": 2, "queued": 5, "circuit": "closed"},
        {"key": "a|s2", "in_flight": 1, "queued": 0, "circuit": "open"},
        {"key": "b", "in_flight": 1, "queued": 1, "circuit": "closed"},
        {"key": "c", "in_flight": 3, "queued": 7, "circuit": "half-open"},
        {"key": "d", "in_flight": 0, "queued": 0, "circuit": "closed"},
    ]
    m.sources.limiter_snapshot = lambda: rows
    m.sources.requests_in_flight = lambda: 7
    m.sources.client_connections = lambda: 4
    got = scrape(m)
    assert got[("hookwall_requests_in_flight", ())] == 7
    assert got[("hookwall_client_connections_open", ())] == 4
    depth, flight = "hookwall_destination_queue_depth", "hookwall_destination_in_flight"
    assert got[(depth, labels(destination="a"))] == 5
    assert got[(flight, labels(destination="a"))] == 3
    assert got[(depth, labels(destination="b"))] == 1
    assert got[(depth, labels(destination=OTHER))] == 7  # c (and idle d)
    assert got[(flight, labels(destination=OTHER))] == 3
    assert got[("hookwall_circuits", labels(state="open"))] == 1
    assert got[("hookwall_circuits", labels(state="closed"))] == 3
    assert got[("hookwall_circuits", labels(state="half-open"))] == 1
    state = "hookwall_destination_circuit_state"
    assert got[(state, labels(destination="a", state="open"))] == 1  # the worst of a's budgets
    assert got[(state, labels(destination="a", state="closed"))] == 0
    assert (state, labels(destination=OTHER, state="half-open")) not in got
    assert got[("hookwall_destinations_tracked", ())] == 5
    assert sum(1 for name, _ in got if name == depth) == 3  # a, b, other: bounded


def test_retired_destinations_lose_their_series() -> None:
    clock = Clock()
    m = Metrics(top_destinations=1, clock=clock, process=False)
    m.observe_exchange({"decision": "allow", "status": 200, "queue_ms": 1.0}, "a")
    m.observe_exchange({"decision": "allow", "status": 200, "queue_ms": 1.0}, "b")
    count = "hookwall_queue_wait_seconds_count"
    got = scrape(m)
    assert got[(count, labels(destination="a"))] == 1
    assert got[(count, labels(destination=OTHER))] == 1  # b, while a holds the only label
    clock.now += 3600
    m.observe_exchange({"decision": "allow", "status": 200, "queue_ms": 1.0}, "b")
    # An hour later a is idle and b busy: the scrape gives a's label to b; a's series go.
    got = scrape(m)
    assert (count, labels(destination="a")) not in got
    assert got[(count, labels(destination=OTHER))] == 2
    m.observe_exchange({"decision": "allow", "status": 200, "queue_ms": 1.0}, "b")
    assert scrape(m)[(count, labels(destination="b"))] == 1


def test_reload_metrics_and_build_info() -> None:
    m = Metrics(process=False)
    m.policy_applied(3, when=1234.0, reload=False)
    got = scrape(m)
    assert got[("hookwall_policy_rules", ())] == 3
    assert got[("hookwall_policy_loaded_timestamp_seconds", ())] == 1234.0
    assert got[("hookwall_policy_reloads_total", labels(result="ok"))] == 0
    m.policy_rejected()
    assert scrape(m)[("hookwall_policy_last_reload_ok", ())] == 0
    m.policy_applied(4, reload=True)
    got = scrape(m)
    assert got[("hookwall_policy_reloads_total", labels(result="ok"))] == 1
    assert got[("hookwall_policy_reloads_total", labels(result="rejected"))] == 1
    assert got[("hookwall_policy_last_reload_ok", ())] == 1
    (build,) = [dict(k) for name, k in got if name == "hookwall_build_info"]
    assert set(build) == {"version", "mitmproxy_version", "python"}


def test_openmetrics_when_asked() -> None:
    body, content_type = Metrics(process=False).render("application/openmetrics-text")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
