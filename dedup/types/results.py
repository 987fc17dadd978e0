"""What the stages return: verdicts with their evidence, stories, clusterings, add reports.

Each result is frozen, has ``to_dict`` (JSON-ready) and a short ``repr`` (its evidence summed
up in one line, under 200 characters).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dedup.text import extract_names, extract_numbers
from dedup.types.dates import PartialDate
from dedup.types.records import Article
from dedup.types.records import short_repr as _short

__all__ = [
    "AddReport",
    "ClusterResult",
    "DeduplicationResult",
    "Duplicate",
    "EmbeddedArticle",
    "Evidence",
    "Match",
    "PassagePair",
    "Record",
    "Story",
    "Verdict",
]

#: An input item as the Python API takes it: an :class:`Article`, or a JSONL record (a dict
#: with ``id`` and the other fields, read by :func:`dedup.io.parse_record`).
Record = Article | Mapping[str, Any]


@dataclass(frozen=True, repr=False)
class PassagePair:
    """Two passages, one from each article, that align (mutual best match).

    Attributes:
        a: Index of the passage in the first (query) article.
        b: Index of the passage in the second (stored) article.
        a_text: The cleaned passage text in the first article.
        b_text: The cleaned passage text in the second article.
        similarity: Cosine similarity of the two passage vectors.
        margin: Similarity minus the mean of the runner-up similarities of both passages.

    """

    a: int
    b: int
    a_text: str
    b_text: str
    similarity: float
    margin: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"a", "b", "similarity", "margin", "a_text", "b_text"}``."""
        return {
            "a": self.a,
            "b": self.b,
            "similarity": round(self.similarity, 4),
            "margin": round(self.margin, 4),
            "a_text": self.a_text,
            "b_text": self.b_text,
        }

    def __repr__(self) -> str:
        return f"PassagePair(a={self.a}, b={self.b}, similarity={self.similarity:.3f}, a_text={_short(self.a_text, 30)})"


@dataclass(frozen=True, repr=False)
class Evidence:
    """What the verifier looked at when deciding on a pair of articles.

    Attributes:
        article_similarity: Cosine of the two article vectors.
        aligned: Passage pairs that align, best first.
        aligned_fraction: Aligned passages over the passages of the shorter article.
        date_gap_days: Smallest possible gap between the dates; None if a date is unknown.
        shared_numbers: Numbers found in both articles.
        shared_names: Names (capitalised words, acronyms) found in both articles.
        lang_pair: Languages of the first and second article.
        length_ratio: Shorter cleaned length over longer cleaned length.
        identical: Both articles have the same cleaned title and text (an exact repeat,
            scored 1.0 whatever its length).

    """

    article_similarity: float
    aligned: tuple[PassagePair, ...]
    aligned_fraction: float
    date_gap_days: int | None
    shared_numbers: tuple[str, ...]
    shared_names: tuple[str, ...]
    lang_pair: tuple[str | None, str | None]
    length_ratio: float
    identical: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the fields, with ``aligned`` as a list of :meth:`PassagePair.to_dict`."""
        return {
            "article_similarity": round(self.article_similarity, 4),
            "aligned_fraction": round(self.aligned_fraction, 4),
            "date_gap_days": self.date_gap_days,
            "identical": self.identical,
            "lang_pair": list(self.lang_pair),
            "length_ratio": round(self.length_ratio, 4),
            "shared_numbers": list(self.shared_numbers),
            "shared_names": list(self.shared_names),
            "aligned": [p.to_dict() for p in self.aligned],
        }

    def __repr__(self) -> str:
        gap = "?" if self.date_gap_days is None else self.date_gap_days
        return (
            f"Evidence(cosine={self.article_similarity:.3f}, aligned={len(self.aligned)} "
            f"({self.aligned_fraction:.0%}), date_gap_days={gap}, names={len(self.shared_names)}, "
            f"numbers={len(self.shared_numbers)})"
        )


@dataclass(frozen=True, repr=False)
class Match:
    """A stored article compared with a query article.

    Attributes:
        id: The stored article's id.
        score: Probability-like score in [0, 1] that both report the same story.
        is_duplicate: Whether ``score`` reached the decision threshold.
        evidence: Everything the decision used.
        title: The stored article's title, for display.

    """

    id: str
    score: float
    is_duplicate: bool
    evidence: Evidence
    title: str = ""

    @property
    def duplicate(self) -> bool:
        """Whether this stored article is a duplicate of the query (``is_duplicate``)."""
        return self.is_duplicate

    def __bool__(self) -> bool:
        raise TypeError("a Match has no truth value: test match.duplicate (is the stored article a duplicate?)")

    def __repr__(self) -> str:
        return f"Match(id={_short(self.id)}, score={self.score:.3f}, duplicate={self.is_duplicate}, {self.evidence!r})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: id, score, decision, title and the evidence, flattened.

        ``aligned`` lists the aligned passage pairs: ``a`` and ``b`` index the passages of
        the query and the stored article (title first, see :func:`dedup.embedding.embed.article_passages`).
        """
        ev = self.evidence
        return {
            "id": self.id,
            "score": round(self.score, 4),
            "duplicate": self.is_duplicate,
            "title": self.title,
            "article_similarity": round(ev.article_similarity, 4),
            "aligned_fraction": round(ev.aligned_fraction, 4),
            "date_gap_days": ev.date_gap_days,
            "identical": ev.identical,
            "lang_pair": list(ev.lang_pair),
            "shared_numbers": list(ev.shared_numbers),
            "shared_names": list(ev.shared_names),
            "aligned": [
                {"a": p.a, "b": p.b, "similarity": round(p.similarity, 4), "a_text": p.a_text, "b_text": p.b_text}
                for p in ev.aligned
            ],
        }


