"""Frozen result and record types shared by every stage of the pipeline.

Everything here is plain data: no I/O, no model. Results carry their evidence so a
caller can always answer "why are these two articles the same story?".

* :mod:`dedup.types.dates`: :class:`PartialDate`, a date known to the day, month or year;
* :mod:`dedup.types.records`: :class:`Article`, the input record, checked when built;
* :mod:`dedup.types.results`: what the stages return (:class:`Verdict`, :class:`Story`,
  :class:`ClusterResult`, :class:`DeduplicationResult`, ...), each with ``to_dict`` and a
  short ``repr``.
"""

from __future__ import annotations

from dedup.types.dates import EARLIEST_DATE, LATEST_DATE, DatePrecision, PartialDate
from dedup.types.records import KNOWN_FIELDS, Article
from dedup.types.results import (
    AddReport,
    ClusterResult,
    DeduplicationResult,
    Duplicate,
    EmbeddedArticle,
    Evidence,
    Match,
    PassagePair,
    Record,
    Story,
    Verdict,
)

__all__ = [
    "EARLIEST_DATE",
    "KNOWN_FIELDS",
    "LATEST_DATE",
    "AddReport",
    "Article",
    "ClusterResult",
    "DatePrecision",
    "DeduplicationResult",
    "Duplicate",
    "EmbeddedArticle",
    "Evidence",
    "Match",
    "PartialDate",
    "PassagePair",
    "Record",
    "Story",
    "Verdict",
]
