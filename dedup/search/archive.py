"""The time-sharded archive: one ordinary :class:`~dedup.search.store.Store` per calendar month.

Layout of an archive directory::

    archive.json     format/version, model, dimension, shard granularity (written once, atomically)
    .lock            held while the archive is created, so concurrent first adds create it once
    2025-01/         a complete store (manifest, segments, index, its own .lock) for January 2025
    2025-02/         ...
    undated/         the articles without a date

Only folders named ``YYYY-MM`` (a real month) or ``undated`` are shards; nothing else
in the folder is ever opened as one.

Which shard an article goes to, and which shards a check searches (the window rule), is
:mod:`dedup.search.routing`; building shards in parallel is :mod:`dedup.search.build`; the
facade that embeds and verifies, :class:`~dedup.detect.archive.ArchiveDetector`, is in
:mod:`dedup.detect.archive`. A shard exists once its ``manifest.json`` does, so a reader
never sees a half-created shard; the shard list is the directory listing, which no writer
has to lock.

An add commits shard by shard: only the shards it touches are rewritten, each atomically
under its own writer lock (see :mod:`dedup.search.store`). So writers on different shards never
wait for each other, and a crash leaves every shard whole: the shards committed before it
hold the new articles, the others their previous state. An add is atomic per shard, not
across shards.

Ids are unique within a shard. An id re-added with a date in another month lands in that
month's shard, beside the old copy (the archive keeps no global id table).

Readers open an archive with ``read_only=True``: no lock is taken and nothing is written;
shards are opened (and, with ``verify``, checksummed) only when a check needs them, and
:meth:`Archive.refresh` picks up new shards and new commits of opened ones.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dedup import _fs
from dedup.errors import StoreCorruptError, StoreError, StoreMismatchError, StoreNotFoundError
from dedup.search.compaction import CompactReport
from dedup.search.manifest import LOCK, MANIFEST
from dedup.search.manifest import read_manifest as read_store_manifest
from dedup.search.routing import (
    UNDATED,
    beyond_gap,
    dates_meet,
    group_by_shard,
    is_shard_name,
    search_window,
    shard_key,
    shards_to_search,
    widen_dates,
)
from dedup.search.store import Store
from dedup.types import AddReport, Article, EmbeddedArticle, PartialDate

__all__ = ["ARCHIVE_MANIFEST", "Archive", "Retrieval"]

logger = logging.getLogger(__name__)

FORMAT = "dedup-archive"
FORMAT_VERSION = 1
ARCHIVE_MANIFEST = "archive.json"
GRANULARITY = "month"


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Retrieval:
    """The candidates an archive search retrieved for one query, merged over its shards.

    Attributes:
        shards: The shards searched, in order.
        candidates: ``(article cosine, stored article)``, most similar first, at most ``k``,
            without the query's own id.
        cut: True when more candidates may exist than were kept (a shard returned its
            ``k``-th neighbour, or the merge dropped some beyond ``k``), and the least
            similar of the ``k`` was not left out as ``far``.
        far: How many of the ``k`` were left out, unread, because
            their dates lie more than ``max_gap_days`` from the query's (see :meth:`Archive.search`).

    """

    shards: tuple[str, ...]
    candidates: tuple[tuple[float, EmbeddedArticle], ...]
    cut: bool
    far: int = 0


# --------------------------------------------------------------------------- archive
class Archive:
    """A store made of monthly shards plus ``undated``. Build with :meth:`create`, :meth:`open` or :meth:`open_or_create`.

    Not safe to mutate from several threads at once (as :class:`~dedup.search.store.Store`).
    """

    def __init__(
        self,
        path: Path,
        model: str,
        dim: int,
        *,
        read_only: bool = False,
        verify: bool = True,
        index: str | None = None,
        recall_floor: float = 0.99,
    ) -> None:
        self._path = path
        self._model = model
        self._dim = dim
        self._read_only = read_only
        self._verify = verify
        self._index = index
        self._recall_floor = recall_floor
        self._shards: dict[str, Store] = {}
        self._dates: dict[str, list[str] | None] = {}  # the ``dates`` of shards not opened, read from their manifests
        self._keys = self._scan()

    @classmethod
    def create(cls, path: str | Path, model: str, dim: int, *, index: str | None = None, recall_floor: float = 0.99) -> Archive:
        """Create an empty archive at ``path`` (a new or empty directory).

        Raises:
            StoreError: When ``path`` already holds files.

        """
        root = Path(path)
        cls._refuse_foreign(root)
        with cls._creating(root):
            cls._refuse_foreign(root)
            cls._write_manifest(root, model, dim)
        return cls(root, model, dim, index=index, recall_floor=recall_floor)

    @classmethod
    def open_or_create(
        cls, path: str | Path, model: str, dim: int, *, index: str | None = None, recall_floor: float = 0.99
    ) -> Archive:
        """Open the archive at ``path``, or create it there; safe when several processes do this at once.

        The creation happens under a lock file (``.lock``) in the archive folder: the first
        process creates the archive, the others then open it.

        Raises:
            StoreError: When ``path`` holds other files but no archive.
            StoreMismatchError: The existing archive was built with another model or dimension.

        """
        root = Path(path)
        if not (root / ARCHIVE_MANIFEST).is_file():
            cls._refuse_foreign(root)  # before the lock file is written into a foreign folder
            with cls._creating(root):
                if not (root / ARCHIVE_MANIFEST).is_file():
                    cls._refuse_foreign(root)
                    cls._write_manifest(root, model, dim)
        return cls.open(root, model=model, dim=dim, index=index, recall_floor=recall_floor)

    @staticmethod
    def _refuse_foreign(root: Path) -> None:
        if (root / ARCHIVE_MANIFEST).exists():
            raise StoreError(f"an archive already exists at {root}; open it instead")
        if (root / MANIFEST).exists():
            raise StoreError(f"cannot create an archive in {root}: it is a single store (use --store)")
        if root.exists() and any(e.name not in (LOCK, f".tmp-{ARCHIVE_MANIFEST}") for e in root.iterdir()):
            raise StoreError(f"cannot create an archive in {root}: the folder is not empty")

    @staticmethod
    def _creating(root: Path) -> contextlib.AbstractContextManager[None]:
        _fs.make_folder(root, "an archive")
        return _fs.hold_lock(root / LOCK)

    @staticmethod
    def _write_manifest(root: Path, model: str, dim: int) -> None:
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model, "dim": dim, "granularity": GRANULARITY}
        _fs.write_atomic(root / ARCHIVE_MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"))

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        model: str | None = None,
        dim: int | None = None,
        read_only: bool = False,
        verify: bool = True,
        index: str | None = None,
        recall_floor: float = 0.99,
    ) -> Archive:
        """Open an existing archive; no shard is opened until it is needed.

        Args:
            path: The archive directory.
            model: The model the caller embeds with; None skips the check.
            dim: The caller's vector dimension; None skips the check.
            read_only: Never take a lock, never write (:meth:`add` refuses).
            verify: Check the SHA-256 of each shard's files before their data is first used (see :meth:`Store.open`).
            index: Index choice for the shards (see :meth:`Store.open`); None keeps theirs.
            recall_floor: Recall@10 an approximate shard index must meet.

        Raises:
            StoreNotFoundError: No archive at ``path``.
            StoreMismatchError: Built with another model, dimension or format version.
            StoreCorruptError: ``archive.json`` is damaged.

        """
        root = Path(path)
        manifest = cls.read_manifest(root)
        archive = cls(
            root,
            manifest["model"],
            manifest["dim"],
            read_only=read_only,
            verify=verify,
            index=index,
            recall_floor=recall_floor,
        )
        _fs.check_vectors("archive", root, (archive.model, archive.dim), model, dim)
        return archive

    @staticmethod
    def read_manifest(root: Path) -> dict[str, Any]:
        """Read and check ``archive.json``: format, version and the shape of its fields (raises as :meth:`open`)."""
        file = root / ARCHIVE_MANIFEST
        hint = " (it is a single store: use --store)" if (root / MANIFEST).is_file() else ""
        manifest = _fs.read_manifest(
            root,
            ARCHIVE_MANIFEST,
            kind="archive",
            fmt=FORMAT,
            create_hint="create one with `dedup add --archive`",
            missing_hint=hint,
        )
        if manifest.get("format_version") != FORMAT_VERSION or manifest.get("granularity") != GRANULARITY:
            raise StoreMismatchError(
                f"archive {root} has format version {manifest.get('format_version')} and granularity "
                f"{manifest.get('granularity')!r}; this dedup reads version {FORMAT_VERSION}, {GRANULARITY!r}"
            )
        _fs.text_field(file, "model", manifest.get("model"))
        _fs.count_field(file, "dim", manifest.get("dim"), minimum=1)
        return manifest

    # ------------------------------------------------------------------- properties
    @property
    def path(self) -> Path:
        """The archive directory."""
        return self._path

    @property
    def model(self) -> str:
        """The model every stored vector was made with."""
        return self._model

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._dim

    @property
    def read_only(self) -> bool:
        """Whether this object never writes."""
        return self._read_only

    @property
    def keys(self) -> tuple[str, ...]:
        """The shards present (``YYYY-MM`` in order, then ``undated``), as of the last open or refresh."""
        return self._keys

    @property
    def opened(self) -> tuple[str, ...]:
        """The shards this object has opened so far, in order."""
        return tuple(sorted(self._shards))

    def count(self) -> int:
        """Articles in all shards, read from the shard manifests (no shard is loaded).

        Raises:
            StoreCorruptError: A shard manifest cannot be read; the message names the shard.

        """
        total = 0
        for key in self._keys:
            if key in self._shards:
                total += len(self._shards[key])
            else:
                folder = self._path / key
                try:
                    total += read_store_manifest(folder)["count"]
                except StoreCorruptError as exc:
                    raise StoreCorruptError(f"archive shard {folder} is damaged: {exc}") from None
        return total

    # ---------------------------------------------------------------------- reading
    def _scan(self) -> tuple[str, ...]:
        """The shards present: folders named ``YYYY-MM`` or ``undated`` holding a manifest (never another name)."""
        if not self._path.is_dir():
            raise StoreNotFoundError(f"archive {self._path} has gone")
        try:
            found = [entry.name for entry in self._path.iterdir() if is_shard_name(entry.name) and (entry / MANIFEST).is_file()]
        except OSError as exc:
            raise StoreError(f"cannot list the shards of archive {self._path}: {exc.strerror or exc}") from None
        return tuple(sorted(found))

    def shard(self, key: str) -> Store:
        """The shard ``key``, opened on first use (checksummed when the archive was opened with ``verify``).

        Raises:
            KeyError: When the archive has no such shard (as of the last refresh).
            StoreCorruptError: The shard is damaged; the message names its folder.

        """
        store = self._shards.get(key)
        if store is not None:
            return store
        if key not in self._keys:
            raise KeyError(key)
        folder = self._path / key
        try:
            store = Store.open(
                folder,
                model=self._model,
                dim=self._dim,
                verify=self._verify,
                index=None if self._read_only else self._index,
                recall_floor=self._recall_floor,
            )
        except StoreCorruptError as exc:
            raise StoreCorruptError(f"archive shard {folder} is damaged: {exc}") from None
        self._shards[key] = store
        return store

    def shards_for(self, date: PartialDate | None, search_days: int, pending: Iterable[EmbeddedArticle] = ()) -> tuple[str, ...]:
        """The present shards a check of an article with this date searches.

        Those :func:`shards_to_search` names, less the monthly shards whose recorded ``dates``
        (:attr:`Store.dates`) miss the window: the January shard, searched all year for
        year-only dates, is skipped when it holds none. ``pending``: articles not stored yet
        (the earlier articles of a batch), counted as if they were, shards included.
        """
        added = group_by_shard(pending)
        keys = shards_to_search(set(self._keys) | set(added), date, search_days)
        if date is None:
            return keys
        start, end = search_window(date, search_days)

        def meets(key: str) -> bool:
            dates = self._dates_of(key) if key in self._keys else []
            dates = widen_dates(dates, (item.article.date for item in added.get(key, ())))
            return dates_meet(dates, start, end)

        return tuple(key for key in keys if key == UNDATED or meets(key))

    def _dates_of(self, key: str) -> list[str] | None:
        """The ``dates`` record of shard ``key``: the opened store's, else its manifest's (cached until :meth:`refresh`)."""
        if key in self._shards:
            return self._shards[key].dates
        if key not in self._dates:
            try:
                manifest = read_store_manifest(self._path / key)
            except StoreError:  # searched, so that opening it reports the damage
                return None
            self._dates[key] = list(manifest["dates"]) if "dates" in manifest else None
        return self._dates[key]

    def holds(self, article: Article) -> bool:
        """Whether the article's shard already stores this id with the same content."""
        key = shard_key(article.date)
        if key not in self._keys:
            return False
        store = self.shard(key)
        return article.id in store and store.get(article.id).content_hash == article.content_hash

    def search(
        self, item: EmbeddedArticle, k: int, *, search_days: int, min_similarity: float = -1.0, max_gap_days: int | None = None
    ) -> Retrieval:
        """The ``k`` stored articles most similar to ``item`` among the shards in its window.

        Each shard in the window is searched for its ``k`` nearest; the hits are merged by
        article cosine and cut at ``k`` (so the candidates are those one store holding the
        same shards would retrieve with an exact index). Hits below ``min_similarity`` and
        the query's own id are left out. With ``max_gap_days``, those of the ``k`` dated
        further than that from the query (which the verifier scores 0) are left out unread,
        by the days each segment keeps in memory: counted in ``Retrieval.far``.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        keys = self.shards_for(item.article.date, search_days)
        hits: list[tuple[float, str, int]] = []
        cut = False
        for key in keys:
            store = self.shard(key)
            if not len(store):
                continue
            own = store.position(item.id) if item.id in store else -1
            found = store.search(item.vector[None, :], k + (own >= 0))
            cut = cut or bool(found.truncated[0])
            for position, sim in zip(found.positions[0], found.similarities[0], strict=True):
                if position >= 0 and position != own and sim >= min_similarity:
                    hits.append((float(sim), key, int(position)))
        hits.sort(key=lambda hit: -hit[0])  # stable: equal scores keep shard order
        if len(hits) > k:
            cut, hits = True, hits[:k]
        if max_gap_days is None or item.article.date is None or not hits:
            return Retrieval(keys, tuple((sim, self._shards[key].embedded(pos)) for sim, key, pos in hits), cut)
        near = [not beyond_gap(item.article.date, self._shards[key].days(pos), max_gap_days) for _, key, pos in hits]
        kept = tuple((sim, self._shards[key].embedded(pos)) for (sim, key, pos), ok in zip(hits, near, strict=True) if ok)
        return Retrieval(keys, kept, cut and near[-1], len(hits) - len(kept))  # a far last hit is no duplicate

    def refresh(self) -> bool:
        """Pick up shards created and commits made since (by any process); True if anything changed.

        Raises:
            StoreError: When a shard on disk can no longer be read.

        """
        keys = self._scan()
        changed = keys != self._keys
        self._keys = keys
        self._dates.clear()
        for store in self._shards.values():
            changed = store.refresh() or changed
        return changed

    # ---------------------------------------------------------------------- writing
    def add(self, items: Sequence[EmbeddedArticle], *, replace: bool = False) -> AddReport:
        """Store embedded articles in their shards, one atomic commit per touched shard.

        Raises:
            StoreError: When the archive was opened read-only.
            DuplicateIdError: As :meth:`Store.add`, within a shard.

        """
        if self._read_only:
            raise StoreError(f"archive {self._path} was opened read-only")
        reports = {key: self._writable(key).add(group, replace=replace) for key, group in sorted(group_by_shard(items).items())}
        self._keys = self._scan()
        return _merge_reports(reports.values(), [i.id for i in items])

    def compact(self) -> dict[str, CompactReport]:
        """Compact every shard (see :meth:`Store.compact`), each in its own atomic commit; the reports by shard.

        Raises:
            StoreError: When the archive was opened read-only.

        """
        if self._read_only:
            raise StoreError(f"archive {self._path} was opened read-only")
        self._keys = self._scan()
        return {key: self._writable(key).compact() for key in self._keys}

    def verify(self) -> tuple[int, int]:
        """Check the size and SHA-256 of every file of every shard; returns (files, bytes) checked.

        Raises:
            StoreCorruptError: A file is damaged; the message names the shard.

        """
        files = size = 0
        for key in self._scan():
            try:
                found = self.shard(key).verify()
            except StoreCorruptError as exc:
                raise StoreCorruptError(f"archive shard {self._path / key} is damaged: {exc}") from None
            files, size = files + found[0], size + found[1]
        return files, size

    def _writable(self, key: str) -> Store:
        if key in self._keys or key in self._shards:
            return self.shard(key)
        store = Store.open_or_create(
            self._path / key, self._model, self._dim, index=self._index or "auto", recall_floor=self._recall_floor
        )
        self._shards[key] = store
        return store


def _merge_reports(reports: Iterable[AddReport], order: Sequence[str]) -> AddReport:
    rank = {article_id: i for i, article_id in enumerate(order)}
    added: list[str] = []
    unchanged: list[str] = []
    replaced: list[str] = []
    skipped: list[str] = []
    for report in reports:
        added += report.added
        unchanged += report.unchanged
        replaced += report.replaced
        skipped += report.skipped

    def ordered(ids: list[str]) -> tuple[str, ...]:
        return tuple(sorted(ids, key=lambda i: rank.get(i, len(rank))))

    return AddReport(ordered(added), ordered(unchanged), ordered(replaced), ordered(skipped))
