"""Evidence of one story that survives independent writing: the verifier's pair features.

A translation aligns passage by passage; another outlet's report of the same event does
not, but it shares its lead, its names, its numbers and its dates, and its passages each
find a close match somewhere in the other article. Sentence shapes alone (a wire
template filled with other names and places) are no evidence: names and numbers that
differ in the passages that match best are evidence *against* (the conflict features).

Every feature is computed from the two :class:`~dedup.types.EmbeddedArticle` and their
:class:`~dedup.types.Evidence` only. A feature with nothing to measure (no names on one
side, no date) is NaN: the model learns what a missing value means instead of reading it
as "no overlap".
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dedup.text import extract_names, extract_numbers, name_key
from dedup.types import EmbeddedArticle, Evidence

__all__ = [
    "FEATURES",
    "MONOTONE",
    "Profile",
    "VectorMap",
    "char_overlap",
    "date_marks",
    "lead_vector",
    "mapped_similarity",
    "name_cover",
    "pair_features",
    "profile",
    "soft_match",
    "title_words",
]

#: Feature names, in the order of :func:`pair_features`.
FEATURES = (
    "article_similarity",
    "lead_weighted_similarity",
    "soft_match",
    "top_match",
    "lead_similarity",
    "title_similarity",
    "title_char_overlap",
    "aligned_fraction",
    "aligned_similarity",
    "aligned_margin",
    "name_match",
    "number_match",
    "date_match",
    "name_conflict",
    "number_conflict",
    "same_language",
    "length_ratio",
    "title_only",
    "title_words",
    "date_gap",
    "mapped_similarity",
)

#: The direction each feature may move the score: +1 never lowers it when the feature
#: grows, -1 never raises it, 0 free. The article cosine is +1: the verifier never
#: undoes what the retrieval cosine knows.
MONOTONE = {
    "article_similarity": 1,
    "lead_weighted_similarity": 1,
    "soft_match": 1,
    "top_match": 1,
    "lead_similarity": 1,
    "title_similarity": 1,
    "aligned_fraction": 1,
    "aligned_similarity": 1,
    "name_match": 1,
    "number_match": 1,
    "date_match": 1,
    "name_conflict": -1,
    "number_conflict": -1,
    "date_gap": -1,
    "mapped_similarity": 1,
}

#: Position decay of the lead-weighted article vector (passage i weighs ``LEAD_DECAY**i``).
LEAD_DECAY = 0.7
#: Typical distance of a pooled passage mean from its language mean (the shipped model):
#: how far the lead-weighted vector is moved along the centred article vector (see :func:`lead_vector`).
CENTRED_OFFSET = 0.234

_WORD = re.compile(r"\w+")

_MONTHS = {
    1: "january jan januar janvier enero janeiro gennaio styczen stycznia ocak yanvar yanvarya يناير",
    2: "february feb februar fevrier febrero fevereiro febbraio luty lutego subat fevral fevralya فبراير",
    3: "march mar marz maerz mars marzo marco marca mart marta مارس",
    4: "april apr avril abril aprile kwiecien kwietnia nisan aprel aprelya أبريل",
    5: "may mai mayo maio maggio maj maja mayis maya",
    6: "june jun juni juin junio junho giugno czerwiec czerwca haziran iyun iyunya يونيو",
    7: "july jul juli juillet julio julho luglio lipiec lipca temmuz iyul iyulya يوليو",
    8: "august aug aout agosto sierpien sierpnia agustos avgust avgusta أغسطس",
    9: "september sep sept septembre septiembre setembro settembre wrzesien wrzesnia eylul sentyabr sentyabrya سبتمبر",
    10: "october oct oktober octobre octubre outubro ottobre pazdziernik pazdziernika ekim oktyabr oktyabrya أكتوبر",
    11: "november nov novembre noviembre novembro listopad listopada kasim noyabr noyabrya نوفمبر",
    12: "december dec dezember decembre diciembre dezembro dicembre grudzien grudnia aralik dekabr dekabrya ديسمبر",
}
_MONTH = {word: month for month, words in _MONTHS.items() for word in words.split()}
_CJK_DATE = re.compile(r"(\d{1,2})月(\d{1,2})[日号]")
_YEAR = re.compile(r"(?<!\d)(19\d\d|20\d\d)(?!\d)")


def date_marks(text: str) -> frozenset[tuple[int, ...]]:
    """Day-and-month expressions in any of the listed languages, as ``(month, day)``, and years as ``(year,)``.

    Month words are matched after :func:`dedup.text.name_key` folding, so "января",
    "Januar" and "janvier" are all January.

    Examples:
        >>> sorted(date_marks("Le 12 janvier 2025")) == sorted(date_marks("12 января 2025 года"))
        True
        >>> sorted(date_marks("1月12日"))
        [(1, 12)]

    """
    words = [name_key(w) for w in _WORD.findall(text)]
    marks: set[tuple[int, ...]] = set()
    for i, word in enumerate(words):
        month = _MONTH.get(word)
        if month is None:
            continue
        for j in (i - 1, i + 1, i - 2):
            if 0 <= j < len(words) and words[j].isdigit() and 1 <= int(words[j]) <= 31:
                marks.add((month, int(words[j])))
                break
    marks.update((int(m), int(d)) for m, d in _CJK_DATE.findall(text) if 1 <= int(m) <= 12 and 1 <= int(d) <= 31)
    marks.update((int(y),) for y in _YEAR.findall(text))
    return frozenset(marks)


@dataclass(frozen=True)
class Profile:
    """What the features read from one article's passages, computed once per article.

    Attributes:
        names: Name keys of the whole article (:func:`dedup.text.name_key`).
        stems: Their 5-letter prefixes (names of 5 letters or more, letters only): inflected
            forms ("Putina", "Putin") share one; "Town12" and "Town15" do not.
        passage_names: Name keys per passage.
        numbers: Numbers of the whole article.
        passage_numbers: Numbers per passage.
        dates: :func:`date_marks` of the whole article.

    """

    names: frozenset[str]
    stems: frozenset[str]
    passage_names: tuple[frozenset[str], ...]
    numbers: frozenset[str]
    passage_numbers: tuple[frozenset[str], ...]
    dates: frozenset[tuple[int, ...]]


@functools.lru_cache(maxsize=8192)
def profile(passages: tuple[str, ...]) -> Profile:
    """The :class:`Profile` of an article's passages (cached: an article is compared with many)."""
    per_names = tuple(frozenset(name_key(n) for n in extract_names(p)) for p in passages)
    names = frozenset().union(*per_names) if per_names else frozenset()
    per_numbers = tuple(extract_numbers(p) for p in passages)
    text = "\n".join(passages)
    return Profile(
        names=names,
        stems=frozenset(n[:5] for n in names if len(n) >= 5 and n.isalpha()),
        passage_names=per_names,
        numbers=frozenset().union(*per_numbers) if per_numbers else frozenset(),
        passage_numbers=per_numbers,
        dates=date_marks(text),
    )


