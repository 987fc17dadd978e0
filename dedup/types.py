"""Frozen result and record types shared by every stage of the pipeline.

Everything here is plain data: no I/O, no model. Results carry their evidence so a
caller can always answer "why are these two articles the same story?".
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from dedup.text import extract_names, extract_numbers

__all__ = [
    "EARLIEST_DATE",
    "KNOWN_FIELDS",
    "LATEST_DATE",
    "AddReport",
    "Article",
    "ClusterResult",
    "DatePrecision",
    "EmbeddedArticle",
    "Evidence",
    "Match",
    "PartialDate",
    "PassagePair",
    "Story",
    "Verdict",
]

#: The range of dates the readers and the service accept (:func:`dedup.io.parse_record`).
#: News is dated within it; a date outside it is a typo or a placeholder (``9999-12``).
#: Stored dates are not checked against it: :class:`PartialDate` itself takes any date
#: Python's calendar holds (years 1 to 9999), and all its arithmetic works on all of them.
EARLIEST_DATE: Final = dt.date(1900, 1, 1)
LATEST_DATE: Final = dt.date(2100, 12, 31)

#: The fields an :class:`Article` reads from a record; any other field goes to ``Article.extra``.
KNOWN_FIELDS: Final = ("id", "title", "text", "date", "lang", "source", "url")

# ASCII digits only: \d would also take fullwidth or Arabic-Indic digits, which int() reads.
_DATE_RE = re.compile(r"([0-9]{4})(?:-([0-9]{1,2})(?:-([0-9]{1,2}))?)?")
# The time of an ISO datetime after its day: hh:mm[:ss[.fraction]], then Z or an hh:mm offset.
_TIME_RE = re.compile(r"[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]{1,6})?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?")


class DatePrecision(StrEnum):
    """How much of a date is known."""

    YEAR = "year"
    MONTH = "month"
    DAY = "day"


@dataclass(frozen=True)
class PartialDate:
    """A calendar date that may be known only to the month or the year.

    A partial date is never completed with an invented day: ``2025-01`` stays a month.
    Gaps between partial dates are the smallest gap the two periods allow.

    Examples:
        >>> d = PartialDate.parse("2025-01")
        >>> d.precision, str(d)
        (<DatePrecision.MONTH: 'month'>, '2025-01')
        >>> d.gap_days(PartialDate.parse("2025-01-12"))
        0
        >>> PartialDate.parse("2025-01-12").gap_days(PartialDate.parse("2025-01-20"))
        8

    """

    year: int
    month: int | None = None
    day: int | None = None

    def __post_init__(self) -> None:
        if self.day is not None and self.month is None:
            raise ValueError("a date with a day must have a month")
        # Validates the calendar (raises ValueError on 2025-02-30, month 13, ...).
        dt.date(self.year, self.month or 1, self.day or 1)

    @classmethod
    def parse(cls, value: str) -> PartialDate:
        """Parse ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` (an ISO datetime keeps its date part).

        Digits are ASCII. A datetime's time must be a valid ISO time (``T08:30``,
        `` 08:30:00.5+02:00``, ``T23:59:59Z``); nothing may follow it. Any year from 1 to
        9999 parses: the input range (:data:`EARLIEST_DATE` to :data:`LATEST_DATE`) is
        checked by the readers, not here, so dates already stored always read back.

        Raises:
            ValueError: If ``value`` is not such a date.

        """
        text = value.strip()
        time = ""
        if len(text) > 10 and text[10] in "T ":
            text, time = text[:10], text[10:]
        m = _DATE_RE.fullmatch(text)
        if m is None or (time and not _valid_time(text, time)):
            raise ValueError(f"not a date of the form YYYY, YYYY-MM or YYYY-MM-DD: {value!r}")
        year, month, day = m.groups()
        try:
            return cls(int(year), int(month) if month else None, int(day) if day else None)
        except ValueError as exc:
            raise ValueError(f"not a valid calendar date: {value!r} ({exc})") from None

    def in_range(self) -> bool:
        """Whether every day this date can denote lies in the input range.

        The range is :data:`EARLIEST_DATE` to :data:`LATEST_DATE`.
        """
        first, last = self.bounds()
        return first >= EARLIEST_DATE and last <= LATEST_DATE

    @property
    def precision(self) -> DatePrecision:
        """The finest known unit."""
        if self.day is not None:
            return DatePrecision.DAY
        if self.month is not None:
            return DatePrecision.MONTH
        return DatePrecision.YEAR

    def bounds(self) -> tuple[dt.date, dt.date]:
        """First and last calendar day this date can denote."""
        if self.day is not None and self.month is not None:
            d = dt.date(self.year, self.month, self.day)
            return d, d
        if self.month is not None:  # the month's own last day: no step into the next month (9999-12 has none)
            last = calendar.monthrange(self.year, self.month)[1]
            return dt.date(self.year, self.month, 1), dt.date(self.year, self.month, last)
        return dt.date(self.year, 1, 1), dt.date(self.year, 12, 31)

    def __lt__(self, other: PartialDate) -> bool:
        """Order by the first day, then the last day, of each period."""
        return self.bounds() < other.bounds()

    def gap_days(self, other: PartialDate) -> int:
        """Smallest number of days between the two periods (0 when they overlap)."""
        a0, a1 = self.bounds()
        b0, b1 = other.bounds()
        if a1 < b0:
            return (b0 - a1).days
        if b1 < a0:
            return (a0 - b1).days
        return 0

    def __str__(self) -> str:
        if self.month is None:
            return f"{self.year:04d}"
        if self.day is None:
            return f"{self.year:04d}-{self.month:02d}"
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"


def _valid_time(day: str, time: str) -> bool:
    """Whether ``time`` (with its leading ``T`` or space) is a valid ISO time of ``day``."""
    if _TIME_RE.fullmatch(time) is None:
        return False
    try:
        dt.datetime.fromisoformat(day + time.replace("Z", "+00:00").replace(",", "."))
    except ValueError:  # hour 25, minute 99, offset +25:00, ...
        return False
    return True


def _freeze(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Article:
    """One news article as read from the input. ``text`` is kept exactly as given.

    Attributes:
        id: Unique identifier within a feed or store.
        title: Headline (may be empty).
        text: Body, untouched by cleaning (may be empty for title-only feeds).
        date: Publication date with its precision, or None when unknown.
        lang: ISO 639-1 code, given or detected; None when unknown.
        source: Outlet or feed name.
        url: Link to the original.
        extra: Unknown input fields, kept and written back unchanged.

    """

    id: str
    title: str = ""
    text: str = ""
    date: PartialDate | None = None
    lang: str | None = None
    source: str | None = None
    url: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", _freeze(self.extra))

    def __reduce__(self) -> tuple[type[Article], tuple[Any, ...]]:
        # A read-only mapping does not pickle; rebuild through the constructor (which freezes it again).
        return (Article, (self.id, self.title, self.text, self.date, self.lang, self.source, self.url, dict(self.extra)))

    @property
    def content_hash(self) -> str:
        """SHA-256 of what decides identity: title, text, date and language."""
        payload = json.dumps(
            [self.title, self.text, str(self.date) if self.date else None, self.lang],
            ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def to_record(self) -> dict[str, Any]:
        """The article as plain data: the known fields, then ``extra`` as one nested object.

        This is the form the store writes (``article`` in a segment's ``articles.jsonl``);
        :meth:`from_record` reads it back.

        Examples:
            >>> a = Article(id="a1", title="Talks", date=PartialDate.parse("2025-01"), extra={"feed": "x"})
            >>> a.to_record()["extra"], Article.from_record(a.to_record()) == a
            ({'feed': 'x'}, True)

        """
        return {
            "id": self.id,
            "title": self.title,
            "text": self.text,
            "date": str(self.date) if self.date else None,
            "lang": self.lang,
            "source": self.source,
            "url": self.url,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Article:
        """The article :meth:`to_record` wrote (missing or null text fields read as empty).

        The date is parsed but not checked against the input range (:meth:`PartialDate.in_range`),
        so a date stored by any version reads back; the readers check the range of new input.

        Raises:
            KeyError: ``record`` has no ``id``.
            ValueError: ``record`` holds a date that does not parse.

        """
        date = record.get("date")
        return cls(
            id=record["id"],
            title=record.get("title") or "",
            text=record.get("text") or "",
            date=PartialDate.parse(date) if date else None,
            lang=record.get("lang"),
            source=record.get("source"),
            url=record.get("url"),
            extra=record.get("extra") or {},
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the known fields first, then the extra ones (flattened, as read)."""
        out = self.to_record()
        for key, value in out.pop("extra").items():
            out.setdefault(key, value)
        return out


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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
    def duplicates(self) -> tuple[Match, ...]:
        """The matches that are duplicates."""
        return tuple(m for m in self.matches if m.is_duplicate)

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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True, eq=False)
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

    @functools.cached_property
    def numbers(self) -> frozenset[str]:
        """Numbers in the cleaned passages (computed once)."""
        return extract_numbers("\n".join(self.passages))

    @functools.cached_property
    def names(self) -> frozenset[str]:
        """Names and acronyms in the cleaned passages (computed once)."""
        return extract_names("\n".join(self.passages))


@dataclass(frozen=True)
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
