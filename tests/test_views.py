"""JSON views for people: a verdict with both articles' passages."""

from __future__ import annotations

import numpy as np

from dedup.browse.views import pair_view, verdict_view
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
    assert {k: v for k, v in first.items() if k != "article"} == verdict.to_dict()["matches"][0]


def test_pair_view() -> None:
    a, b = item("a", ("A", "x")), item("b", ("B", "y"))
    view = pair_view(a, b, match("b"))
    assert view["query"]["id"] == "a" and view["match"]["article"]["passages"] == ["B", "y"] and view["match"]["score"] == 0.97