def _found(name: str, other: Profile) -> bool:
    return name in other.names or (len(name) >= 5 and name.isalpha() and name[:5] in other.stems)


def name_cover(names: frozenset[str], other: Profile) -> float:
    """Fraction of ``names`` found in ``other``: the same key, or the same 5-letter stem (inflections).

    NaN when ``names`` is empty.

    Examples:
        >>> other = profile(("Президент Путин встретился с Си Цзиньпином в Москве.",))
        >>> name_cover(frozenset({"putina", "moskva"}), other)
        1.0

    """
    if not names:
        return float("nan")
    return sum(_found(n, other) for n in names) / len(names)


def soft_match(sims: NDArray[np.float32]) -> tuple[float, float]:
    """Soft passage matching from a passage similarity matrix: (mean best match, mean of the top 3 best matches).

    Each passage of either article takes its best match in the other (not only mutual
    best pairs), and the two directions are averaged.

    Examples:
        >>> soft_match(np.array([[0.9, 0.1], [0.2, 0.5]], dtype=np.float32))
        (0.7, 0.7)

    """
    rows, cols = sims.max(axis=1), sims.max(axis=0)
    soft = 0.5 * (float(rows.mean()) + float(cols.mean()))
    top = 0.5 * (float(np.sort(rows)[-3:].mean()) + float(np.sort(cols)[-3:].mean()))
    return round(soft, 6), round(top, 6)


