"""The embedding half of the benchmark: our default path against plain sentence-transformers.

Articles per second of each path on the same articles in the same run, how close each
path's vectors are to plain sentence-transformers', and a re-run through the cache.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dedup.config import Config
from dedup.embedding.cache import EmbeddingCache
from dedup.embedding.embed import Encoder, article_passages, embed_articles, load_encoder
from dedup.errors import ModelError
from dedup.types import Article

__all__ = ["embedding_throughput"]

logger = logging.getLogger(__name__)

Vectors = NDArray[np.float32]


def _encoders(config: Config) -> list[tuple[str, Encoder]]:
    """The paths compared: plain sentence-transformers, ours, and OpenVINO fp32 when ours is not it."""
    ours = load_encoder(config.model, backend=config.backend)
    plain = load_encoder(config.model, backend="torch")
    encoders: list[tuple[str, Encoder]] = [("plain", plain), ("ours", ours)]
    if type(ours).__name__ != "OpenVINOEncoder":
        try:
            encoders.append(("openvino", load_encoder(config.model, backend="openvino")))
        except ModelError as exc:  # e.g. a hub model: no fp32 fast path to show
            logger.info("no OpenVINO row: %s", exc)
    return encoders


def _cached_rerun_seconds(articles: Sequence[Article], encoder: Encoder) -> float:
    """Seconds to embed ``articles`` again through a fresh cache that already holds them."""
    tmp = EmbeddingCache(Path(os.environ.get("TMPDIR", "/tmp")) / f"dedup-bench-{os.getpid()}.sqlite", encoder.name, encoder.dim)
    try:
        embed_articles(articles, encoder, cache=tmp)
        t0 = time.perf_counter()
        embed_articles(articles, encoder, cache=tmp)
        return time.perf_counter() - t0
    finally:
        tmp.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{tmp.path}{suffix}").unlink(missing_ok=True)


def _path_row(
    name: str, encoder: Encoder, vectors: Vectors, reference: Vectors, times: dict[str, list[float]], articles: int, passages: int
) -> dict[str, Any]:
    cos = np.einsum("ij,ij->i", vectors, reference)
    return {
        "path": name,
        "backend": type(encoder).__name__,
        "encoder": encoder.name,
        "articles_per_s": round(articles / sum(times[name]), 2),
        "passages_per_s": round(passages / sum(times[name]), 1),
        "speedup": round(sum(times["plain"]) / sum(times[name]), 2),
        "speedup_median_group": round(float(np.median(np.divide(times["plain"], times[name]))), 2),
        "cosine_to_plain_min": round(float(cos.min()), 6),
        "cosine_to_plain_mean": round(float(cos.mean()), 6),
    }


def embedding_throughput(articles: Sequence[Article], config: Config) -> dict[str, Any]:
    """Articles/s of our default path against plain sentence-transformers (torch), same run.

    Each encodes the same passages, a group of eight articles per call (as a feed arrives),
    with its own defaults: plain sentence-transformers sorts a call's texts by characters
    and runs batches of 32; the int8 default runs one passage per request, one request per
    core; OpenVINO (fp32, when the default is not already it) batches by tokens, 8 per
    request. The order rotates between groups, so all see the same machine load. Also
    reports how close each path's vectors are to plain sentence-transformers', and a
    re-run through the cache.
    """
    encoders = _encoders(config)
    groups = [
        [p for a in articles[start : start + 8] for p in article_passages(a, config.max_passage_chars)]
        for start in range(0, len(articles), 8)
    ]
    texts = [p for group in groups for p in group]
    for _, encoder in encoders:
        encoder.encode(texts[:16])
    times: dict[str, list[float]] = {name: [] for name, _ in encoders}
    out: dict[str, list[Vectors]] = {name: [] for name, _ in encoders}
    for k, group in enumerate(groups):
        for name, encoder in encoders[k % len(encoders) :] + encoders[: k % len(encoders)]:
            t0 = time.perf_counter()
            out[name].append(encoder.encode(group))
            times[name].append(time.perf_counter() - t0)
    cached_s = _cached_rerun_seconds(articles, dict(encoders)["ours"])
    reference = np.vstack(out["plain"])
    paths = [_path_row(name, enc, np.vstack(out[name]), reference, times, len(articles), len(texts)) for name, enc in encoders]
    row = {p["path"]: p for p in paths}
    return {
        "articles": len(articles),
        "passages": len(texts),
        "groups": len(groups),
        "paths": paths,
        "ours_backend": row["ours"]["backend"],
        "plain_backend": row["plain"]["backend"],
        "ours_articles_per_s": row["ours"]["articles_per_s"],
        "plain_articles_per_s": row["plain"]["articles_per_s"],
        "speedup": row["ours"]["speedup"],
        "speedup_median_group": row["ours"]["speedup_median_group"],
        "cosine_min": row["ours"]["cosine_to_plain_min"],
        "cosine_mean": row["ours"]["cosine_to_plain_mean"],
        "cached_rerun_articles_per_s": round(len(articles) / max(cached_s, 1e-9), 1),
    }
