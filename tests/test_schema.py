"""One record schema (issue 17): a JSONL line and an HTTP article are read by the same validator.

Each record of the table goes through both doors: :func:`dedup.io.parse_jsonl_line` (what
``dedup add feed.jsonl`` reads) and ``POST /add`` then ``GET /article`` on the service. A
good record gives the same article both ways; a bad one is refused both ways, with the same
reason.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup import Detector
from dedup.errors import InputError
from dedup.io import parse_jsonl_line, parse_record
from dedup.serve.http import create_app
from dedup.serve.schemas import ArticleIn
from dedup.serve.shared import SharedDetector
from dedup.types import KNOWN_FIELDS

from .conftest import HashEncoder

GOOD: list[dict[str, Any]] = [
    {"id": "a", "title": "Hanoi talks", "lang": "en"},
    {"id": 7, "title": "Hanoi talks", "lang": "en"},
    {"id": -3, "title": "Hanoi talks"},
    {"id": 10**30, "title": "Hanoi talks", "lang": "en"},
    {
        "id": "full",
        "title": "  Vietnam and Laos sign a trade deal  ",
        "text": "Ministers met in Hanoi on Sunday.\n\nTariffs fall by 20 percent.",
        "date": "2025-1-5",
        "lang": " EN ",
        "source": "wire",
        "url": "https://example.org/a",
        "feed": "asia",
        "story": "label-7",
        "n": 3,
        "score": 0.5,
        "ok": True,
        "none": None,
        "nested": {"k": [1, 2, {"deep": "é"}]},
    },
    {"id": "merged", "title": "Hanoi talks", "feed": "asia", "extra": {"desk": "north", "rank": 2}},
    {"id": "null-extra", "title": "Hanoi talks", "extra": None, "lang": None, "date": None, "text": None},
    {"id": "datetime", "title": "Hanoi talks", "date": "2025-01-12T08:30:00+07:00"},
    {"id": "month", "title": "Hanoi talks", "date": "2025-01", "source": ""},
    {"id": "unicode \u2028 id", "title": "Hà Nội \u0085 talks", "text": "line\u2029sep", "lang": "vi"},
]

BAD: list[tuple[dict[str, Any], str]] = [
    ({"title": "no id"}, "record has no 'id'"),
    ({"id": "", "title": "t"}, "record has no 'id'"),
    ({"id": None, "title": "t"}, "record has no 'id'"),
    ({"id": True, "title": "t"}, "'id' must be a string or integer, got True"),
    ({"id": 1.5, "title": "t"}, "'id' must be a string or integer, got 1.5"),
    ({"id": ["a"], "title": "t"}, "'id' must be a string or integer"),
    ({"id": "x", "title": 5}, "'title' must be a string or null, got int 5"),
    ({"id": "x", "title": "t", "lang": ["en"]}, "'lang' must be a string or null"),
    ({"id": "x", "title": "t", "date": "2025-02-30"}, "bad 'date'"),
    ({"id": "x", "title": "t", "date": "12/01/2025"}, "bad 'date'"),
    ({"id": "x", "title": "t", "date": "1800-01-01"}, "is outside 1900-01-01 to 2100-12-31"),
    ({"id": "x", "title": "t", "extra": {"title": "y"}}, "extra may not hold the field 'title'"),
    ({"id": "x", "title": "t", "extra": {"extra": {}}}, "extra may not hold the field 'extra'"),
    ({"id": "x", "title": "t", "feed": 1, "extra": {"feed": 2}}, "the field 'feed' is given twice"),
    ({"id": "x", "title": "t", "extra": [1]}, "'extra' must be an object holding more fields"),
    ({"id": "x", "title": "t\ud800"}, "unpaired surrogate"),
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    det = Detector.open(tmp_path_factory.mktemp("schema") / "s", encoder=HashEncoder(), create=True, cache=False)
    return TestClient(create_app(SharedDetector(det), token=None), raise_server_exceptions=False)


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=True)  # \\u escapes carry lone surrogates, as a client may send them


@pytest.mark.parametrize("record", GOOD, ids=[str(r["id"])[:12] for r in GOOD])
def test_a_good_record_gives_the_same_article_both_ways(client: TestClient, record: dict[str, Any]) -> None:
    from_jsonl = parse_jsonl_line(_line(record), "feed.jsonl", 1)
    assert from_jsonl.id == str(record["id"])
    response = client.post("/add", content=_line({"articles": [record]}), headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["added"] + response.json()["unchanged"] == [from_jsonl.id]
    stored = client.get("/article", params={"id": from_jsonl.id})
    assert stored.status_code == 200, stored.text
    assert stored.json() == from_jsonl.to_dict()  # same fields, same normalised values, same extra fields
    model = ArticleIn.model_validate(record)
    assert model.id == from_jsonl.id and model.extra == dict(from_jsonl.extra)


def test_extra_fields_are_kept_and_written_back() -> None:
    full = parse_jsonl_line(_line(GOOD[4]), "feed.jsonl", 1)
    assert dict(full.extra) == {k: GOOD[4][k] for k in ("feed", "story", "n", "score", "ok", "none", "nested")}
    assert (full.title, full.lang, str(full.date)) == ("Vietnam and Laos sign a trade deal", "en", "2025-01-05")
    merged = parse_jsonl_line(_line(GOOD[5]), "feed.jsonl", 1)
    assert dict(merged.extra) == {"feed": "asia", "desk": "north", "rank": 2}
    record = merged.to_record()  # the stored form nests them under "extra" ...
    assert record["extra"] == {"feed": "asia", "desk": "north", "rank": 2}
    for form in (record, merged.to_dict()):  # ... and both it and the flat form read back the same
        again = parse_jsonl_line(json.dumps(form), "again.jsonl", 1)
        assert again == merged and dict(again.extra) == dict(merged.extra)


@pytest.mark.parametrize(("record", "reason"), BAD, ids=[reason[:24] for _, reason in BAD])
def test_a_bad_record_is_refused_both_ways_for_the_same_reason(client: TestClient, record: dict[str, Any], reason: str) -> None:
    with pytest.raises(InputError) as refused:
        parse_jsonl_line(_line(record), "feed.jsonl", 4)
    assert reason in str(refused.value) and str(refused.value).startswith("feed.jsonl:4: ")
    for path in ("/check", "/add", "/cluster"):
        response = client.post(path, content=_line({"articles": [record]}), headers={"Content-Type": "application/json"})
        assert response.status_code == 422, (path, response.text)
        body = response.json()
        assert body["error"] == "invalid_request" and reason in body["detail"], body
        assert body["errors"][0]["loc"] == "body.articles.0", body


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_records = st.fixed_dictionaries(
    {"id": st.one_of(st.text(min_size=1, max_size=10), st.integers()), "title": st.text(min_size=1, max_size=20)},
    optional={"date": st.sampled_from(["2025", "2025-01", "2025-01-12"]), "lang": st.sampled_from(["en", "fr"])},
).flatmap(
    lambda base: st.dictionaries(
        st.text(max_size=6).filter(lambda k: k not in (*KNOWN_FIELDS, "extra")), _json_values, max_size=4
    ).map(lambda more: {**more, **base})
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(record=_records)
def test_what_is_read_writes_back_and_reads_back_the_same(record: dict[str, Any]) -> None:
    article = parse_record(record, source="gen", line=1, detect_lang=False)
    assert article.id == str(record["id"])
    assert dict(article.extra) == {k: v for k, v in record.items() if k not in KNOWN_FIELDS}
    for form in (article.to_dict(), article.to_record()):
        again = parse_record(json.loads(json.dumps(form)), source="again", line=1, detect_lang=False)
        assert again == article and dict(again.extra) == dict(article.extra)
    assert ArticleIn.model_validate(record).model_dump()["extra"] == dict(article.extra)
