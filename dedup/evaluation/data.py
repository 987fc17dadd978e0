"""The data of an evaluation: labelled articles, their tune/held split, their vectors.

Input is JSONL with a ``story`` field (same story = duplicates). Data are split into a
*tune* part (thresholds are chosen there) and a *held* part (reported with the thresholds
chosen on the tune part): OG2021-like data (titles only, dated) split by date (the last
``held_days`` days are held), other data split by story (stories whose sha256 is odd are
held, as in ``benchmarks/fit_verifier.py``).

Vectors are kept in an :class:`~dedup.embedding.cache.EmbeddingCache` (passage text ->
vector, per model) under ``eval/`` of the cache folder, so re-runs never embed again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dedup._fs import cache_root
from dedup.embedding.cache import EmbeddingCache
from dedup.embedding.centring import LanguageCentring
from dedup.embedding.embed import Encoder, embed_articles
from dedup.errors import InputError
from dedup.io import read_articles
from dedup.types import Article, EmbeddedArticle

__all__ = ["Split", "default_cache_dir", "embed_cached", "held_out_story", "read_labelled", "split_parts"]

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """Where evaluation embeddings are kept: ``eval/`` under :func:`dedup._fs.cache_root`."""
    return cache_root() / "eval"


def embed_cached(
    articles: Sequence[Article],
    encoder: Encoder,
    *,
    cache: Path | None,
    label: str = "",
    max_passage_chars: int = 500,
    batch_size: int | None = None,
    chunk: int = 256,
    centring: LanguageCentring | Literal["auto"] | None = "auto",
) -> list[EmbeddedArticle]:
    """Embed articles, reusing and extending the embedding cache under ``cache``.

    Passages are looked up by their cleaned text (and the model), so a change of cleaning
    or passage length embeds them again. Articles are embedded ``chunk`` at a time and each
    chunk's vectors are committed before the next, so an interrupted run keeps what it computed.

    Args:
        articles: Articles to embed.
        encoder: The model.
        cache: Cache folder (the file is ``embeddings/<model>.sqlite`` in it); ``None`` disables caching.
        label: Names the data in log messages (e.g. the data file's stem).
        max_passage_chars: As :attr:`dedup.config.Config.max_passage_chars`.
        batch_size: Encoder batch size.
        chunk: Articles embedded between two commits.
        centring: As :func:`dedup.embedding.embed.embed_articles` (the cache holds passage vectors only).

    Returns:
        One :class:`EmbeddedArticle` per article, in order.

    """
    store = EmbeddingCache.for_model(encoder.name, encoder.dim, cache) if cache is not None else None
    out: list[EmbeddedArticle] = []
    try:
        for start in range(0, len(articles), chunk):
            part = articles[start : start + chunk]
            out += embed_articles(
                part, encoder, max_passage_chars=max_passage_chars, batch_size=batch_size, cache=store, centring=centring
            )
    finally:
        if store is not None:
            if store.misses:
                logger.info(
                    "%s: embedded %d passage(s) with %s, %d from the cache", label, store.misses, encoder.name, store.hits
                )
            store.close()
    return out


def read_labelled(path: Path) -> tuple[list[Article], list[str]]:
    """Articles of a labelled JSONL file and their ``story`` labels.

    Raises:
        InputError: When an article has no ``story`` field.

    """
    articles = list(read_articles([path], detect_lang=True).articles)
    stories: list[str] = []
    for article in articles:
        story = article.extra.get("story")
        if story is None or story == "":
            raise InputError(f"article {article.id!r} has no 'story' label; evaluation needs one per article", source=str(path))
        stories.append(str(story))
    return articles, stories


def held_out_story(story: str) -> bool:
    """Stories whose sha256 is odd are held out (as in ``benchmarks/fit_verifier.py``)."""
    return int(hashlib.sha256(story.encode()).hexdigest(), 16) % 2 == 1


@dataclass(frozen=True)
class Split:
    """Which articles thresholds are tuned on, and which are held aside for reporting.

    Attributes:
        rule: How the split was made, in words.
        tune: Positions of the tune part.
        held: Positions of the held part (may be empty).

    """

    rule: str
    tune: tuple[int, ...]
    held: tuple[int, ...]


def split_parts(articles: Sequence[Article], stories: Sequence[str], *, held_days: int = 4, min_stories: int = 10) -> Split:
    """Split labelled data into a tune part and a held part.

    * Titles-only data where every article is dated (a feed, like OG2021): the last
      ``held_days`` days are held (later news is what a tuned detector meets next);
    * other data with at least ``min_stories`` stories: stories whose sha256 is odd are held;
      (a feed of at most ``held_days`` days is split as undated data);
    * smaller data (the seeds): no held part; everything is the tune part.
    """
    n = len(articles)
    titles_only = all(not a.text.strip() for a in articles)
    dates = [a.date for a in articles]
    if n and titles_only and all(d is not None for d in dates):
        last = max(d.bounds()[1] for d in dates if d is not None)
        cut = last - dt.timedelta(days=held_days - 1)
        held = tuple(i for i, d in enumerate(dates) if d is not None and d.bounds()[0] >= cut)
        held_set = set(held)
        tune = tuple(i for i in range(n) if i not in held_set)
        if tune:
            return Split(f"by date: held = articles dated {cut.isoformat()} .. {last.isoformat()}", tune, held)
    if len(set(stories)) >= min_stories:
        held = tuple(i for i, s in enumerate(stories) if held_out_story(s))
        held_set = set(held)
        return Split("by story: held = stories whose sha256 is odd", tuple(i for i in range(n) if i not in held_set), held)
    return Split(
        "none: too few stories to hold any aside; thresholds are tuned and reported on the same data", tuple(range(n)), ()
    )
