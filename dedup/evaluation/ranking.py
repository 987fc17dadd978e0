"""How well a score ranks labelled pairs: ROC-AUC, hard-negative AUC, correlation with a rating, best F1.

Pure functions over arrays (no models, no articles), for pairs rated by people
(:mod:`dedup.evaluation.pairs`):

* ROC-AUC over the labelled pairs (label 1 against label 0);
* hard-negative AUC: label 1 against the *hard* negatives only (same people and places,
  another story), where a score that only counts shared names fails;
* Pearson and Spearman correlation with the rating ``overall`` (1 = same story .. 4 =
  different; a good score correlates negatively), over the labelled pairs;
* the best F1 over every threshold, and that threshold;
* optionally the expected calibration error of a probability-like score against the label.

Examples:
    >>> r = ranking_scores([0.9, 0.8, 0.3, 0.1], labels=[1, 1, 0, 0], overall=[1.0, 1.5, 3.0, 4.0], hard=[0, 0, 1, 0])
    >>> r.auc, r.hard_auc, r.best_f1, r.best_threshold
    (1.0, 1.0, 1.0, 0.8)

"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dedup.evaluation.metrics import calibration, pr_curve

__all__ = ["RankingScores", "ranking_scores", "roc_auc"]


@dataclass(frozen=True)
class RankingScores:
    """What one score achieves on one set of labelled pairs.

    Attributes:
        pairs: Pairs scored (labelled or not).
        positives: Pairs labelled 1.
        negatives: Pairs labelled 0.
        hard_negatives: Negatives about the same entities (another story).
        auc: ROC-AUC, label 1 against label 0 (NaN without both).
        hard_auc: ROC-AUC, label 1 against hard negatives only (NaN without both).
        pearson: Pearson r with ``overall`` over the labelled pairs (negative is good: 1 = same story).
        spearman: Spearman rho with ``overall`` over the labelled pairs.
        best_f1: Highest F1 of ``score >= t`` over the labelled pairs, over every t.
        best_threshold: The t of ``best_f1``.
        ece: Expected calibration error against the label (10 equal-width bins), for
            probability-like scores; None otherwise.

    """

    pairs: int
    positives: int
    negatives: int
    hard_negatives: int
    auc: float
    hard_auc: float
    pearson: float
    spearman: float
    best_f1: float
    best_threshold: float
    ece: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN written as null; ``abs_pearson`` and ``abs_spearman`` added)."""
        return {
            "pairs": self.pairs,
            "positives": self.positives,
            "negatives": self.negatives,
            "hard_negatives": self.hard_negatives,
            "auc": _round(self.auc),
            "hard_auc": _round(self.hard_auc),
            "pearson": _round(self.pearson),
            "abs_pearson": _round(abs(self.pearson)),
            "spearman": _round(self.spearman),
            "abs_spearman": _round(abs(self.spearman)),
            "best_f1": _round(self.best_f1),
            "best_threshold": _round(self.best_threshold),
            "ece": None if self.ece is None else _round(self.ece),
        }


def _round(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)


def roc_auc(positive: Sequence[bool], scores: Sequence[float]) -> float:
    """ROC-AUC of ``scores`` for the ``positive`` items (ties count half); NaN without both classes.

    Examples:
        >>> roc_auc([True, False, True, False], [0.9, 0.5, 0.5, 0.1])
        0.875

    """
    y = np.asarray(positive, dtype=bool)
    if y.all() or not y.any():
        return math.nan
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, np.asarray(scores, dtype=np.float64)))


def _correlations(scores: np.ndarray[Any, Any], overall: np.ndarray[Any, Any]) -> tuple[float, float]:
    keep = ~np.isnan(overall)
    s, o = scores[keep], overall[keep]
    if len(s) < 3 or np.ptp(s) == 0 or np.ptp(o) == 0:
        return math.nan, math.nan
    return _pearson(s, o), _pearson(_ranks(s), _ranks(o))


def _pearson(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def _ranks(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Ranks from 1, ties given their average rank (Spearman's convention)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    average = np.cumsum(counts) - (counts - 1) / 2.0
    return np.asarray(average[inverse], dtype=np.float64)


def ranking_scores(
    scores: Sequence[float],
    *,
    labels: Sequence[int | None],
    overall: Sequence[float | None],
    hard: Sequence[bool | int],
    probability: bool = False,
) -> RankingScores:
    """Ranking, correlation, best F1 (and, for probabilities, calibration) of one score on labelled pairs.

    Args:
        scores: One score per pair (higher = more likely the same story).
        labels: 1, 0 or None (unlabelled: counted only in ``pairs``).
        overall: The raters' mean rating (1 = same .. 4 = different), None when missing.
        hard: Whether each pair is a hard negative.
        probability: ``scores`` are probabilities in [0, 1]: report their calibration error.

    Raises:
        ValueError: When the sequences differ in length.

    """
    n = len(scores)
    if not len(labels) == len(overall) == len(hard) == n:
        raise ValueError(f"need one label, rating and hard flag per score: {n} scores, {len(labels)} labels")
    s = np.asarray(scores, dtype=np.float64)
    lab = np.asarray([math.nan if x is None else float(x) for x in labels], dtype=np.float64)
    ov = np.asarray([math.nan if x is None else float(x) for x in overall], dtype=np.float64)
    is_hard = np.asarray(hard, dtype=bool)
    labelled = ~np.isnan(lab)
    pos = lab == 1
    neg = lab == 0
    pearson, spearman = _correlations(s[labelled], ov[labelled])
    y, sl = list(pos[labelled]), list(s[labelled])
    if pos.any():
        best_threshold, best = pr_curve(y, sl).best_f1()
        best_f1 = best.f1
    else:
        best_threshold, best_f1 = math.nan, math.nan
    hard_mask = pos | (neg & is_hard)
    return RankingScores(
        pairs=n,
        positives=int(pos.sum()),
        negatives=int(neg.sum()),
        hard_negatives=int((neg & is_hard).sum()),
        auc=roc_auc(y, sl),
        hard_auc=roc_auc(list(pos[hard_mask]), list(s[hard_mask])),
        pearson=pearson,
        spearman=spearman,
        best_f1=best_f1,
        best_threshold=best_threshold,
        ece=calibration(y, sl).ece if probability and labelled.any() else None,
    )
