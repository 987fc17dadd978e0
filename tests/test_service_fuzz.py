"""Fuzzed requests: whatever comes in, the answer is a 2xx or a 4xx with a JSON error body, never a 500.

Generated with hypothesis (fixed example counts, no shrinking surprises in CI): wrong types,
unknown fields, huge fields, invalid UTF-8, empty bodies, deeply nested JSON, random bytes,
random paths, methods and content types, and well-formed articles with odd text. Each test
runs its own examples and checks its own counts, so each passes when run alone.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dedup import Config, Detector
from dedup.detect.archive import ArchiveDetector
from dedup.serve.http import ServiceLimits, create_app
from dedup.serve.shared import SharedDetector

from .conftest import HashEncoder

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PATHS = ["/check", "/add", "/check-and-add", "/cluster", "/article", "/story", "/health", "/metrics", "/openapi.json"]
LIMITS = ServiceLimits(max_body_bytes=64 * 1024, max_batch=5, max_top=5)
CASES = {"requests": 400, "articles": 200}


@pytest.fixture(scope="module", params=["store", "archive"])
def client(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> TestClient:
    path = tmp_path_factory.mktemp("fuzz") / "s"
    config, encoder = Config(max_article_chars=20_000), HashEncoder(dim=64)
    if request.param == "archive":  # the same requests against a time-sharded archive: far dates route to shards
        service = SharedDetector(ArchiveDetector.open(path, config, encoder=encoder, create=True))
    else:
        service = SharedDetector(Detector.open(path, config, encoder=encoder, create=True))
    app = create_app(service, token=TOKEN, limits=LIMITS)
    c = TestClient(app, raise_server_exceptions=False)
    c.post("/add", headers=AUTH, json={"articles": [{"id": "seed", "title": "Hanoi talks", "text": "Ministers met in Hanoi."}]})
    return c


def _check(response: object, case: str, statuses: Counter[int]) -> None:
    status = response.status_code  # type: ignore[attr-defined]
    statuses[status] += 1
    assert status < 500, f"{case}: {status} {response.text[:500]}"  # type: ignore[attr-defined]
    if status >= 400:
        body = response.json()  # type: ignore[attr-defined]
        assert set(body) == {"error", "detail", "errors"} and body["detail"], body
    else:
        assert isinstance(response.json(), dict)  # type: ignore[attr-defined]


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=15,
)
field_values = st.one_of(
    json_values,
    st.text(max_size=300),
    st.integers(0, 30_000).map(lambda n: "x" * n),  # around and over max_article_chars
    st.sampled_from(["2025-01-12", "2025-02-30", "2025-1", "12/01/2025", "9999-12-31", "0000", "", "\ud800", "\udfff x"]),
)
articles = st.dictionaries(
    st.sampled_from(["id", "title", "text", "date", "lang", "source", "url", "extra", "unknown", "ID", ""]),
    field_values,
    max_size=8,
)
bodies = st.one_of(
    st.fixed_dictionaries(
        {"articles": st.one_of(st.lists(articles, max_size=7), json_values)},
        optional={"top": json_values, "replace": json_values, "with_store": json_values, "other": json_values},
    ).map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.just(b""),
    st.integers(1, 30_000).map(lambda depth: b'{"articles": ' + b"[" * depth + b"]" * depth + b"}"),
    st.integers(1, 20_000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    st.integers(60_000, 70_000).map(lambda n: b'{"articles": [{"id": "big", "text": "' + b"y" * n + b'"}]}'),
    st.just(b'{"articles": [{"id": "x", "title": "\xc3\x28 invalid"}]}'),
    st.just(b'{"articles": [{"id": "x", "title": "' + b"9" * 5000 + b'"}], "top": ' + b"9" * 5000 + b"}"),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "",
        "application/x-www-form-urlencoded",
        "application/problem+json",
    ]
)


def test_fuzzed_requests_never_500(client: TestClient, figures: list[str]) -> None:
    statuses: Counter[int] = Counter()

    @settings(max_examples=CASES["requests"], deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(
        method=st.sampled_from(["GET", "POST", "POST", "POST", "PUT", "DELETE", "PATCH"]),
        path=st.one_of(
            st.sampled_from(PATHS), st.text(min_size=1, max_size=20).map(lambda t: "/" + quote(t.lstrip("/"), safe="/"))
        ),
        body=bodies,
        content_type=content_types,
        query=st.dictionaries(st.sampled_from(["id", "top", "x"]), st.text(max_size=600), max_size=2),
        auth=st.sampled_from([AUTH, AUTH, AUTH, {}, {"Authorization": "Bearer nope"}, {"Authorization": "\u00e9"}]),
    )
    def one(method: str, path: str, body: bytes, content_type: str, query: dict[str, str], auth: dict[str, str]) -> None:
        headers = {
            k: v.encode("latin-1") for k, v in {**auth, **({"Content-Type": content_type} if content_type else {})}.items()
        }
        response = client.request(method, path, content=body, headers=headers, params=query)
        _check(response, f"{method} {path} {body[:200]!r}", statuses)

    one()
    tried = sum(statuses.values())
    assert tried >= CASES["requests"] * 0.9, statuses
    assert statuses[422] > 0 and statuses[400] > 5 and statuses[401] > 5, statuses  # every layer is reached
    assert not [s for s in statuses if s >= 500]
    by_status = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
    figures.append(f"service fuzz ({client.app.state.service.kind}): {tried} random requests; statuses {by_status}")  # type: ignore[attr-defined]


well_formed = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=40)},
    optional={
        "title": st.text(max_size=200),
        "text": st.text(max_size=2000),
        # Dates in the accepted range (1900-2100) as often as any date Python knows (mostly refused) or junk.
        "date": st.one_of(
            st.none(),
            st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 12, 31)).map(str),
            st.dates().map(str),
            st.text(max_size=12),
        ),
        "lang": st.one_of(st.none(), st.sampled_from(["en", "fr", "vi", "zz"]), st.text(max_size=5)),
        "source": st.one_of(st.none(), st.text(max_size=20)),
        "extra": st.dictionaries(st.text(min_size=1, max_size=10), json_scalars, max_size=3),
    },
)


def test_fuzzed_articles_are_checked_or_refused_never_500(client: TestClient, figures: list[str]) -> None:
    statuses: Counter[int] = Counter()
    batches = 0

    @settings(max_examples=CASES["articles"], deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(
        batch=st.lists(well_formed, min_size=1, max_size=5),
        path=st.sampled_from(["/check", "/check-and-add", "/add", "/cluster"]),
    )
    def one(batch: list[dict[str, object]], path: str) -> None:
        nonlocal batches
        raw = json.dumps({"articles": batch}, ensure_ascii=True).encode()  # \\u escapes keep lone surrogates
        response = client.post(path, content=raw, headers={**AUTH, "Content-Type": "application/json"})
        batches += 1
        _check(response, f"{path} {raw[:300]!r}", statuses)
        if response.status_code == 200 and path != "/cluster":
            for article in batch:
                got = client.get("/article", params={"id": article["id"]}, headers=AUTH)
                _check(got, f"GET /article {article['id']!r}", statuses)

    one()
    assert batches >= CASES["articles"] * 0.9, batches
    assert statuses[200] > 20 and statuses[422] > 5, statuses
    assert not [s for s in statuses if s >= 500]
    by_status = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
    figures.append(f"service fuzz ({client.app.state.service.kind}): {batches} article batches; statuses {by_status}")  # type: ignore[attr-defined]
