"""One machine's metrics from N workers' expositions (``hookwall run --workers N``).

Each worker counts only what it served; a scraper wants the machine. Series with the same
name and labels are combined: counters, histograms and most gauges are summed (requests, in
flight, queue depths, connections, CPU seconds, memory); the few gauges that describe the
one policy or build every worker runs take the minimum or the maximum instead (summing a
timestamp or "last reload ok" would be nonsense). No per-worker series: they would multiply
every label set by N. Which workers answered is ``hookwall_worker_up{worker="k"}``; a worker
that did not answer is missing from the sums until it does (its counters start again from
zero after a restart, which ``rate()`` reads as a reset).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

__all__ = ["merge_expositions", "render_merged"]

# Gauges every worker has the same meaning for: the policy, the build, the process start.
_MIN = frozenset({"hookwall_policy_last_reload_ok", "process_start_time_seconds"})
_MAX = frozenset(
    {
        "hookwall_policy_loaded_timestamp_seconds",
        "hookwall_policy_rules",
        "hookwall_build_info",
        "python_info",
        "process_max_fds",
        "hookwall_destination_circuit_state",  # 1 when any worker's circuit is in the state
    }
)
SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def _combine(family: str, sample: str, old: float, new: float) -> float:
    if family in _MIN or sample in _MIN:
        return min(old, new)
    if family in _MAX or sample in _MAX:
        return max(old, new)
    return old + new


def merge_expositions(texts: Iterable[str]) -> list[Metric]:
    """The families of every exposition (Prometheus text format), combined series by series."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[SampleKey, float]] = {}
    for text in texts:
        try:
            parsed_families = list(text_string_to_metric_families(text))
        except ValueError:  # not an exposition (a worker mid-restart?): leave it out
            continue
        for parsed in parsed_families:
            family = families.get(parsed.name)
            if family is None:
                family = families[parsed.name] = Metric(
                    parsed.name, parsed.documentation, parsed.type, parsed.unit
                )
                values[parsed.name] = {}
            merged = values[parsed.name]
            for s in parsed.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                seen = merged.get(key)
                merged[key] = (
                    s.value if seen is None else _combine(parsed.name, s.name, seen, s.value)
                )
    for name, family in families.items():
        for (sample, labels), value in values[name].items():
            family.add_sample(sample, dict(labels), value)
    return list(families.values())


class _Fixed:
    def __init__(self, metrics: Sequence[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


def render_merged(
    texts: Iterable[str], up: Mapping[int, bool], accept: str | None
) -> tuple[bytes, str]:
    """The machine's exposition, plus ``hookwall_workers`` and ``hookwall_worker_up``."""
    metrics = merge_expositions(texts)
    workers = GaugeMetricFamily(
        "hookwall_workers", "Worker processes this supervisor runs (--workers)", value=len(up)
    )
    answered = GaugeMetricFamily(
        "hookwall_worker_up",
        "1 if the worker answered this scrape (its series are in the sums), 0 if not",
        labels=["worker"],
    )
    for index in sorted(up):
        answered.add_metric([str(index)], 1 if up[index] else 0)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed([*metrics, workers, answered]))
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