@dataclass(frozen=True, eq=False)
class VectorMap:
    """A learned low-rank map of one model's centred article vectors: ``v -> v + (v V) Uᵀ``.

    Fitted by ``benchmarks/fit_verifier.py`` (through :func:`benchmarks.learned_map.fit_map`)
    on the ratings of the SemEval tune pairs, so that the cosine of mapped vectors ranks
    independently written reports of one story above others. Its cosine is the
    ``mapped_similarity`` feature; it belongs to the vector space of the models it names
    (other models: the feature is NaN).

    Attributes:
        models: The encoder names whose article vectors it maps.
        u: ``(dim, rank)``.
        v: ``(dim, rank)``.
        fitted_on: Where it comes from, in words.

    """

    models: tuple[str, ...]
    u: NDArray[np.float64]
    v: NDArray[np.float64]
    fitted_on: str = ""

    def __post_init__(self) -> None:
        if self.u.ndim != 2 or self.u.shape != self.v.shape or not (np.isfinite(self.u).all() and np.isfinite(self.v).all()):
            raise ValueError(
                f"a vector map needs two finite (dim, rank) arrays of one shape, got {self.u.shape} and {self.v.shape}"
            )

    @property
    def dim(self) -> int:
        """The dimension of the vectors it maps."""
        return int(self.u.shape[0])

    def applies_to(self, model: str, dim: int) -> bool:
        """Whether vectors of ``model`` (of dimension ``dim``) are in its space."""
        return model in self.models and dim == self.dim

    def apply(self, vectors: NDArray[np.floating]) -> NDArray[np.float64]:
        """Rows of ``vectors`` mapped, each of unit length (a zero row stays zero)."""
        rows = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
        moved = rows + (rows @ self.v) @ self.u.T
        norms = np.linalg.norm(moved, axis=1, keepdims=True)
        out: NDArray[np.float64] = moved / np.where(norms > 0, norms, 1.0)
        return out


def lead_vector(item: EmbeddedArticle) -> NDArray[np.float32]:
    """A lead-weighted article vector, in the centred space of :attr:`EmbeddedArticle.vector`.

    Passage ``i`` weighs ``sqrt(len) * LEAD_DECAY**i`` (the lead tells the story; later
    passages add background). The weighted mean of the raw passage vectors differs
    from the plain mean by a vector that no language mean affects; adding it to the
    centred article vector scaled by :data:`CENTRED_OFFSET` approximates centring the
    weighted mean by the article's language mean.
    """
    vectors = item.passage_vectors
    lengths = np.sqrt(np.array([max(len(p), 1) for p in item.passages], dtype=np.float64))
    plain = _unit((vectors * lengths[:, None]).sum(axis=0))
    weights = lengths * LEAD_DECAY ** np.arange(len(lengths))
    decayed = _unit((vectors * weights[:, None]).sum(axis=0))
    return _unit(decayed - plain + CENTRED_OFFSET * item.vector.astype(np.float64)).astype(np.float32)


def _unit(v: NDArray[np.float64]) -> NDArray[np.float64]:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def mapped_similarity(vector_map: VectorMap | None, a: EmbeddedArticle, b: EmbeddedArticle) -> float:
    """The cosine of the two article vectors under ``vector_map`` (NaN without one)."""
    if vector_map is None:
        return float("nan")
    ma, mb = vector_map.apply(np.vstack([a.vector, b.vector]))
    return float(ma @ mb)


