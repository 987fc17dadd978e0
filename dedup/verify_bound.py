"""Exact pruning of candidates: the best score a pair could still reach when some features are unknown.

The verifier's score (:meth:`dedup.verify.Verifier.scores`) is ``logistic(a * raw + b)``
with ``a > 0``, times a veto that only lowers it, and ``raw`` is the trees' baseline plus
one leaf per tree (plus an optional linear term). Given what is known of a pair's
features (each one an interval, NaN allowed or not), the largest ``raw`` any completion
can reach is at most the sum over trees of the largest leaf the known values let a row
reach: a split on a known feature goes one way, a split on an unknown one (or one whose
interval straddles the threshold) both ways. Whatever the unknown features turn out to
be, the score cannot exceed the logistic of that bound, so a candidate whose bound stays
below the threshold is not a duplicate, exactly, and need not be verified.

The check path uses it in stages (:meth:`Pruner.must_verify`):

1. dates further apart than ``max_date_gap_days`` (the pair scores 0), then the article
   cosine against a floor precomputed per verifier and threshold
   (:attr:`Pruner.cosine_floor`; ``-inf`` when the other features alone can reach it);
2. the similarities from passage vectors, and the counts, languages and dates, known for
   all candidates at once (:func:`vector_bounds`), the text features (names, numbers,
   dates in the text, conflicts), the alignment and the title's characters unknown;
3. the alignment and the title's characters known too (:func:`aligned_bounds`);
4. the full verification (:meth:`dedup.verify.Verifier.decide`) for what is left.

Reports further apart than ``max_date_gap_days``, and empty articles, score 0; an exact
repeat (:func:`dedup.verify.identical`) within that gap scores 1.0 whatever the model
says, so it is never pruned. Stages 2 and 3 recompute features of
:func:`dedup.verify_features.pair_features` their own way (all candidates at once); the
similarities are given :data:`VECTOR_SLACK` either side, and ``tests/test_verify_bound.py``
holds every feature of real and synthetic pairs inside the bounds: a change to a feature's
formula there must be made here too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from dedup.config import Config
from dedup.types import EmbeddedArticle
from dedup.verify import FEATURES, Trees, Verifier, align, identical
from dedup.verify_features import CENTRED_OFFSET, LEAD_DECAY, VectorMap, char_overlap, lead_vector, title_words

__all__ = [
    "TEXT_FEATURES",
    "VECTOR_SLACK",
    "Bounds",
    "Pruner",
    "aligned_bounds",
    "date_gap",
    "max_raw",
    "unknown_row",
    "vector_bounds",
]

#: The features read from the words of the texts (names, numbers, dates): left unknown by stages 2 and 3
#: (any share in [0, 1], or NaN).
TEXT_FEATURES = ("name_match", "number_match", "date_match", "name_conflict", "number_conflict")

#: How far :func:`vector_bounds`' similarities may lie from :func:`dedup.verify_features.pair_features`' (float32 sums).
VECTOR_SLACK = 1e-4
#: Slack on the bound: rounding in a different summation order never turns a duplicate into a pruned pair.
_SLACK = 1e-9

_AT = {name: i for i, name in enumerate(FEATURES)}


@dataclass(frozen=True)
class Bounds:
    """What is known of rows of :data:`FEATURES`: each feature lies in ``[lo, hi]``, or is NaN where ``nan``.

    A known value ``v`` is ``lo = hi = v, nan = False``; a known NaN is ``lo = +inf,
    hi = -inf, nan = True``; an unknown feature is ``(-inf, +inf, True)``. Shapes ``(rows, features)``.
    """

    lo: NDArray[np.float64]
    hi: NDArray[np.float64]
    nan: NDArray[np.bool_]

    @classmethod
    def of(cls, x: NDArray[np.float64], unknown: NDArray[np.bool_] | None = None) -> Bounds:
        """Rows ``x`` known exactly (NaN is a known NaN), except the columns marked in ``unknown`` (any value, NaN too)."""
        rows = np.atleast_2d(np.asarray(x, dtype=np.float64))
        nan = np.isnan(rows)
        lo = np.where(nan, np.inf, rows)
        hi = np.where(nan, -np.inf, rows)
        if unknown is not None:
            free = np.broadcast_to(np.asarray(unknown, dtype=bool), rows.shape)
            lo, hi, nan = np.where(free, -np.inf, lo), np.where(free, np.inf, hi), nan | free
        return cls(lo, hi, nan)


def _take(bounds: Bounds, rows: NDArray[np.int64]) -> Bounds:
    return Bounds(bounds.lo[rows], bounds.hi[rows], bounds.nan[rows])


def unknown_row(n_features: int = len(FEATURES)) -> Bounds:
    """One row where nothing is known."""
    return Bounds(np.full((1, n_features), -np.inf), np.full((1, n_features), np.inf), np.ones((1, n_features), dtype=bool))


@dataclass(frozen=True, eq=False)
class _Paths:
    """Every leaf of every tree with the splits on its path: what the bound reads, computed once per model.

    Leaves are padded to the same count per tree (value ``-inf``) and paths to the same
    length (the always-open edge ``2 * nodes``): an edge ``e < nodes`` is "left at flat
    node ``e``", ``nodes <= e < 2 * nodes`` is "right at node ``e - nodes``".
    """

    edges: NDArray[np.int64]  # (trees, leaves, depth)
    value: NDArray[np.float64]  # (trees, leaves)


def _paths(trees: Trees) -> _Paths:
    n_trees, width = trees.feature.shape
    nodes = n_trees * width
    found: list[list[tuple[list[int], float]]] = []
    for t in range(n_trees):
        leaves: list[tuple[list[int], float]] = []
        stack: list[tuple[int, list[int]]] = [(0, [])]
        while stack:
            k, path = stack.pop()
            if trees.leaf[t, k] or len(path) > width:
                leaves.append((path, float(trees.value[t, k])))
                continue
            flat = t * width + k
            stack.append((int(trees.right[t, k]), [*path, nodes + flat]))
            stack.append((int(trees.left[t, k]), [*path, flat]))
        found.append(leaves)
    most = max(len(leaves) for leaves in found)
    depth = max(1, max(len(p) for leaves in found for p, _ in leaves))
    edges = np.full((n_trees, most, depth), 2 * nodes, dtype=np.int64)
    value = np.full((n_trees, most), -np.inf)
    for t, leaves in enumerate(found):
        for i, (path, v) in enumerate(leaves):
            edges[t, i, : len(path)] = path
            value[t, i] = v
    return _Paths(edges, value)


def max_raw(trees: Trees, bounds: Bounds, paths: _Paths | None = None) -> NDArray[np.float64]:
    """An upper bound of :meth:`Trees.raw` over every row that ``bounds`` allows, per row of ``bounds``.

    Per tree, the largest leaf whose path the bounds leave open: a split on ``x[f] <= t``
    may go left if ``lo[f] <= t`` (or NaN is allowed and goes left) and right if
    ``hi[f] > t`` (or NaN goes right). The bound is the baseline plus the sum of those
    leaves, plus the largest value the optional linear term (``trees.linear``, NaN
    counting 0) can take. A row known exactly gets its own raw score back.
    """
    paths = paths or _paths(trees)
    f = trees.feature.ravel()
    thr, miss = trees.threshold.ravel(), trees.missing_left.ravel()
    nan_f = bounds.nan[:, f]
    may_left = (bounds.lo[:, f] <= thr) | (nan_f & miss)
    may_right = (bounds.hi[:, f] > thr) | (nan_f & ~miss)
    open_edge = np.concatenate([may_left, may_right, np.ones((len(may_left), 1), dtype=bool)], axis=1)
    reach = open_edge[:, paths.edges].all(axis=3)
    leaves = np.where(reach, paths.value, -np.inf)
    out: NDArray[np.float64] = trees.baseline + leaves.max(axis=2).sum(axis=1) + _linear_max(trees, bounds)
    return out


def _linear_max(trees: Trees, bounds: Bounds) -> NDArray[np.float64]:
    if not trees.linear.any():
        return np.zeros(len(bounds.lo))
    w = np.asarray(trees.linear, dtype=np.float64)[None, :]
    with np.errstate(invalid="ignore"):
        ends = np.maximum(np.where(np.isfinite(bounds.lo) | (w < 0), w * bounds.lo, -np.inf), w * bounds.hi)
    some_value = bounds.lo <= bounds.hi
    best = np.where(some_value, np.where(w == 0, 0.0, np.nan_to_num(ends, nan=np.inf, posinf=np.inf)), -np.inf)
    best = np.where(bounds.nan, np.maximum(best, 0.0), best)
    out: NDArray[np.float64] = best.sum(axis=1)
    return out


def _units(rows: NDArray[np.float64]) -> NDArray[np.float64]:
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    out: NDArray[np.float64] = np.divide(rows, norms, out=rows.copy(), where=norms > 0)
    return out


def _decay(count: int) -> NDArray[np.float64]:
    """``LEAD_DECAY ** i`` for the first ``count`` passages."""
    return _DECAY[:count] if count <= len(_DECAY) else np.power(LEAD_DECAY, np.arange(count, dtype=np.float64))


_DECAY = np.power(LEAD_DECAY, np.arange(64, dtype=np.float64))


def vector_bounds(
    query: EmbeddedArticle, candidates: list[EmbeddedArticle], config: Config, vector_map: VectorMap | None = None
) -> Bounds:
    """What vectors, titles, lengths, languages and dates tell of the features of ``(query, candidate)`` pairs.

    The similarity features
    (article, lead-weighted, soft and top match, lead, title, and the mapped similarity
    under ``vector_map``: a known NaN without one) are known to within
    :data:`VECTOR_SLACK` (another order of float sums than :func:`dedup.verify_features.pair_features`'s),
    the counts and dates exactly; the alignment features and the title's character
    overlap only within the ranges they can take; :data:`TEXT_FEATURES` not at all.
    Every article must have passages.
    """
    n = len(candidates)
    sums = np.empty((n, 3, query.vector.shape[-1]))  # per candidate: plain, lead-decayed and first-3 passage sums
    soft, top, best, least = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    qv = query.passage_vectors
    for j, other in enumerate(candidates):
        # One small product per candidate: one large product would be multithreaded by
        # OpenBLAS, tens of times slower on a busy machine.
        sims = qv @ other.passage_vectors.T
        rows, cols = np.sort(sims.max(axis=1)), np.sort(sims.max(axis=0))
        soft[j] = 0.5 * (float(rows.sum()) / len(rows) + float(cols.sum()) / len(cols))
        top[j] = 0.5 * (float(rows[-3:].sum()) / len(rows[-3:]) + float(cols[-3:].sum()) / len(cols[-3:]))
        best[j], least[j] = rows[-1], sims.min()
        count = len(other.passages)
        weights = np.empty((3, count))
        weights[0] = np.sqrt(np.fromiter((max(len(p), 1) for p in other.passages), dtype=np.float64, count=count))
        weights[1] = weights[0] * _decay(count)
        weights[2] = np.arange(count) < 3
        sums[j] = weights @ other.passage_vectors.astype(np.float64)
    vectors = np.stack([c.vector for c in candidates]).astype(np.float64)
    cosine = vectors @ query.vector.astype(np.float64)
    plain, decayed, first3 = _units(sums[:, 0]), _units(sums[:, 1]), _units(sums[:, 2])
    leads = _units(decayed - plain + CENTRED_OFFSET * vectors) @ lead_vector(query).astype(np.float64)
    lead = first3 @ _units(qv[:3].astype(np.float64).sum(axis=0))
    titled = np.array([bool(c.article.title.strip()) for c in candidates]) & bool(query.article.title.strip())
    firsts = np.stack([c.passage_vectors[0] for c in candidates]).astype(np.float64)
    title = np.where(titled, firsts @ qv[0].astype(np.float64), cosine)
    lo = np.full((n, len(FEATURES)), -np.inf)
    hi = np.full((n, len(FEATURES)), np.inf)
    nan = np.zeros((n, len(FEATURES)), dtype=bool)
    at = _AT["mapped_similarity"]
    if vector_map is None:
        lo[:, at], hi[:, at], nan[:, at] = np.inf, -np.inf, True
    else:
        moved = vector_map.apply(np.vstack([query.vector[None, :], vectors]))
        mapped = moved[1:] @ moved[0]
        lo[:, at], hi[:, at] = mapped - VECTOR_SLACK, mapped + VECTOR_SLACK
    for name, value in (
        ("article_similarity", cosine),
        ("lead_weighted_similarity", leads),
        ("soft_match", soft),
        ("top_match", top),
        ("lead_similarity", lead),
        ("title_similarity", title),
    ):
        lo[:, _AT[name]], hi[:, _AT[name]] = value - VECTOR_SLACK, value + VECTOR_SLACK
    # The ranges of what is left unknown: a mean over the aligned pairs (each at least
    # align_min_similarity and align_min_margin), or 0 without pairs; a runner-up is a
    # similarity of the matrix or align_min_similarity.
    floor_sim, floor_margin = min(0.0, config.align_min_similarity), min(0.0, config.align_min_margin)
    runner_up = np.minimum(least, config.align_min_similarity)
    for name, (low, high) in {
        "title_char_overlap": (0.0, 1.0),
        "aligned_fraction": (0.0, 1.0),
        "aligned_similarity": (floor_sim - VECTOR_SLACK, np.maximum(best, 0.0) + VECTOR_SLACK),
        "aligned_margin": (floor_margin - VECTOR_SLACK, np.maximum(best - runner_up, 0.0) + VECTOR_SLACK),
    }.items():
        lo[:, _AT[name]], hi[:, _AT[name]] = low, high
    chars, words = sum(map(len, query.passages)), title_words(_title(query))
    exact = np.array([_counted(query, c, config, chars, words) for c in candidates]).reshape(n, len(_COUNTED))
    for i, name in enumerate(_COUNTED):
        known = ~np.isnan(exact[:, i])
        lo[:, _AT[name]] = np.where(known, exact[:, i], np.inf)
        hi[:, _AT[name]] = np.where(known, exact[:, i], -np.inf)
        nan[:, _AT[name]] = ~known
    text = [_AT[name] for name in TEXT_FEATURES]
    lo[:, text], hi[:, text], nan[:, text] = 0.0, 1.0, True  # shares of names, numbers, dates: in [0, 1] or NaN
    return Bounds(lo, hi, nan)


def aligned_bounds(query: EmbeddedArticle, candidates: list[EmbeddedArticle], config: Config, rows: Bounds) -> Bounds:
    """``rows`` (of :func:`vector_bounds`) with the alignment features and the title's character overlap known.

    Computed per pair as :func:`dedup.verify.compare` and :func:`dedup.verify_features.pair_features` do.
    """
    lo, hi, nan = rows.lo.copy(), rows.hi.copy(), rows.nan.copy()
    for j, other in enumerate(candidates):
        pairs = align(
            query.passage_vectors,
            other.passage_vectors,
            min_similarity=config.align_min_similarity,
            min_margin=config.align_min_margin,
        )
        shorter = min(len(query.passages), len(other.passages))
        values = {
            "aligned_fraction": len(pairs) / shorter if shorter else 0.0,
            "aligned_similarity": float(np.mean([p[2] for p in pairs])) if pairs else 0.0,
            "aligned_margin": float(np.mean([p[3] for p in pairs])) if pairs else 0.0,
            "title_char_overlap": char_overlap(_title(query), _title(other)),
        }
        for name, value in values.items():
            lo[j, _AT[name]], hi[j, _AT[name]], nan[j, _AT[name]] = value - VECTOR_SLACK, value + VECTOR_SLACK, False
    return Bounds(lo, hi, nan)


#: The features :func:`vector_bounds` computes exactly, as :func:`dedup.verify_features.pair_features` does.
_COUNTED = ("same_language", "length_ratio", "title_only", "title_words", "date_gap")


def _counted(a: EmbeddedArticle, b: EmbeddedArticle, config: Config, a_chars: int, a_words: int) -> list[float]:
    """:data:`_COUNTED` of a pair; ``a_chars`` and ``a_words``: ``a``'s characters and title words."""
    lb = sum(map(len, b.passages))
    days = config.max_date_gap_days
    gap = date_gap(a, b)
    return [
        float(a.article.lang is not None and a.article.lang == b.article.lang),
        min(a_chars, lb) / max(a_chars, lb) if max(a_chars, lb) else 0.0,
        float(min(len(a.passages), len(b.passages)) <= 1),
        min(a_words, title_words(_title(b)), 30) / 10.0,
        min(gap, days) / max(days, 1) if gap is not None else float("nan"),
    ]


def date_gap(a: EmbeddedArticle, b: EmbeddedArticle) -> int | None:
    """Days between the two articles' dates, None when either is undated (as :func:`dedup.verify.compare`)."""
    if a.article.date is None or b.article.date is None:
        return None
    return a.article.date.gap_days(b.article.date)


def _title(item: EmbeddedArticle) -> str:
    return item.article.title or (item.passages[0] if item.passages else "")


@dataclass(frozen=True, eq=False)
class Pruner:
    """The staged bound of one verifier at one threshold: which candidates cannot be duplicates.

    A verifier with a title model (:attr:`dedup.verify.Verifier.titles`) is bounded by the
    model that scores each row: the title model where ``title_only`` is 1, its own
    elsewhere, and both (either may reach) where ``title_only`` is not known.

    Attributes:
        verifier: The model whose decisions are kept.
        threshold: The score a duplicate reaches (``Config.threshold``).
        cosine_floor: Stage 1: no pair with an article cosine below it reaches ``threshold``.

    """

    verifier: Verifier
    threshold: float
    cosine_floor: float = field(init=False)
    _paths: _Paths = field(init=False, repr=False)
    _titles: Pruner | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        titles = self.verifier.titles
        object.__setattr__(self, "_paths", _paths(self.verifier.trees))
        object.__setattr__(self, "_titles", None if titles is None else Pruner(titles, self.threshold))
        object.__setattr__(self, "cosine_floor", self._cosine_floor())

    def reach(self, rows: Bounds) -> NDArray[np.bool_]:
        """Whether each row of ``rows`` may reach the threshold, under the model that scores it."""
        if self._titles is None:
            return self.reaches(max_raw(self.verifier.trees, rows, self._paths))
        at = _AT["title_only"]
        lo, hi, nan = rows.lo[:, at], rows.hi[:, at], rows.nan[:, at]
        maybe_title = (lo <= 1) & (hi >= 1)
        maybe_other = nan | (lo < 1) | (hi > 1)
        out = np.zeros(len(lo), dtype=bool)
        if maybe_other.any():
            part = _take(rows, np.flatnonzero(maybe_other))
            out[maybe_other] = self.reaches(max_raw(self.verifier.trees, part, self._paths))
        if maybe_title.any():
            out[maybe_title] |= self._titles.reach(_take(rows, np.flatnonzero(maybe_title)))
        return out

    def reaches(self, raw_bound: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Whether a raw upper bound lets the score reach the threshold (rounding counted in its favour)."""
        a, b = self.verifier.calibration
        z = np.clip(a * (np.asarray(raw_bound) + _SLACK) + b, -50.0, 50.0)
        score = 1.0 / (1.0 + np.exp(-z))
        out: NDArray[np.bool_] = score >= self.threshold - _SLACK
        return out

    def _cosine_floor(self) -> float:
        """The lowest article cosine from which a pair, all its other features unknown, may reach the threshold.

        With a title model: the lower of its floor and this model's.
        """
        own = self._own_cosine_floor()
        return own if self._titles is None else min(own, self._titles.cosine_floor)

    def _own_cosine_floor(self) -> float:
        trees = self.verifier.trees
        at = _AT["article_similarity"]
        inner = ~trees.leaf & (trees.feature == at)
        cuts = np.unique(trees.threshold[inner])
        # The bound is constant on (-inf, c0], (c0, c1], ..., (c_last, inf): test one interval per piece.
        edges = [-np.inf, *cuts.tolist(), np.inf]
        pieces = unknown_row()
        lo = np.repeat(pieces.lo, len(edges) - 1, axis=0)
        hi, nan = np.repeat(pieces.hi, len(edges) - 1, axis=0), np.repeat(pieces.nan, len(edges) - 1, axis=0)
        lo[:, at], hi[:, at], nan[:, at] = edges[:-1], edges[1:], False
        lo[1:, at] = np.nextafter(lo[1:, at], np.inf)  # (c_i, c_i+1]: strictly above c_i
        ok = self.reaches(max_raw(trees, Bounds(lo, hi, nan), self._paths))
        if not ok.any():
            return math.inf
        first = int(np.argmax(ok))
        return -math.inf if first == 0 else float(np.nextafter(edges[first], np.inf))

    def must_verify(self, query: EmbeddedArticle, candidates: list[EmbeddedArticle], config: Config) -> NDArray[np.bool_]:
        """Which candidates may be duplicates of ``query`` under ``config`` (False: not a duplicate, exactly).

        A candidate is left out when :meth:`dedup.verify.Verifier.decide` would score it 0
        (dates further apart than ``config.max_date_gap_days``, no passages), when its
        article cosine is below :attr:`cosine_floor`, or when the bound of its score from
        :func:`vector_bounds` stays below the threshold. An exact repeat
        (:func:`dedup.verify.identical`) is always kept. ``config.threshold`` must be :attr:`threshold`.
        """
        keep = np.ones(len(candidates), dtype=bool)
        if config.threshold != self.threshold:
            raise ValueError(f"this pruner is for threshold {self.threshold}, not {config.threshold}")
        if self.threshold <= 0 or not query.passages:
            return keep
        bounded: list[int] = []
        for i, other in enumerate(candidates):
            gap = date_gap(query, other)
            if (gap is not None and gap > config.max_date_gap_days) or not other.passages:
                keep[i] = False  # scored 0 (Verifier.decide), an exact repeat too
            elif identical(query, other):
                continue  # scored 1
            elif self.cosine_floor > -math.inf and float(query.vector @ other.vector) < self.cosine_floor:
                keep[i] = False
            else:
                bounded.append(i)
        if bounded:
            vector_map = self.verifier.map_for(config.model, int(query.vector.shape[-1]))
            rows = vector_bounds(query, [candidates[i] for i in bounded], config, vector_map)
            reach = self.reach(rows)
            keep[bounded] = reach
            still = np.flatnonzero(reach)
            if len(still):  # the alignment and the title's characters known too, for those left
                narrower = aligned_bounds(query, [candidates[bounded[j]] for j in still], config, _take(rows, still))
                keep[np.asarray(bounded)[still]] = self.reach(narrower)
        return keep
