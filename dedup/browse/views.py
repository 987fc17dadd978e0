"""JSON views for people: verdicts with both articles' passages, stories with members and links.

The service's browser endpoints and the static HTML report (:mod:`dedup.browse.report`) both show
evidence side by side, so both build their JSON here, on top of the types' own
``to_dict`` (:meth:`Verdict.to_dict`, :meth:`Match.to_dict`, :meth:`Story.to_dict`).

An aligned passage pair ``{"a": i, "b": j}`` indexes ``passages`` of the query article
(``a``) and of the matched article (``b``); the pages highlight those passages in two
columns. Passages are the cleaned passages that were embedded (title first).

Each match also says in words why it was or was not a duplicate (:func:`decision`: "outside
the 7-day window", "score 0.312 below threshold 0.5"), with the rules it was judged by, and its
shared names as the articles wrote them, agency tags apart (:mod:`dedup.browse.names`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dedup.browse.names import shown_names
from dedup.browse.stories import StoryBook
from dedup.config import Config
from dedup.types import Article, EmbeddedArticle, Match, Story, Verdict

__all__ = [
    "article_view",
    "decision",
    "embedded_view",
    "explain_match",
    "member_view",
    "pair_view",
    "rules_view",
    "story_view",
    "verdict_view",
]


def rules_view(config: Config) -> dict[str, Any]:
    """The rules a pair is judged by: ``{"threshold", "max_date_gap_days", "cluster_threshold"}``."""
    return {
        "threshold": config.threshold,
        "max_date_gap_days": config.max_date_gap_days,
        "cluster_threshold": config.cluster_threshold,
    }


def _number(x: float) -> str:
    return f"{x:g}"


def decision(match: Mapping[str, Any], rules: Mapping[str, Any] | None) -> dict[str, Any]:
    """Why a match (:meth:`Match.to_dict`) is or is not a duplicate, in words.

    ``rule`` is ``"date"`` when the dates are further apart than the window (the score is then
    0 whatever the text), ``"identical"`` for an exact repeat, else ``"score"``. ``reason`` is
    the sentence a page shows, e.g. "not a duplicate: the dates are 712 days apart, outside
    the 7-day window" or "not a duplicate: score 0.312 is below the threshold 0.5".
    """
    rules = rules or {}
    threshold, window = rules.get("threshold"), rules.get("max_date_gap_days")
    score, gap = float(match.get("score", 0.0)), match.get("date_gap_days")
    out: dict[str, Any] = {"threshold": threshold, "max_date_gap_days": window}
    if match.get("duplicate"):
        if match.get("identical"):
            out.update(rule="identical", reason="duplicate: the same title and text")
        else:
            reaches = f" reaches the threshold {_number(threshold)}" if threshold is not None else ""
            out.update(rule="score", reason=f"duplicate: score {score:.3f}{reaches}")
    elif window is not None and gap is not None and gap > window:
        apart = f"{gap} day{'' if gap == 1 else 's'} apart"
        out.update(rule="date", reason=f"not a duplicate: the dates are {apart}, outside the {window}-day window")
    else:
        below = f" is below the threshold {_number(threshold)}" if threshold is not None else ""
        out.update(rule="score", reason=f"not a duplicate: score {score:.3f}{below}")
    return out


def explain_match(
    match: dict[str, Any], a_passages: Sequence[str], b_passages: Sequence[str], rules: Mapping[str, Any] | None
) -> dict[str, Any]:
    """``match`` (:meth:`Match.to_dict`) with ``decision``, ``names_shown`` and ``agency_tags`` added.

    ``names_shown`` are the shared names as the two articles wrote them (``shared_names`` stays
    folded, as the verifier compared them); ``agency_tags`` are the shared news-agency tags.
    """
    names = shown_names(match.get("shared_names", ()), a_passages, b_passages)
    match["decision"] = decision(match, rules)
    match["names_shown"] = names["names"]
    match["agency_tags"] = names["agencies"]
    return match


def article_view(article: Article, passages: Sequence[str] | None = None) -> dict[str, Any]:
    """The article's fields, and its passages when given."""
    out = article.to_dict()
    if passages is not None:
        out["passages"] = list(passages)
    return out


def embedded_view(item: EmbeddedArticle) -> dict[str, Any]:
    """An embedded article with the passages it was embedded as."""
    return article_view(item.article, item.passages)


def member_view(article: Article) -> dict[str, Any]:
    """What a story list shows of an article: no body."""
    return {
        "id": article.id,
        "title": article.title,
        "date": str(article.date) if article.date else None,
        "lang": article.lang,
        "source": article.source,
        "url": article.url,
    }


def story_view(book: StoryBook, story: Story) -> dict[str, Any]:
    """A story with its members (no bodies) and the verified pairs that link them."""
    return {
        **story.to_dict(),
        "size": story.size,
        "members": [member_view(a) for a in book.members(story)],
        "links": [{"a": a, "b": b, "score": round(score, 4)} for a, b, score in book.links(story)],
    }


def verdict_view(
    verdict: Verdict,
    query: Article,
    query_passages: Sequence[str],
    stored: Callable[[str], EmbeddedArticle | None],
    rules: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """:meth:`Verdict.to_dict`, plus the query's passages, the rules, each match's article and its explanation.

    Added: ``article`` (the query, with passages), ``rules``, and on each match ``article`` and
    what :func:`explain_match` adds.

    Args:
        verdict: The verdict on ``query``.
        query: The checked article.
        query_passages: Its passages, as embedded.
        stored: Looks up a matched stored article by id; None when it is gone (replaced
            or removed by another writer since the check): its ``article`` is then null.
        rules: The rules the verdict was decided by (:func:`rules_view`), shown on the page.

    """
    out = verdict.to_dict()
    out["article"] = article_view(query, query_passages)
    out["rules"] = dict(rules or {})
    for match in out["matches"]:
        item = stored(match["id"])
        match["article"] = None if item is None else embedded_view(item)
        explain_match(match, query_passages, item.passages if item is not None else (), rules)
    return out


def pair_view(a: EmbeddedArticle, b: EmbeddedArticle, match: Match, rules: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The evidence on one pair: ``{"query": a, "rules": ..., "match": {...Match.to_dict(), "article": b}}``."""
    explained = explain_match(match.to_dict(), a.passages, b.passages, rules)
    return {"query": embedded_view(a), "rules": dict(rules or {}), "match": {**explained, "article": embedded_view(b)}}
