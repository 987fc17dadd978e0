"""dedup: find reports of the same news story across outlets and languages.

The pipeline, one module per stage::

    io (read) -> text (clean, split) -> embed -> index/store (retrieve) -> verify (decide)
              -> detector (check / add / cluster) -> cli
    detector -> archive (time-sharded: one store per month, checks search the date's window)
    detector -> serving (shared by threads: one writer, readers on a consistent store)
             -> service (HTTP, ``dedup serve``) / stream (JSONL, ``dedup stream``)

Examples:
    >>> from dedup import Article, PartialDate
    >>> Article(id="a1", title="Talks in Hanoi", date=PartialDate.parse("2025-01")).date.precision
    <DatePrecision.MONTH: 'month'>

"""

from __future__ import annotations

from dedup.config import Config
from dedup.detect.archive import ArchiveDetector
from dedup.detect.detector import Detector
from dedup.embedding.embed import Encoder, load_encoder
from dedup.errors import (
    ConfigError,
    DedupError,
    DuplicateIdError,
    IdConflictError,
    InputError,
    ModelError,
    OptionalDependencyError,
    StoreCorruptError,
    StoreError,
    StoreMismatchError,
    StoreNotFoundError,
)
from dedup.io import read_articles
from dedup.search.archive import Archive
from dedup.search.store import Store
from dedup.types import (
    AddReport,
    Article,
    ClusterResult,
    DatePrecision,
    EmbeddedArticle,
    Evidence,
    Match,
    PartialDate,
    PassagePair,
    Story,
    Verdict,
)

__version__ = "0.2.0"

__all__ = [
    "AddReport",
    "Archive",
    "ArchiveDetector",
    "Article",
    "ClusterResult",
    "Config",
    "ConfigError",
    "DatePrecision",
    "DedupError",
    "Detector",
    "DuplicateIdError",
    "EmbeddedArticle",
    "Encoder",
    "Evidence",
    "IdConflictError",
    "InputError",
    "Match",
    "ModelError",
    "OptionalDependencyError",
    "PartialDate",
    "PassagePair",
    "Store",
    "StoreCorruptError",
    "StoreError",
    "StoreMismatchError",
    "StoreNotFoundError",
    "Story",
    "Verdict",
    "__version__",
    "load_encoder",
    "read_articles",
]
