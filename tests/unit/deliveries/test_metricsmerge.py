"""Combining N workers' expositions into the machine's (``metricsmerge``, no processes)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from hookwall.deliveries.metrics import Metrics
from hookwall.deliveries.metricsmerge import render_merged


def exposition(requests: int, rules: int, loaded: float, ok: int) -> str:
    metrics = Metrics(process=False)
    for _ in range(requests):
        metrics.observe_exchange(
            {"decision": "allow", "reason": None, "status": 200, "duration_ms": 5.0}
        )
    metrics.policy_applied(rules, loaded, reload=False)
    if not ok:
        metrics.policy_rejected()
    return metrics.render(None)[0].decode()


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_counters_and_histograms_are_summed_and_policy_gauges_are_not() -> None:
    texts = [exposition(3, 2, 100.0, 1), exposition(4, 2, 200.0, 0)]
    body, content_type = render_merged(texts, {1: True, 2: True}, None)
    assert content_type.startswith("text/plain")
    got = samples(body)
    allowed = (("decision", "allow"), ("reason", "none"), ("status_class", "2xx"))
    assert got[("hookwall_requests_total", allowed)] == 7
    duration = (("decision", "allow"), ("phase", "duration"))
    assert got[("hookwall_exchange_phase_seconds_count", duration)] == 7
    assert got[("hookwall_policy_rules", ())] == 2
    assert got[("hookwall_policy_loaded_timestamp_seconds", ())] == 200.0
    assert got[("hookwall_policy_last_reload_ok", ())] == 0  # one worker's last reload failed
    assert got[("hookwall_workers", ())] == 2
    assert got[("hookwall_worker_up", (("worker", "1"),))] == 1


def test_a_worker_that_did_not_answer_is_down_and_out_of_the_sums() -> None:
    body, _ = render_merged([exposition(3, 1, 1.0, 1), "garbage {"], {1: True, 2: False}, None)
    got = samples(body)
    assert got[("hookwall_worker_up", (("worker", "2"),))] == 0
    allowed = (("decision", "allow"), ("reason", "none"), ("status_class", "2xx"))
    assert got[("hookwall_requests_total", allowed)] == 3


def test_openmetrics_when_the_scraper_asks() -> None:
    accept = "application/openmetrics-text; version=1.0.0"
    body, content_type = render_merged([exposition(1, 1, 1.0, 1)], {1: True}, accept)
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
