"""Detection-quality metrics: pure functions over labels and scores, frozen results.

* clustering: B-cubed precision/recall/F1 (Bagga & Baldwin 1998), the adjusted Rand
  index, and pairwise precision/recall/F1 (every pair of items put in one cluster is a
  predicted duplicate pair). Report ARI or pairwise precision beside B-cubed: a
  clustering that chains everything into one cluster still has B-cubed recall 1;
* pair decisions: precision/recall/F1 at a threshold and the precision-recall curve of
  scored candidate pairs. ``positives`` is the number of true pairs in the whole data,
  so true pairs that retrieval never proposed count as misses;
* cross-language retrieval: recall@k of the same story in another language, overall
  and per (query language, target language) pair.

Nothing here knows about models or articles: labels are any hashable values.

Examples:
    >>> s = clustering_scores(["a", "a", "b"], [0, 0, 0])
    >>> (round(s.bcubed.precision, 3), s.bcubed.recall, round(s.pairwise.precision, 3))
    (0.556, 1.0, 0.333)

"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "PRF",
    "Calibration",
    "ClusteringScores",
    "PRCurve",
    "RetrievalScores",
    "adjusted_rand",
    "bcubed",
    "calibration",
    "clustering_scores",
    "cross_language_recall",
    "pair_scores",
    "pairwise_clustering",
    "pr_curve",
]


@dataclass(frozen=True)
class PRF:
    """Precision, recall and their harmonic mean F1."""

    precision: float
    recall: float
    f1: float

    @classmethod
    def of(cls, precision: float, recall: float) -> PRF:
        """Build from precision and recall; F1 is 0 when both are 0."""
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        return cls(precision, recall, f1)

    def to_dict(self) -> dict[str, float]:
        """``{"precision", "recall", "f1"}``, rounded to 4 decimals."""
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4), "f1": round(self.f1, 4)}


@dataclass(frozen=True)
class ClusteringScores:
    """How well predicted clusters match the true ones.

    Attributes:
        bcubed: B-cubed precision, recall and F1.
        ari: Adjusted Rand index (1 = identical, about 0 = chance).
        pairwise: Pair-counting precision, recall and F1.
        items: Number of items.
        true_clusters: Number of true clusters.
        predicted_clusters: Number of predicted clusters.

    """

    bcubed: PRF
    ari: float
    pairwise: PRF
    items: int
    true_clusters: int
    predicted_clusters: int

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "bcubed": self.bcubed.to_dict(),
            "ari": round(self.ari, 4),
            "pairwise": self.pairwise.to_dict(),
            "items": self.items,
            "true_clusters": self.true_clusters,
            "predicted_clusters": self.predicted_clusters,
        }


def _check_lengths(a: Sequence[object], b: Sequence[object], what: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{what}: got {len(a)} true labels but {len(b)} predicted labels")


def _contingency(
    true: Sequence[Hashable], pred: Sequence[Hashable]
) -> tuple[Counter[Hashable], Counter[Hashable], Counter[tuple[Hashable, Hashable]]]:
    _check_lengths(true, pred, "clustering")
    return Counter(true), Counter(pred), Counter(zip(true, pred, strict=True))


def bcubed(true: Sequence[Hashable], pred: Sequence[Hashable]) -> PRF:
    """B-cubed precision, recall and F1, averaged over items.

    For an item i in true cluster L(i) and predicted cluster C(i), precision(i) =
    |L(i) ∩ C(i)| / |C(i)| and recall(i) = |L(i) ∩ C(i)| / |L(i)|. An empty input scores 1.

    Examples:
        >>> bcubed([1, 1, 2, 2], [1, 1, 2, 2])
        PRF(precision=1.0, recall=1.0, f1=1.0)

    """
    n_true, n_pred, cells = _contingency(true, pred)
    n = len(true)
    if n == 0:
        return PRF(1.0, 1.0, 1.0)
    # Each of the n_cell items of a cell has the same per-item precision n_cell / |C| and recall n_cell / |L|.
    precision = sum(c * c / n_pred[p] for (_, p), c in cells.items()) / n
    recall = sum(c * c / n_true[t] for (t, _), c in cells.items()) / n
    return PRF.of(precision, recall)


def _pairs(count: int) -> int:
    return count * (count - 1) // 2


def pairwise_clustering(true: Sequence[Hashable], pred: Sequence[Hashable]) -> PRF:
    """Pair-counting precision, recall and F1 of a clustering.

    Every pair of items in one predicted cluster is a predicted duplicate pair. With no
    predicted pairs precision is 1 (nothing wrong was claimed); with no true pairs
    recall is 1.

    Examples:
        >>> pairwise_clustering(["a", "a", "a"], [0, 0, 1])
        PRF(precision=1.0, recall=0.3333333333333333, f1=0.5)

    """
    n_true, n_pred, cells = _contingency(true, pred)
    same = sum(_pairs(c) for c in cells.values())
    predicted = sum(_pairs(c) for c in n_pred.values())
    actual = sum(_pairs(c) for c in n_true.values())
    return PRF.of(same / predicted if predicted else 1.0, same / actual if actual else 1.0)


def adjusted_rand(true: Sequence[Hashable], pred: Sequence[Hashable]) -> float:
    """The adjusted Rand index (:func:`sklearn.metrics.adjusted_rand_score`)."""
    from sklearn.metrics import adjusted_rand_score

    _check_lengths(true, pred, "clustering")
    if not true:
        return 1.0
    codes_true = _codes(true)
    codes_pred = _codes(pred)
    return float(adjusted_rand_score(codes_true, codes_pred))


def _codes(labels: Sequence[Hashable]) -> NDArray[np.int64]:
    index: dict[Hashable, int] = {}
    return np.asarray([index.setdefault(x, len(index)) for x in labels], dtype=np.int64)


def clustering_scores(true: Sequence[Hashable], pred: Sequence[Hashable]) -> ClusteringScores:
    """B-cubed, ARI and pairwise scores of a predicted clustering against the truth."""
    _check_lengths(true, pred, "clustering")
    return ClusteringScores(
        bcubed=bcubed(true, pred),
        ari=adjusted_rand(true, pred),
        pairwise=pairwise_clustering(true, pred),
        items=len(true),
        true_clusters=len(set(true)),
        predicted_clusters=len(set(pred)),
    )


# ------------------------------------------------------------------ pair decisions
def _pair_arrays(is_same: Sequence[bool], scores: Sequence[float]) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    y = np.asarray(is_same, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"need one score per pair: got {y.shape} labels and {s.shape} scores")
    return y, s


def _positives(y: NDArray[np.bool_], positives: int | None) -> int:
    found = int(y.sum())
    if positives is None:
        return found
    if positives < found:
        raise ValueError(f"positives ({positives}) is less than the true pairs among the scored ones ({found})")
    return positives


def pair_scores(is_same: Sequence[bool], scores: Sequence[float], threshold: float, *, positives: int | None = None) -> PRF:
    """Precision, recall and F1 of deciding "duplicate" when ``score >= threshold``.

    Args:
        is_same: Truth of each scored pair.
        scores: Score of each pair.
        threshold: Decision threshold.
        positives: Number of true pairs in the whole data (default: those scored); true
            pairs that were never scored count as misses.

    Examples:
        >>> pair_scores([True, False, True], [0.9, 0.8, 0.1], 0.5, positives=4)
        PRF(precision=0.5, recall=0.25, f1=0.3333333333333333)

    """
    y, s = _pair_arrays(is_same, scores)
    total = _positives(y, positives)
    decided = s >= threshold
    tp = int((decided & y).sum())
    predicted = int(decided.sum())
    return PRF.of(tp / predicted if predicted else 1.0, tp / total if total else 1.0)


@dataclass(frozen=True)
class PRCurve:
    """Precision and recall at each threshold, thresholds descending.

    Attributes:
        thresholds: Decision thresholds (``score >= t``), highest first.
        precision: Precision at each threshold.
        recall: Recall at each threshold.

    """

    thresholds: tuple[float, ...]
    precision: tuple[float, ...]
    recall: tuple[float, ...]

    @property
    def f1(self) -> tuple[float, ...]:
        """F1 at each threshold."""
        return tuple(PRF.of(p, r).f1 for p, r in zip(self.precision, self.recall, strict=True))

    def best_f1(self) -> tuple[float, PRF]:
        """The threshold of highest F1 (the highest such threshold on ties) and its scores.

        Raises:
            ValueError: On an empty curve.

        """
        if not self.thresholds:
            raise ValueError("empty precision-recall curve: no scored pairs")
        f1 = self.f1
        best = max(range(len(f1)), key=lambda i: (f1[i], self.thresholds[i]))
        return self.thresholds[best], PRF(self.precision[best], self.recall[best], f1[best])

    def to_dict(self, points: int = 200) -> dict[str, list[float]]:
        """At most ``points`` evenly spaced points of the curve, rounded, for JSON."""
        n = len(self.thresholds)
        keep = sorted({int(x) for x in np.rint(np.linspace(0, n - 1, min(points, n)))}) if n else []
        return {
            "threshold": [round(self.thresholds[i], 4) for i in keep],
            "precision": [round(self.precision[i], 4) for i in keep],
            "recall": [round(self.recall[i], 4) for i in keep],
        }


def pr_curve(is_same: Sequence[bool], scores: Sequence[float], *, positives: int | None = None) -> PRCurve:
    """The precision-recall curve over every distinct score used as threshold.

    Examples:
        >>> c = pr_curve([True, False, True], [0.9, 0.8, 0.1])
        >>> c.thresholds, c.precision, c.recall
        ((0.9, 0.8, 0.1), (1.0, 0.5, 0.6666666666666666), (0.5, 0.5, 1.0))

    """
    y, s = _pair_arrays(is_same, scores)
    total = _positives(y, positives)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    # The last index of each run of equal scores: `score >= t` takes the whole run.
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1] if len(s) else np.zeros(0, dtype=np.int64)
    precision = tp[last] / (last + 1)
    recall = tp[last] / total if total else np.ones(len(last))
    return PRCurve(tuple(float(x) for x in s[last]), tuple(float(x) for x in precision), tuple(float(x) for x in recall))


@dataclass(frozen=True)
class Calibration:
    """How well scores read as probabilities of "same story".

    Attributes:
        brier: Mean squared error of the scores against the 0/1 truth.
        ece: Expected calibration error: over equal-width score bins, the size-weighted
            mean of |share of true pairs - mean score|.
        bins: Per non-empty bin: (mean score, share of true pairs, number of pairs).

    """

    brier: float
    ece: float
    bins: tuple[tuple[float, float, int], ...]

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "brier": round(self.brier, 4),
            "ece": round(self.ece, 4),
            "bins": [[round(m, 4), round(r, 4), c] for m, r, c in self.bins],
        }


def calibration(is_same: Sequence[bool], probabilities: Sequence[float], bins: int = 10) -> Calibration:
    """Brier score and reliability bins of probability-like scores in [0, 1].

    Examples:
        >>> c = calibration([True, False, True, False], [0.9, 0.1, 0.6, 0.6], bins=2)
        >>> round(c.brier, 4), round(c.ece, 4), [n for _, _, n in c.bins]
        (0.135, 0.05, [1, 3])

    """
    y, p = _pair_arrays(is_same, probabilities)
    if len(y) == 0:
        return Calibration(0.0, 0.0, ())
    if p.min() < 0.0 or p.max() > 1.0:
        raise ValueError(f"probabilities must lie in [0, 1], got [{p.min()}, {p.max()}]")
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    out: list[tuple[float, float, int]] = []
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            mean, rate, count = float(p[mask].mean()), float(y[mask].mean()), int(mask.sum())
            out.append((mean, rate, count))
            ece += count * abs(rate - mean)
    return Calibration(float(np.mean((p - y) ** 2)), ece / len(y), tuple(out))


# --------------------------------------------------------------- cross-language recall
@dataclass(frozen=True)
class RetrievalScores:
    """Recall@k of the same story in another language.

    A query is an (item, target language) pair such that the item's story has at least
    one item in the target language (other than the query's own). It is a hit at k when
    one of them ranks in the top k of the target language's items by score. Ties are
    broken against the query: a wrong item with the same score ranks first.

    Attributes:
        ks: The cut-offs.
        recall: Recall at each cut-off, over all queries.
        queries: Number of queries.
        by_pair: ``"query_lang->target_lang"`` -> (recall at each cut-off, number of queries).

    """

    ks: tuple[int, ...]
    recall: tuple[float, ...]
    queries: int
    by_pair: Mapping[str, tuple[tuple[float, ...], int]] = field(default_factory=dict)

    def worst_pair(self, k: int = 1) -> tuple[str, float] | None:
        """The language pair of lowest recall at ``k`` (None without queries).

        Raises:
            ValueError: When ``k`` is not one of :attr:`ks`.

        """
        if k not in self.ks:
            raise ValueError(f"k={k} was not computed; computed: {self.ks}")
        at = self.ks.index(k)
        if not self.by_pair:
            return None
        name = min(self.by_pair, key=lambda p: (self.by_pair[p][0][at], p))
        return name, self.by_pair[name][0][at]

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "queries": self.queries,
            **{f"recall@{k}": round(r, 4) for k, r in zip(self.ks, self.recall, strict=True)},
            "by_pair": {
                p: {"queries": n, **{f"recall@{k}": round(r, 4) for k, r in zip(self.ks, rs, strict=True)}}
                for p, (rs, n) in sorted(self.by_pair.items())
            },
        }


def cross_language_recall(
    scores: NDArray[np.floating],
    labels: Sequence[Hashable],
    langs: Sequence[str | None],
    ks: Sequence[int] = (1, 10),
) -> RetrievalScores:
    """Recall@k of the same story in another language, from an item-by-item score matrix.

    Args:
        scores: ``scores[i, j]`` ranks item ``j`` as an answer to query ``i`` (higher first).
        labels: Story of each item.
        langs: Language of each item; items of unknown language are neither queries nor targets.
        ks: Cut-offs.

    Returns:
        Recall at each cut-off, overall and per (query language, target language).

    Examples:
        >>> s = np.array([[1, .9, .2], [.9, 1, .3], [.2, .3, 1]])
        >>> r = cross_language_recall(s, ["x", "x", "y"], ["en", "fr", "fr"], ks=(1,))
        >>> r.recall, r.queries, dict(r.by_pair)
        ((1.0,), 2, {'en->fr': ((1.0,), 1), 'fr->en': ((1.0,), 1)})

    """
    n = len(labels)
    if scores.shape != (n, n):
        raise ValueError(f"scores must be {n}x{n} for {n} labels, got shape {scores.shape}")
    if len(langs) != n:
        raise ValueError(f"got {n} labels but {len(langs)} languages")
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive cut-offs, got {tuple(ks)}")
    codes = _codes(labels)
    lang_items: dict[str, NDArray[np.int64]] = {}
    for i, lang in enumerate(langs):
        if lang:
            lang_items.setdefault(lang, np.zeros(0, dtype=np.int64))
            lang_items[lang] = np.append(lang_items[lang], i)
    by_pair: dict[str, tuple[tuple[float, ...], int]] = {}
    hits_total = np.zeros(len(ks), dtype=np.int64)
    queries = 0
    for la, rows in lang_items.items():
        for lb, cols in lang_items.items():
            if la == lb:
                continue
            block = np.asarray(scores[np.ix_(rows, cols)], dtype=np.float64)
            same = codes[rows][:, None] == codes[cols][None, :]
            has = same.any(axis=1)
            if not has.any():
                continue
            block, same = block[has], same[has]
            best = np.where(same, block, -np.inf).max(axis=1)
            rank = 1 + ((~same) & (block >= best[:, None])).sum(axis=1)
            hits = np.array([(rank <= k).sum() for k in ks], dtype=np.int64)
            by_pair[f"{la}->{lb}"] = (tuple(float(h) / len(rank) for h in hits), len(rank))
            hits_total += hits
            queries += len(rank)
    recall = tuple(float(h) / queries if queries else 1.0 for h in hits_total)
    return RetrievalScores(tuple(ks), recall, queries, by_pair)