def _conflict(
    own: Profile,
    other: Profile,
    sims: NDArray[np.float32],
    per_own: tuple[frozenset[str], ...],
    per_other: tuple[frozenset[str], ...],
    *,
    names: bool,
) -> tuple[int, int]:
    """(conflicting, total) names or numbers in the better-matched half of ``own``'s passages.

    A name (number) of passage ``i`` conflicts when ``other`` lacks it *and* the passage
    of ``other`` that matches ``i`` best holds a name (number) that ``own`` lacks: another
    value in the same slot. A name the other side merely leaves out (or a German noun,
    capitalised) is no conflict.
    """
    best, match = sims.max(axis=1), sims.argmax(axis=1)
    order = np.argsort(-best)[: max(3, (len(best) + 1) // 2)]
    conflicting = total = 0
    for i in order:
        items, slot = per_own[int(i)], per_other[int(match[i])]
        total += len(items)
        if names:
            missing = sum(not _found(n, other) for n in items)
            clash = any(not _found(n, own) for n in slot)
        else:
            missing, clash = len(items - other.numbers), bool(slot - own.numbers)
        conflicting += missing if clash else 0
    return conflicting, total


def _rate(missing: int, total: int) -> float:
    return missing / total if total else float("nan")


def _overlap(a: frozenset[object], b: frozenset[object]) -> float:
    return len(a & b) / min(len(a), len(b)) if a and b else float("nan")


@functools.lru_cache(maxsize=65536)
def _grams(text: str, n: int) -> frozenset[str]:
    low = text.lower()
    return frozenset(low[i : i + n] for i in range(len(low) - n + 1))


def char_overlap(a: str, b: str, n: int = 3) -> float:
    """Jaccard overlap of the character ``n``-grams of two lowercased texts (0 when either is empty).

    Examples:
        >>> round(char_overlap("Osaka wins", "Osaka loses"), 2)
        0.31

    """
    grams_a, grams_b = _grams(a, n), _grams(b, n)
    if not grams_a or not grams_b:
        return 0.0
    return len(grams_a & grams_b) / len(grams_a | grams_b)


def title_words(text: str) -> int:
    """Number of words (runs of letters and digits) in a title.

    Examples:
        >>> title_words("Osaka wins, 6-3 | Sports")
        5

    """
    return len(_WORD.findall(text))


def _title(item: EmbeddedArticle) -> str:
    return item.article.title or (item.passages[0] if item.passages else "")


def _title_similarity(a: EmbeddedArticle, b: EmbeddedArticle) -> float:
    if a.article.title.strip() and b.article.title.strip():
        return float(a.passage_vectors[0] @ b.passage_vectors[0])
    return float(a.vector @ b.vector)


def _lead_similarity(a: EmbeddedArticle, b: EmbeddedArticle) -> float:
    return float(_unit(a.passage_vectors[:3].sum(axis=0)) @ _unit(b.passage_vectors[:3].sum(axis=0)))


def pair_features(
    evidence: Evidence,
    a: EmbeddedArticle,
    b: EmbeddedArticle,
    *,
    max_date_gap_days: int = 7,
    vector_map: VectorMap | None = None,
) -> NDArray[np.float64]:
    """The feature vector of a pair, in the order of :data:`FEATURES` (both articles must have passages).

    ``date_gap`` is the gap in days over ``max_date_gap_days`` (NaN when a date is unknown);
    ``mapped_similarity`` the cosine of the article vectors under ``vector_map`` (NaN without one).
    """
    sims = a.passage_vectors @ b.passage_vectors.T
    soft, top = soft_match(sims)
    pa, pb = profile(a.passages), profile(b.passages)
    if pa.names and pb.names:  # a script without capitals (Chinese, Arabic) shows no names: nothing to compare
        name_match = 0.5 * (name_cover(pa.names, pb) + name_cover(pb.names, pa))
        name_conflicts = np.add(
            _conflict(pa, pb, sims, pa.passage_names, pb.passage_names, names=True),
            _conflict(pb, pa, sims.T, pb.passage_names, pa.passage_names, names=True),
        )
    else:
        name_match, name_conflicts = float("nan"), np.zeros(2, dtype=np.int64)
    number_conflicts = np.add(
        _conflict(pa, pb, sims, pa.passage_numbers, pb.passage_numbers, names=False),
        _conflict(pb, pa, sims.T, pb.passage_numbers, pa.passage_numbers, names=False),
    )
    aligned = evidence.aligned
    gap = evidence.date_gap_days
    lang_a, lang_b = a.article.lang, b.article.lang
    return np.array(
        [
            evidence.article_similarity,
            float(lead_vector(a) @ lead_vector(b)),
            soft,
            top,
            _lead_similarity(a, b),
            _title_similarity(a, b),
            char_overlap(_title(a), _title(b)),
            evidence.aligned_fraction,
            float(np.mean([p.similarity for p in aligned])) if aligned else 0.0,
            float(np.mean([p.margin for p in aligned])) if aligned else 0.0,
            name_match,
            _overlap(pa.numbers, pb.numbers),
            _overlap(pa.dates, pb.dates),
            _rate(int(name_conflicts[0]), int(name_conflicts[1])),
            _rate(int(number_conflicts[0]), int(number_conflicts[1])),
            float(lang_a is not None and lang_a == lang_b),
            evidence.length_ratio,
            float(min(len(a.passages), len(b.passages)) <= 1),
            min(title_words(_title(a)), title_words(_title(b)), 30) / 10.0,
            min(gap, max_date_gap_days) / max(max_date_gap_days, 1) if gap is not None else float("nan"),
            mapped_similarity(vector_map, a, b),
        ],
        dtype=np.float64,
    )
