"""Prometheus metrics for the admin endpoint (``GET /metrics``), in a private registry.

Exchange metrics are fed from one place: ``ExchangeLog`` hands every ``exchange`` event (the
very dict it logs) to ``Metrics.observe_exchange``, so nothing is measured twice and the
metrics agree with the logs. Live values (queue depth, in flight, circuit states, client
connections) are read from the running proxy at scrape time.

Label cardinality is bounded: ``reason`` is a fixed set of kebab-case codes, statuses are
counted by class, and per-destination series exist for at most ``top_destinations``
destinations at a time (``DestinationLabels``); every other destination is
``destination="other"``. The labels are ``deliveries/metriclabels.py``'s (re-exported here).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client import Counter as PromCounter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from hookwall import __version__
from hookwall.deliveries.metriclabels import (
    DEFAULT_TOP_DESTINATIONS,
    OTHER,
    DestinationLabels,
    destination_of,
    reason_label,
    status_class,
)

__all__ = [
    "OTHER",
    "PHASES",
    "DestinationLabels",
    "LiveSources",
    "Metrics",
    "destination_of",
    "reason_label",
    "status_class",
]

# Exchange-event field per latency phase (README.md, "Timings"); values are milliseconds.
PHASES: Mapping[str, str] = {
    "dns": "dns_ms",
    "queue": "queue_ms",
    "connect": "connect_ms",
    "ttfb": "ttfb_ms",
    "duration": "duration_ms",
}
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
)  # fmt: skip
# Refusals of flood control: counted per destination, the question being "who overflows?".
FLOOD_REASONS = frozenset({"queue-full", "queue-timeout", "rate-limited", "circuit-open"})
CIRCUIT_STATES = ("closed", "open", "half-open")


def _series(cache: dict[tuple[str, ...], Any], metric: Any, key: tuple[str, ...]) -> Any:
    """``metric.labels(*key)``, kept: labels() takes a lock and builds a key on every call.
    Only for series with a fixed, bounded label set (never per destination: those retire)."""
    child = cache.get(key)
    if child is None:
        child = cache[key] = metric.labels(*key)
    return child


@dataclass(slots=True)
class LiveSources:
    """Read at scrape time, on the event loop (the limiter is not thread-safe)."""

    limiter_snapshot: Callable[[], list[dict[str, object]]] = list
    requests_in_flight: Callable[[], int] = int
    client_connections: Callable[[], int] = int


class _LiveCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self.metrics.collect_live()


class Metrics:
    """Every hookwall metric, in a private registry (nothing global, one per proxy)."""

    def __init__(
        self,
        *,
        top_destinations: int = DEFAULT_TOP_DESTINATIONS,
        clock: Callable[[], float] = time.monotonic,
        process: bool = True,
        mitmproxy_version: str = "unknown",  # the process knows it (app/master.py)
    ) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series
        self.registry = CollectorRegistry(auto_describe=True)
        self.sources = LiveSources()
        self._rows: list[dict[str, object]] | None = None  # the limiter, read once per scrape
        self.labels = DestinationLabels(
            top_destinations, clock=clock, on_retire=self._forget_destination
        )
        r = self.registry
        # Children of the fixed-label metrics, by label values (bounded: see the docstring).
        self._request_series: dict[tuple[str, ...], Any] = {}
        self._phase_series: dict[tuple[str, ...], Any] = {}
        self.requests = PromCounter(
            "hookwall_requests",
            "HTTP exchanges (CONNECTs included) by decision, denial reason and status class",
            ["decision", "reason", "status_class"],
            registry=r,
        )
        self.phases = Histogram(
            "hookwall_exchange_phase_seconds",
            "Time per phase of an exchange (the *_ms fields of the exchange event): dns, "
            "queue, connect (TCP, and TLS to the receiver), ttfb (request sent to the "
            "response head), duration",
            ["phase", "decision"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_waits = Histogram(
            "hookwall_queue_wait_seconds",
            "Time requests waited for a flood-control slot, per destination",
            ["destination"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.flood_rejections = PromCounter(
            "hookwall_flood_rejections",
            "Requests refused by flood control (queue-full, queue-timeout, rate-limited, "
            "circuit-open), per destination",
            ["destination", "reason"],
            registry=r,
        )
        self.dns_failures = PromCounter(
            "hookwall_dns_failures",
            "Requests refused because the destination did not resolve (NXDOMAIN, SERVFAIL, "
            "timeout, no address)",
            registry=r,
        )
        self.reloads = PromCounter(
            "hookwall_policy_reloads",
            "Policy reload attempts by result (ok, rejected)",
            ["result"],
            registry=r,
        )
        for result in ("ok", "rejected"):
            self.reloads.labels(result)
        self.policy_loaded = Gauge(
            "hookwall_policy_loaded_timestamp_seconds",
            "When the policy in use was loaded (Unix time)",
            registry=r,
        )
        self.policy_rules = Gauge(
            "hookwall_policy_rules", "Destination rules in the policy in use", registry=r
        )
        self.last_reload_ok = Gauge(
            "hookwall_policy_last_reload_ok",
            "1 if the last reload attempt was applied (or none was made), 0 if it was rejected",
            registry=r,
        )
        self.last_reload_ok.set(1)
        self.clients_total = PromCounter(
            "hookwall_client_connections",
            "Sender connections accepted",
            registry=r,
        )
        self.clients_refused = PromCounter(
            "hookwall_client_connections_refused",
            "Sender connections refused (proxy.max_connections, max_connections_per_client)",
            registry=r,
        )
        build = _build_info(mitmproxy_version)
        Info("hookwall_build", "hookwall build information", registry=r).info(build)
        r.register(_LiveCollector(self))
        if process:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)

    # -- fed by the proxy -------------------------------------------------------------------
    def observe_exchange(self, event: Mapping[str, Any], limit_key: str | None = None) -> None:
        """One ``exchange`` event (the logged dict) and the flood-control key it drew from."""
        decision = "deny" if event.get("decision") == "deny" else "allow"
        reason = reason_label(event.get("reason"))
        key = (decision, reason, status_class(event.get("status")))
        _series(self._request_series, self.requests, key).inc()
        for phase, field in PHASES.items():
            value = event.get(field)
            if isinstance(value, int | float) and not isinstance(value, bool):
                histogram = _series(self._phase_series, self.phases, (phase, decision))
                histogram.observe(max(0.0, value) / 1000)
        if reason == "dns-failed":
            self.dns_failures.inc()
        if limit_key is None:
            return
        queue_ms = event.get("queue_ms")
        if isinstance(queue_ms, int | float) and not isinstance(queue_ms, bool):
            label = self.labels.label(destination_of(limit_key))
            self.queue_waits.labels(label).observe(max(0.0, queue_ms) / 1000)
        elif reason in FLOOD_REASONS:
            label = self.labels.label(destination_of(limit_key))
            self.flood_rejections.labels(label, reason).inc()

    def policy_applied(self, rules: int, when: float | None = None, *, reload: bool) -> None:
        self.policy_loaded.set(time.time() if when is None else when)
        self.policy_rules.set(rules)
        if reload:
            self.reloads.labels("ok").inc()
            self.last_reload_ok.set(1)

    def policy_rejected(self) -> None:
        self.reloads.labels("rejected").inc()
        self.last_reload_ok.set(0)

    def client_connected(self, refused: bool) -> None:
        (self.clients_refused if refused else self.clients_total).inc()

    # -- read at scrape time ------------------------------------------------------------------
    def collect_live(self) -> Iterator[Metric]:
        src = self.sources
        yield _gauge(
            "hookwall_requests_in_flight", "HTTP exchanges in flight", src.requests_in_flight()
        )
        yield _gauge(
            "hookwall_client_connections_open",
            "Sender connections open",
            src.client_connections(),
        )
        rows = self._rows if self._rows is not None else src.limiter_snapshot()
        depth: Counter[str] = Counter()
        in_flight: Counter[str] = Counter()
        circuits: Counter[str] = Counter(dict.fromkeys(CIRCUIT_STATES, 0))
        per_destination: dict[str, str] = {}
        for row in rows:
            label = self.labels.peek(destination_of(str(row.get("key"))))
            depth[label] += _int(row.get("queued"))
            in_flight[label] += _int(row.get("in_flight"))
            state = str(row.get("circuit"))
            circuits[state] += 1
            if label != OTHER and _worse(state, per_destination.get(label)):
                per_destination[label] = state
        queue = GaugeMetricFamily(
            "hookwall_destination_queue_depth",
            "Requests waiting for a flood-control slot, per destination",
            labels=["destination"],
        )
        flight = GaugeMetricFamily(
            "hookwall_destination_in_flight",
            "Requests holding a flood-control slot, per destination",
            labels=["destination"],
        )
        for label in sorted(depth.keys() | in_flight.keys()):
            queue.add_metric([label], depth[label])
            flight.add_metric([label], in_flight[label])
        yield queue
        yield flight
        counts = GaugeMetricFamily(
            "hookwall_circuits",
            "Destinations tracked by flood control, by circuit state",
            labels=["state"],
        )
        for state, count in sorted(circuits.items()):
            counts.add_metric([state], count)
        yield counts
        states = GaugeMetricFamily(
            "hookwall_destination_circuit_state",
            "Circuit state per labelled destination (1 for the current state)",
            labels=["destination", "state"],
        )
        for label, current in sorted(per_destination.items()):
            for state in CIRCUIT_STATES:
                states.add_metric([label, state], 1 if state == current else 0)
        yield states
        yield _gauge(
            "hookwall_destinations_tracked", "Destinations flood control holds state for", len(rows)
        )

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition (Prometheus text, or OpenMetrics if asked) and its content type."""
        encoder, content_type = choose_encoder(accept or "")
        # Labels are settled before anything is collected, so one scrape is consistent.
        self._rows = self.sources.limiter_snapshot()
        try:
            for row in self._rows:  # a destination with requests waiting or in flight is active
                if _int(row.get("in_flight")) or _int(row.get("queued")):
                    self.labels.label(destination_of(str(row.get("key"))))
            self.labels.maintain()
            return encoder(self.registry), content_type
        finally:
            self._rows = None

    def _forget_destination(self, destination: str) -> None:
        """A retired label: drop its series (the registry never grows without bound)."""
        with contextlib.suppress(KeyError):
            self.queue_waits.remove(destination)
        for reason in FLOOD_REASONS:
            with contextlib.suppress(KeyError):
                self.flood_rejections.remove(destination, reason)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


_SEVERITY = {state: index for index, state in enumerate(CIRCUIT_STATES)}


def _worse(state: str, than: str | None) -> bool:
    """Per-sender budgets of one destination share a label: show the worst circuit."""
    return than is None or _SEVERITY.get(state, 0) > _SEVERITY.get(than, 0)


def _build_info(mitmproxy_version: str) -> dict[str, str]:
    python = ".".join(str(part) for part in sys.version_info[:3])
    return {"version": __version__, "mitmproxy_version": mitmproxy_version, "python": python}
