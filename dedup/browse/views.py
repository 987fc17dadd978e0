"""JSON views for people: verdicts with both articles' passages, stories with members and links.

The service's browser endpoints and the static HTML report (:mod:`dedup.browse.report`) both show
evidence side by side, so both build their JSON here, on top of the types' own
``to_dict`` (:meth:`Verdict.to_dict`, :meth:`Match.to_dict`, :meth:`Story.to_dict`).

An aligned passage pair ``{"a": i, "b": j}`` indexes ``passages`` of the query article
(``a``) and of the matched article (``b``); the pages highlight those passages in two
columns. Passages are the cleaned passages that were embedded (title first).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dedup.browse.stories import StoryBook
from dedup.types import Article, EmbeddedArticle, Match, Story, Verdict

__all__ = ["article_view", "embedded_view", "member_view", "pair_view", "story_view", "verdict_view"]


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
    verdict: Verdict, query: Article, query_passages: Sequence[str], stored: Callable[[str], EmbeddedArticle | None]
) -> dict[str, Any]:
    """:meth:`Verdict.to_dict`, plus ``article`` (the query, with passages) and each match's ``article``.

    Args:
        verdict: The verdict on ``query``.
        query: The checked article.
        query_passages: Its passages, as embedded.
        stored: Looks up a matched stored article by id; None when it is gone (replaced
            or removed by another writer since the check): its ``article`` is then null.

    """
    out = verdict.to_dict()
    out["article"] = article_view(query, query_passages)
    for match in out["matches"]:
        item = stored(match["id"])
        match["article"] = None if item is None else embedded_view(item)
    return out


def pair_view(a: EmbeddedArticle, b: EmbeddedArticle, match: Match) -> dict[str, Any]:
    """The evidence on one pair: ``{"query": a, "match": {...Match.to_dict(), "article": b}}``."""
    return {"query": embedded_view(a), "match": {**match.to_dict(), "article": embedded_view(b)}}
