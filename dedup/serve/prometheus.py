"""``GET /metrics`` in the Prometheus text format, written by ``prometheus_client``.

The service keeps its own counters (:class:`dedup.serve.shared.Metrics`, also served as JSON at
``/metrics.json``); this module turns one snapshot of them into metric families when a scraper
asks, through a collector on a registry of its own (never the process-wide default registry, so
two apps in one process do not mix and nothing else of the process is exported).

Families (all prefixed ``dedup_``):

* ``dedup_uptime_seconds``: seconds since the service started;
* ``dedup_requests_total``: HTTP requests answered;
* ``dedup_responses_total{status="200"}``: answers by HTTP status;
* ``dedup_articles_checked_total``, ``dedup_articles_added_total``, ``dedup_duplicates_found_total``, ...:
  the service's other counters, one family each;
* ``dedup_endpoint_requests_total{endpoint="POST /check"}``: requests per endpoint;
* ``dedup_request_latency_seconds{endpoint="POST /check",quantile="0.5"}``: latency percentiles
  (0.5, 0.9, 0.99, and 1 for the slowest) over each endpoint's recent requests;
* ``dedup_store_articles``, ``dedup_store_generation``: the store's size and generation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "metrics_text"]

#: The media type of the text format (version 0.0.4, which every Prometheus version scrapes).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

_QUANTILES = (("0.5", "p50_ms"), ("0.9", "p90_ms"), ("0.99", "p99_ms"), ("1", "max_ms"))
_NOT_A_NAME = re.compile(r"[^a-zA-Z0-9_]")


class _SnapshotCollector(Collector):
    """Metric families from one JSON snapshot of the service's metrics."""

    def __init__(self, snapshot: Callable[[], Mapping[str, Any]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        yield GaugeMetricFamily("dedup_uptime_seconds", "Seconds since the service started.", value=float(snap["uptime_s"]))
        counts: Mapping[str, int] = snap.get("counts", {})
        statuses = CounterMetricFamily("dedup_responses", "HTTP answers by status.", labels=["status"])
        for name, value in sorted(counts.items()):
            if name.startswith("status_"):
                statuses.add_metric([name.removeprefix("status_")], float(value))
        yield statuses
        yield CounterMetricFamily("dedup_requests", "HTTP requests answered.", value=float(counts.get("requests", 0)))
        for name, value in sorted(counts.items()):
            if name == "requests" or name.startswith("status_"):
                continue
            metric = "dedup_" + _NOT_A_NAME.sub("_", name)
            yield CounterMetricFamily(metric, f"The service's counter {name!r}.", value=float(value))
        latency: Mapping[str, Mapping[str, float]] = snap.get("latency_ms", {})
        per_endpoint = CounterMetricFamily("dedup_endpoint_requests", "Requests per endpoint.", labels=["endpoint"])
        seconds = GaugeMetricFamily(
            "dedup_request_latency_seconds",
            "Latency percentiles over each endpoint's recent requests (quantile 1: the slowest).",
            labels=["endpoint", "quantile"],
        )
        for endpoint, stats in sorted(latency.items()):
            per_endpoint.add_metric([endpoint], float(stats["count"]))
            for quantile, key in _QUANTILES:
                seconds.add_metric([endpoint, quantile], float(stats[key]) / 1000)
        yield per_endpoint
        yield seconds
        store: Mapping[str, int] = snap.get("store", {})
        yield GaugeMetricFamily("dedup_store_articles", "Articles in the store.", value=float(store.get("articles", 0)))
        yield GaugeMetricFamily("dedup_store_generation", "The store's generation.", value=float(store.get("generation", 0)))


def metrics_text(snapshot: Mapping[str, Any]) -> bytes:
    """``snapshot`` (the JSON of ``/metrics.json``) in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(lambda: snapshot))
    return generate_latest(registry)
