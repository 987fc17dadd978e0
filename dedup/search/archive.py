"""The time-sharded archive: one ordinary :class:`~dedup.search.store.Store` per calendar month.

Layout of an archive directory::

    archive.json     format/version, model, dimension, shard granularity (written once, atomically)
    .lock            held while the archive is created, so concurrent first adds create it once
    2025-01/         a complete store (manifest, segments, index, its own .lock) for January 2025
    2025-02/         ...
    undated/         the articles without a date

Only folders named ``YYYY-MM`` (a real month) or ``undated`` are shards; nothing else
in the folder is ever opened as one.

An article goes to the shard of the month holding the *first* day of its date's
:meth:`~dedup.types.PartialDate.bounds`: ``2025-01-12`` and ``2025-01`` go to
``2025-01``, the year-only ``2025`` goes to ``2025-01`` too; articles without a date go to
``undated``. A shard exists once its ``manifest.json`` does, so a reader never sees a
half-created shard; the shard list is the directory listing, which no writer has to lock.

An add commits shard by shard: only the shards it touches are rewritten, each atomically
under its own writer lock (see :mod:`dedup.search.store`). So writers on different shards never
wait for each other, and a crash leaves every shard whole: the shards committed before it
hold the new articles, the others their previous state. An add is atomic per shard, not
across shards.

The window rule of a check: an article dated ``[first, last]`` (its date's bounds) is
checked against the shards whose month overlaps ``[first - window, last + window]``,
where the window is ``Config.max_date_gap_days`` by default, plus the January shard of
each year that interval touches (where year-only dates live), plus ``undated``. An undated
article is checked against every shard: the verifier never rules out a pair for an unknown
date, so any shard may hold its duplicate. A window narrower than ``max_date_gap_days``
can miss duplicates the verifier would accept.

Ids are unique within a shard. An id re-added with a date in another month lands in that
month's shard, beside the old copy (the archive keeps no global id table).

Readers open an archive with ``read_only=True``: no lock is taken and nothing is written;
shards are opened (and, with ``verify``, checksummed) only when a check needs them, and
:meth:`Archive.refresh` picks up new shards and new commits of opened ones.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import multiprocessing
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from dedup._fs import count_field, hold_lock, read_json, text_field, write_atomic
from dedup.config import Config
from dedup.detect.detector import Detector
from dedup.embedding.cache import EmbeddingCache
from dedup.embedding.centring import centring_for
from dedup.embedding.embed import Encoder, load_encoder
from dedup.embedding.naming import vector_space
from dedup.errors import (
    ConfigError,
    OptionalDependencyError,
    StoreCorruptError,
    StoreError,
    StoreMismatchError,
    StoreNotFoundError,
)
from dedup.search.store import LOCK, MANIFEST, Store
from dedup.types import AddReport, Article, EmbeddedArticle, PartialDate, Verdict
from dedup.verify import Verifier

__all__ = [
    "ARCHIVE_MANIFEST",
    "UNDATED",
    "Archive",
    "ArchiveDetector",
    "Mapper",
    "Retrieval",
    "build_shards",
    "group_by_shard",
    "ray_mapper",
    "shard_key",
    "shards_to_search",
]

logger = logging.getLogger(__name__)

FORMAT = "dedup-archive"
FORMAT_VERSION = 1
ARCHIVE_MANIFEST = "archive.json"
GRANULARITY = "month"
UNDATED = "undated"
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

_T = TypeVar("_T")
_R = TypeVar("_R")


# --------------------------------------------------------------------------- routing
def shard_key(date: PartialDate | None) -> str:
    """The shard of an article with this date: the month of the date's first day, or ``undated``.

    Examples:
        >>> shard_key(PartialDate.parse("2025-01-31")), shard_key(PartialDate.parse("2024")), shard_key(None)
        ('2025-01', '2024-01', 'undated')

    """
    if date is None:
        return UNDATED
    first = date.bounds()[0]
    return f"{first.year:04d}-{first.month:02d}"


def _shift(day: dt.date, days: int) -> dt.date:
    try:
        return day + dt.timedelta(days=days)
    except OverflowError:
        return dt.date.max if days > 0 else dt.date.min


def shards_to_search(keys: Iterable[str], date: PartialDate | None, search_days: int) -> tuple[str, ...]:
    """The shards among ``keys`` a check of an article with this date searches, in order.

    Dated: the months overlapping ``[first - search_days, last + search_days]``, the
    January shard of every year that interval touches (a year-only date such as ``2024``
    is stored in its first day's shard, ``2024-01``, and may lie within the window of any
    day of that year), and ``undated``. Undated: every shard. So every stored article whose
    date can lie within ``search_days`` of the query's is in a searched shard.

    Examples:
        >>> keys = ["2024-12", "2025-01", "2025-02", "2025-03", "2025-04", "undated"]
        >>> shards_to_search(keys, PartialDate.parse("2025-02-02"), 7)
        ('2025-01', '2025-02', 'undated')
        >>> shards_to_search(keys, PartialDate.parse("2025-03-15"), 7)
        ('2025-01', '2025-03', 'undated')
        >>> shards_to_search(keys, None, 7)
        ('2024-12', '2025-01', '2025-02', '2025-03', '2025-04', 'undated')

    """
    ordered = sorted(set(keys))  # "undated" sorts after every "YYYY-MM"
    if date is None:
        return tuple(ordered)
    first, last = date.bounds()
    start, end = _shift(first, -search_days), _shift(last, search_days)
    low, high = shard_key_of_day(start), shard_key_of_day(end)
    years = range(start.year, end.year + 1)

    def searched(key: str) -> bool:
        return key == UNDATED or low <= key <= high or (key.endswith("-01") and int(key[:4]) in years)

    return tuple(k for k in ordered if searched(k))


def shard_key_of_day(day: dt.date) -> str:
    """The shard key (``YYYY-MM``) of a calendar day."""
    return f"{day.year:04d}-{day.month:02d}"


def group_by_shard(items: Iterable[EmbeddedArticle]) -> dict[str, list[EmbeddedArticle]]:
    """Embedded articles by shard key (see :func:`shard_key`), in input order within a shard."""
    groups: dict[str, list[EmbeddedArticle]] = {}
    for item in items:
        groups.setdefault(shard_key(item.article.date), []).append(item)
    return groups


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Retrieval:
    """The candidates an archive search retrieved for one query, merged over its shards.

    Attributes:
        shards: The shards searched, in order.
        candidates: ``(article cosine, stored article)``, most similar first, at most ``k``,
            without the query's own id.
        cut: True when more candidates may exist than were kept (a shard returned its
            ``k``-th neighbour, or the merge dropped some beyond ``k``).

    """

    shards: tuple[str, ...]
    candidates: tuple[tuple[float, EmbeddedArticle], ...]
    cut: bool


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
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create an archive at {root}: {exc.strerror or exc}") from None
        return hold_lock(root / LOCK)

    @staticmethod
    def _write_manifest(root: Path, model: str, dim: int) -> None:
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model, "dim": dim, "granularity": GRANULARITY}
        write_atomic(root / ARCHIVE_MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"))

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
            verify: Check the SHA-256 of each shard's files when the shard is opened.
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
        if model is not None and model != archive.model:
            raise StoreMismatchError(
                f"archive {root} was built with model {archive.model!r}, not {model!r}; open it with that model"
            )
        if dim is not None and dim != archive.dim:
            raise StoreMismatchError(f"archive {root} holds vectors of dimension {archive.dim}, the model gives {dim}")
        return archive

    @staticmethod
    def read_manifest(root: Path) -> dict[str, Any]:
        """Read and check ``archive.json``: format, version and the shape of its fields (raises as :meth:`open`)."""
        file = root / ARCHIVE_MANIFEST
        if not root.is_dir():
            raise StoreNotFoundError(f"no archive at {root}: the folder does not exist (create one with `dedup add --archive`)")
        if not file.is_file():
            hint = " (it is a single store: use --store)" if (root / MANIFEST).is_file() else ""
            raise StoreNotFoundError(f"no archive at {root}: {ARCHIVE_MANIFEST} is missing{hint}")
        manifest = read_json(file, "the archive manifest")
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise StoreCorruptError(f"{file} is not a dedup archive manifest")
        if manifest.get("format_version") != FORMAT_VERSION or manifest.get("granularity") != GRANULARITY:
            raise StoreMismatchError(
                f"archive {root} has format version {manifest.get('format_version')} and granularity "
                f"{manifest.get('granularity')!r}; this dedup reads version {FORMAT_VERSION}, {GRANULARITY!r}"
            )
        text_field(file, "model", manifest.get("model"))
        count_field(file, "dim", manifest.get("dim"), minimum=1)
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
                    total += Store._read_manifest(folder)["count"]
                except StoreCorruptError as exc:
                    raise StoreCorruptError(f"archive shard {folder} is damaged: {exc}") from None
        return total

    # ---------------------------------------------------------------------- reading
    def _scan(self) -> tuple[str, ...]:
        """The shards present: folders named ``YYYY-MM`` or ``undated`` holding a manifest (never another name)."""
        if not self._path.is_dir():
            raise StoreNotFoundError(f"archive {self._path} has gone")
        try:
            found = [
                entry.name
                for entry in self._path.iterdir()
                if (entry.name == UNDATED or _MONTH.match(entry.name)) and (entry / MANIFEST).is_file()
            ]
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

    def shards_for(self, date: PartialDate | None, search_days: int) -> tuple[str, ...]:
        """The present shards a check of an article with this date searches (see :func:`shards_to_search`)."""
        return shards_to_search(self._keys, date, search_days)

    def holds(self, article: Article) -> bool:
        """Whether the article's shard already stores this id with the same content."""
        key = shard_key(article.date)
        if key not in self._keys:
            return False
        store = self.shard(key)
        return article.id in store and store.get(article.id).content_hash == article.content_hash

    def search(self, item: EmbeddedArticle, k: int, *, search_days: int, min_similarity: float = -1.0) -> Retrieval:
        """The ``k`` stored articles most similar to ``item`` among the shards in its window.

        Each shard in the window is searched for its ``k`` nearest; the hits are merged by
        article cosine and cut at ``k`` (so the candidates are those one store holding the
        same shards would retrieve with an exact index). Hits below ``min_similarity`` and
        the query's own id are left out.
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
        return Retrieval(keys, tuple((sim, self._shards[key].embedded(pos)) for sim, key, pos in hits), cut)

    def refresh(self) -> bool:
        """Pick up shards created and commits made since (by any process); True if anything changed.

        Raises:
            StoreError: When a shard on disk can no longer be read.

        """
        keys = self._scan()
        changed = keys != self._keys
        self._keys = keys
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


# --------------------------------------------------------------------------- parallel building
class Mapper(Protocol):
    """Runs tasks in parallel: anything with ``map(fn, iterable)``.

    A :class:`concurrent.futures.Executor`, a :class:`multiprocessing.pool.Pool`, or Ray's
    ``ray.util.multiprocessing.Pool`` (see :func:`ray_mapper`).
    """

    def map(self, fn: Callable[[_T], _R], iterable: Iterable[_T], /) -> Iterable[_R]:
        """Apply ``fn`` to every element, in parallel, returning results in order."""
        ...


# Articles cross process boundaries as plain data: an Article's frozen ``extra`` mapping does not pickle.
_Packed = tuple[dict[str, Any], tuple[str, ...], NDArray[np.float32], NDArray[np.float32]]


@dataclass(frozen=True)
class _ShardTask:
    folder: str
    model: str
    dim: int
    index: str
    recall_floor: float
    replace: bool
    items: tuple[_Packed, ...]


def _pack(item: EmbeddedArticle) -> _Packed:
    a = item.article
    record = {
        "id": a.id,
        "title": a.title,
        "text": a.text,
        "date": str(a.date) if a.date else None,
        "lang": a.lang,
        "source": a.source,
        "url": a.url,
        "extra": dict(a.extra),
    }
    return record, item.passages, np.asarray(item.passage_vectors), np.asarray(item.vector)


def _unpack(packed: _Packed) -> EmbeddedArticle:
    record, passages, passage_vectors, vector = packed
    date = PartialDate.parse(record["date"]) if record["date"] else None
    article = Article(
        id=record["id"],
        title=record["title"],
        text=record["text"],
        date=date,
        lang=record["lang"],
        source=record["source"],
        url=record["url"],
        extra=record["extra"],
    )
    return EmbeddedArticle(article, passages, passage_vectors, vector)


def _build_shard(task: _ShardTask) -> tuple[str, AddReport]:
    """One shard's add, in a worker: open or create the shard under its lock, add, commit."""
    store = Store.open_or_create(task.folder, task.model, task.dim, index=task.index, recall_floor=task.recall_floor)
    report = store.add([_unpack(p) for p in task.items], replace=task.replace)
    return Path(task.folder).name, report


