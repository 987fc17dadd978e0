"""The pairwise decision: is a candidate the same story as the query article.

Retrieval proposes candidates by article-vector similarity, which cannot tell "same
event, other language" from "same actors, other event". The verifier weighs evidence
that survives both translation and independent writing
(:mod:`dedup.verify_features`): passage alignment, soft passage matching, the lead and
the title, names across scripts and inflections, numbers in every format, dates, and
conflicting names and numbers in the passages that match best; reports further apart
than ``max_date_gap_days`` are never one story.

The features are combined by gradient-boosted trees with monotone constraints (the
article cosine, and every similarity, can only raise the score; conflicts only lower
it), fitted on translations (NTREX), independent reports (SemEval 2022 task 8), titles
(OG2021) and the seeds by ``benchmarks/fit_verifier.py``. The trees may sit on a monotone
linear base (``Trees.linear``, format 7: the lead-weighted cosine of the v7 fit, which
boosts the trees on top of it). Format 8 adds an optional second model for title pairs
(``titles``: pairs where one side is a title or a one-line text, the ``title_only``
feature): titles and articles are two regimes, and a model fitted for one need not serve
the other. Format 9 adds a learned low-rank map of the default model's article vectors
(``vector_map``, :class:`dedup.verify_features.VectorMap`), whose cosine is the
``mapped_similarity`` feature. The shipped parameters are v9 for articles (v7's form with
that feature) and v6 (format 6, no linear base) for titles. The model ships as JSON in
``verifier.json`` beside this module and is evaluated with numpy here: no pickle, no
scikit-learn at prediction time.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dedup.config import Config
from dedup.errors import ConfigError
from dedup.types import EmbeddedArticle, Evidence, Match, PassagePair
from dedup.verify_features import FEATURES, MONOTONE, VectorMap, char_overlap, pair_features, title_words

__all__ = [
    "FEATURES",
    "FORMAT8_FEATURES",
    "MONOTONE",
    "Trees",
    "VectorMap",
    "Verifier",
    "align",
    "both_titles",
    "char_overlap",
    "compare",
    "conflict_veto",
    "identical",
    "pair_features",
    "title_words",
]

#: The format version of ``verifier.json`` that this module writes; it reads this one and
#: :data:`READS` (format 6 has no linear term, format 7 no title model, format 8 neither
#: the ``mapped_similarity`` feature nor a vector map: its features are the first 20).
FORMAT = 9
READS = (6, 7, 8, 9)
#: The features of formats 6 to 8: all but ``mapped_similarity``, which format 9 adds.
FORMAT8_FEATURES = FEATURES[: FEATURES.index("mapped_similarity")]

#: A vetoed pair (:func:`conflict_veto`) scores at most this share of the model's score,
#: below any threshold of 0.25 or more; the order among vetoed pairs is kept.
VETO_SCALE = 0.25
#: The share of conflicting names, and of conflicting numbers, at which the veto applies
#: (at 0.5 it caught one NTREX translation pair, with names in two scripts; at 0.6 none).
VETO_CONFLICT = 0.6

_AT = {name: i for i, name in enumerate(FEATURES)}


def conflict_veto(x: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Which rows of :data:`FEATURES` only sentence shapes support: the conflict veto.

    A pair is vetoed when both articles have more than one passage, names and numbers
    on both sides, share no name and no number, and at least :data:`VETO_CONFLICT` of
    the names and of the numbers in their best-matching passages conflict (another value in the same
    slot): one template filled with other places and figures ("The parliament in Town2
    reported 4080 cases" against "... in Town22 reported 9312 cases"). Titles are
    never vetoed: a title names too little for its absence to be evidence. A feature
    that is NaN (nothing to compare) never vetoes.

    Examples:
        >>> row = np.zeros(len(FEATURES))
        >>> row[[_AT["name_conflict"], _AT["number_conflict"]]] = 1.0
        >>> bool(conflict_veto(row)[0])
        True
        >>> row[_AT["number_match"]] = 0.5
        >>> bool(conflict_veto(row)[0])
        False

    """
    rows = np.atleast_2d(np.asarray(x, dtype=np.float64))
    col = {name: rows[:, i] for name, i in _AT.items()}
    with np.errstate(invalid="ignore"):
        vetoed: NDArray[np.bool_] = (
            (col["title_only"] == 0)
            & (col["name_match"] <= 0)
            & (col["number_match"] <= 0)
            & (col["name_conflict"] >= VETO_CONFLICT)
            & (col["number_conflict"] >= VETO_CONFLICT)
        )
    return vetoed


