"""dedup: find reports of the same news story across outlets and languages.

The package, one subpackage per stage::

    dedup/
      types, errors, config, text, langdetect, io, _fs   records, errors, settings, cleaning, languages, readers, files
      embedding/    encoders, article vectors, default model, ONNX int8 / OpenVINO backends, centring, cache
      search/       vector index, the store, the time-sharded archive
      verify        the verifier: evidence and score of a pair (verifier.json;
                    its features in verify_features)
      clustering/   average linkage, calendar windows, batch clustering, the Ray engine
      detect/       Detector: check / add / cluster over a store
      serve/        shared by threads (one writer), HTTP service, JSONL stream
      browse/       stories of a store, views, the static HTML report, the web page
      cli/          the ``dedup`` command
      evaluation/   metrics, evaluation harness, hot-path benchmark, machine description

The dependency rule: a module imports its own layer and lower ones only::

    types/errors/config/text/io/_fs <- embedding <- search <- verify <- clustering <- detect
        <- serve / browse / cli

``evaluation`` is imported by ``cli`` only (``import dedup`` never loads it), and
``serve`` / ``browse`` never import ``cli``. ``tests/test_layout.py`` enforces both,
with the size limits (600 lines a module, 100 a function).

Examples:
    >>> from dedup import Article
    >>> Article(id="a1", title="Talks in Hanoi", date="2025-01").date.precision
    <DatePrecision.MONTH: 'month'>

    The short way (loads the default model, so not run here)::

        from dedup import Detector
        result = Detector.in_memory().self_deduplicate(records)   # dicts (JSONL records) or Articles
        result.selected       # one record per story, as given
        result.duplicates     # the others, each naming the record kept instead

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
from dedup.io import parse_record, read_articles
from dedup.search.archive import Archive
from dedup.search.store import Store
from dedup.types import (
    AddReport,
    Article,
    ClusterResult,
    DatePrecision,
    DeduplicationResult,
    Duplicate,
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
    "DeduplicationResult",
    "Detector",
    "Duplicate",
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
    "parse_record",
    "read_articles",
]
