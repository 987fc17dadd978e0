"""The pairwise decision: is a candidate the same story as the query article.

Retrieval proposes candidates by article-vector similarity, which cannot tell "same
event, other language" from "same actors, other event". The verifier looks at evidence
that survives translation:

* passage alignment: passages that are each other's best match (mutual best) and beat
  their runner-ups by a margin. A translation or rewrite aligns passage by passage;
  another report about the same actors shares vocabulary but not passages. The margin
  makes this work for models whose cosines sit in a narrow band (mE5);
* the date gap: reports further apart than ``max_date_gap_days`` are never one story;
* shared numbers and names (acronyms included), title similarity (embedding cosine, and
  character 3-gram overlap, which speaks within a language);
* article similarity and the length ratio.

The features are combined by a logistic model whose parameters ship in
``verifier.json`` beside this module (refit by ``benchmarks/fit_verifier.py``). Pairs of
two titles only have their own logistic model over :data:`TITLE_FEATURES`: a title
carries no passages to align, and its evidence reads differently within one language
(shared characters) than across two (the embedding alone).
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dedup.config import Config
from dedup.errors import ConfigError
from dedup.types import EmbeddedArticle, Evidence, Match, PassagePair

__all__ = [
    "FEATURES",
    "TITLE_FEATURES",
    "Verifier",
    "align",
    "both_titles",
    "compare",
    "features",
    "identical",
    "title_features",
    "title_words",
]

#: Feature names, in the order of the logistic model's coefficients.
FEATURES = (
    "aligned_fraction",
    "aligned_similarity",
    "aligned_margin",
    "article_similarity",
    "title_similarity",
    "title_char_overlap",
    "number_overlap",
    "name_overlap",
    "length_ratio",
    "date_known",
    "date_gap",
    "title_only",
)

#: Features of the title-only model: :data:`FEATURES`, then evidence that depends on
#: whether the two titles share a language, and on how much a title says.
TITLE_FEATURES = (
    *FEATURES,
    "same_language",
    "title_words",
    "same_language_char_overlap",
    "cross_language_title_similarity",
)


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


def _title_similarity(a: EmbeddedArticle, b: EmbeddedArticle) -> float:
    """Cosine of the two titles (the first passages), or of the articles when one has no title."""
    if a.article.title.strip() and b.article.title.strip() and len(a.passage_vectors) and len(b.passage_vectors):
        return float(a.passage_vectors[0] @ b.passage_vectors[0])
    return float(a.vector @ b.vector)


@functools.lru_cache(maxsize=65536)
def _grams(text: str, n: int) -> frozenset[str]:
    low = text.lower()
    return frozenset(low[i : i + n] for i in range(len(low) - n + 1))


def char_overlap(a: str, b: str, n: int = 3) -> float:
    """Jaccard overlap of the character ``n``-grams of two lowercased texts (0 when either is empty).

    Surface evidence for two reports in one language; near 0 across scripts, where the
    passage alignment speaks instead.

    Examples:
        >>> round(char_overlap("Osaka wins", "Osaka loses"), 2)
        0.27

    """
    grams_a, grams_b = _grams(a, n), _grams(b, n)
    if not grams_a or not grams_b:
        return 0.0
    return len(grams_a & grams_b) / len(grams_a | grams_b)


def _title(item: EmbeddedArticle) -> str:
    return item.article.title or (item.passages[0] if item.passages else "")


def both_titles(a: EmbeddedArticle, b: EmbeddedArticle) -> bool:
    """Whether both sides of the pair have at most one passage (a title, or a one-line text).

    Such pairs are scored by the title-only model; a title against a full article is
    scored by the article model, which knows the case by its ``title_only`` feature.
    """
    return max(len(a.passages), len(b.passages)) <= 1


def features(evidence: Evidence, a: EmbeddedArticle, b: EmbeddedArticle, *, max_date_gap_days: int = 7) -> NDArray[np.float64]:
    """The feature vector of a pair, in the order of :data:`FEATURES`.

    ``date_gap`` is the gap in days over ``max_date_gap_days`` (0 when a date is unknown;
    ``date_known`` tells the two cases apart).
    """
    aligned_similarity = float(np.mean([p.similarity for p in evidence.aligned])) if evidence.aligned else 0.0
    aligned_margin = float(np.mean([p.margin for p in evidence.aligned])) if evidence.aligned else 0.0
    gap = evidence.date_gap_days
    title_a, title_b = _title(a), _title(b)
    return np.array(
        [
            evidence.aligned_fraction,
            aligned_similarity,
            aligned_margin,
            evidence.article_similarity,
            _title_similarity(a, b),
            char_overlap(title_a, title_b),
            _overlap(a.numbers, b.numbers)[0],
            _overlap(a.names, b.names)[0],
            evidence.length_ratio,
            float(gap is not None),
            min(gap, max_date_gap_days) / max(max_date_gap_days, 1) if gap is not None else 0.0,
            float(min(len(a.passages), len(b.passages)) <= 1),
        ],
        dtype=np.float64,
    )


_WORD = re.compile(r"\w+")


def title_words(text: str) -> int:
    """Number of words (runs of letters and digits) in a title.

    Examples:
        >>> title_words("Osaka wins, 6-3 | Sports")
        5

    """
    return len(_WORD.findall(text))


def title_features(
    evidence: Evidence, a: EmbeddedArticle, b: EmbeddedArticle, *, max_date_gap_days: int = 7
) -> NDArray[np.float64]:
    """The feature vector of a title-only pair, in the order of :data:`TITLE_FEATURES`.

    :func:`features`, then: whether both languages are known and equal; the shorter
    title's word count over 10 (capped at 3: a short title says less); the title character
    overlap for a same-language pair (0 across languages, where it measures the script,
    not the story); the title cosine for a cross-language pair (0 within one language).
    """
    base = features(evidence, a, b, max_date_gap_days=max_date_gap_days)
    lang_a, lang_b = a.article.lang, b.article.lang
    same = float(lang_a is not None and lang_a == lang_b)
    words = min(title_words(_title(a)), title_words(_title(b)))
    extra = [
        same,
        min(words, 30) / 10.0,
        same * base[FEATURES.index("title_char_overlap")],
        (1.0 - same) * base[FEATURES.index("title_similarity")],
    ]
    return np.concatenate([base, np.asarray(extra, dtype=np.float64)])


def _logistic(coef: tuple[float, ...], intercept: float, x: NDArray[np.float64]) -> float:
    z = float(np.dot(np.asarray(coef), x)) + intercept
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


@dataclass(frozen=True)
class Verifier:
    """A logistic model over :data:`FEATURES`, one over :data:`TITLE_FEATURES` for pairs of two titles, and the date-gap veto.

    Attributes:
        coef: One weight per feature.
        intercept: The bias.
        source: Where the parameters came from (for reports).
        title_coef: One weight per title feature; None scores pairs of two titles with
            ``coef`` too.
        title_intercept: The title-only model's bias.

    """

    coef: tuple[float, ...]
    intercept: float
    source: str = "built-in"
    title_coef: tuple[float, ...] | None = None
    title_intercept: float = 0.0

    def __post_init__(self) -> None:
        if len(self.coef) != len(FEATURES):
            raise ConfigError(f"verifier needs {len(FEATURES)} coefficients ({FEATURES}), got {len(self.coef)}")
        if self.title_coef is not None and len(self.title_coef) != len(TITLE_FEATURES):
            raise ConfigError(
                f"the title-only model needs {len(TITLE_FEATURES)} coefficients ({TITLE_FEATURES}), got {len(self.title_coef)}"
            )

    @classmethod
    def default(cls) -> Verifier:
        """The parameters shipped with the package (``dedup/verifier.json``)."""
        data = json.loads(resources.files("dedup").joinpath("verifier.json").read_text("utf-8"))
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verifier:
        """Build from ``{"features": [...], "coef": [...], "intercept": x}``.

        An optional ``"title_only": {"features": [...], "coef": [...], "intercept": x}``
        holds the title-only model.

        Raises:
            ConfigError: When a feature list does not match this version's.

        """
        names = tuple(data.get("features", ()))
        if names != FEATURES:
            raise ConfigError(f"verifier parameters are for features {names}, this version uses {FEATURES}")
        title = data.get("title_only")
        title_coef, title_intercept = None, 0.0
        if title is not None:
            title_names = tuple(title.get("features", ()))
            if title_names != TITLE_FEATURES:
                raise ConfigError(
                    f"title-only verifier parameters are for features {title_names}, this version uses {TITLE_FEATURES}"
                )
            title_coef, title_intercept = tuple(float(c) for c in title["coef"]), float(title["intercept"])
        return cls(
            tuple(float(c) for c in data["coef"]),
            float(data["intercept"]),
            str(data.get("source", "file")),
            title_coef,
            title_intercept,
        )

    def score(self, x: NDArray[np.float64]) -> float:
        """Probability-like score in [0, 1] of "same story" for a feature vector (:data:`FEATURES`)."""
        return _logistic(self.coef, self.intercept, x)

    def score_title(self, x: NDArray[np.float64]) -> float:
        """The score of a title-only pair from its :data:`TITLE_FEATURES` vector.

        Raises:
            ConfigError: When this verifier has no title-only model.

        """
        if self.title_coef is None:
            raise ConfigError("this verifier has no title-only model")
        return _logistic(self.title_coef, self.title_intercept, x)

    def pair_score(self, evidence: Evidence, a: EmbeddedArticle, b: EmbeddedArticle, *, max_date_gap_days: int = 7) -> float:
        """The model's score of a pair (no date veto): the title-only model for two titles, else the article model."""
        if self.title_coef is not None and both_titles(a, b):
            return self.score_title(title_features(evidence, a, b, max_date_gap_days=max_date_gap_days))
        return self.score(features(evidence, a, b, max_date_gap_days=max_date_gap_days))

    def decide(self, a: EmbeddedArticle, b: EmbeddedArticle, config: Config) -> Match:
        """Compare ``a`` (query) with ``b`` (candidate) and decide.

        Reports further apart than ``config.max_date_gap_days`` score 0. Otherwise an
        exact repeat (same cleaned title and text, :func:`identical`) scores 1.0, an
        article empty after cleaning 0, and every other pair the logistic model's score.
        """
        evidence = compare(a, b, config)
        too_far = evidence.date_gap_days is not None and evidence.date_gap_days > config.max_date_gap_days
        if too_far or not a.passages or not b.passages:  # an article empty after cleaning is never matched
            score = 0.0
        elif evidence.identical:  # an exact repeat, however short (its passages cannot align by margin)
            score = 1.0
        else:
            score = self.pair_score(evidence, a, b, max_date_gap_days=config.max_date_gap_days)
        return Match(
            id=b.id,
            score=score,
            is_duplicate=score >= config.threshold,
            evidence=evidence,
            title=b.article.title,
        )
