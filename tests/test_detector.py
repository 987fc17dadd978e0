"""Plumbing of the facade with a fake encoder (the mission's claims are in test_seeds.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dedup.config import Config
from dedup.detect.detector import Detector
from dedup.errors import StoreCorruptError, StoreMismatchError, StoreNotFoundError
from dedup.types import Article, PartialDate

from .conftest import HashEncoder

STORY_A = (
    "Central bank lifts rates\nThe central bank raised interest rates by half a point on Tuesday.\n"
    "Its governor said in Frankfurt that inflation was still far too high.\n"
    "Markets had expected a smaller step and the euro rose against the dollar."
)
STORY_B = (
    "Floods in Porto\nHeavy rain flooded the old town of Porto overnight.\n"
    "Firefighters evacuated two hundred residents from their homes near the river.\n"
    "The mayor asked people to stay indoors until the water level falls."
)


def _article(article_id: str, body: str, date: str | None = "2025-03-04") -> Article:
    title, text = body.split("\n", 1)
    return Article(id=article_id, title=title, text=text, date=PartialDate.parse(date) if date else None, lang="en")


def test_check_add_and_reopen(tmp_path: Path, encoder: HashEncoder) -> None:
    det = Detector.open(tmp_path / "s", Config(), encoder=encoder, create=True)
    assert det.add([_article("a", STORY_A), _article("b", STORY_B)]).added == ("a", "b")
    verdict = det.check(_article("a2", STORY_A + " Markets rose."), top=1)
    assert verdict.is_duplicate and verdict.matches[0].id == "a"
    assert [m.id for m in verdict.matches] == ["a", "b"] and not verdict.matches[1].is_duplicate  # near miss listed
    reopened = Detector.open(tmp_path / "s", encoder=HashEncoder())
    assert reopened.check(_article("a2", STORY_A)).duplicates[0].id == "a"
    assert not reopened.check(_article("c", "Chess\nA completely different text on chess openings and endgames.")).is_duplicate
    with pytest.raises(StoreMismatchError):
        Detector.open(tmp_path / "s", encoder=HashEncoder(dim=32))


def test_check_with_add_sees_earlier_items_of_the_same_batch(tmp_path: Path, encoder: HashEncoder) -> None:
    det = Detector.open(tmp_path / "s", encoder=encoder, create=True)
    first, second = _article("x1", STORY_B), _article("x2", STORY_B + " Schools stayed closed.")
    v1, v2 = det.check_many([first, second], add=True)
    assert not v1.is_duplicate and v2.is_duplicate and v2.matches[0].id == "x1"
    assert len(Detector.open(tmp_path / "s", encoder=encoder).store) == 2


def test_an_article_is_not_its_own_duplicate(tmp_path: Path, encoder: HashEncoder) -> None:
    det = Detector.open(tmp_path / "s", encoder=encoder, create=True)
    det.add([_article("a", STORY_A)])
    assert not det.check(_article("a", STORY_A)).is_duplicate


def test_dates_months_apart_are_not_one_story(encoder: HashEncoder) -> None:
    det = Detector.in_memory(encoder=encoder)
    result = det.cluster(
        [_article("a", STORY_A, "2025-03-04"), _article("b", STORY_A, "2025-09-04"), _article("c", STORY_A, "2025-03-05")]
    )
    assert result.labels["a"] == result.labels["c"] != result.labels["b"]


def test_cluster_labels_every_article_and_is_order_independent(encoder: HashEncoder) -> None:
    arts = [
        _article("a1", STORY_A),
        _article("b1", STORY_B),
        _article("a2", STORY_A + " Bonds fell."),
        _article("b2", STORY_B + " More rain is expected."),
        _article("z", "Chess\nA new world champion was crowned in Madrid after twelve games."),
    ]
    det = Detector.in_memory(encoder=encoder)
    forward = det.cluster(arts)
    backward = det.cluster(arts[::-1])
    assert set(forward.labels) == {a.id for a in arts}
    groups = lambda r: sorted(sorted(s.article_ids) for s in r.stories)  # noqa: E731
    assert groups(forward) == groups(backward) == [["a1", "a2"], ["b1", "b2"], ["z"]]
    assert {e[:2] for e in forward.edges} == {("a1", "a2"), ("b1", "b2")}


def test_missing_store_is_reported_before_loading_a_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_model(*args: object, **kwargs: object) -> HashEncoder:
        raise AssertionError("the model was loaded before the store was checked")

    monkeypatch.setattr("dedup.detect.detector.load_encoder", no_model)
    with pytest.raises(StoreNotFoundError, match="no store at"):
        Detector.open(tmp_path / "missing")
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "manifest.json").write_text("{not json", "utf-8")
    with pytest.raises(StoreCorruptError, match="not valid JSON"):
        Detector.open(tmp_path / "damaged")


def test_an_undated_report_does_not_bridge_stories_months_apart(encoder: HashEncoder) -> None:
    feed = [
        _article("march", STORY_A, "2025-03-04"),
        _article("undated", STORY_A, None),
        _article("september", STORY_A, "2025-09-04"),
    ]
    # In one piece (no time windows), the undated report may join either story, never both.
    whole = Detector.in_memory(Config(window_days=0), encoder=encoder).cluster(feed)
    assert whole.labels["march"] != whole.labels["september"]
    assert whole.labels["undated"] in {whole.labels["march"], whole.labels["september"]}
    # In time windows (the default), undated reports are clustered apart from dated ones.
    windowed = Detector.in_memory(encoder=encoder).cluster(feed)
    assert len({windowed.labels[a.id] for a in feed}) == 3


def test_verdict_says_when_duplicates_may_lie_beyond_the_candidate_limit(encoder: HashEncoder) -> None:
    reposts = [_article(f"r{i}", STORY_A) for i in range(6)]
    det = Detector.in_memory(Config(candidates=3), encoder=encoder)
    det.add(reposts)
    verdict = det.check(_article("new", STORY_A))
    assert len(verdict.duplicates) == 3 and verdict.candidates_truncated
    wide = Detector(det.store, encoder, Config(candidates=10)).check(_article("new", STORY_A))
    assert len(wide.duplicates) == 6 and not wide.candidates_truncated
    assert not det.check(
        _article("c", "Chess\nA new world champion was crowned in Madrid after twelve games.")
    ).candidates_truncated


def test_a_model_that_lacks_a_language_says_so(caplog) -> None:
    from dedup.embedding.embed import USE_MODEL

    det = Detector.in_memory(encoder=HashEncoder(name=USE_MODEL))
    with caplog.at_level("WARNING", logger="dedup.embedding.languages"):
        det.embed([Article("v1", "Hà Nội đón khách", lang="vi"), Article("e1", "Hanoi welcomes guests", lang="en")])
    assert "does not cover vi: 1 article(s) (e.g. v1)" in caplog.text


def test_the_default_model_names_articles_in_languages_outside_xlmr(caplog) -> None:
    from dedup.embedding.languages import uncovered

    articles = [
        Article("y1", "Ìròyìn láti Èkó", lang="yo"),  # Yoruba: not among XLM-R's 100 languages
        Article("h1", "חדשות", lang="iw"),  # old code for Hebrew: covered
        Article("n1", "Nyheter", lang="nb"),  # Bokmål: Norwegian, covered
        Article("v1", "Hà Nội", lang="vi"),
        Article("u1", "untagged"),
    ]
    default = "dedup/multilingual-e5-small-q4:int8#query"
    assert [a.id for a in uncovered(default, articles)] == ["y1"]
    assert [a.id for a in uncovered("intfloat/multilingual-e5-large#query", articles)] == ["y1"]
    assert uncovered("some/unknown-model", articles) == []  # unknown coverage: nothing claimed
    det = Detector.in_memory(encoder=HashEncoder(name=default))
    with caplog.at_level("WARNING", logger="dedup.embedding.languages"):
        det.embed(articles)
    assert "does not cover yo: 1 article(s) (e.g. y1)" in caplog.text
    assert "only their shared names, numbers and dates keep their worth" in caplog.text


# ---------------------------------------------------------------- exact repeats and boilerplate (issue 14, item 6)
SHORT = {"title": "Storm hits the coast of Brittany", "text": "Storm hits the coast of Brittany."}


def test_an_exact_repeat_whose_text_is_its_title_is_a_duplicate_with_score_one(tmp_path: Path, encoder: HashEncoder) -> None:
    # Reported NEW at 0.0007 before: its two passages are near-identical, so none aligns by margin.
    det = Detector.open(tmp_path / "s", encoder=encoder, create=True)
    det.add([Article(id="s1", **SHORT)])
    verdict = det.check(Article(id="s2", **SHORT))
    assert verdict.is_duplicate
    match = verdict.matches[0]
    assert match.id == "s1" and match.score == 1.0 and match.evidence.identical
    assert match.to_dict()["identical"] is True


def test_an_exact_repeat_of_a_long_article_is_a_duplicate_with_score_one(encoder: HashEncoder) -> None:
    det = Detector.in_memory(encoder=encoder)
    a, b = _article("a", STORY_A), _article("b", STORY_A)
    match = det.compare(*det.embed([a, b]))
    assert match.is_duplicate and match.score == 1.0 and match.evidence.identical
    # Not identical: one more sentence (the ordinary verifier decides, without the identical flag).
    c = _article("c", STORY_A + " Bonds fell.")
    assert not det.compare(*det.embed([a, c])).evidence.identical


def test_an_identical_text_months_apart_is_still_vetoed_by_the_date_gap(encoder: HashEncoder) -> None:
    det = Detector.in_memory(encoder=encoder)
    a, b = _article("a", STORY_A, "2025-01-01"), _article("b", STORY_A, "2025-06-01")
    match = det.compare(*det.embed([a, b]))
    assert match.evidence.identical and match.score == 0.0 and not match.is_duplicate


def test_an_article_that_is_only_boilerplate_is_skipped_and_never_matched(
    tmp_path: Path, encoder: HashEncoder, caplog: pytest.LogCaptureFixture
) -> None:
    # Matched at 0.970 before: cleaning fell back to the raw text "Photo: AFP".
    det = Detector.open(tmp_path / "s", encoder=encoder, create=True)
    credit = Article(id="p1", title="", text="Photo: AFP", lang="en")
    with caplog.at_level("WARNING"):
        report = det.add([credit, _article("a", STORY_A)])
    assert report.skipped == ("p1",) and report.added == ("a",)
    assert "p1" not in det.store and "empty after cleaning" in caplog.text
    again = Article(id="p2", title="", text="Photo: AFP", lang="en")
    verdict = det.check(again, top=5)
    assert not verdict.is_duplicate and verdict.matches == ()
    result = det.cluster([credit, again, _article("b", STORY_B)])
    assert result.labels["p1"] != result.labels["p2"]


def test_an_empty_article_stored_earlier_is_never_a_candidate(encoder: HashEncoder) -> None:
    det = Detector.in_memory(encoder=encoder)
    empty, other = det.embed([Article(id="e", text="Photo: AFP"), Article(id="f", text="Photo: AFP")])
    assert empty.passages == () and not empty.vector.any()  # zero vector: centring does not make it a language mean
    assert det.compare(empty, other).score == 0.0


def test_issue14_a_store_holding_a_date_past_the_input_range_still_opens_checks_and_clusters(
    tmp_path: Path, encoder: HashEncoder
) -> None:
    # Input validation refuses such dates now; a store written before (or by a library caller) may hold them.
    far = [
        Article(id="far", title="Central bank lifts rates", text=STORY_A, date=PartialDate(9999, 12), lang="en"),
        Article(id="far-year", title="Central bank lifts rates", text=STORY_A, date=PartialDate(9999), lang="en"),
        Article(id="first", title="Floods in Porto", text=STORY_B, date=PartialDate(1, 1, 1), lang="en"),
    ]
    det = Detector.open(tmp_path / "s", encoder=encoder, create=True)
    det.add([*far, _article("near", STORY_A)])
    reopened = Detector.open(tmp_path / "s", encoder=encoder)
    assert reopened.store.get("far").date == PartialDate(9999, 12)
    verdict = reopened.check(_article("q", STORY_A), top=5)
    assert [m.id for m in verdict.duplicates] == ["near"]  # the far copies are ruled out by the date gap
    assert {m.id for m in verdict.matches} >= {"far", "far-year"}
    assert reopened.check(
        Article(id="q2", title="Central bank lifts rates", text=STORY_A, date=PartialDate(9999, 12, 31))
    ).is_duplicate
    result = reopened.cluster([*far, _article("near", STORY_A), _article("q", STORY_A)])
    assert result.labels["far"] == result.labels["far-year"] != result.labels["near"] == result.labels["q"]
    stories = reopened.cluster_embedded(reopened.embed([_article("q3", STORY_B, "2025-03-05")]), with_store=True)
    assert len(stories.labels) == 5
