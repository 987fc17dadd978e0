"""The evaluation harness: run the detector and two baselines on labelled data, side by side.

Input is JSONL with a ``story`` field (same story = duplicates). Every run scores three
systems on the same articles, with the same candidate pairs and the same clustering:

* ``tfidf``: TF-IDF over character 3-5 grams, cosine, a threshold tuned on the tune part;
* ``cosine``: the article embedding and a cosine threshold (what semhash and most tools do);
* ``dedup``: the full pipeline (retrieval, verifier, average linkage, date window).

Data are split into a *tune* part (thresholds are chosen there) and a *held* part
(reported with the thresholds chosen on the tune part): OG2021-like data (titles only,
dated) split by date (the last ``held_days`` days are held), other data split by story
(stories whose sha256 is odd are held, as in ``benchmarks/fit_verifier.py``).

Embeddings are cached on disk (one ``.npz`` per model and data file, keyed by the
article's content hash), so re-runs never embed again. The metrics live in
:mod:`dedup.evaluation`; this module only runs systems and collects their scores.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from .embed import EmbeddedArticle, Encoder, article_passages, embed_articles, pool
from .text import CLEANING_VERSION
from .types import Article

__all__ = ["default_cache_dir", "embed_cached"]

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$DEDUP_CACHE_DIR/eval`` or ``~/.cache/dedup/eval``: where evaluation embeddings are kept."""
    base = os.environ.get("DEDUP_CACHE_DIR")
    return (Path(base) if base else Path.home() / ".cache" / "dedup") / "eval"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def _key(article: Article, passages: Sequence[str]) -> str:
    payload = "\x1f".join((article.content_hash, *passages))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def embed_cached(
    articles: Sequence[Article],
    encoder: Encoder,
    *,
    cache: Path | None,
    label: str,
    max_passage_chars: int = 500,
    batch_size: int = 32,
    chunk: int = 256,
) -> list[EmbeddedArticle]:
    """Embed articles, reusing and extending the on-disk cache ``cache/<model>/<label>.npz``.

    An article is looked up by the hash of its content and its cleaned passages, so a
    change of cleaning or passage length embeds it again. New vectors are saved every
    ``chunk`` articles, so an interrupted run keeps what it computed.

    Args:
        articles: Articles to embed.
        encoder: The model.
        cache: Cache root; ``None`` disables caching.
        label: Names the cache file (e.g. the data file's stem).
        max_passage_chars: As :attr:`dedup.config.Config.max_passage_chars`.
        batch_size: Encoder batch size.
        chunk: Articles embedded between two saves.

    Returns:
        One :class:`EmbeddedArticle` per article, in order.

    """
    per_article = [article_passages(a, max_passage_chars) for a in articles]
    keys = [_key(a, p) for a, p in zip(articles, per_article, strict=True)]
    path = None
    stored: dict[str, NDArray[np.float32]] = {}
    if cache is not None:
        path = cache / _slug(encoder.name) / f"{_slug(label)}-c{CLEANING_VERSION}-p{max_passage_chars}.npz"
        stored = _load(path, encoder.dim)
    missing = [i for i, k in enumerate(keys) if k not in stored]
    if missing:
        logger.info("embedding %d of %d articles with %s (%s)", len(missing), len(articles), encoder.name, label)
    for start in range(0, len(missing), chunk):
        part = missing[start : start + chunk]
        done = embed_articles([articles[i] for i in part], encoder, max_passage_chars=max_passage_chars, batch_size=batch_size)
        for i, item in zip(part, done, strict=True):
            stored[keys[i]] = item.passage_vectors
        if path is not None:
            _save(path, stored)
            logger.info("cached %d/%d", min(start + chunk, len(missing)), len(missing))
    out: list[EmbeddedArticle] = []
    for article, passages, key in zip(articles, per_article, keys, strict=True):
        block = stored[key]
        out.append(EmbeddedArticle(article, tuple(passages), block, pool(passages, block)))
    return out


def _load(path: Path, dim: int) -> dict[str, NDArray[np.float32]]:
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = [str(k) for k in data["keys"]]
            offsets = data["offsets"]
            vectors = data["vectors"].astype(np.float32)
    except (OSError, KeyError, ValueError) as exc:
        logger.warning("ignoring unreadable embedding cache %s: %s", path, exc)
        return {}
    if vectors.ndim != 2 or vectors.shape[1] != dim or len(offsets) != len(keys) + 1:
        logger.warning("ignoring embedding cache %s: shape %s does not fit dimension %d", path, vectors.shape, dim)
        return {}
    return {k: vectors[offsets[i] : offsets[i + 1]] for i, k in enumerate(keys)}


def _save(path: Path, stored: dict[str, NDArray[np.float32]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(stored)
    offsets = np.cumsum([0] + [len(stored[k]) for k in keys]).astype(np.int64)
    vectors = np.vstack([stored[k] for k in keys]) if keys else np.zeros((0, 0), dtype=np.float32)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, keys=np.asarray(keys), offsets=offsets, vectors=vectors)
    tmp.replace(path)
