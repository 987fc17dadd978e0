"""A detector shared by many threads: the concurrency model of the service, and its metrics.

No web framework here; :mod:`dedup.serve.http` puts HTTP in front of it. What is served, a
store or a time-sharded archive, is a :mod:`dedup.serve.backends` backend; the model below
holds for both (for an archive, "the store's file lock" is the archive's writer lock, held
across every shard, and "the manifest" is every shard's manifest).

The model:

* **One writer at a time.** Adds (and check-and-adds) of this process go through one
  writer lock, then the store's file lock, which also serialises them with writers in
  other processes (another ``dedup serve``, ``dedup stream`` or ``dedup add`` on the same
  store). Before checking and committing, the writer moves to the latest commit, so a
  check-and-add is linearisable: of two check-and-adds of the same story, the second is
  told it duplicates the first, whichever process made the first.
* **Readers on a consistent state.** Checks, gets, stories and clusters run concurrently
  under a shared lock; a commit takes the lock exclusively for its own short duration (it
  writes files; embedding happens before, outside every lock), so a reader sees the store
  before or after a commit, never half of one. Commits of other processes are picked up
  before the next read (the manifest is watched with one ``stat``).
* **Embedding** runs outside the store locks, one batch at a time (tokenizers are not safe
  to share between threads, and the CPU is the limit anyway).
* **Stories of the whole store** (the story browser) are clustered on demand and kept
  until the next commit (:meth:`SharedDetector.stories`). The clustering works on a
  snapshot of the stored vectors taken under the shared lock, and runs outside it, so
  checks and adds go on meanwhile; one clustering runs at a time, and requests that
  arrive during it wait for it and share its result.
* **Read-only replicas** (``read_only``) refuse every write (:class:`ReadOnlyError`; the
  service answers 403 before reading the body), take no lock, and pick up the writer's
  commits before each read, as above.
* **Same article twice.** Re-adding an id with the same content is a no-op in the store
  (under its lock), so two workers adding one article at the same moment leave one copy;
  with other content the second is refused (:class:`DuplicateIdError`) unless it asks to
  replace.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dedup.browse.stories import StoryBook
from dedup.config import Config
from dedup.detect.archive import ArchiveDetector
from dedup.detect.detector import Detector
from dedup.embedding.embed import Encoder
from dedup.errors import ConfigError, DuplicateIdError, InputError, StoreError
from dedup.serve.backends import Backend, backend_of, conflict
from dedup.types import AddReport, Article, ClusterResult, EmbeddedArticle, Match, Story, Verdict

__all__ = [
    "CheckAddResult",
    "LatencyStats",
    "Metrics",
    "ReadOnlyError",
    "ReadWriteLock",
    "ServiceLimits",
    "SharedDetector",
    "check_batch",
]


class ReadOnlyError(StoreError):
    """A write was asked of a service that serves its store or archive read-only (a replica)."""


@dataclass(frozen=True)
class ServiceLimits:
    """What one request, and one connection, may ask of the service. Beyond them: a clear 4xx or 503, never a crash.

    Attributes:
        max_body_bytes: Largest request body (413 beyond).
        max_batch: Most articles in one request (413 beyond).
        max_top: Largest ``top`` (near misses listed per article; 422 beyond).
        max_request_chars: Most characters (titles and texts together) one request may ask to
            embed, on ``/check``, ``/add``, ``/check-and-add`` and ``/cluster`` (413 beyond).
            Embedding runs one request at a time, so this bounds how long one request can hold
            the others up: 167,000 characters took 7.7 s on 2 cores with the default model,
            so the default (about 60 articles of 4,000 characters) is some 10 s. Split larger
            batches; an article longer than this can only be stored with ``dedup add``.
        max_in_flight: Most requests in flight at once (reading their body, waiting or
            running); beyond it a 503 with ``Retry-After``. Idle connections do not count, and
            ``/health`` is never refused. None: no limit.
        keep_alive_s: A connection idle this many seconds between requests is closed.
        read_timeout_s: Seconds a client has to send a request's head (from connecting, or
            from its first byte), and again its body; slower clients get a 408 and are closed,
            so idle or trickling sockets cannot hold the server's file descriptors.

    """

    max_body_bytes: int = 16 * 1024 * 1024
    max_batch: int = 100
    max_top: int = 100
    max_request_chars: int = 250_000
    max_in_flight: int | None = None
    keep_alive_s: int = 5
    read_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_batch", "max_top", "max_request_chars", "max_in_flight", "keep_alive_s"):
            value = getattr(self, name)
            if name == "max_in_flight" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("read_timeout_s",):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")


class ReadWriteLock:
    """Many readers or one writer; a waiting writer holds back new readers (no starvation)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        """Hold the lock shared."""
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        """Hold the lock exclusively."""
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one endpoint over its most recent requests, in milliseconds."""

    count: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


class Metrics:
    """Thread-safe counters and per-endpoint latencies (the last ``window`` requests each)."""

    def __init__(self, window: int = 2048) -> None:
        self._lock = threading.Lock()
        self._window = window
        self._counts: dict[str, int] = {}
        self._latencies: dict[str, deque[float]] = {}
        self._totals: dict[str, int] = {}
        self.started = time.time()

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``name``."""
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + n

    def observe(self, endpoint: str, seconds: float) -> None:
        """Record one request's latency."""
        with self._lock:
            window = self._latencies.setdefault(endpoint, deque(maxlen=self._window))
            window.append(seconds)
            self._totals[endpoint] = self._totals.get(endpoint, 0) + 1

    def latency(self, endpoint: str) -> LatencyStats | None:
        """Percentiles over the endpoint's recent requests (None before the first)."""
        with self._lock:
            window = sorted(self._latencies.get(endpoint, ()))
            total = self._totals.get(endpoint, 0)
        if not window:
            return None

        def pct(q: float) -> float:
            return round(1000 * window[min(len(window) - 1, int(q * len(window)))], 2)

        return LatencyStats(total, pct(0.50), pct(0.90), pct(0.99), round(1000 * window[-1], 2))

    def snapshot(self) -> dict[str, Any]:
        """Counters and latencies as a JSON-ready dict."""
        with self._lock:
            counts = dict(sorted(self._counts.items()))
            endpoints = sorted(self._latencies)
        latency: dict[str, Any] = {}
        for endpoint in endpoints:
            stats = self.latency(endpoint)
            if stats is not None:
                latency[endpoint] = stats.__dict__
        return {"uptime_s": round(time.time() - self.started, 1), "counts": counts, "latency_ms": latency}


