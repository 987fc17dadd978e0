"""What the service serves: one store or a time-sharded archive, behind one interface.

:class:`~dedup.serve.shared.SharedDetector` runs the concurrency model of the service (its
locks, its metrics, the story cache) over a :class:`Backend`, which says how to read, check
and write the articles served and how to notice another process's commits:

* :class:`StoreBackend` over a :class:`~dedup.detect.detector.Detector` (``--store``): the
  writer lock is the store's lock file; a commit shows as a new ``manifest.json``.
* :class:`ArchiveBackend` over an :class:`~dedup.detect.archive.ArchiveDetector`
  (``--archive``): the writer lock is the archive's (``.writer.lock``, held across every shard
  a check-and-add reads and writes); a commit shows as a new manifest of any shard, or a new shard.

Neither backend is thread-safe: :class:`SharedDetector` calls them under its locks.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from dedup.config import Config
from dedup.detect.archive import ArchiveDetector
from dedup.detect.detector import Detector
from dedup.errors import IdConflictError, StoreError
from dedup.search.manifest import MANIFEST
from dedup.search.routing import shard_key
from dedup.types import AddReport, Article, ClusterResult, EmbeddedArticle, Match, Story, Verdict

__all__ = ["ArchiveBackend", "Backend", "StoreBackend", "backend_of"]


class Backend(Protocol):
    """The articles a service serves: reads, checks, writes, and how to see other processes' commits."""

    @property
    def path(self) -> Path | None:
        """The store or archive folder (None in memory)."""
        ...

    @property
    def kind(self) -> str:
        """``"store"`` or ``"archive"``."""
        ...

    @property
    def config(self) -> Config:
        """Thresholds and settings."""
        ...

    def embed(self, articles: Sequence[Article]) -> list[EmbeddedArticle]:
        """Clean, split and embed articles."""
        ...

    def count(self) -> int:
        """Articles stored, as of the last refresh."""
        ...

    def generation(self) -> int:
        """A number that grows with every commit (of the state this object holds)."""
        ...

    def state(self) -> object:
        """A cheap fingerprint of the files on disk: it changes when any process commits."""
        ...

    def refresh(self) -> None:
        """Move to the latest commit on disk."""
        ...

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Hold the cross-process writer lock (re-entrant within a thread); :meth:`refresh` then moves to the latest commit."""
        ...

    def stored_version(self, article: Article) -> Article | None:
        """The stored article an add of ``article`` would meet (same id), or None."""
        ...

    def check_embedded(self, items: Sequence[EmbeddedArticle], *, top: int = 0, add: bool = False) -> list[Verdict]:
        """Check (and with ``add``, then store) embedded articles."""
        ...

    def add_embedded(self, items: Sequence[EmbeddedArticle], *, replace: bool = False) -> AddReport:
        """Store embedded articles (inside :meth:`writing`)."""
        ...

    def stored(self, article_id: str) -> EmbeddedArticle:
        """A stored article with its passages and vectors (raises KeyError)."""
        ...

    def stored_items(self) -> list[EmbeddedArticle]:
        """Every stored article."""
        ...

    def neighbours(self, article_id: str, *, top: int = 10) -> Verdict:
        """A stored article checked against the rest (raises KeyError)."""
        ...

    def story(self, article_id: str) -> Story:
        """The story of a stored article among its neighbours (raises KeyError)."""
        ...

    def cluster_embedded(self, items: Sequence[EmbeddedArticle], *, with_store: bool = False) -> ClusterResult:
        """Group embedded articles into stories."""
        ...

    def compare(self, a: EmbeddedArticle, b: EmbeddedArticle) -> Match:
        """Verify one pair."""
        ...


def conflict(article: Article, stored: Article | None) -> IdConflictError | None:
    """The error of adding ``article`` over ``stored`` (same id) without replace, or None when it is the same content."""
    if stored is None or stored.content_hash == article.content_hash:
        return None
    return IdConflictError(f"id {article.id!r} is already stored with different content; to overwrite it, add it with replace")


class StoreBackend:
    """One :class:`~dedup.search.store.Store`, through its :class:`Detector`."""

    kind = "store"

    def __init__(self, detector: Detector) -> None:
        self.detector = detector

    @property
    def path(self) -> Path | None:
        """The store folder."""
        return self.detector.store.path

    @property
    def config(self) -> Config:
        """Thresholds and settings."""
        return self.detector.config

    def embed(self, articles: Sequence[Article]) -> list[EmbeddedArticle]:
        """See :meth:`Detector.embed`."""
        return self.detector.embed(articles)

    def count(self) -> int:
        """Articles stored."""
        return len(self.detector.store)

    def generation(self) -> int:
        """The store's commit number."""
        return self.detector.store.generation

    def state(self) -> object:
        """The manifest's inode, mtime and size (None in memory or when it cannot be read)."""
        if self.path is None:
            return None
        try:
            st = os.stat(self.path / MANIFEST)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def refresh(self) -> None:
        """See :meth:`Store.refresh`."""
        self.detector.store.refresh()

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """The store's writer lock (see :meth:`Store.lock`)."""
        return self.detector.store.lock()

    def stored_version(self, article: Article) -> Article | None:
        """The stored article with this id, or None."""
        store = self.detector.store
        return store.get(article.id) if article.id in store else None

    def check_embedded(self, items: Sequence[EmbeddedArticle], *, top: int = 0, add: bool = False) -> list[Verdict]:
        """See :meth:`Detector.check_embedded`."""
        return self.detector.check_embedded(items, top=top, add=add)

    def add_embedded(self, items: Sequence[EmbeddedArticle], *, replace: bool = False) -> AddReport:
        """See :meth:`Store.add`."""
        return self.detector.store.add(items, replace=replace)

    def stored(self, article_id: str) -> EmbeddedArticle:
        """See :meth:`Detector.stored`."""
        return self.detector.stored(article_id)

    def stored_items(self) -> list[EmbeddedArticle]:
        """See :meth:`Detector.stored_items`."""
        return self.detector.stored_items()

    def neighbours(self, article_id: str, *, top: int = 10) -> Verdict:
        """See :meth:`Detector.neighbours`."""
        return self.detector.neighbours(article_id, top=top)

    def story(self, article_id: str) -> Story:
        """See :meth:`Detector.story`."""
        return self.detector.story(article_id)

    def cluster_embedded(self, items: Sequence[EmbeddedArticle], *, with_store: bool = False) -> ClusterResult:
        """See :meth:`Detector.cluster_embedded`."""
        return self.detector.cluster_embedded(items, with_store=with_store)

    def compare(self, a: EmbeddedArticle, b: EmbeddedArticle) -> Match:
        """See :meth:`Detector.compare`."""
        return self.detector.compare(a, b)


