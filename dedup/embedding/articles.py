"""Turning articles into vectors: passages, their vectors, and the article vector pooled from them.

An article is cleaned (:mod:`dedup.text`), split into passages (the title is the first
passage), and every passage is embedded. The article vector is the length-weighted mean
of its passage vectors, normalised: long articles are covered in full, never truncated.
Article vectors are then language-centred (:mod:`dedup.embedding.centring`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np

from dedup.embedding.cache import EmbeddingCache
from dedup.embedding.centring import LanguageCentring, centring_for
from dedup.embedding.encoders import Encoder, Vectors
from dedup.embedding.languages import warn_uncovered
from dedup.errors import ModelError
from dedup.progress import track
from dedup.text import clean_text, split_passages
from dedup.types import Article, EmbeddedArticle

__all__ = ["article_passages", "assemble", "embed_articles", "embed_feed", "pool", "resolve_centring"]

logger = logging.getLogger(__name__)

#: Passages per encoder call, at most and at least: progress is reported between calls, about
#: every 1% of the work. Multiples of the usual batch sizes; the int8 default model embeds each
#: passage alone, so its vectors do not depend on them.
ENCODE_CHUNK = 256
MIN_ENCODE_CHUNK = 32


def article_passages(article: Article, max_chars: int = 500) -> list[str]:
    """Title first (when present), then the cleaned body split into passages.

    Empty when cleaning leaves nothing (the article is only boilerplate, such as a photo
    credit): such an article is skipped by :meth:`dedup.search.store.Store.add` and never matched.
    """
    passages = split_passages(clean_text(article.title), max_chars) if article.title.strip() else []
    passages.extend(split_passages(clean_text(article.text), max_chars))
    # An article that is only boilerplate ("Photo: AFP") keeps no passage: it is never matched.
    # A passage repeated verbatim (a caption repeating the headline) would only blur alignment margins.
    return list(dict.fromkeys(passages))


def pool(passages: Sequence[str], vectors: Vectors) -> Vectors:
    """The article vector: length-weighted mean of passage vectors, normalised (zero for no passage)."""
    if len(passages) == 0:
        return np.zeros(vectors.shape[1], dtype=np.float32)
    weights = np.sqrt(np.array([max(len(p), 1) for p in passages], dtype=np.float32))
    mean = (vectors * weights[:, None]).sum(axis=0) / weights.sum()
    norm = float(np.linalg.norm(mean))
    pooled: Vectors = (mean / norm if norm > 0 else mean).astype(np.float32)
    return pooled


def embed_articles(
    articles: Sequence[Article],
    encoder: Encoder,
    *,
    max_passage_chars: int = 500,
    batch_size: int | None = None,
    show_progress: bool = False,
    cache: EmbeddingCache | None = None,
    centring: LanguageCentring | Literal["auto"] | None = "auto",
) -> list[EmbeddedArticle]:
    """Clean, split and embed articles; every passage of every article is embedded.

    Each distinct passage text is encoded once; with a ``cache``, passages embedded before
    (by any run) are not encoded again. Passages are encoded sorted by length, so batches
    pad little. Article vectors are language-centred (:mod:`dedup.embedding.centring`) with
    ``centring``; ``"auto"`` takes the one shipped for the encoder's model, if any.
    Progress is reported as :mod:`dedup.progress` is configured (the ``dedup`` command: on,
    unless ``-q``); ``show_progress`` reports it in any case.
    """
    per_article = [article_passages(a, max_passage_chars) for a in articles]
    flat = [p for passages in per_article for p in passages]
    vectors = _encode_unique(flat, encoder, batch_size=batch_size, show_progress=show_progress, cache=cache)
    blocks: list[Vectors] = []
    start = 0
    for passages in per_article:
        blocks.append(vectors[start : start + len(passages)])
        start += len(passages)
    return assemble(articles, per_article, blocks, resolve_centring(centring, encoder))


def embed_feed(
    articles: Sequence[Article],
    encoder: Encoder,
    *,
    max_passage_chars: int = 500,
    batch_size: int | None = None,
    show_progress: bool = False,
    cache: EmbeddingCache | None = None,
    centring: LanguageCentring | Literal["auto"] | None = "auto",
) -> list[EmbeddedArticle]:
    """:func:`embed_articles`, saying what will not work: what a detector embeds with.

    Logs a warning naming the articles in languages the model does not cover (their vectors,
    hence their verdicts, are unreliable), and each article that cleaning leaves empty (it
    is skipped and never matched).
    """
    warn_uncovered(encoder.name, articles)
    items = embed_articles(
        articles,
        encoder,
        max_passage_chars=max_passage_chars,
        batch_size=batch_size,
        show_progress=show_progress,
        cache=cache,
        centring=centring,
    )
    for item in items:
        if not item.passages:
            logger.warning("article %r is empty after cleaning (only boilerplate): it is skipped and never matched", item.id)
    return items


def resolve_centring(centring: LanguageCentring | Literal["auto"] | None, encoder: Encoder) -> LanguageCentring | None:
    """``"auto"``: the centring shipped for the encoder's model (None if there is none)."""
    return centring_for(encoder.name, encoder.dim) if centring == "auto" else centring