def align(
    a: NDArray[np.float32], b: NDArray[np.float32], *, min_similarity: float, min_margin: float
) -> list[tuple[int, int, float, float]]:
    """Mutual-best passage pairs with their similarity and margin, best first.

    The margin of a pair (i, j) is its similarity minus the mean of the runner-up
    similarity of row i and of column j. A passage with no runner-up (the other article
    has one passage) uses ``min_similarity`` as its runner-up.

    Examples:
        >>> a = np.eye(3, dtype=np.float32)
        >>> [(i, j) for i, j, _, _ in align(a, a, min_similarity=0.5, min_margin=0.1)]
        [(0, 0), (1, 1), (2, 2)]

    """
    if len(a) == 0 or len(b) == 0:
        return []
    sims = a @ b.T
    best_j = sims.argmax(axis=1)
    best_i = sims.argmax(axis=0)
    row_second = _runner_up(sims, min_similarity)
    col_second = _runner_up(sims.T, min_similarity)
    pairs: list[tuple[int, int, float, float]] = []
    for i, j in enumerate(best_j):
        if best_i[j] != i:
            continue
        sim = float(sims[i, j])
        margin = sim - 0.5 * (float(row_second[i]) + float(col_second[j]))
        if sim >= min_similarity and margin >= min_margin:
            pairs.append((i, int(j), sim, margin))
    pairs.sort(key=lambda p: -p[2])
    return pairs


def _runner_up(sims: NDArray[np.float32], floor: float) -> NDArray[np.float32]:
    if sims.shape[1] < 2:
        return np.full(sims.shape[0], floor, dtype=np.float32)
    part = np.partition(sims, -2, axis=1)
    return part[:, -2].astype(np.float32)


def _overlap(a: frozenset[str], b: frozenset[str]) -> tuple[float, tuple[str, ...]]:
    shared = a & b
    if not a or not b:
        return 0.0, ()
    return len(shared) / min(len(a), len(b)), tuple(sorted(shared))


def compare(a: EmbeddedArticle, b: EmbeddedArticle, config: Config) -> Evidence:
    """Collect the evidence on whether ``a`` and ``b`` report the same story."""
    pairs = align(
        a.passage_vectors, b.passage_vectors, min_similarity=config.align_min_similarity, min_margin=config.align_min_margin
    )
    shorter = min(len(a.passages), len(b.passages))
    aligned = tuple(PassagePair(i, j, a.passages[i], b.passages[j], s, m) for i, j, s, m in pairs)
    _, numbers = _overlap(a.numbers, b.numbers)
    _, names = _overlap(a.names, b.names)
    gap = None
    if a.article.date is not None and b.article.date is not None:
        gap = a.article.date.gap_days(b.article.date)
    la, lb = sum(map(len, a.passages)), sum(map(len, b.passages))
    return Evidence(
        article_similarity=float(a.vector @ b.vector),
        aligned=aligned,
        aligned_fraction=len(aligned) / shorter if shorter else 0.0,
        date_gap_days=gap,
        shared_numbers=numbers,
        shared_names=names,
        lang_pair=(a.article.lang, b.article.lang),
        length_ratio=min(la, lb) / max(la, lb) if max(la, lb) else 0.0,
        identical=identical(a, b),
    )


def identical(a: EmbeddedArticle, b: EmbeddedArticle) -> bool:
    """Whether both articles have the same cleaned title and text (and some of it).

    Passages are the cleaned title and body, split deterministically, so equal cleaned
    texts give equal passages.
    """
    return bool(a.passages) and a.passages == b.passages


def both_titles(a: EmbeddedArticle, b: EmbeddedArticle) -> bool:
    """Whether both sides of the pair have at most one passage (a title, or a one-line text)."""
    return max(len(a.passages), len(b.passages)) <= 1


