"""The two baselines (TF-IDF character n-grams, article-embedding cosine) and what every system shares.

Every system is scored on the same candidate pairs: each article's nearest neighbours by
the detector's ranking, by plain cosine and by TF-IDF (:func:`prepare`). The baselines
decide pairs with a threshold on their similarity and cluster with the detector's average
linkage over their similarity matrix (:func:`cluster_by_matrix`); their thresholds are
chosen on the tune part (:func:`tune_thresholds`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dedup.clustering.linkage import average_linkage
from dedup.config import Config
from dedup.embedding.embed import pool
from dedup.evaluation.metrics import clustering_scores, pr_curve
from dedup.types import Article, EmbeddedArticle
from dedup.verify import Verifier

__all__ = ["Prepared", "cluster_by_matrix", "prepare", "tfidf_similarities", "top_k_pairs", "tune_thresholds"]

logger = logging.getLogger(__name__)


def top_k_pairs(sims: NDArray[np.float32], k: int) -> set[tuple[int, int]]:
    """Each row's ``k`` most similar other rows, as pairs ``(i, j)`` with ``i < j``."""
    n = sims.shape[0]
    k = min(k, n - 1)
    if k <= 0:
        return set()
    masked = sims.copy()
    np.fill_diagonal(masked, -np.inf)
    top = np.argpartition(-masked, k - 1, axis=1)[:, :k]
    return {(min(i, int(j)), max(i, int(j))) for i in range(n) for j in top[i]}


def tfidf_similarities(articles: Sequence[Article]) -> NDArray[np.float32]:
    """Cosine of TF-IDF vectors over character 3-5 grams (title and text, lower-cased)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [f"{a.title}\n{a.text}".lower() for a in articles]
    matrix = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=1).fit_transform(texts)
    sims: NDArray[np.float32] = (matrix @ matrix.T).toarray().astype(np.float32)
    return sims


def cluster_by_matrix(n: int, pairs: Sequence[tuple[int, int]], sims: NDArray[np.float32], threshold: float) -> list[int]:
    """The detector's average linkage over a dense similarity matrix (the baselines' clusterer).

    :func:`dedup.clustering.linkage.average_linkage` with ``linkage=threshold``, the mean between two
    clusters computed exactly from the matrix instead of sampled above 256 cross pairs.
    """
    edges = [(i, j, float(sims[i, j])) for i, j in pairs]
    return average_linkage(
        n,
        edges,
        lambda i, j: float(sims[i, j]),
        threshold=threshold,
        linkage=threshold,
        cross_mean=lambda a, b: float(sims[np.ix_(a, b)].mean()),
    )


@dataclass(frozen=True)
class Prepared:
    """One part's shared material: similarity matrices, candidate pairs, verifier scores."""

    items: list[EmbeddedArticle]
    stories: list[str]
    cosine: NDArray[np.float32]
    search: NDArray[np.float32]
    tfidf: NDArray[np.float32]
    pairs: list[tuple[int, int]]
    verified: dict[tuple[int, int], float]
    retrieved: set[tuple[int, int]]


def prepare(items: list[EmbeddedArticle], stories: list[str], config: Config, verifier: Verifier) -> Prepared:
    """The similarity matrices of one part, its candidate pairs and the verifier's score of each."""
    # The baseline compares plain article vectors (the passages' mean, as other tools embed an
    # article); the detector retrieves by its own, language-centred article vectors.
    plain = np.vstack([pool(i.passages, i.passage_vectors) for i in items]).astype(np.float32)
    cosine: NDArray[np.float32] = plain @ plain.T
    vectors = np.vstack([i.vector for i in items]).astype(np.float32)
    search: NDArray[np.float32] = vectors @ vectors.T
    tfidf = tfidf_similarities([i.article for i in items])
    retrieved = top_k_pairs(search, config.candidates)
    pairs = sorted(retrieved | top_k_pairs(cosine, config.candidates) | top_k_pairs(tfidf, config.candidates))
    verified = {(i, j): verifier.decide(items[i], items[j], config).score for i, j in pairs}
    return Prepared(items, stories, cosine, search, tfidf, pairs, verified, retrieved)


def tune_thresholds(prep: Prepared, grid: Sequence[float] | None = None) -> dict[str, tuple[float, float]]:
    """Baseline thresholds chosen on the tune part: (pair threshold by pair F1, cluster threshold by B-cubed F1).

    ``grid``: cluster thresholds to try (default: 14 quantiles of the candidate pairs' scores).
    """
    y = np.asarray([prep.stories[i] == prep.stories[j] for i, j in prep.pairs], dtype=bool)
    out: dict[str, tuple[float, float]] = {}
    for system in ("tfidf", "cosine"):
        sims = prep.tfidf if system == "tfidf" else prep.cosine
        scores = [float(sims[i, j]) for i, j in prep.pairs]
        pair_t, _ = pr_curve(list(y), scores).best_f1() if len(y) else (0.5, None)
        # Models differ in where their cosines sit (mE5: a narrow band near 0.8), so the grid
        # spans quantiles of the candidate pairs' scores rather than fixed values.
        candidates = (
            grid if grid is not None else sorted({round(float(q), 3) for q in np.quantile(scores, np.linspace(0.5, 0.995, 14))})
        )
        best_t, best_f1 = candidates[0], -1.0
        for t in candidates:
            f1 = clustering_scores(prep.stories, cluster_by_matrix(len(prep.items), prep.pairs, sims, t)).bcubed.f1
            if f1 > best_f1:
                best_t, best_f1 = t, f1
        logger.info(
            "%s: pair threshold %.3f, cluster threshold %.2f (B-cubed F1 %.3f on the tune part)", system, pair_t, best_t, best_f1
        )
        out[system] = (float(pair_t), float(best_t))
    return out