def build_shards(
    path: str | Path,
    items: Sequence[EmbeddedArticle],
    *,
    executor: Mapper | None = None,
    workers: int = 2,
    replace: bool = False,
    index: str = "auto",
    recall_floor: float = 0.99,
) -> dict[str, AddReport]:
    """Add embedded articles to the archive at ``path``, building the touched shards in parallel.

    The articles are grouped by shard; each group is one task that opens (or creates) its
    shard under the shard's own lock and commits once, so tasks never conflict, and a
    concurrent writer of the same shard is serialised with them by that lock.

    Args:
        path: An existing archive (see :meth:`Archive.create`).
        items: Embedded articles, in any order.
        executor: Runs the tasks: anything with ``map(fn, iterable)`` (:class:`Mapper`),
            e.g. a ``concurrent.futures`` executor or :func:`ray_mapper`'s pool on a Ray
            cluster (the workers must see ``path``: a shared file system). None: a local
            process pool of ``workers`` processes (``spawn``), or in this process when
            ``workers`` is 1 or only one shard is touched.
        workers: Processes of the local pool.
        replace: As :meth:`Store.add`.
        index: Index choice for shards created now.
        recall_floor: Recall@10 an approximate shard index must meet.

    Returns:
        Shard key -> what its add did.

    Raises:
        StoreNotFoundError: No archive at ``path``.

    """
    root = Path(path).resolve()
    manifest = Archive.read_manifest(root)
    groups = group_by_shard(items)
    tasks = [
        _ShardTask(
            str(root / key), str(manifest["model"]), int(manifest["dim"]), index, recall_floor, replace, tuple(map(_pack, g))
        )
        for key, g in sorted(groups.items())
    ]
    results: Iterable[tuple[str, AddReport]]
    if executor is not None:
        results = list(executor.map(_build_shard, tasks))
    elif workers <= 1 or len(tasks) <= 1:
        results = [_build_shard(t) for t in tasks]
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_build_shard, tasks))
    out = dict(results)
    logger.info("built %d shard(s) of %s: %d article(s) added", len(out), root, sum(len(r.added) for r in out.values()))
    return out