@dataclass(frozen=True, eq=False)
class Trees:
    """Boosted regression trees over :data:`FEATURES`, padded into arrays and evaluated with numpy.

    Node ``k`` of tree ``t`` sends a row left when ``x[feature] <= threshold`` (a NaN goes
    left when ``missing_left``); a leaf holds its (already shrunk) value. The raw score is
    ``baseline`` plus a linear term ``x @ linear`` (a NaN feature contributes 0) plus the
    sum of the leaves reached; the probability is its logistic. The linear term is the
    monotone base the trees were fitted on top of (verifier v7: the lead-weighted cosine;
    its coefficients are never negative for a feature that may only raise the score).

    Attributes:
        baseline: The initial raw score.
        feature: Split feature per node, shape ``(trees, nodes)``.
        threshold: Split threshold per node.
        missing_left: Whether NaN goes left, per node.
        left: Left child per node.
        right: Right child per node.
        value: Leaf value per node (0 for inner nodes).
        leaf: Whether the node is a leaf (padding nodes are leaves of value 0).
        linear: One coefficient per feature of :data:`FEATURES` (zeros: no linear term).

    """

    baseline: float
    feature: NDArray[np.int64]
    threshold: NDArray[np.float64]
    missing_left: NDArray[np.bool_]
    left: NDArray[np.int64]
    right: NDArray[np.int64]
    value: NDArray[np.float64]
    leaf: NDArray[np.bool_]
    linear: NDArray[np.float64] = field(default_factory=lambda: np.zeros(len(FEATURES)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], n_features: int) -> Trees:
        """Build from ``{"baseline": x, "linear": [...], "trees": [{"feature": [...], "threshold": [...], ...}, ...]}``.

        ``linear`` (one coefficient per feature) is optional: zeros when absent.

        Raises:
            ConfigError: When a tree is malformed (unequal lengths, a child or feature out of range),
                or ``linear`` does not hold one finite number per feature.

        """
        trees = list(data["trees"])
        if not trees:
            raise ConfigError("the verifier has no trees")
        width = max(len(t["value"]) for t in trees)
        keys = ("feature", "threshold", "missing_left", "left", "right", "value", "leaf")
        pad = {"feature": 0, "threshold": 0.0, "missing_left": False, "left": 0, "right": 0, "value": 0.0, "leaf": True}
        cols: dict[str, list[list[Any]]] = {k: [] for k in keys}
        for n, tree in enumerate(trees):
            size = len(tree["value"])
            if any(len(tree[k]) != size for k in keys):
                raise ConfigError(f"verifier tree {n}: fields of unequal length")
            for k in keys:
                cols[k].append(list(tree[k]) + [pad[k]] * (width - size))
        out = cls(
            float(data["baseline"]),
            np.asarray(cols["feature"], dtype=np.int64),
            np.asarray(cols["threshold"], dtype=np.float64),
            np.asarray(cols["missing_left"], dtype=bool),
            np.asarray(cols["left"], dtype=np.int64),
            np.asarray(cols["right"], dtype=np.int64),
            np.asarray(cols["value"], dtype=np.float64),
            np.asarray(cols["leaf"], dtype=bool),
            _linear(data.get("linear"), n_features),
        )
        inner = ~out.leaf
        if inner.any() and (
            out.feature[inner].min() < 0
            or out.feature[inner].max() >= n_features
            or min(out.left[inner].min(), out.right[inner].min()) < 0
            or max(out.left[inner].max(), out.right[inner].max()) >= width
        ):
            raise ConfigError("verifier trees refer to a feature or node out of range")
        return out

    def raw(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """The raw (log-odds) scores of rows ``x`` (shape ``(n, features)``)."""
        rows = np.atleast_2d(np.asarray(x, dtype=np.float64))
        n_trees = self.feature.shape[0]
        tree_ix = np.arange(n_trees)[None, :]
        node = np.zeros((len(rows), n_trees), dtype=np.int64)
        for _ in range(self.feature.shape[1]):
            leaf = self.leaf[tree_ix, node]
            if leaf.all():
                break
            vals = np.take_along_axis(rows, self.feature[tree_ix, node], axis=1)
            go_left = np.where(np.isnan(vals), self.missing_left[tree_ix, node], vals <= self.threshold[tree_ix, node])
            step = np.where(go_left, self.left[tree_ix, node], self.right[tree_ix, node])
            node = np.where(leaf, node, step)
        base = np.nan_to_num(rows, nan=0.0) @ self.linear if self.linear.any() else 0.0
        out: NDArray[np.float64] = self.baseline + base + self.value[tree_ix, node].sum(axis=1)
        return out


def _linear(values: object, n_features: int) -> NDArray[np.float64]:
    if values is None:
        return np.zeros(n_features)
    out = np.asarray(values, dtype=np.float64)
    if out.shape != (n_features,) or not np.isfinite(out).all():
        raise ConfigError(f"the verifier's linear term needs one finite number per feature ({n_features}), got {values!r}")
    return out


def _calibration(data: object) -> tuple[float, float]:
    """``(a, b)`` of a ``{"a": .., "b": ..}`` calibration (``(1, 0)`` when absent)."""
    if data is None:
        return (1.0, 0.0)
    if not isinstance(data, Mapping):
        raise TypeError(f"a calibration is {{'a': .., 'b': ..}}, got {data!r}")
    return (float(data["a"]), float(data["b"]))


def _trees(data: Mapping[str, Any], n_features: int) -> Trees:
    """Trees over the first ``n_features`` of :data:`FEATURES` (an older format's), widened to all of them."""
    trees = Trees.from_dict(data, n_features)
    if n_features == len(FEATURES):
        return trees
    return dataclasses.replace(trees, linear=np.pad(trees.linear, (0, len(FEATURES) - n_features)))


def _vector_map(data: object) -> VectorMap:
    """A :class:`VectorMap` from ``{"models": [...], "u": [[...]], "v": [[...]], "fitted_on": ".."}``."""
    if not isinstance(data, Mapping):
        raise TypeError(f"a vector map is {{'models': .., 'u': .., 'v': ..}}, got {type(data).__name__}")
    models = data["models"]
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise TypeError(f"a vector map's models are a list of names, got {models!r}")
    u, v = (np.asarray(data[k], dtype=np.float64) for k in ("u", "v"))
    return VectorMap(tuple(models), u, v, str(data.get("fitted_on", "")))


def _logistic(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


@dataclass(frozen=True)
class Verifier:
    """A monotone linear base and boosted trees over :data:`FEATURES`, a calibration of their output, and the vetoes.

    Attributes:
        trees: The model.
        calibration: ``(a, b)``: the score is ``logistic(a * raw + b)`` (``(1, 0)``: the trees' own probability).
        source: Where the parameters came from (for reports).
        titles: The model of title pairs (rows whose ``title_only`` feature is 1), with its
            own calibration; ``None``: ``trees`` scores them too. It has no title model of its own.
        vector_map: The map whose cosine is the ``mapped_similarity`` feature, for the
            models it names (``Config.model``); ``None``: that feature is always NaN.

    """

    trees: Trees
    calibration: tuple[float, float] = (1.0, 0.0)
    source: str = "built-in"
    titles: Verifier | None = None
    vector_map: VectorMap | None = None

    def __post_init__(self) -> None:
        if not self.calibration[0] > 0:
            raise ConfigError(f"the verifier's calibration slope must be positive (monotone), got {self.calibration[0]}")
        against = [n for n, c in zip(FEATURES, self.trees.linear, strict=True) if c * MONOTONE.get(n, 0) < 0]
        if against:
            raise ConfigError(f"the verifier's linear term goes against the monotone direction of {against}")
        if self.titles is not None and self.titles.titles is not None:
            raise ConfigError("the verifier's title model cannot have a title model of its own")

    def map_for(self, model: str, dim: int) -> VectorMap | None:
        """The vector map, if vectors of ``model`` (``Config.model``) of dimension ``dim`` are in its space."""
        found = self.vector_map
        return found if found is not None and found.applies_to(model, dim) else None

    def title_rows(self, x: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Which rows :attr:`titles` scores (none without a title model)."""
        rows = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if self.titles is None:
            return np.zeros(len(rows), dtype=bool)
        out: NDArray[np.bool_] = rows[:, _AT["title_only"]] == 1
        return out

    @classmethod
    def default(cls) -> Verifier:
        """The parameters shipped with the package (``dedup/verifier.json``)."""
        return _default()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verifier:
        """Build from the format of ``verifier.json`` (``format``, ``features``, ``model``, ``calibration``).

        Raises:
            ConfigError: When the format or the feature list does not match this version's, or a tree is malformed.

        """
        if data.get("format") not in READS:
            raise ConfigError(f"verifier parameters are format {data.get('format')!r}, this version reads {READS}")
        names = tuple(data.get("features", ()))
        if names != (FEATURES if data["format"] >= 9 else FORMAT8_FEATURES):
            raise ConfigError(f"verifier parameters are for features {names}, this version uses {FEATURES}")
        try:
            titles = data.get("titles")
            if titles is not None and data["format"] < 8:
                raise ConfigError(f"verifier parameters of format {data['format']} cannot have a title model")
            mapped = data.get("vector_map")
            if mapped is not None and data["format"] < 9:
                raise ConfigError(f"verifier parameters of format {data['format']} cannot have a vector map")
            return cls(
                _trees(data["model"], len(names)),
                _calibration(data.get("calibration")),
                str(data.get("source", "file")),
                None
                if titles is None
                else cls(_trees(titles["model"], len(names)), _calibration(titles.get("calibration")), "titles"),
                None if mapped is None else _vector_map(mapped),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"verifier parameters are malformed: {exc!r}") from None

    def scores(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Calibrated scores in [0, 1] of rows of :data:`FEATURES` (title rows by :attr:`titles`, if any)."""
        rows = np.atleast_2d(np.asarray(x, dtype=np.float64))
        titled = self.title_rows(rows)
        z = np.empty(len(rows))
        for model, part in ((self, ~titled), (self.titles, titled)):
            if model is not None and part.any():
                z[part] = model.calibration[0] * model.trees.raw(rows[part]) + model.calibration[1]
        out: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))
        return np.where(conflict_veto(rows), VETO_SCALE * out, out)

    def score(self, x: NDArray[np.float64] | Sequence[float]) -> float:
        """The calibrated score in [0, 1] of "same story" for one feature vector (:data:`FEATURES`), after the veto."""
        row = np.asarray(x, dtype=np.float64)
        model = self.titles if self.titles is not None and self.title_rows(row)[0] else self
        z = model.calibration[0] * float(model.trees.raw(row)[0]) + model.calibration[1]
        return _logistic(z) * (VETO_SCALE if conflict_veto(row)[0] else 1.0)

    def pair_score(
        self, evidence: Evidence, a: EmbeddedArticle, b: EmbeddedArticle, *, max_date_gap_days: int = 7, model: str = ""
    ) -> float:
        """The model's score of a pair (no date veto); ``model`` (``Config.model``) says whether the vector map applies."""
        vector_map = self.map_for(model, int(a.vector.shape[-1]))
        return self.score(pair_features(evidence, a, b, max_date_gap_days=max_date_gap_days, vector_map=vector_map))

    def decide(self, a: EmbeddedArticle, b: EmbeddedArticle, config: Config) -> Match:
        """Compare ``a`` (query) with ``b`` (candidate) and decide.

        Reports further apart than ``config.max_date_gap_days`` score 0. Otherwise an
        exact repeat (same cleaned title and text, :func:`identical`) scores 1.0, an
        article empty after cleaning 0, and every other pair the model's score.
        """
        evidence = compare(a, b, config)
        too_far = evidence.date_gap_days is not None and evidence.date_gap_days > config.max_date_gap_days
        if too_far or not a.passages or not b.passages:  # an article empty after cleaning is never matched
            score = 0.0
        elif evidence.identical:  # an exact repeat, however short
            score = 1.0
        else:
            score = self.pair_score(evidence, a, b, max_date_gap_days=config.max_date_gap_days, model=config.model)
        return Match(
            id=b.id,
            score=score,
            is_duplicate=score >= config.threshold,
            evidence=evidence,
            title=b.article.title,
        )


def _default() -> Verifier:
    global _DEFAULT
    if _DEFAULT is None:
        data = json.loads(resources.files("dedup").joinpath("verifier.json").read_text("utf-8"))
        _DEFAULT = Verifier.from_dict(data)
    return _DEFAULT


_DEFAULT: Verifier | None = None