@dataclass(frozen=True, repr=False)
class Verdict:
    """The answer to "is this article a duplicate of one already seen?".

    Attributes:
        id: The query article's id.
        is_duplicate: True when at least one match is a duplicate.
        matches: Duplicates first, then near misses, each sorted by score.
        candidates_truncated: True when retrieval stopped at its ``k`` limit and the
            least similar candidate retrieved was still a duplicate, so more duplicates
            may lie beyond ``k`` (raise ``Config.candidates``).
        shards: The archive shards that were searched (``"2025-01"``, ``"undated"``, ...),
            in order; empty for a check against a single store.

    """

    id: str
    is_duplicate: bool
    matches: tuple[Match, ...]
    candidates_truncated: bool = False
    shards: tuple[str, ...] = ()

    @property
    def duplicate(self) -> bool:
        """Whether the article is a duplicate of a stored one (``is_duplicate``; ``"duplicate"`` in :meth:`to_dict`)."""
        return self.is_duplicate

    @property
    def duplicates(self) -> tuple[Match, ...]:
        """The matches that are duplicates."""
        return tuple(m for m in self.matches if m.is_duplicate)

    def __bool__(self) -> bool:
        # A verdict is an answer with evidence, not a yes/no: `if verdict:` would be True for NEW too.
        raise TypeError("a Verdict has no truth value: test verdict.duplicate (is the article a duplicate?)")

    def __repr__(self) -> str:
        best = f", best={_short(self.matches[0].id, 30)} {self.matches[0].score:.3f}" if self.matches else ""
        cut = ", candidates_truncated=True" if self.candidates_truncated else ""
        return f"Verdict(id={_short(self.id)}, duplicate={self.is_duplicate}, matches={len(self.matches)}{best}{cut})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"id", "duplicate", "matches": [{"id", "score", ...}]}``.

        An archive check adds ``"shards"``, the shards it searched.
        """
        out: dict[str, Any] = {
            "id": self.id,
            "duplicate": self.is_duplicate,
            "candidates_truncated": self.candidates_truncated,
            "matches": [m.to_dict() for m in self.matches],
        }
        if self.shards:
            out["shards"] = list(self.shards)
        return out


@dataclass(frozen=True, repr=False)
class Story:
    """A cluster of articles that report the same story.

    Attributes:
        id: Story label, stable for a given input (the smallest member id's rank).
        article_ids: Member ids in input order.
        langs: Distinct languages of the members, sorted.
        first_date: Earliest known member date.
        last_date: Latest known member date.
        titles: Member titles, in the order of ``article_ids``.

    """

    id: str
    article_ids: tuple[str, ...]
    langs: tuple[str, ...]
    first_date: PartialDate | None
    last_date: PartialDate | None
    titles: tuple[str, ...]

    @property
    def size(self) -> int:
        """Number of member articles."""
        return len(self.article_ids)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"id", "article_ids", "langs", "first_date", "last_date", "titles"}``."""
        return {
            "id": self.id,
            "article_ids": list(self.article_ids),
            "langs": list(self.langs),
            "first_date": str(self.first_date) if self.first_date else None,
            "last_date": str(self.last_date) if self.last_date else None,
            "titles": list(self.titles),
        }

    def __repr__(self) -> str:
        dates = f", dates={self.first_date}..{self.last_date}" if self.first_date else ""
        first = f", first={_short(self.titles[0], 40)}" if self.titles else ""
        return f"Story(id={self.id!r}, size={self.size}, langs={','.join(self.langs) or '?'}{dates}{first})"


@dataclass(frozen=True, repr=False)
class AddReport:
    """What an add did.

    Attributes:
        added: Ids newly stored.
        unchanged: Ids already stored with the same content (no-ops).
        replaced: Ids whose stored content was replaced (only with ``replace=True``).
        skipped: Ids not stored because they are empty after cleaning (only boilerplate).

    """

    added: tuple[str, ...]
    unchanged: tuple[str, ...]
    replaced: tuple[str, ...]
    skipped: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"added", "unchanged", "replaced", "skipped"}``, each a list of ids."""
        return {k: list(getattr(self, k)) for k in ("added", "unchanged", "replaced", "skipped")}

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={len(getattr(self, k))}" for k in ("added", "unchanged", "replaced", "skipped"))
        return f"AddReport({counts})"


@dataclass(frozen=True, eq=False, repr=False)
class EmbeddedArticle:
    """An article with its cleaned passages and their vectors.

    Attributes:
        article: The article as read (original text untouched).
        passages: Cleaned passages; the title, when present, is the first.
        passage_vectors: One unit vector per passage, shape ``(len(passages), dim)``.
        vector: The article vector: unit length, length-weighted mean of the passages.

    """

    article: Article
    passages: tuple[str, ...]
    passage_vectors: NDArray[np.float32]
    vector: NDArray[np.float32]

    @property
    def id(self) -> str:
        """The article's id."""
        return self.article.id

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the article (:meth:`Article.to_dict`) and its passages; no vectors."""
        return {"article": self.article.to_dict(), "passages": list(self.passages), "dim": int(self.vector.shape[-1])}

    def __repr__(self) -> str:
        return f"EmbeddedArticle(id={_short(self.id)}, passages={len(self.passages)}, dim={self.vector.shape[-1]})"

    @functools.cached_property
    def numbers(self) -> frozenset[str]:
        """Numbers in the cleaned passages (computed once per passages: an exact repeat reuses its original's)."""
        return _numbers_of(self.passages)

    @functools.cached_property
    def names(self) -> frozenset[str]:
        """Names and acronyms in the cleaned passages (computed once per passages, as :attr:`numbers`)."""
        return _names_of(self.passages)


@functools.lru_cache(maxsize=4096)
def _numbers_of(passages: tuple[str, ...]) -> frozenset[str]:
    return extract_numbers("\n".join(passages))


@functools.lru_cache(maxsize=4096)
def _names_of(passages: tuple[str, ...]) -> frozenset[str]:
    return extract_names("\n".join(passages))


@dataclass(frozen=True, repr=False)
class ClusterResult:
    """Stories of a batch, and the story label of every article.

    Attributes:
        stories: Stories, numbered by first appearance in the input.
        labels: Article id -> story id.
        edges: Verified duplicate pairs ``(id_a, id_b, score)`` the clustering started from.

    """

    stories: tuple[Story, ...]
    labels: dict[str, str]
    edges: tuple[tuple[str, str, float], ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as ``POST /cluster`` answers: ``{"stories", "labels", "edges": [{"a", "b", "score"}]}``."""
        return {
            "stories": [s.to_dict() for s in self.stories],
            "labels": dict(self.labels),
            "edges": [{"a": a, "b": b, "score": round(score, 4)} for a, b, score in self.edges],
        }

    def __repr__(self) -> str:
        several = sum(1 for s in self.stories if s.size > 1)
        stories = f"stories={len(self.stories)} ({several} of several)"
        return f"ClusterResult(articles={len(self.labels)}, {stories}, edges={len(self.edges)})"


def record_dict(record: Record) -> dict[str, Any]:
    """A record as plain data: an article's :meth:`Article.to_dict`, a mapping copied."""
    return record.to_dict() if isinstance(record, Article) else dict(record)


@dataclass(frozen=True, repr=False)
class Duplicate:
    """An input record left out by a deduplication: another record of its story was kept.

    Attributes:
        record: The record, as given (an :class:`Article` or a dict).
        id: Its id (normalised: an integer id is its decimal string).
        story: Its story's id.
        kept: The id of the record kept for that story (its representative).

    """

    record: Record
    id: str
    story: str
    kept: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"id", "story", "kept", "record"}``."""
        return {"id": self.id, "story": self.story, "kept": self.kept, "record": record_dict(self.record)}

    def __repr__(self) -> str:
        return f"Duplicate(id={_short(self.id)}, story={self.story!r}, kept={_short(self.kept)})"


@dataclass(frozen=True, repr=False)
class DeduplicationResult:
    """The records of a batch deduplicated: one representative per story (``Detector.self_deduplicate``).

    Attributes:
        selected: The records kept, in input order: the first record of each story.
        duplicates: The records left out, in input order, each naming the record kept instead.
        stories: Every story, with its members in input order.
        clustering: The clustering the stories came from (labels and verified pairs).

    """

    selected: tuple[Record, ...]
    duplicates: tuple[Duplicate, ...]
    stories: tuple[Story, ...]
    clustering: ClusterResult

    @property
    def duplicate_ratio(self) -> float:
        """The share of records left out (0.0 for an empty batch)."""
        total = len(self.selected) + len(self.duplicates)
        return len(self.duplicates) / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"selected": [records], "duplicates": [...], "stories": [...], "duplicate_ratio"}``."""
        return {
            "selected": [record_dict(r) for r in self.selected],
            "duplicates": [d.to_dict() for d in self.duplicates],
            "stories": [s.to_dict() for s in self.stories],
            "duplicate_ratio": round(self.duplicate_ratio, 4),
        }

    def __repr__(self) -> str:
        return (
            f"DeduplicationResult(selected={len(self.selected)}, duplicates={len(self.duplicates)}, "
            f"stories={len(self.stories)}, duplicate_ratio={self.duplicate_ratio:.2f})"
        )