def assemble(
    articles: Sequence[Article],
    per_article: Sequence[Sequence[str]],
    blocks: Sequence[Vectors],
    centring: LanguageCentring | None,
) -> list[EmbeddedArticle]:
    """Articles with their passage vectors, and article vectors pooled (and centred) from them."""
    pooled = [pool(passages, block) for passages, block in zip(per_article, blocks, strict=True)]
    if centring is not None and pooled:
        centred = centring.apply(np.vstack(pooled), [a.lang for a in articles])
        # An article with no passage keeps its zero vector: centring would turn it into a language mean.
        pooled = [row if len(passages) else pooled[i] for i, (row, passages) in enumerate(zip(centred, per_article, strict=True))]
    return [
        EmbeddedArticle(article, tuple(passages), block, vector)
        for article, passages, block, vector in zip(articles, per_article, blocks, pooled, strict=True)
    ]


def _encode_unique(
    texts: Sequence[str], encoder: Encoder, *, batch_size: int | None, show_progress: bool, cache: EmbeddingCache | None
) -> Vectors:
    unique = list(dict.fromkeys(texts))
    known = cache.get(unique) if cache is not None else [None] * len(unique)
    todo = sorted((i for i, v in enumerate(known) if v is None), key=lambda i: len(unique[i]))
    table = np.empty((len(unique), encoder.dim), dtype=np.float32)
    for i, v in enumerate(known):
        if v is not None:
            table[i] = v
    if todo:
        batch = [unique[i] for i in todo]
        encoded = _encode_in_chunks(batch, encoder, batch_size=batch_size, show_progress=show_progress)
        table[np.asarray(todo, dtype=np.int64)] = encoded
        if cache is not None:
            cache.put(batch, encoded)
    row = {text: i for i, text in enumerate(unique)}
    return table[np.asarray([row[t] for t in texts], dtype=np.int64)] if texts else np.zeros((0, encoder.dim), np.float32)


def _encode_in_chunks(texts: Sequence[str], encoder: Encoder, *, batch_size: int | None, show_progress: bool) -> Vectors:
    """Encode ``texts`` (sorted by length) in chunks (:data:`ENCODE_CHUNK`), reporting progress between them.

    The time left is weighed by characters: the passages come shortest first, so a rate in
    passages per second would promise far too early an end.
    """
    out = np.empty((len(texts), encoder.dim), dtype=np.float32)
    weights = [len(t) + 1 for t in texts]
    step = min(ENCODE_CHUNK, max(MIN_ENCODE_CHUNK, len(texts) // 100 // MIN_ENCODE_CHUNK * MIN_ENCODE_CHUNK))
    with track("embedding", len(texts), "passage", weight=sum(weights), show=show_progress or None) as bar:
        for start in range(0, len(texts), step):
            chunk = texts[start : start + step]
            encoded = (
                encoder.encode(chunk)  # the backend's own batch size
                if batch_size is None
                else encoder.encode(chunk, batch_size=batch_size)
            )
            if encoded.shape != (len(chunk), encoder.dim):
                raise ModelError(f"encoder {encoder.name!r} returned shape {encoded.shape}, expected {(len(chunk), encoder.dim)}")
            out[start : start + len(chunk)] = encoded
            bar.update(len(chunk), weight=sum(weights[start : start + len(chunk)]))
    return out