class ArchiveBackend:
    """A time-sharded :class:`~dedup.search.archive.Archive`, through its :class:`ArchiveDetector`.

    Shards are opened when first needed: a check opens the shards of its window; reading an
    article by id, its story or the story list opens every shard. Readers share the
    :class:`SharedDetector`'s lock, so shards are opened one at a time, under a lock of
    their own, before the reads that need them.
    """

    kind = "archive"

    def __init__(self, detector: ArchiveDetector) -> None:
        self.detector = detector
        self._opening = threading.Lock()

    def _open(self, keys: Iterable[str]) -> None:
        """Open the shards ``keys`` (those present), one thread at a time."""
        archive = self.detector.archive
        opened = set(archive.opened)
        missing = [k for k in keys if k not in opened and k in archive.keys]
        if missing:
            with self._opening:
                for key in missing:
                    archive.shard(key)

    def _open_all(self) -> None:
        self._open(self.detector.archive.keys)

    def _open_windows(self, items: Iterable[EmbeddedArticle]) -> None:
        archive, days = self.detector.archive, self.detector.search_days
        self._open({k for item in items for k in archive.shards_for(item.article.date, days)})

    @property
    def path(self) -> Path | None:
        """The archive folder."""
        return self.detector.archive.path

    @property
    def config(self) -> Config:
        """Thresholds and settings."""
        return self.detector.config

    def embed(self, articles: Sequence[Article]) -> list[EmbeddedArticle]:
        """See :meth:`ArchiveDetector.embed`."""
        return self.detector.embed(articles)

    def count(self) -> int:
        """Articles in every shard (read from their manifests)."""
        return self.detector.count()

    def generation(self) -> int:
        """See :meth:`ArchiveDetector.generation`."""
        return self.detector.generation()

    def state(self) -> object:
        """See :meth:`ArchiveDetector.state`."""
        return self.detector.state()

    def refresh(self) -> None:
        """See :meth:`Archive.refresh`."""
        self.detector.refresh()

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """See :meth:`ArchiveDetector.lock`."""
        return self.detector.lock()

    def stored_version(self, article: Article) -> Article | None:
        """See :meth:`ArchiveDetector.stored_version`."""
        self._open([shard_key(article.date)])
        return self.detector.stored_version(article)

    def check_embedded(self, items: Sequence[EmbeddedArticle], *, top: int = 0, add: bool = False) -> list[Verdict]:
        """See :meth:`ArchiveDetector.check_embedded`."""
        self._open_windows(items)
        return self.detector.check_embedded(items, top=top, add=add)

    def add_embedded(self, items: Sequence[EmbeddedArticle], *, replace: bool = False) -> AddReport:
        """See :meth:`ArchiveDetector.add_embedded`."""
        return self.detector.add_embedded(items, replace=replace)

    def stored(self, article_id: str) -> EmbeddedArticle:
        """See :meth:`ArchiveDetector.stored`."""
        self._open_all()
        return self.detector.stored(article_id)

    def stored_items(self) -> list[EmbeddedArticle]:
        """See :meth:`ArchiveDetector.stored_items`."""
        self._open_all()
        return self.detector.stored_items()

    def neighbours(self, article_id: str, *, top: int = 10) -> Verdict:
        """See :meth:`ArchiveDetector.neighbours`."""
        self._open_all()
        return self.detector.neighbours(article_id, top=top)

    def story(self, article_id: str) -> Story:
        """See :meth:`ArchiveDetector.story`."""
        self._open_all()
        return self.detector.story(article_id)

    def cluster_embedded(self, items: Sequence[EmbeddedArticle], *, with_store: bool = False) -> ClusterResult:
        """See :meth:`ArchiveDetector.cluster_embedded`."""
        if with_store:
            self._open_all()
        return self.detector.cluster_embedded(items, with_store=with_store)

    def compare(self, a: EmbeddedArticle, b: EmbeddedArticle) -> Match:
        """See :meth:`ArchiveDetector.compare`."""
        return self.detector.compare(a, b)


def backend_of(detector: Detector | ArchiveDetector) -> Backend:
    """The backend serving ``detector``.

    Raises:
        StoreError: ``detector`` is neither a :class:`Detector` nor an :class:`ArchiveDetector`.

    """
    if isinstance(detector, ArchiveDetector):
        return ArchiveBackend(detector)
    if isinstance(detector, Detector):
        return StoreBackend(detector)
    raise StoreError(f"cannot serve a {type(detector).__name__}: give a Detector or an ArchiveDetector")
