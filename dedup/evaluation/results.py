"""What an evaluation measures: the systems compared and the records of one system on one part.

:class:`PartReport` gathers, for one system on one part of the data, its clustering
scores, its pair decisions on the candidate pairs (:class:`PairReport`) and its
cross-language retrieval; :func:`pair_report` builds the pair decisions. The metrics
themselves live in :mod:`dedup.evaluation.metrics`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dedup.evaluation.metrics import PRF, Calibration, ClusteringScores, PRCurve, RetrievalScores, pair_scores, pr_curve

__all__ = [
    "PAIR_SYSTEMS",
    "PAIR_SYSTEM_NAMES",
    "SYSTEMS",
    "SYSTEM_NAMES",
    "PairReport",
    "PartReport",
    "pair_report",
    "true_pairs_by_lang",
]

#: The systems every run compares, in report order.
SYSTEMS = ("tfidf", "cosine", "dedup")
SYSTEM_NAMES = {
    "tfidf": "TF-IDF char 3-5 grams + threshold",
    "cosine": "article embedding cosine + threshold",
    "dedup": "dedup (verifier + average linkage)",
}

#: The systems compared on labelled pairs (:mod:`dedup.evaluation.pair_eval`), in report order.
PAIR_SYSTEMS = ("tfidf", "cosine", "centred", "dedup")
PAIR_SYSTEM_NAMES = {
    "tfidf": "TF-IDF char 3-5 grams cosine",
    "cosine": "plain article cosine (uncentred, same model)",
    "centred": "dedup's centred article cosine",
    "dedup": "dedup score (Detector.compare)",
}


@dataclass(frozen=True)
class PairReport:
    """Pair decisions of one system on the candidate pairs of one part.

    Precision and recall are over the candidate pairs (each article's nearest neighbours
    by each system's own ranking: the detector's, plain cosine and TF-IDF; the same pairs
    for every system): the threshold
    decides among what retrieval proposes. Clustering then reaches pairs beyond them.

    Attributes:
        candidates: Number of scored candidate pairs.
        positives: True pairs in the part (candidates or not).
        ceiling: Share of all true pairs that are candidates.
        threshold: Decision threshold used.
        at_threshold: Precision, recall, F1 at ``threshold``.
        best_threshold: Threshold of best F1 on this part (for reference: on the held
            part it is *not* what is reported).
        best: Scores at ``best_threshold``.
        separation: Lowest score of a true pair minus highest score of a false pair
            (positive: one threshold separates them all).
        curve: The precision-recall curve.
        by_lang_pair: ``"en-fr"`` -> (scores at ``threshold``, true candidate pairs).

    """

    candidates: int
    positives: int
    ceiling: float
    threshold: float
    at_threshold: PRF
    best_threshold: float
    best: PRF
    separation: float | None
    curve: PRCurve
    by_lang_pair: dict[str, tuple[PRF, int]]

    def to_dict(self, curve_points: int = 200) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "candidates": self.candidates,
            "positives": self.positives,
            "ceiling": round(self.ceiling, 4),
            "threshold": round(self.threshold, 4),
            "at_threshold": self.at_threshold.to_dict(),
            "best_threshold": round(self.best_threshold, 4),
            "best": self.best.to_dict(),
            "separation": None if self.separation is None else round(self.separation, 4),
            "by_lang_pair": {k: {**v.to_dict(), "positives": n} for k, (v, n) in sorted(self.by_lang_pair.items())},
            "pr_curve": self.curve.to_dict(curve_points),
        }


@dataclass(frozen=True)
class PartReport:
    """Everything measured for one system on one part of the data."""

    clustering: ClusteringScores
    pairs: PairReport
    retrieval: RetrievalScores
    cluster_threshold: float
    calibration: Calibration | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "cluster_threshold": round(self.cluster_threshold, 4),
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "clustering": self.clustering.to_dict(),
            "pairs": self.pairs.to_dict(),
            "retrieval": self.retrieval.to_dict(),
        }


def true_pairs_by_lang(stories: Sequence[str], langs: Sequence[str | None]) -> Counter[str]:
    """True pairs per language pair (``"en-fr"``, each pair once) among articles labelled by story."""
    per_story: dict[str, Counter[str]] = {}
    for story, lang in zip(stories, langs, strict=True):
        per_story.setdefault(story, Counter())[lang or "?"] += 1
    out: Counter[str] = Counter()
    for counts in per_story.values():
        items = sorted(counts.items())
        for x, (la, ca) in enumerate(items):
            out[f"{la}-{la}"] += ca * (ca - 1) // 2
            for lb, cb in items[x + 1 :]:
                out[f"{la}-{lb}"] += ca * cb
    return out


def pair_report(
    y: NDArray[np.bool_],
    scores: NDArray[np.float64],
    lang_pairs: Sequence[str],
    positives: Counter[str],
    threshold: float,
) -> PairReport:
    """Pair decisions on the candidate pairs; recall is over the true pairs among them.

    The share of all true pairs that are candidates at all is reported as ``ceiling``.
    """
    total = sum(positives.values())
    curve = pr_curve(list(y), list(scores))
    best_threshold, best = curve.best_f1() if len(y) else (threshold, PRF(1.0, 0.0, 0.0))
    by_lang: dict[str, tuple[PRF, int]] = {}
    groups = np.asarray(lang_pairs)
    for group in sorted(set(lang_pairs)):
        mask = groups == group
        by_lang[group] = (pair_scores(list(y[mask]), list(scores[mask]), threshold), int(y[mask].sum()))
    separation = float(scores[y].min() - scores[~y].max()) if y.any() and (~y).any() else None
    return PairReport(
        candidates=len(y),
        positives=total,
        ceiling=float(y.sum()) / total if total else 1.0,
        threshold=threshold,
        at_threshold=pair_scores(list(y), list(scores), threshold),
        best_threshold=best_threshold,
        best=best,
        separation=separation,
        curve=curve,
        by_lang_pair=by_lang,
    )
