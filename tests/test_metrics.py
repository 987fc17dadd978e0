"""``GET /metrics`` in the Prometheus text format (parsed by prometheus_client's own parser), ``/metrics.json`` as before."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from dedup import Detector
from dedup.serve.http import create_app
from dedup.serve.prometheus import metrics_text
from dedup.serve.shared import SharedDetector

from .conftest import HashEncoder

TOKEN = "metrics-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HANOI = "Ministers of Vietnam and Laos met in Hanoi on Sunday and signed three cooperation agreements."


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_is_prometheus_text_with_the_json_counts(tmp_path: Path) -> None:
    service = SharedDetector(Detector.open(tmp_path / "s.store", encoder=HashEncoder(), create=True))
    client = TestClient(create_app(service, token=TOKEN), raise_server_exceptions=False)
    article = {"id": "h1", "title": "Hanoi talks", "text": HANOI, "lang": "en"}
    assert client.post("/add", headers=AUTH, json={"articles": [article]}).status_code == 200
    check = {"articles": [{**article, "id": "h2"}]}
    assert client.post("/check", headers=AUTH, json=check).status_code == 200
    assert client.post("/check", headers={**AUTH, "Content-Type": "application/json"}, content=b"{").status_code == 400
    assert client.get("/metrics").status_code == 401  # the token guards it like any data path

    scrape = client.get("/metrics", headers=AUTH)
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = samples(scrape.text)
    as_json = client.get("/metrics.json", headers=AUTH).json()

    assert found[("dedup_articles_added_total", ())] == as_json["counts"]["articles_added"] == 1
    assert found[("dedup_duplicates_found_total", ())] == as_json["counts"]["duplicates_found"] >= 1
    assert found[("dedup_responses_total", (("status", "400"),))] == 1
    assert found[("dedup_responses_total", (("status", "401"),))] == 1
    assert found[("dedup_responses_total", (("status", "200"),))] >= 2
    assert found[("dedup_endpoint_requests_total", (("endpoint", "POST /check"),))] == 2
    p50 = found[("dedup_request_latency_seconds", (("endpoint", "POST /check"), ("quantile", "0.5")))]
    slowest = found[("dedup_request_latency_seconds", (("endpoint", "POST /check"), ("quantile", "1")))]
    assert 0 < p50 <= slowest
    assert found[("dedup_store_articles", ())] == 1 == as_json["store"]["articles"]
    assert found[("dedup_store_generation", ())] == as_json["store"]["generation"]
    assert found[("dedup_uptime_seconds", ())] >= 0


def test_counter_names_are_made_valid_and_an_empty_snapshot_scrapes() -> None:
    snap = {"uptime_s": 1.5, "counts": {"weird-name.x": 3, "requests": 7, "status_503": 2}, "latency_ms": {}}
    found = samples(metrics_text(snap).decode("utf-8"))
    assert found[("dedup_weird_name_x_total", ())] == 3
    assert found[("dedup_requests_total", ())] == 7
    assert found[("dedup_responses_total", (("status", "503"),))] == 2
    assert found[("dedup_store_articles", ())] == 0
    empty = samples(metrics_text({"uptime_s": 0.0}).decode("utf-8"))
    assert empty[("dedup_requests_total", ())] == 0
