"""JSON views for people: a verdict with both articles' passages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dedup.browse.names import is_agency_tag, shown_names
from dedup.browse.views import decision, pair_view, rules_view, verdict_view
from dedup.config import Config
from dedup.types import Article, EmbeddedArticle, Evidence, Match, PassagePair, Verdict


def item(id_: str, passages: tuple[str, ...]) -> EmbeddedArticle:
    vectors = np.eye(len(passages), 4, dtype=np.float32)
    return EmbeddedArticle(
        Article(id_, title=passages[0], text="\n".join(passages[1:]), lang="fr"), passages, vectors, vectors[0]
    )


def match(id_: str) -> Match:
    evidence = Evidence(0.9, (PassagePair(1, 0, "Body.", "Corps.", 0.93, 0.2),), 0.5, 0, ("12",), ("hanoi",), ("en", "fr"), 0.8)
    return Match(id_, 0.97, True, evidence, title="Titre")


def test_verdict_view_adds_both_articles_passages_and_survives_a_vanished_match() -> None:
    stored = {"s1": item("s1", ("Titre", "Corps."))}
    query = Article("q", title="Title", text="Body.", lang="en")
    verdict = Verdict("q", True, (match("s1"), match("gone")))
    view = verdict_view(verdict, query, ["Title", "Body."], stored.get)
    assert view["article"]["passages"] == ["Title", "Body."] and view["article"]["lang"] == "en"
    first, second = view["matches"]
    assert first["article"]["passages"] == ["Titre", "Corps."] and first["aligned"][0] == {
        "a": 1,
        "b": 0,
        "similarity": 0.93,
        "a_text": "Body.",
        "b_text": "Corps.",
    }
    assert second["article"] is None  # replaced by another writer since the check: no columns, no error
    added = {"article", "decision", "names_shown", "agency_tags"}
    assert {k: v for k, v in first.items() if k not in added} == verdict.to_dict()["matches"][0]
    assert first["decision"]["reason"] == "duplicate: score 0.970"  # no rules given: the score alone


def test_pair_view() -> None:
    a, b = item("a", ("A", "x")), item("b", ("B", "y"))
    view = pair_view(a, b, match("b"))
    assert view["query"]["id"] == "a" and view["match"]["article"]["passages"] == ["B", "y"] and view["match"]["score"] == 0.97


RULES = rules_view(Config())  # threshold 0.5, 7-day window


def as_match(score: float, duplicate: bool, gap: int | None, identical: bool = False) -> dict[str, object]:
    return {"score": score, "duplicate": duplicate, "date_gap_days": gap, "identical": identical}


@pytest.mark.parametrize(
    ("match", "rule", "reason"),
    [
        (as_match(0.0, False, 712), "date", "not a duplicate: the dates are 712 days apart, outside the 7-day window"),
        (as_match(0.0, False, 8), "date", "not a duplicate: the dates are 8 days apart, outside the 7-day window"),
        (as_match(0.312, False, 7), "score", "not a duplicate: score 0.312 is below the threshold 0.5"),
        (as_match(0.312, False, None), "score", "not a duplicate: score 0.312 is below the threshold 0.5"),
        (as_match(0.91, True, 1), "score", "duplicate: score 0.910 reaches the threshold 0.5"),
        (as_match(1.0, True, 0, identical=True), "identical", "duplicate: the same title and text"),
    ],
)
def test_the_decision_says_which_rule_decided(match: dict[str, object], rule: str, reason: str) -> None:
    found = decision(match, RULES)
    assert (found["rule"], found["reason"]) == (rule, reason)
    assert found["threshold"] == 0.5 and found["max_date_gap_days"] == 7


def test_the_rules_follow_the_config() -> None:
    rules = rules_view(Config(threshold=0.8, max_date_gap_days=2))
    assert decision(as_match(0.0, False, 3), rules)["reason"].endswith("3 days apart, outside the 2-day window")
    assert decision(as_match(0.7, False, 1), rules)["reason"] == "not a duplicate: score 0.700 is below the threshold 0.8"


def test_names_as_written_and_agency_tags_apart() -> None:
    a = ["Tô Lâm meets Lao leader", "HANOI (VNA) Party chief Tô Lâm received Vilay Lakhamphong in Hà Nội."]
    b = ["To Lam recoit Vilay Lakhamphong", "VIENTIANE (AFP, VNA) Le dirigeant To Lam a reçu Lakhamphong."]
    shown = shown_names(["lam", "lakhamphong", "vilay", "vna", "unseen"], a, b)
    assert shown["names"] == ["Lâm / Lam", "Lakhamphong", "Vilay", "unseen"]
    assert shown["agencies"] == ["VNA"]
    assert [is_agency_tag(n) for n in ("AFP", "Reuters", "reuters", "Xinhua", "NATO", "Lâm")] == [True] * 4 + [False] * 2


def test_pair_view_explains_with_the_rules() -> None:
    a, b = item("a", ("A Hanoi", "x")), item("b", ("B Hanoi", "y"))
    far = Match("b", 0.0, False, Evidence(0.9, (), 0.0, 30, (), ("hanoi",), ("en", "fr"), 0.8), title="B")
    view = pair_view(a, b, far, RULES)
    assert view["match"]["decision"]["rule"] == "date" and "outside the 7-day window" in view["match"]["decision"]["reason"]
    assert view["rules"]["threshold"] == 0.5 and view["match"]["names_shown"] == ["Hanoi"]


def test_the_service_explains_each_match_and_serves_the_rules(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from dedup import Detector
    from dedup.serve.http import create_app
    from dedup.serve.shared import SharedDetector

    from .conftest import HashEncoder

    detector = Detector.open(tmp_path / "s.store", Config(threshold=0.6), encoder=HashEncoder(), create=True)
    client = TestClient(create_app(SharedDetector(detector)), raise_server_exceptions=False)
    text = "Party chief Tô Lâm received Vilay Lakhamphong in Hanoi (VNA) on Sunday to sign three agreements."
    stored = [
        {"id": "near", "title": "Tô Lâm meets Lakhamphong", "text": text, "lang": "en", "date": "2025-01-12"},
        {"id": "old", "title": "Tô Lâm meets Lakhamphong", "text": text, "lang": "en", "date": "2023-01-12"},
    ]
    assert client.post("/add", json={"articles": stored}).status_code == 200
    query = {"id": "q", "title": "Tô Lâm meets Lakhamphong", "text": text, "lang": "en", "date": "2025-01-13"}
    verdict = client.post("/check", json={"articles": [query], "top": 2, "explain": True}).json()["verdicts"][0]
    assert verdict["rules"] == {"threshold": 0.6, "max_date_gap_days": 7, "cluster_threshold": 0.7}
    by_id = {m["id"]: m for m in verdict["matches"]}
    assert by_id["near"]["decision"]["reason"] == "duplicate: the same title and text"
    assert by_id["old"]["decision"]["reason"] == "not a duplicate: the dates are 732 days apart, outside the 7-day window"
    assert "Lâm" in by_id["near"]["names_shown"] and "VNA" in by_id["near"]["agency_tags"]
    assert "VNA" not in by_id["near"]["names_shown"]
    body = client.get("/stories").json()
    assert body["rules"]["threshold"] == 0.6