def ray_mapper(processes: int | None = None) -> Mapper:
    """A :class:`Mapper` running tasks on Ray (``ray.util.multiprocessing.Pool``); Ray is imported only here.

    Raises:
        OptionalDependencyError: Ray is not installed.

    """
    try:
        from ray.util.multiprocessing import Pool
    except ImportError:
        raise OptionalDependencyError("ray", "building archive shards on Ray") from None
    pool: Mapper = Pool(processes=processes)
    return pool


# --------------------------------------------------------------------------- checking
class ArchiveDetector:
    """Checks and adds articles against an :class:`Archive`, with :class:`Detector`'s verification.

    Retrieval searches only the shards in the article's window (see the module docstring);
    the candidates are verified by :meth:`Detector.verify_candidates`, so a verdict is the
    one a single store holding those shards would give. Build with :meth:`open`.

    Args:
        archive: The archive.
        encoder: The embedding model; must match the archive's model.
        config: Thresholds and settings.
        verifier: The pairwise decision model (default: the shipped parameters).
        cache: An embedding cache, as for :class:`Detector`.
        search_days: Days either side of an article's date whose shards are searched;
            None: ``config.max_date_gap_days``.

    Raises:
        StoreMismatchError: The encoder's vectors are not the archive's.
        ConfigError: A negative ``search_days``.

    """

    def __init__(
        self,
        archive: Archive,
        encoder: Encoder,
        config: Config,
        verifier: Verifier | None = None,
        *,
        cache: EmbeddingCache | None = None,
        search_days: int | None = None,
    ) -> None:
        window = config.max_date_gap_days if search_days is None else search_days
        if not isinstance(window, int) or isinstance(window, bool) or window < 0:
            raise ConfigError(f"search_days must be a non-negative integer, got {window!r}")
        space = vector_space(encoder.name, centring_for(encoder.name, encoder.dim))
        if space != archive.model or encoder.dim != archive.dim:
            raise StoreMismatchError(
                f"archive {archive.path} was built with model {archive.model!r} (dimension {archive.dim}), "
                f"not {space!r} (dimension {encoder.dim}); open it with that model"
            )
        self.archive = archive
        self.search_days = window
        # Embedding and verification are the detector's; its own (in-memory) store stays empty.
        self._detector = Detector(Store.in_memory(archive.model, archive.dim), encoder, config, verifier, cache=cache)

    @classmethod
    def open(
        cls,
        path: str | Path,
        config: Config | None = None,
        *,
        encoder: Encoder | None = None,
        create: bool = False,
        read_only: bool = False,
        verify: bool = True,
        cache: bool | EmbeddingCache = False,
        search_days: int | None = None,
    ) -> ArchiveDetector:
        """Open the archive at ``path`` (creating it when ``create`` and missing).

        The archive manifest is checked before the model loads, so a missing or foreign
        archive fails fast.

        Raises:
            StoreNotFoundError: No archive there and not ``create``.
            StoreMismatchError: The archive was built with another model or dimension.

        """
        config = config or Config()
        root = Path(path)
        exists = (root / ARCHIVE_MANIFEST).is_file()
        if exists or not create or read_only:
            Archive.read_manifest(root)
        encoder = encoder or load_encoder(config.model, backend=config.backend)
        space = vector_space(encoder.name, centring_for(encoder.name, encoder.dim))
        if exists or read_only:
            archive = Archive.open(
                root, model=space, dim=encoder.dim, read_only=read_only, verify=verify, index=config.index,
                recall_floor=config.recall_floor,
            )  # fmt: skip
        else:  # several processes may create it at once: the first creates, the others open
            archive = Archive.open_or_create(root, space, encoder.dim, index=config.index, recall_floor=config.recall_floor)
        if isinstance(cache, EmbeddingCache):
            embedding_cache: EmbeddingCache | None = cache
        else:
            embedding_cache = EmbeddingCache.for_model(encoder.name, encoder.dim) if cache else None
        return cls(archive, encoder, config, cache=embedding_cache, search_days=search_days)

    @property
    def config(self) -> Config:
        """Thresholds and settings."""
        return self._detector.config

    @property
    def encoder(self) -> Encoder:
        """The embedding model."""
        return self._detector.encoder

    def embed(self, articles: Sequence[Article], *, show_progress: bool = False) -> list[EmbeddedArticle]:
        """Clean, split and embed articles, as :meth:`Detector.embed`."""
        return self._detector.embed(articles, show_progress=show_progress)

    def check(self, article: Article, *, top: int = 0) -> Verdict:
        """Is ``article`` a duplicate of an archived one? See :meth:`check_embedded`."""
        return self.check_embedded(self.embed([article]), top=top)[0]

    def check_many(self, articles: Sequence[Article], *, top: int = 0, show_progress: bool = False) -> list[Verdict]:
        """Check several articles (each against the archive only, not against each other)."""
        return self.check_embedded(self.embed(articles, show_progress=show_progress), top=top)

    def check_embedded(self, items: Sequence[EmbeddedArticle], *, top: int = 0) -> list[Verdict]:
        """Check embedded articles against the shards in their windows.

        Args:
            items: Embedded query articles.
            top: Also list the ``top`` best candidates that are not duplicates (near misses).

        Returns:
            One :class:`Verdict` per item; ``Verdict.shards`` names the shards searched.

        """
        if top < 0:
            raise ValueError(f"top must be >= 0, got {top}")
        config = self.config
        verdicts: list[Verdict] = []
        for item in items:
            found = self.archive.search(
                item, config.candidates, search_days=self.search_days, min_similarity=config.min_candidate_similarity
            )
            matches, truncated = self._detector.verify_candidates(item, found.candidates, cut=found.cut)
            duplicates = [m for m in matches if m.is_duplicate]
            near = [m for m in matches if not m.is_duplicate][:top]
            verdicts.append(Verdict(item.id, bool(duplicates), tuple(duplicates + near), truncated, found.shards))
        return verdicts

    def add(self, articles: Sequence[Article], *, replace: bool = False, show_progress: bool = False) -> AddReport:
        """Embed and store articles, one atomic commit per touched shard (see :meth:`Archive.add`).

        Articles their shard already holds with the same content are not embedded again.
        """
        new = [a for a in articles if replace or not self.archive.holds(a)]
        report = self.archive.add(self.embed(new, show_progress=show_progress), replace=replace)
        embedded = {a.id for a in new}
        skipped = tuple(a.id for a in articles if a.id not in embedded)
        return AddReport(report.added, report.unchanged + skipped, report.replaced, report.skipped)

    def refresh(self) -> bool:
        """See :meth:`Archive.refresh`."""
        return self.archive.refresh()
