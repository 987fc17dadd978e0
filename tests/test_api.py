"""The short Python API (issue 17): dicts or Articles in, one-call deduplication, results that explain themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dedup.detect.detector
from dedup import Article, Config, DeduplicationResult, Detector, DuplicateIdError, InputError, PartialDate
from dedup.cli import EXIT_OK, main
from dedup.types import Match, Verdict

from .conftest import HashEncoder
from .test_cluster import CHAIN

LINKED = Config(cluster_threshold=0.5, cluster_linkage=0.7)  # a~2 one story, c apart (see test_cluster.CHAIN)


@pytest.fixture
def det() -> Detector:
    return Detector.in_memory(LINKED, encoder=HashEncoder())


def test_every_method_takes_records_as_jsonl_lines_hold_them(det: Detector) -> None:
    report = det.add([CHAIN[0]])
    assert report.added == ("a",) and det.store.get("a").extra == {"feed": "wire", "story": "label-1"}
    verdict = det.check(CHAIN[1])
    assert verdict.id == "2" and verdict.duplicate and verdict.matches[0].id == "a"
    mixed = det.check_many([CHAIN[2], Article(id="x", title="Louvre strike", text="Museum staff walked out.")])
    assert [v.id for v in mixed] == ["c", "x"] and not any(v.duplicate for v in mixed)
    assert sorted(s.article_ids for s in det.cluster(CHAIN).stories) == [("a", "2"), ("c",)]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["Hanoi talks"], r"records\[0\]: expected an Article or a dict record, got str 'Hanoi talks' \(wrap a text"),
        ([{"id": "a", "title": "t"}, {"title": "no id"}], r"records\[1\]: record has no 'id'"),
        ([{"id": "a", "title": "t", "date": "2025-02-30"}], r"records\[0\]: article 'a': bad 'date'"),
        ({"id": "a", "title": "t"}, "got one dict: wrap it in a list"),
    ],
)
def test_bad_records_are_refused_naming_the_record(det: Detector, items: object, message: str) -> None:
    for call in (det.check_many, det.add, det.cluster, det.self_deduplicate):
        with pytest.raises(InputError, match=message):
            call(items)  # type: ignore[operator]


def test_self_deduplicate_keeps_one_record_per_story(det: Detector) -> None:
    repeat = dict(CHAIN[0])  # the same id and content again: a duplicate of the first
    records = [*CHAIN, repeat]
    result = det.self_deduplicate(records)
    assert isinstance(result, DeduplicationResult)
    assert [r is given for r, given in zip(result.selected, (CHAIN[0], CHAIN[2]), strict=True)] == [True, True]
    assert [(d.id, d.kept, d.record is rec) for d, rec in zip(result.duplicates, (CHAIN[1], repeat), strict=True)] == [
        ("2", "a", True),
        ("a", "a", True),
    ]
    assert [s.article_ids for s in result.stories] == [("a", "2"), ("c",)]
    assert result.duplicates[0].story == result.clustering.labels["a"] and result.duplicate_ratio == 0.5
    out = json.loads(json.dumps(result.to_dict()))
    assert [r["id"] for r in out["selected"]] == ["a", "c"] and out["duplicates"][0]["kept"] == "a"
    assert out["selected"][1]["extra"] == {"desk": "asia"}  # records come back as given
    assert len(repr(result)) < 200 and "selected=2" in repr(result)

    articles = [Article(id="p", title="Talks in Hanoi"), Article(id="q", title="Louvre strike")]
    assert det.self_deduplicate(articles).selected == tuple(articles)
    assert det.self_deduplicate([]).selected == ()
    with pytest.raises(DuplicateIdError, match=r"records\[1\].*'a' already used by records\[0\] with other content"):
        det.self_deduplicate([CHAIN[0], {**CHAIN[0], "title": "Other"}])


def test_article_checks_its_fields_when_built() -> None:
    a = Article(id="a", title="Talks", date="2023-01")  # type: ignore[arg-type]
    assert a.date == PartialDate(2023, 1) and a.date.precision.value == "month"
    assert Article(id=7, title="t").id == "7"  # type: ignore[arg-type]
    assert Article(id="a", title=None, text=None).title == ""  # type: ignore[arg-type]
    assert Article(id="a", date="").date is None  # type: ignore[arg-type]
    bad = [
        ({"id": "a", "date": "2023-13"}, r"Article 'a': bad date '2023-13': not a valid calendar date"),
        ({"id": "a", "date": 2023}, r"Article 'a': date must be a PartialDate, a YYYY\[-MM\[-DD\]\] string or None, got 2023"),
        ({"id": True}, "id must be a non-empty string or an integer, got True"),
        ({"id": ""}, "id must be a non-empty string"),
        ({"id": "a", "title": 5}, "Article 'a': title must be a string, got int 5"),
        ({"id": "a", "lang": ["en"]}, r"Article 'a': lang must be a string or None, got \['en'\]"),
        ({"id": "a", "extra": ["x"]}, "extra must be a mapping"),
    ]
    for fields, message in bad:
        with pytest.raises(InputError, match=message):
            Article(**fields)  # type: ignore[arg-type]


def test_verdicts_say_duplicate_and_refuse_truthiness(det: Detector) -> None:
    det.add([CHAIN[0]])
    dup, new = det.check_many([CHAIN[1], CHAIN[2]], top=1)
    assert dup.duplicate is dup.is_duplicate is True and new.duplicate is False
    assert dup.matches[0].duplicate and dup.to_dict()["duplicate"] is True
    for value in (dup, new, dup.matches[0]):
        with pytest.raises(TypeError, match=r"no truth value: test (verdict|match)\.duplicate"):
            bool(value)


def test_every_result_has_to_dict_and_a_short_repr(det: Detector) -> None:
    long = {**CHAIN[0], "id": "long", "title": "T" * 5000, "text": "word " * 20_000}
    report = det.add([CHAIN[0], long])
    verdict = det.check(CHAIN[1], top=3)
    match = verdict.matches[0]
    clustering = det.cluster(CHAIN)
    dedup_result = det.self_deduplicate(CHAIN)
    embedded = det.embed([long])[0]
    results = [
        report,
        verdict,
        match,
        match.evidence,
        match.evidence.aligned[0],
        clustering,
        clustering.stories[0],
        dedup_result,
        dedup_result.duplicates[0],
        embedded,
        det.store.get("long"),
    ]
    for result in results:
        text = repr(result)
        assert len(text) < 200, text
        assert text.startswith(type(result).__name__ + "(")
        json.dumps(result.to_dict())  # JSON-ready
    assert "matches=" in repr(verdict) and "score=" in repr(match) and "stories=2" in repr(clustering)
    assert clustering.to_dict()["labels"] == clustering.labels and report.to_dict()["added"] == ["a", "long"]
    assert isinstance(verdict, Verdict) and isinstance(match, Match)


def test_the_embedding_cache_is_on_by_default_in_python_and_in_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DEDUP_CACHE_DIR", str(tmp_path / "cache"))
    encoder = HashEncoder()
    python_side = Detector.in_memory(encoder=encoder)
    assert python_side.cache is not None and python_side.cache.path.is_relative_to(tmp_path / "cache")
    assert Detector.in_memory(encoder=encoder, cache=False).cache is None
    monkeypatch.setattr(dedup.detect.detector, "load_encoder", lambda model, **kwargs: encoder)
    feed = tmp_path / "feed.jsonl"
    feed.write_text("".join(json.dumps(r) + "\n" for r in CHAIN), encoding="utf-8")
    assert main(["cluster", "-q", str(feed)]) == EXIT_OK
    assert python_side.cache.path.is_file() and len(python_side.cache) > 0  # the CLI filled the same cache file
    calls = encoder.calls
    python_side.cluster(CHAIN)
    assert encoder.calls == calls  # everything came from the cache the CLI wrote


def test_the_archive_detector_takes_records_too(tmp_path: Path) -> None:
    from dedup import ArchiveDetector

    det = ArchiveDetector.open(tmp_path / "a", LINKED, encoder=HashEncoder(), create=True)
    assert det.add([CHAIN[0]]).added == ("a",)
    assert det.add([CHAIN[0]]).unchanged == ("a",)
    verdict = det.check(CHAIN[1])
    assert verdict.duplicate and verdict.matches[0].id == "a" and verdict.shards
    with pytest.raises(InputError, match=r"records\[0\]: record has no 'id'"):
        det.add([{"title": "no id"}])
