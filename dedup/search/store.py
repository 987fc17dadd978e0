"""The persistent store: article metadata, passage vectors, the vector index, a manifest.

Layout of a store directory::

    manifest.json          format/version, model, dimension, cleaning version, segments, index
    seg-000001/            one immutable segment per add: articles.jsonl, vectors.npy, passages.npy
    index-000003.faiss     the vector index over all article vectors, rewritten per add
    .lock                  held by a writer while it adds

Writes are atomic: an add writes a new segment and a new index under temporary names,
flushes them to disk, renames them into place and only then replaces ``manifest.json``
(``os.replace``). A crash or Ctrl-C at any point leaves the previous manifest, which
names only complete files, so the previous store opens intact. Files that no manifest
names are removed by the next writer. Every file's size and SHA-256 are recorded in the
manifest and checked on open, so a truncated or altered file is reported, never served.

One writer at a time (a lock file); readers open a consistent snapshot (the manifest
they read) without locking, and :meth:`Store.refresh` moves them to the latest commit.
A commit does not remove the files it retires (the previous generation's index, the
segments a replace rewrote): the manifest lists them under ``retired`` and the *next*
commit removes them, so a reader that read the previous manifest an instant before the
commit still finds its files. A reader also opens a generation's files before it
reads any (an open file outlives its name), and when a file is gone all the same it
rereads the manifest and loads the newer generation, for up to ``RETRY_SECONDS``: it
reports a store as damaged only when a file its *current* manifest names is missing or
fails its size, checksum or format check.

The manifest's shape is checked before anything is read (:func:`check_manifest`): a
field of the wrong type, a negative count or a file name that is not a plain name of
the expected form (``seg-000001``, ``index-000001.faiss``, the three segment files) is
reported as :class:`~dedup.errors.StoreCorruptError` naming the manifest and the field,
so a damaged or hostile manifest can never make dedup read files outside the store.
:meth:`Store.writing` holds the writer lock around several steps (check, then add), so a
check-and-add is serialised with every other writer, in this process or another.

A ``Store`` object is not safe to mutate from several threads at once: a caller that
shares one between threads (the HTTP service) serialises its adds and refreshes.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from dedup._fs import (
    count_field,
    damaged,
    hold_lock,
    list_field,
    object_field,
    plain_name,
    read_json,
    sha256_handle,
    text_field,
)
from dedup._fs import fsync_dir as _fsync_dir
from dedup._fs import write_synced as _write_file
from dedup.embedding.naming import mismatch_hint
from dedup.errors import DuplicateIdError, IdConflictError, StoreCorruptError, StoreError, StoreMismatchError, StoreNotFoundError
from dedup.search.index import IndexPlan, SearchResult, VectorIndex, build_index, check_kind, plan_reason, update_index
from dedup.text import CLEANING_VERSION
from dedup.types import AddReport, Article, EmbeddedArticle, PartialDate

__all__ = ["FORMAT_VERSION", "RETRY_SECONDS", "SEGMENT_FILES", "Store", "check_manifest"]

logger = logging.getLogger(__name__)

FORMAT = "dedup-store"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LOCK = ".lock"
SEGMENT_FILES = ("articles.jsonl", "vectors.npy", "passages.npy")
# How long a reader keeps rereading the manifest while commits remove the files it was loading.
RETRY_SECONDS = 30.0
# A reader opens this many of a generation's files before it reads any (an open file outlives its
# name, so no commit can take them away); the files of a store with more segments open one by one.
_PINNED_FILES = 192
_SEGMENT_NAME = re.compile(r"seg-\d{6,}")
_INDEX_NAME = re.compile(r"index-\d{6,}\.faiss")
_RETIRED_NAME = re.compile(rf"{_SEGMENT_NAME.pattern}|{_INDEX_NAME.pattern}")
_SHA256 = re.compile(r"[0-9a-f]{64}")

# Per thread: the store folders whose writer lock this thread holds (the lock is re-entrant).
_held = threading.local()


@dataclass(frozen=True)
class _Segment:
    name: str
    count: int
    passages: int
    files: dict[str, dict[str, Any]]


def check_manifest(file: Path, manifest: dict[str, Any]) -> None:
    """Check the shape of a store manifest read from ``file``, before anything in it is used.

    Raises:
        StoreCorruptError: A field is missing or of the wrong type or range, or a file name
            is not a plain name of the expected form; the message names ``file`` and the field.

    """
    text_field(file, "model", manifest.get("model"))
    count_field(file, "dim", manifest.get("dim"), minimum=1)
    count_field(file, "generation", manifest.get("generation"))
    names: set[str] = set()
    total = 0
    for i, seg in enumerate(list_field(file, "segments", manifest.get("segments"))):
        where = f"segments[{i}]"
        seg = object_field(file, where, seg)
        name = plain_name(file, f"{where}.name", seg.get("name"), _SEGMENT_NAME)
        if name in names:
            raise damaged(file, f"{where}.name", "a name no other segment has", name)
        names.add(name)
        total += count_field(file, f"{where}.count", seg.get("count"))
        count_field(file, f"{where}.passages", seg.get("passages"))
        files = object_field(file, f"{where}.files", seg.get("files"))
        if sorted(files) != sorted(SEGMENT_FILES):
            raise damaged(file, f"{where}.files", f"the files {list(SEGMENT_FILES)}", sorted(files))
        for file_name, meta in files.items():
            _check_file_meta(file, f"{where}.files.{file_name}", meta)
    if count_field(file, "count", manifest.get("count")) != total:
        raise damaged(file, "count", f"the sum of the segment counts ({total})", manifest.get("count"))
    index = object_field(file, "index", manifest.get("index"))
    plain_name(file, "index.file", index.get("file"), _INDEX_NAME)
    _check_file_meta(file, "index", index)
    plan = object_field(file, "index.plan", index.get("plan", {"kind": index.get("kind", "flat")}))
    try:
        IndexPlan.from_dict(plan)
    except (TypeError, ValueError, StoreCorruptError) as exc:
        raise StoreCorruptError(
            f"{file} is damaged: field 'index.plan' cannot be read ({exc}); restore it from a backup"
        ) from None
    for i, name in enumerate(list_field(file, "retired", manifest.get("retired", []))):
        plain_name(file, f"retired[{i}]", name, _RETIRED_NAME)


def _check_file_meta(file: Path, field: str, meta: object) -> None:
    meta = object_field(file, field, meta)
    count_field(file, f"{field}.size", meta.get("size"))
    sha = meta.get("sha256")
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise damaged(file, f"{field}.sha256", "64 lower-case hex digits", sha)


class _Unreadable(Exception):
    """A file a manifest names cannot be opened or read: maybe a concurrent commit removed it."""

    def __init__(self, path: Path, error: OSError) -> None:
        super().__init__(f"{path}: {error}")
        self.path = path
        self.error = error

    def reported(self) -> StoreError:
        """The error to report when the manifest still names the file (no commit since)."""
        if isinstance(self.error, FileNotFoundError):
            return StoreCorruptError(f"store file {self.path} is missing; the store is damaged, restore it from a backup")
        return StoreError(f"cannot read store file {self.path}: {self.error.strerror or self.error}")


def _open(path: Path) -> IO[bytes]:
    """``path`` open for reading; an OSError becomes :class:`_Unreadable`."""
    try:
        return path.open("rb")
    except OSError as exc:
        raise _Unreadable(path, exc) from None


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """An OSError while reading ``path`` becomes :class:`_Unreadable`."""
    try:
        yield
    except OSError as exc:
        raise _Unreadable(path, exc) from None


def _valid_record(record: object) -> bool:
    return (
        isinstance(record, dict)
        and isinstance(record.get("id"), str)
        and isinstance(record.get("article"), dict)
        and isinstance(record.get("passages"), list)
        and isinstance(record.get("passage_offset"), int)
        and isinstance(record.get("content_hash"), str)
    )


def _npy_bytes(array: NDArray[np.float32]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


class _Rows:
    """A growable float32 matrix: appends are amortised O(rows added), not O(all rows)."""

    def __init__(self, dim: int) -> None:
        self._buffer = np.zeros((0, dim), dtype=np.float32)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def rows(self) -> NDArray[np.float32]:
        """The rows appended so far (a view; rows once written never change)."""
        return self._buffer[: self._count]

    def append(self, block: NDArray[np.float32]) -> None:
        """Append rows, doubling the capacity when full."""
        needed = self._count + len(block)
        if needed > len(self._buffer):
            grown = np.zeros((max(needed, 2 * len(self._buffer)), self._buffer.shape[1]), dtype=np.float32)
            grown[: self._count] = self._buffer[: self._count]
            self._buffer = grown
        self._buffer[self._count : needed] = block
        self._count = needed


def _article_from_record(record: dict[str, Any]) -> Article:
    date = record.get("date")
    return Article(
        id=record["id"],
        title=record.get("title") or "",
        text=record.get("text") or "",
        date=PartialDate.parse(date) if date else None,
        lang=record.get("lang"),
        source=record.get("source"),
        url=record.get("url"),
        extra=record.get("extra") or {},
    )


class Store:
    """Articles with their passages and vectors, searchable by article vector.

    Build one with :meth:`create`, :meth:`open` or :meth:`in_memory`.
    """

    def __init__(self, path: Path | None, model: str, dim: int, *, index: str = "auto", recall_floor: float = 0.99) -> None:
        self._path = path
        self._model = model
        self._dim = dim
        self._segments: list[_Segment] = []
        self._records: list[dict[str, Any]] = []
        self._positions: dict[str, int] = {}
        self._vectors = _Rows(dim)
        self._passage_vectors = _Rows(dim)
        self._passage_start: list[int] = []
        self._index = VectorIndex(dim)
        self._plan = IndexPlan("flat", plan_reason(index, "flat", 0), check_kind(index))
        self._recall_floor = recall_floor
        self._generation = 0
        self._index_file: str | None = None  # the index file of this generation
        self._retired: list[str] = []  # the files this generation's commit retired (removed at the next)

    # ----------------------------------------------------------------- construction
    @classmethod
    def in_memory(cls, model: str, dim: int, *, index: str = "auto", recall_floor: float = 0.99) -> Store:
        """A store that lives only in memory (nothing is written).

        ``index`` and ``recall_floor`` choose the vector index, as for :meth:`create`.
        """
        return cls(None, model, dim, index=index, recall_floor=recall_floor)

    @classmethod
    def create(cls, path: str | Path, model: str, dim: int, *, index: str = "auto", recall_floor: float = 0.99) -> Store:
        """Create an empty store at ``path`` (a new or empty directory).

        Raises:
            StoreError: When ``path`` already holds files.

        """
        root = Path(path)
        if root.exists() and any(root.iterdir()):
            if (root / MANIFEST).exists():
                raise StoreError(f"a store already exists at {root}; open it instead")
            raise StoreError(f"cannot create a store in {root}: the folder is not empty")
        root.mkdir(parents=True, exist_ok=True)
        store = cls(root, model, dim, index=index, recall_floor=recall_floor)
        with store._locked():
            store._commit([], store._index)
        return store

    @classmethod
    def open_or_create(
        cls, path: str | Path, model: str, dim: int, *, index: str = "auto", recall_floor: float = 0.99, verify: bool = True
    ) -> Store:
        """Open the store at ``path``, or create it there, under its writer lock.

        Safe when several processes do this at once (the first creates, the others open),
        and after a creation that crashed before its first commit: what it left (the lock
        file, temporary files) is cleared.

        Raises:
            StoreError: When ``path`` holds other files but no store.
            StoreMismatchError: The existing store was built with another model or dimension.

        """
        root = Path(path)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create a store at {root}: {exc.strerror or exc}") from None
        store = cls(root, model, dim, index=index, recall_floor=recall_floor)
        with store._locked():
            if (root / MANIFEST).exists():
                return cls.open(root, model=model, dim=dim, verify=verify, recall_floor=recall_floor)
            foreign = [e.name for e in root.iterdir() if e.name != LOCK and not e.name.startswith((".tmp-", "seg-", "index-"))]
            if foreign:
                raise StoreError(f"cannot create a store in {root}: the folder holds other files ({', '.join(sorted(foreign))})")
            store._commit([], store._index)  # its clean-up removes what a crashed creation left
        return store

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        model: str | None = None,
        dim: int | None = None,
        verify: bool = True,
        index: str | None = None,
        recall_floor: float = 0.99,
    ) -> Store:
        """Open an existing store, refusing one built with another model or dimension.

        A writer in another process may commit while the store loads: when a file the
        manifest names is gone or fails its checks, the manifest is read again and, if a
        commit happened meanwhile, the newer generation is loaded instead (for up to
        ``RETRY_SECONDS``).

        Args:
            path: The store directory.
            model: The model the caller embeds with; None skips the check.
            dim: The caller's vector dimension; None skips the check.
            verify: Check every file's SHA-256 against the manifest (sizes are always checked).
            index: Change the index choice (``auto``, ``flat``, ``hnsw``, ``ivf``); it takes
                effect at the next add. None keeps the stored choice.
            recall_floor: Recall@10 against exact search that an approximate index must meet.

        Raises:
            StoreNotFoundError: No store at ``path``.
            StoreMismatchError: Built with another model, dimension, cleaning or format version.
            StoreCorruptError: The manifest is damaged, or a file it names is missing, truncated or altered.
            StoreError: A file cannot be read (permissions), or commits came so fast for
                ``RETRY_SECONDS`` that no generation could be loaded whole.

        """
        root = Path(path)
        deadline = time.monotonic() + RETRY_SECONDS
        changes = 0
        while True:
            manifest = cls._read_manifest(root)
            store = cls(root, manifest["model"], manifest["dim"], recall_floor=recall_floor)
            if model is not None and model != store._model:
                raise StoreMismatchError(
                    f"store {root} was built with model {store._model!r}, not {model!r}; open it with that model "
                    "or build a new store with this one" + mismatch_hint(store._model, model)
                )
            if dim is not None and dim != store._dim:
                raise StoreMismatchError(f"store {root} holds vectors of dimension {store._dim}, the model gives {dim}")
            try:
                store._load(manifest, verify=verify)
            except (StoreCorruptError, _Unreadable) as exc:
                # Writers in another process may have committed twice, and removed files this
                # manifest named, while it was being read: then read the new manifest and load that.
                if cls._read_manifest(root)["generation"] == manifest["generation"]:
                    raise (exc.reported() if isinstance(exc, _Unreadable) else exc) from None
                changes += 1
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"store {root} changed {changes} times while it was being read (writers commit faster "
                        f"than it loads) and could not be loaded whole within {RETRY_SECONDS:.0f} s; try again"
                    ) from None
                logger.debug("store %s: generation %s changed while loading; reading it again", root, manifest["generation"])
                continue
            if index is not None and check_kind(index) != store._plan.requested:
                store._plan = replace(store._plan, requested=check_kind(index), calibrated_n=0)
            return store

    @staticmethod
    def _read_manifest(root: Path) -> dict[str, Any]:
        file = root / MANIFEST
        if not root.is_dir():
            raise StoreNotFoundError(f"no store at {root}: the folder does not exist (create one with `dedup add`)")
        if not file.is_file():
            raise StoreNotFoundError(f"no store at {root}: {MANIFEST} is missing (create one with `dedup add`)")
        manifest = read_json(file, "the store manifest")
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise StoreCorruptError(f"{file} is not a dedup store manifest")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise StoreMismatchError(
                f"store {root} has format version {manifest.get('format_version')}, this dedup reads {FORMAT_VERSION}"
            )
        if manifest.get("cleaning_version") != CLEANING_VERSION:
            raise StoreMismatchError(
                f"store {root} was built with cleaning version {manifest.get('cleaning_version')}, this dedup uses "
                f"{CLEANING_VERSION}; rebuild the store from its articles"
            )
        check_manifest(file, manifest)
        return manifest

    @staticmethod
    def _check_open_file(fh: IO[bytes], path: Path, meta: dict[str, Any], verify: bool) -> None:
        size = os.fstat(fh.fileno()).st_size
        if size != meta["size"]:
            raise StoreCorruptError(
                f"store file {path} has {size} bytes, the manifest says {meta['size']}: it was truncated or altered; "
                "restore the store from a backup"
            )
        if verify and sha256_handle(fh) != meta["sha256"]:
            raise StoreCorruptError(
                f"store file {path} does not match its checksum: it was altered; restore the store from a backup"
            )
        fh.seek(0)

    def _load(self, manifest: dict[str, Any], *, verify: bool) -> None:
        """Load the generation ``manifest`` names (its shape already checked by :func:`check_manifest`).

        The index and the segment files are all opened (up to ``_PINNED_FILES``) before any
        is read: a commit that removes them afterwards leaves them readable here.
        """
        assert self._path is not None
        self._generation = manifest["generation"]
        meta = manifest["index"]
        index_path = self._path / meta["file"]
        segments = [_Segment(seg["name"], seg["count"], seg["passages"], seg["files"]) for seg in manifest["segments"]]
        wanted = [index_path] + [self._path / seg.name / name for seg in segments for name in SEGMENT_FILES]
        with contextlib.ExitStack() as pins:
            handles = {path: pins.enter_context(_open(path)) for path in wanted[:_PINNED_FILES]}
            for segment in segments:
                self._load_segment(segment, verify, handles)
            with _reading(index_path):
                self._check_open_file(handles[index_path], index_path, meta, verify)
                data = handles[index_path].read()
        self._plan = IndexPlan.from_dict(meta.get("plan", {"kind": meta.get("kind", "flat")}))
        self._index = VectorIndex.from_bytes(data, self._dim, param=self._plan.param)
        self._index_file = meta["file"]
        self._retired = list(manifest.get("retired", []))
        if self._index.kind != self._plan.kind:
            raise StoreCorruptError(
                f"index {index_path} is {self._index.kind}, the manifest says {self._plan.kind}; restore the store from a backup"
            )
        if len(self._index) != len(self._records):
            raise StoreCorruptError(
                f"index {index_path} holds {len(self._index)} vectors for {len(self._records)} articles; "
                "restore the store from a backup"
            )

    def _load_segment(self, segment: _Segment, verify: bool, handles: dict[Path, IO[bytes]]) -> None:
        assert self._path is not None
        folder = self._path / segment.name
        loaded: dict[str, Any] = {}
        for name in SEGMENT_FILES:
            path = folder / name
            with contextlib.ExitStack() as own, _reading(path):
                fh = handles.get(path) or own.enter_context(_open(path))
                self._check_open_file(fh, path, segment.files[name], verify)
                try:
                    if name == "articles.jsonl":
                        # Split on "\n" only: JSON escapes it inside strings, but not U+2028, U+2029 or U+0085,
                        # which str.splitlines() would also split on.
                        text = fh.read().decode("utf-8")
                        loaded[name] = [json.loads(line) for line in text.split("\n") if line]
                    else:
                        loaded[name] = np.load(fh, allow_pickle=False)
                except (ValueError, EOFError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
                    raise StoreCorruptError(f"segment {folder} cannot be read ({exc}); restore it from a backup") from None
        records, vectors, passages = loaded["articles.jsonl"], loaded["vectors.npy"], loaded["passages.npy"]
        if vectors.shape != (segment.count, self._dim) or passages.shape != (segment.passages, self._dim):
            raise StoreCorruptError(f"segment {folder} has arrays of the wrong shape; restore it from a backup")
        if len(records) != segment.count:
            raise StoreCorruptError(f"segment {folder} lists {len(records)} articles, the manifest says {segment.count}")
        if not all(map(_valid_record, records)):
            raise StoreCorruptError(f"segment {folder} holds an article record of the wrong shape; restore it from a backup")
        self._append_memory(records, vectors, passages)
        self._segments.append(segment)

    def _append_memory(
        self, records: Sequence[dict[str, Any]], vectors: NDArray[np.float32], passages: NDArray[np.float32]
    ) -> None:
        offset = len(self._passage_vectors)
        for record in records:
            if record["id"] in self._positions:
                raise StoreCorruptError(f"id {record['id']!r} is stored twice")
            self._positions[record["id"]] = len(self._records)
            self._passage_start.append(offset + int(record["passage_offset"]))
            self._records.append(record)
        self._vectors.append(vectors)
        self._passage_vectors.append(passages)

    # ------------------------------------------------------------------- properties
    @property
    def path(self) -> Path | None:
        """The store directory, or None for an in-memory store."""
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
    def generation(self) -> int:
        """Number of the commit this object holds (it grows by one per add)."""
        return self._generation

    @property
    def index_kind(self) -> str:
        """The vector index type in use."""
        return self._index.kind

    @property
    def index_plan(self) -> IndexPlan:
        """Which index is in use, its search parameter, measured recall, and why."""
        return self._plan

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._positions

    @property
    def ids(self) -> list[str]:
        """Stored ids, in insertion order."""
        return [r["id"] for r in self._records]

    # ---------------------------------------------------------------------- reading
    def get(self, article_id: str) -> Article:
        """The stored article with this id.

        Raises:
            KeyError: When no article has this id.

        """
        return _article_from_record(self._records[self._positions[article_id]]["article"])

    def embedded(self, position: int) -> EmbeddedArticle:
        """The stored article at ``position`` with its passages and vectors."""
        record = self._records[position]
        start = self._passage_start[position]
        count = len(record["passages"])
        passages = self._passage_vectors.rows[start : start + count]
        return EmbeddedArticle(
            _article_from_record(record["article"]),
            tuple(record["passages"]),
            np.asarray(passages),
            self._vectors.rows[position],
        )

    def position(self, article_id: str) -> int:
        """Insertion position of an id (raises KeyError)."""
        return self._positions[article_id]

    def search(self, queries: NDArray[np.float32], k: int) -> SearchResult:
        """The ``k`` stored articles most similar to each query vector."""
        return self._index.search(queries, k)

    # ---------------------------------------------------------------------- writing
    def add(self, items: Sequence[EmbeddedArticle], *, replace: bool = False) -> AddReport:
        """Store embedded articles atomically: all of them or, on any failure, none.

        Re-adding an id with the same content is a no-op. The same id with other content
        raises :class:`DuplicateIdError` unless ``replace`` is True. An article with no
        passage (empty after cleaning) is not stored: it is listed in ``AddReport.skipped``.

        Raises:
            DuplicateIdError: An id is already stored with other content (and not ``replace``).
            StoreMismatchError: A vector has the wrong dimension.

        """
        with self._locked():
            self._refresh()
            added: list[EmbeddedArticle] = []
            unchanged: list[str] = []
            replaced: list[str] = []
            batch_ids: set[str] = set()
            empty = tuple(item.id for item in items if not item.passages)
            for item in items:
                if not item.passages:  # empty after cleaning: never stored, never matched
                    continue
                if item.vector.shape != (self._dim,):
                    raise StoreMismatchError(
                        f"article {item.id!r} has a vector of shape {item.vector.shape}, store dim is {self._dim}"
                    )
                if item.id in batch_ids:
                    raise DuplicateIdError(f"id {item.id!r} appears twice in one add")
                batch_ids.add(item.id)
                position = self._positions.get(item.id)
                if position is None:
                    added.append(item)
                elif self._records[position]["content_hash"] == item.article.content_hash:
                    unchanged.append(item.id)
                elif replace:
                    replaced.append(item.id)
                    added.append(item)
                else:
                    raise IdConflictError(
                        f"id {item.id!r} is already stored with different content; use replace=True (--replace) to overwrite"
                    )
            if added:
                self._write(added, set(replaced))
            return AddReport(tuple(a.id for a in added if a.id not in replaced), tuple(unchanged), tuple(replaced), empty)

    def _write(self, added: Sequence[EmbeddedArticle], replaced: set[str]) -> None:
        records = [self._record(item) for item in added]
        vectors = np.vstack([item.vector[None, :] for item in added]).astype(np.float32)
        passages = np.vstack([item.passage_vectors for item in added]).astype(np.float32)
        if replaced:  # rewrite everything as one segment without the replaced articles
            keep = [i for i, r in enumerate(self._records) if r["id"] not in replaced]
            old = [self.embedded(i) for i in keep]
            fresh = Store(self._path, self._model, self._dim)
            fresh._generation = self._generation
            fresh._segments, fresh._index_file = self._segments, self._index_file  # what this commit retires
            all_items = old + list(added)
            all_records = [{**self._records[i], "passage_offset": 0} for i in keep] + records
            fresh._assign_offsets(all_records)
            all_vectors = np.vstack([e.vector[None, :] for e in all_items]).astype(np.float32)
            all_passages = np.vstack([e.passage_vectors for e in all_items]).astype(np.float32)
            fresh._recall_floor = self._recall_floor
            index, fresh._plan = build_index(all_vectors, self._plan.requested, floor=self._recall_floor)
            fresh._commit([(all_records, all_vectors, all_passages)], index, keep_segments=False)
            self.__dict__.update(fresh.__dict__)
            return
        self._assign_offsets(records)
        # A persistent store adds to a copy, so a failed commit leaves the live index untouched.
        base = self._index if self._path is None else self._index.copy()
        index, plan = update_index(
            base, self._plan, vectors, lambda: np.vstack([self._vectors.rows, vectors]), floor=self._recall_floor
        )
        if plan != self._plan:
            logger.info("vector index: %s", plan.describe())
        self._commit([(records, vectors, passages)], index, plan)

    @staticmethod
    def _assign_offsets(records: list[dict[str, Any]]) -> None:
        offset = 0
        for record in records:
            record["passage_offset"] = offset
            offset += len(record["passages"])

    @staticmethod
    def _record(item: EmbeddedArticle) -> dict[str, Any]:
        article = item.article.to_dict()
        extra = {k: v for k, v in article.items() if k not in ("id", "title", "text", "date", "lang", "source", "url")}
        core = {k: article[k] for k in ("id", "title", "text", "date", "lang", "source", "url")}
        core["extra"] = extra
        return {
            "id": item.id,
            "content_hash": item.article.content_hash,
            "article": core,
            "passages": list(item.passages),
            "passage_offset": 0,
        }

    def _commit(
        self,
        new: Sequence[tuple[list[dict[str, Any]], NDArray[np.float32], NDArray[np.float32]]],
        index: VectorIndex,
        plan: IndexPlan | None = None,
        *,
        keep_segments: bool = True,
    ) -> None:
        plan = plan or self._plan
        generation = self._generation + 1
        segments = list(self._segments) if keep_segments else []
        previous = {s.name for s in self._segments} | ({self._index_file} if self._index_file else set())
        index_name = f"index-{generation:06d}.faiss"
        retired: list[str] = []
        if self._path is not None:
            segments += [self._write_segment(generation, records, vectors, passages) for records, vectors, passages in new]
            retired = sorted(previous - {s.name for s in segments} - {index_name})
            tmp = self._path / f".tmp-{index_name}"
            meta = _write_file(tmp, index.to_bytes())
            os.replace(tmp, self._path / index_name)
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "model": self._model,
                "dim": self._dim,
                "cleaning_version": CLEANING_VERSION,
                "generation": generation,
                "count": sum(s.count for s in segments),
                "updated": datetime.now(UTC).isoformat(timespec="seconds"),
                "segments": [{"name": s.name, "count": s.count, "passages": s.passages, "files": s.files} for s in segments],
                "index": {"file": index_name, "kind": index.kind, "plan": plan.to_dict(), **meta},
                "retired": retired,  # named by the previous generation only; removed at the next commit
            }
            tmp_manifest = self._path / f".tmp-{MANIFEST}"
            # Compact, so the C encoder writes it: an indented manifest is encoded in pure Python,
            # which made every commit slower as segments accumulate.
            _write_file(tmp_manifest, json.dumps(manifest, separators=(",", ":")).encode("utf-8"))
            _fsync_dir(self._path)
            os.replace(tmp_manifest, self._path / MANIFEST)  # the commit point
            _fsync_dir(self._path)
        if not keep_segments:
            self._records, self._positions, self._passage_start = [], {}, []
            self._vectors, self._passage_vectors = _Rows(self._dim), _Rows(self._dim)
        for records, vectors, passages in new:
            self._append_memory(records, vectors, passages)
        if self._path is not None:
            self._segments = segments
            self._index_file, self._retired = index_name, retired
        self._index = index
        self._plan = plan
        self._generation = generation
        if self._path is not None:
            self._collect_garbage()

    def _write_segment(
        self, generation: int, records: list[dict[str, Any]], vectors: NDArray[np.float32], passages: NDArray[np.float32]
    ) -> _Segment:
        assert self._path is not None
        name = f"seg-{generation:06d}"
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=self._path))
        files = {
            "articles.jsonl": _write_file(
                tmp / "articles.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
            ),
            "vectors.npy": _write_file(tmp / "vectors.npy", _npy_bytes(vectors)),
            "passages.npy": _write_file(tmp / "passages.npy", _npy_bytes(passages)),
        }
        _fsync_dir(tmp)
        final = self._path / name
        if final.exists():  # left by a crashed writer, never named by a manifest
            shutil.rmtree(final)
        os.rename(tmp, final)
        return _Segment(name, len(records), len(passages), files)

    def _collect_garbage(self) -> None:
        """Remove what neither this generation nor the previous one names (crashed writers' files too).

        The files this commit retired stay until the next commit: a reader that read the
        previous manifest just before this commit may still be loading them.
        """
        assert self._path is not None
        keep = {s.name for s in self._segments} | {MANIFEST, LOCK, *self._retired}
        if self._index_file:
            keep.add(self._index_file)
        for entry in self._path.iterdir():
            if entry.name in keep:
                continue
            if entry.name.startswith((".tmp-", "seg-", "index-")):
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    def refresh(self) -> bool:
        """Move to the latest commit if another writer committed since; True if it did.

        Raises:
            StoreError: When the store on disk can no longer be read (see :meth:`open`).

        """
        return self._refresh()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the writer lock (re-entrant within a thread; a no-op in memory).

        Raises:
            StoreError: When another writer holds the lock for more than 600 s, or the lock
                file cannot be taken (it is a folder, or not writable).

        """
        with self._locked():
            yield

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the writer lock, on the latest commit, for several steps (check, then add).

        Adds inside the block take the same lock again (it is re-entrant), so what was
        checked inside the block is what the add commits onto: no other writer, in this
        process or another, commits in between.

        Raises:
            StoreError: When another writer holds the lock for more than 600 s.

        """
        with self._locked():
            self._refresh()
            yield

    def _refresh(self) -> bool:
        """Reload if another process committed since this store was opened."""
        if self._path is None:
            return False
        manifest = self._read_manifest(self._path)
        if manifest["generation"] == self._generation:
            return False
        fresh = Store.open(self._path, verify=False, index=self._plan.requested, recall_floor=self._recall_floor)
        self.__dict__.update(fresh.__dict__)
        return True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self._path is None:
            yield
            return
        held: set[str] = _held.__dict__.setdefault("paths", set())
        key = str(self._path.resolve())
        if key in held:  # this thread already holds it (inside :meth:`writing`)
            yield
            return
        with hold_lock(self._path / LOCK, timeout=600):
            held.add(key)
            try:
                yield
            finally:
                held.discard(key)