@dataclass(frozen=True)
class CheckAddResult:
    """The verdicts of a check-and-add, and what the add stored."""

    verdicts: tuple[Verdict, ...]
    report: AddReport


class SharedDetector:
    """A :class:`Detector` or :class:`ArchiveDetector` that many threads may call at once (see the module docs).

    Args:
        detector: The detector to share; nothing else should use it afterwards.
        metrics: Where to count articles checked, added and found duplicate.
        read_only: Refuse every write (:meth:`add`, :meth:`check_and_add` raise
            :class:`ReadOnlyError`); a replica beside one writer. An archive opened
            read-only is always served so.

    """

    def __init__(self, detector: Detector | ArchiveDetector, metrics: Metrics | None = None, *, read_only: bool = False) -> None:
        self.detector = detector
        self.backend: Backend = backend_of(detector)
        self.metrics = metrics or Metrics()
        self.read_only = read_only or (isinstance(detector, ArchiveDetector) and detector.archive.read_only)
        self._rw = ReadWriteLock()
        self._writer = threading.Lock()
        self._encode = threading.Lock()
        self._seen = self.backend.state()
        self._clustering = threading.Lock()
        self._book: StoryBook | None = None

    @classmethod
    def open(
        cls,
        path: str | Path,
        config: Config | None = None,
        *,
        encoder: Encoder | None = None,
        create: bool = False,
        read_only: bool = False,
        cache: bool = True,
    ) -> SharedDetector:
        """Open (or create) the store at ``path``, verifying every file (see :meth:`Detector.open`)."""
        return cls(
            Detector.open(path, config, encoder=encoder, create=create and not read_only, cache=cache), read_only=read_only
        )

    @classmethod
    def open_archive(
        cls,
        path: str | Path,
        config: Config | None = None,
        *,
        encoder: Encoder | None = None,
        create: bool = False,
        read_only: bool = False,
        cache: bool = True,
    ) -> SharedDetector:
        """Open (or create) the time-sharded archive at ``path`` (see :meth:`ArchiveDetector.open`).

        ``read_only``: take no lock and write nothing (a replica beside one writer).
        """
        detector = ArchiveDetector.open(
            path, config, encoder=encoder, create=create and not read_only, read_only=read_only, cache=cache
        )
        return cls(detector, read_only=read_only)

    # ---------------------------------------------------------------------- helpers
    @property
    def config(self) -> Config:
        """The detector's configuration."""
        return self.backend.config

    @property
    def kind(self) -> str:
        """``"store"`` or ``"archive"``: what this service serves."""
        return self.backend.kind

    @property
    def path(self) -> Path | None:
        """The store or archive folder served."""
        return self.backend.path

    def _embed(self, articles: Sequence[Article]) -> list[EmbeddedArticle]:
        with self._encode:
            return self.backend.embed(articles)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """Shared access, after picking up commits made by other processes."""
        seen = self.backend.state()
        if seen != self._seen:
            with self._rw.write():
                self.backend.refresh()
                self._seen = seen
        with self._rw.read():
            yield

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Exclusive access on the latest commit, holding the store's (or archive's) writer lock."""
        if self.read_only:
            raise ReadOnlyError(f"this {self.kind} is served read-only: send adds to the writer")
        with self._writer, self.backend.lock(), self._rw.write():
            self.backend.refresh()
            try:
                yield
            finally:
                self._seen = self.backend.state()

    def _count_verdicts(self, verdicts: Sequence[Verdict]) -> None:
        self.metrics.count("articles_checked", len(verdicts))
        self.metrics.count("duplicates_found", sum(v.is_duplicate for v in verdicts))

    def _count_report(self, report: AddReport) -> None:
        self.metrics.count("articles_added", len(report.added))
        self.metrics.count("articles_unchanged", len(report.unchanged))
        self.metrics.count("articles_replaced", len(report.replaced))

    # ------------------------------------------------------------------------ reads
    def __len__(self) -> int:
        with self._reading():
            return self.backend.count()

    @property
    def generation(self) -> int:
        """The commit this process serves (for an archive: the sum of its shards' commit numbers)."""
        with self._reading():
            return self.backend.generation()

    def check(self, articles: Sequence[Article], *, top: int = 0) -> list[Verdict]:
        """Check articles against the store (nothing is stored)."""
        items = self._embed(articles)
        with self._reading():
            verdicts = self.backend.check_embedded(items, top=top)
        self._count_verdicts(verdicts)
        return verdicts

    def get(self, article_id: str) -> Article:
        """The stored article with this id (raises KeyError)."""
        return self.stored(article_id).article

    def story(self, article_id: str) -> tuple[Story, tuple[Article, ...]]:
        """The story of a stored article among its neighbours, and its articles (raises KeyError)."""
        with self._reading():
            story = self.backend.story(article_id)
            return story, tuple(self.backend.stored(i).article for i in story.article_ids)

    def stored(self, article_id: str) -> EmbeddedArticle:
        """A stored article with its passages and vectors (raises KeyError)."""
        with self._reading():
            return self.backend.stored(article_id)

    def neighbours(self, article_id: str, *, top: int = 10) -> tuple[EmbeddedArticle, Verdict]:
        """A stored article and its verdict against the rest of the store (raises KeyError)."""
        with self._reading():
            return self.backend.stored(article_id), self.backend.neighbours(article_id, top=top)

    def evidence(self, a: str, b: str) -> tuple[EmbeddedArticle, EmbeddedArticle, Match]:
        """Two stored articles and the verifier's decision on them, ``a`` as the query (raises KeyError)."""
        with self._reading():
            first, second = self.backend.stored(a), self.backend.stored(b)
        return first, second, self.backend.compare(first, second)

    def stories(self) -> StoryBook:
        """The whole store clustered into stories, as of the latest commit (cached until the next)."""
        with self._clustering:
            with self._reading():
                generation = self.backend.generation()  # before the items: a label never newer than its data
                if self._book is not None and self._book.generation == generation:
                    return self._book
                items = self.backend.stored_items()
            started = time.perf_counter()
            result = self.backend.cluster_embedded(items)
            seconds = time.perf_counter() - started
            self.metrics.observe("stories clustering", seconds)
            self._book = StoryBook(result, {i.id: i.article for i in items}, generation, seconds)
            return self._book

    def cluster(self, articles: Sequence[Article], *, with_store: bool = False) -> ClusterResult:
        """Group posted articles into stories; with ``with_store``, stored articles join in."""
        items = self._embed(articles)
        if not with_store:
            return self.backend.cluster_embedded(items)
        with self._reading():
            return self.backend.cluster_embedded(items, with_store=True)

    # ----------------------------------------------------------------------- writes
    def add(self, articles: Sequence[Article], *, replace: bool = False) -> AddReport:
        """Store articles atomically (an archive: atomically per shard); an id stored with the same content is left as is.

        Raises:
            IdConflictError: An id is stored with other content and not ``replace`` (nothing is stored then).
            ReadOnlyError: The service is read-only.

        """
        if self.read_only:
            raise ReadOnlyError(f"this {self.kind} is served read-only: send adds to the writer")
        with self._reading():
            todo = [a for a in articles if replace or not self._same(a)]
        items = self._embed(todo)
        with self._writing():
            if not replace:
                self._refuse_conflicts(items)
            report = self.backend.add_embedded(items, replace=replace)
        skipped = tuple(a.id for a in articles if a.id not in {i.id for i in items})
        report = AddReport(report.added, report.unchanged + skipped, report.replaced)
        self._count_report(report)
        return report

    def _same(self, article: Article) -> bool:
        stored = self.backend.stored_version(article)
        return stored is not None and stored.content_hash == article.content_hash

    def _refuse_conflicts(self, items: Sequence[EmbeddedArticle]) -> None:
        for item in items:
            error = conflict(item.article, self.backend.stored_version(item.article))
            if error is not None:
                raise error

    def check_and_add(self, articles: Sequence[Article], *, top: int = 0) -> CheckAddResult:
        """Check each article, then store it: later articles are checked against earlier ones.

        The check and the commit happen under the writer lock, on the latest commit, so
        no other writer slips in between (see the module docs).

        Raises:
            IdConflictError: An id is stored with other content (nothing is stored then).
            ReadOnlyError: The service is read-only.

        """
        if self.read_only:
            raise ReadOnlyError(f"this {self.kind} is served read-only: send adds to the writer")
        items = self._embed(articles)
        with self._writing():
            self._refuse_conflicts(items)
            before = {i.id for i in items if self.backend.stored_version(i.article) is not None}
            verdicts = self.backend.check_embedded(items, top=top, add=True)
        added = tuple(i.id for i in items if i.id not in before)
        report = AddReport(added, tuple(i.id for i in items if i.id in before), ())
        self._count_verdicts(verdicts)
        self._count_report(report)
        return CheckAddResult(tuple(verdicts), report)


def check_batch(articles: Sequence[Article]) -> None:
    """Refuse a batch the store cannot take as a whole: empty articles, an id twice.

    Raises:
        InputError: Naming the article's position in the batch.

    """
    seen: dict[str, int] = {}
    for position, article in enumerate(articles):
        where = f"articles[{position}]"
        if not article.title.strip() and not article.text.strip():
            raise InputError(
                f"article {article.id!r} is empty (no title and no text): it cannot duplicate anything", source=where
            )
        if article.id in seen:
            raise DuplicateIdError(
                f"id {article.id!r} appears twice in one request (also articles[{seen[article.id]}])", source=where
            )
        seen[article.id] = position
