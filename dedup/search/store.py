"""The persistent store: article metadata, passage vectors, the vector index, a manifest.

Layout, commit protocol, compaction and the checks a reader makes: ``docs/store-format.md``. In short: a commit writes
its new files under temporary names, flushes and renames them, and only then replaces ``manifest.json`` (the commit
point), so a crash at any point leaves the previous store. An add writes one segment and the manifest (the newest
vectors, at most :data:`TAIL_MAX`, are searched exactly beside the index file); small segments are merged as adds go
(:mod:`dedup.search.compaction`). An open reads the manifest, the ids and the index; segment data is read on demand
and checked against its SHA-256 on first read (:mod:`dedup.search.parts`). A commit retires files but removes them
only at the next commit, and a reader that finds a file gone rereads the manifest
(:func:`~dedup.search.segments.latest`). One writer at a time (a lock file, re-entrant: :meth:`Store.writing` holds it
around check-then-add); readers take no lock. A ``Store`` object is not safe to mutate from several threads at once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dedup import _fs
from dedup.embedding.naming import mismatch_hint
from dedup.errors import StoreCorruptError, StoreError
from dedup.search.columns import Columns
from dedup.search.compaction import CompactReport, pack, tiers
from dedup.search.index import (
    IndexPlan,
    SearchResult,
    VectorIndex,
    build_index,
    check_kind,
    merge_results,
    needs_rebuild,
    plan_reason,
    update_index,
)
from dedup.search.manifest import (
    FORMAT_VERSION,
    LOCK,
    MANIFEST,
    SEGMENT_FILES,
    Segment,
    check_manifest,
    new_manifest,
    read_manifest,
)
from dedup.search.parts import Part, Payload, encode_payload
from dedup.search.routing import widen_dates
from dedup.search.segments import (
    RETRY_SECONDS,
    article_record,
    collect_garbage,
    latest,
    open_written,
    read_generation,
    verify_generation,
    write_index_file,
    write_manifest,
    write_segment,
)
from dedup.types import AddReport, Article, EmbeddedArticle

__all__ = ["FORMAT_VERSION", "LOCK", "MANIFEST", "RETRY_SECONDS", "SEGMENT_FILES", "TAIL_MAX", "Store", "check_manifest"]

logger = logging.getLogger(__name__)

# The newest vectors (up to this many) are searched exactly beside the index file; then a commit folds them into a new
# index file. So an add writes its segment and the manifest, O(batch); the O(store) index write comes once per TAIL_MAX.
TAIL_MAX = 10_000


class Store:
    """Articles with their passages and vectors, searchable by article vector.

    Build one with :meth:`create`, :meth:`open` or :meth:`in_memory`.
    """

    def __init__(self, path: Path | None, model: str, dim: int, *, index: str = "auto", recall_floor: float = 0.99) -> None:
        self._path = path
        self._model = model
        self._dim = dim
        self._segments: list[Segment] = []
        self._columns = Columns(dim)
        self._index = VectorIndex(dim)  # the index file's vectors: the first len(self._index) articles
        self._tail = VectorIndex(dim)  # the articles after those, searched exactly
        self._index_entry: dict[str, Any] = {}  # the manifest's entry of the index file
        self._plan = IndexPlan("flat", plan_reason(index, "flat", 0), check_kind(index))
        self._recall_floor = recall_floor
        self._generation = 0
        self._index_file: str | None = None  # the index file of this generation
        self._retired: list[str] = []  # the files this generation's commit retired (removed at the next)
        self._dates: list[str] | None = []  # the days the articles' dates cover; None: unknown (older store)

    # ----------------------------------------------------------------- construction
    @classmethod
    def in_memory(cls, model: str, dim: int, *, index: str = "auto", recall_floor: float = 0.99) -> Store:
        """A store that lives only in memory (nothing is written); ``index`` and ``recall_floor`` as for :meth:`create`."""
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
        _fs.make_folder(root, "a store")
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
        _fs.make_folder(root, "a store")
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
            verify: Check each file's SHA-256 against the manifest before its data is first
                used: the index and id files at open, a segment's data files at their first
                read (sizes are always checked at open). :meth:`verify` checks everything now.
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

        def load(manifest: dict[str, Any]) -> Store:
            store = cls(root, manifest["model"], manifest["dim"], recall_floor=recall_floor)
            advice = " or build a new store with this one" + (mismatch_hint(store._model, model) if model else "")
            _fs.check_vectors("store", root, (store._model, store._dim), model, dim, advice=advice)
            store._load(manifest, verify=verify)
            return store

        store = latest(root, load)
        if index is not None and check_kind(index) != store._plan.requested:
            store._plan = replace(store._plan, requested=check_kind(index), calibrated_n=0)
        return store

    def _load(self, manifest: dict[str, Any], *, verify: bool, previous: Store | None = None) -> None:
        """Load the generation ``manifest`` names (its shape already checked by :func:`check_manifest`).

        ``previous``: this store's previous generation, whose open segments and index (if
        the same file) are taken over rather than read again.
        """
        assert self._path is not None
        self._generation = manifest["generation"]
        meta = manifest["index"]
        reuse = dict(zip((s.name for s in previous._segments), previous._columns.parts, strict=True)) if previous else {}
        same = previous is not None and (previous._index_file, previous._index_entry.get("sha256")) == (
            meta["file"],
            meta["sha256"],
        )
        self._plan = IndexPlan.from_dict(meta.get("plan", {"kind": meta.get("kind", "flat")}))
        parse = None if same else lambda fd: VectorIndex.from_file(fd, self._dim, param=self._plan.param)
        index = read_generation(self._path, manifest, verify=verify, take=self._take_segment, reuse=reuse, parse_index=parse)
        index_path = self._path / meta["file"]
        self._index = index if index is not None else previous._index  # type: ignore[union-attr]  # same file: previous
        self._index_file = meta["file"]
        self._index_entry = dict(meta)
        self._retired = list(manifest.get("retired", []))
        self._dates = list(manifest["dates"]) if "dates" in manifest else None
        covered = int(meta.get("count", len(self._columns)))
        if self._index.kind != self._plan.kind:
            raise StoreCorruptError(
                f"index {index_path} is {self._index.kind}, the manifest says {self._plan.kind}; restore the store from a backup"
            )
        if len(self._index) != covered or covered > len(self._columns):
            raise StoreCorruptError(
                f"index {index_path} holds {len(self._index)} vectors, the manifest says {covered} of "
                f"{len(self._columns)} articles; restore the store from a backup"
            )
        self._tail.add(self._columns.vectors(covered))  # checks those segments' vectors.npy

    def _take_segment(self, segment: Segment, part: Part) -> None:
        self._columns.append(part)
        self._segments.append(segment)

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

    @property
    def dates(self) -> list[str] | None:
        """``[first, last]``, ISO days covering every stored date (only ever widened); ``[]``: none dated; None: unknown."""
        return None if self._dates is None else list(self._dates)

    def __len__(self) -> int:
        return len(self._columns)

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._columns

    @property
    def ids(self) -> list[str]:
        """Stored ids, in insertion order."""
        return self._columns.ids

    # ---------------------------------------------------------------------- reading
    def get(self, article_id: str) -> Article:
        """The stored article with this id (raises KeyError)."""
        return Article.from_record(self._columns.record(self._columns.position(article_id))["article"])

    def days(self, position: int) -> tuple[int, int] | None:
        """First and last day (ordinals) the date at ``position`` can denote, from memory; None: undated or not kept."""
        return self._columns.days(position)

    def embedded(self, position: int) -> EmbeddedArticle:
        """The stored article at ``position`` with its passages and vectors."""
        return self._columns.embedded(position)

    def position(self, article_id: str) -> int:
        """Insertion position of an id (raises KeyError)."""
        return self._columns.position(article_id)

    def search(self, queries: NDArray[np.float32], k: int) -> SearchResult:
        """The ``k`` stored articles most similar to each query vector.

        The index file's vectors and the newest ones beside it (searched exactly) are
        searched together, the best ``k`` kept.
        """
        found = self._index.search(queries, k)
        if not len(self._tail):
            return found
        return merge_results(found, self._tail.search(queries, k), len(self._index), k, len(self))

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
            added, unchanged, replaced = self._columns.sort_batch(items, replace=replace)
            if added:
                self._dates = widen_dates(self._dates, (a.article.date for a in added))  # kept if it fails: a superset is safe
                self._write(added, set(replaced))
                if self._path is not None and not replaced:  # size-tiered merging of small segments
                    ranges = tiers([s.count for s in self._segments])
                    if len(ranges) < len(self._segments):
                        self._compact(ranges, fold=False)
            empty = tuple(item.id for item in items if not item.passages)
            return AddReport(tuple(a.id for a in added if a.id not in replaced), tuple(unchanged), tuple(replaced), empty)

    def _write(self, added: Sequence[EmbeddedArticle], replaced: set[str]) -> None:
        records = [article_record(item) for item in added]
        if replaced:  # rewrite everything as one segment without the replaced articles
            self._rewrite(added, records, replaced)
            return
        vectors = np.vstack([item.vector[None, :] for item in added]).astype(np.float32)
        passages = np.vstack([item.passage_vectors for item in added]).astype(np.float32)
        index: VectorIndex | None
        if self._path is None:
            index, plan = update_index(
                self._index, self._plan, vectors, lambda: np.vstack([self._columns.vectors(), vectors]), floor=self._recall_floor
            )
        elif needs_rebuild(self._index, self._plan, self._drift_sample(vectors), len(self) + len(vectors)):
            everything = np.vstack([self._columns.vectors(), vectors])
            index, plan = build_index(everything, self._plan.requested, floor=self._recall_floor)
        elif len(self._tail) + len(vectors) > TAIL_MAX:
            index, plan = self._folded(vectors), self._plan
        else:  # the index file stays; the new vectors join the exactly searched tail
            index, plan = None, self._plan
        if plan != self._plan:
            logger.info("vector index: %s", plan.describe())
        self._commit([encode_payload(records, vectors, passages)], index, plan)

    def _drift_sample(self, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        """The added batch; with the whole exact tail when it folds into the index (drift matters only then)."""
        folds = len(self._tail) + len(vectors) > TAIL_MAX
        return np.vstack([self._columns.vectors(len(self._index)), vectors]) if folds else vectors

    def _folded(self, vectors: NDArray[np.float32] | None = None) -> VectorIndex:
        """A copy of the index with the tail (and ``vectors``) added: a failed commit leaves the live one untouched."""
        index = self._index.copy()
        index.add(self._columns.vectors(len(self._index)))
        if vectors is not None:
            index.add(vectors)
        return index

    def _rewrite(self, added: Sequence[EmbeddedArticle], records: list[dict[str, Any]], replaced: set[str]) -> None:
        """Commit the stored articles but ``replaced``, then ``added``, as one new segment and a new index."""
        keep = [i for i, article_id in enumerate(self.ids) if article_id not in replaced]
        all_items = [self.embedded(i) for i in keep] + list(added)
        fresh = Store(self._path, self._model, self._dim)
        fresh._generation = self._generation
        fresh._segments, fresh._index_file = self._segments, self._index_file  # what this commit retires
        all_records = [self._columns.record(i) for i in keep] + records
        all_vectors = np.vstack([e.vector[None, :] for e in all_items]).astype(np.float32)
        all_passages = np.vstack([e.passage_vectors for e in all_items]).astype(np.float32)
        fresh._recall_floor = self._recall_floor
        fresh._dates = self._dates
        index, fresh._plan = build_index(all_vectors, self._plan.requested, floor=self._recall_floor)
        fresh._commit([encode_payload(all_records, all_vectors, all_passages)], index, keep_segments=False)
        self.__dict__.update(fresh.__dict__)

    def _commit(
        self,
        new: Sequence[Payload],
        index: VectorIndex | None,
        plan: IndexPlan | None = None,
        *,
        keep_segments: bool = True,
    ) -> None:
        """Commit ``new`` segments after the kept ones.

        With ``index``, a new index file over the first ``len(index)`` articles is written;
        with None, the index file stays and the new vectors join the exactly searched tail.
        """
        plan = plan or self._plan
        segments = list(self._segments) if keep_segments else []
        if self._path is not None:
            segments += [write_segment(self._path, f"seg-{self._generation + 1:06d}", payload) for payload in new]
        written = self._publish(segments, index, plan)
        if not keep_segments:
            self._columns = Columns(self._dim)
        if self._path is None:
            parts = [Part.from_payload(payload) for payload in new]
        else:
            parts = [open_written(self._path, segment, self._dim) for segment in segments[len(segments) - len(new) :]]
        for part in parts:
            self._columns.append(part)
        self._adopt(segments, index, plan, written)

    def _publish(
        self, segments: list[Segment], index: VectorIndex | None, plan: IndexPlan
    ) -> tuple[str, list[str], dict[str, Any]] | None:
        """Write the next generation's index file (if ``index``) and manifest; None in memory.

        Returns the index file's name, the files retired, and the manifest's index entry.
        """
        if self._path is None:
            return None
        generation = self._generation + 1
        index_name = f"index-{generation:06d}.faiss" if index is not None or self._index_file is None else self._index_file
        previous = {s.name for s in self._segments} | ({self._index_file} if self._index_file else set())
        retired = sorted(previous - {s.name for s in segments} - {index_name})
        entry = self._write_generation(generation, segments, index_name, index, plan, retired)
        return index_name, retired, entry

    def _adopt(
        self,
        segments: list[Segment],
        index: VectorIndex | None,
        plan: IndexPlan,
        written: tuple[str, list[str], dict[str, Any]] | None,
    ) -> None:
        """Make the committed generation this object's (its articles already appended to the columns)."""
        if written is not None:
            self._segments = segments
            self._index_file, self._retired, self._index_entry = written
        if index is not None:
            self._index = index
            self._tail = VectorIndex(self._dim)
            self._tail.add(self._columns.vectors(len(index)))
        else:
            self._tail.add(self._columns.vectors(len(self._index) + len(self._tail)))
        self._plan = plan
        self._generation += 1
        if written is not None:
            self._collect_garbage()

    # ------------------------------------------------------------------- compaction
    def compact(self) -> CompactReport:
        """Merge the segments into as few as fit in ``SEGMENT_MAX`` articles each; fold the tail into the index file.

        One atomic commit under the writer lock (none when there is nothing to do); ids,
        positions and search results do not change. Adds also compact on their own: see
        :mod:`dedup.search.compaction`. In memory, nothing to do.

        Raises:
            StoreError: When another writer holds the lock for more than 600 s.

        """
        with self._locked():
            self._refresh()
            if self._path is None:
                return CompactReport(0, 0, 0, 0, len(self))
            return self._compact(pack([s.count for s in self._segments]), fold=True)

    def _compact(self, ranges: list[tuple[int, int]], *, fold: bool) -> CompactReport:
        """Merge the segments of each range of ``ranges`` into one (and fold the tail, if ``fold``), in one commit."""
        assert self._path is not None
        before = len(self._segments)
        merged = sum(stop - start for start, stop in ranges if stop - start > 1)
        folded = len(self._tail) if fold else 0
        if merged or folded:
            segments: list[Segment] = []
            for i, (start, stop) in enumerate(ranges):
                if stop - start == 1:
                    segments.append(self._segments[start])
                    continue
                payload = self._columns.payload(start, stop)
                segments.append(write_segment(self._path, f"seg-{self._generation + 1:06d}-{i}", payload))
            index = self._folded() if folded else None
            written = self._publish(segments, index, self._plan)
            parts = [
                None if stop - start == 1 else open_written(self._path, seg, self._dim)
                for (start, stop), seg in zip(ranges, segments, strict=True)
            ]
            self._columns.replace_parts(ranges, parts)
            self._adopt(segments, index, self._plan, written)
        return CompactReport(before, len(self._segments), merged, folded, len(self))

    def _write_generation(
        self, generation: int, segments: list[Segment], name: str, index: VectorIndex | None, plan: IndexPlan, retired: list[str]
    ) -> dict[str, Any]:
        """Write the index file (when ``index`` is given), then the manifest (the commit point); returns its index entry."""
        assert self._path is not None
        entry = {**self._index_entry, "plan": plan.to_dict()}
        if index is not None:
            meta = write_index_file(self._path, name, index.to_bytes())
            entry = {"file": name, "kind": index.kind, "plan": plan.to_dict(), "count": len(index), **meta}
        write_manifest(self._path, new_manifest(self._model, self._dim, generation, segments, entry, retired, self._dates))
        return entry

    def _collect_garbage(self) -> None:
        """Remove what neither this generation nor the previous one names (crashed writers' files too).

        The files this commit retired stay until the next commit: a reader that read the
        previous manifest just before this commit may still be loading them.
        """
        assert self._path is not None
        keep = {s.name for s in self._segments} | {MANIFEST, LOCK, *self._retired}
        if self._index_file:
            keep.add(self._index_file)
        collect_garbage(self._path, keep)

    def verify(self) -> tuple[int, int]:
        """Check the size and SHA-256 of every file of the latest commit; returns (files, bytes) checked.

        Raises:
            StoreCorruptError: A file is missing, truncated or altered.
            StoreError: A file cannot be read, or commits removed files faster than they could be checked.

        """
        if self._path is None:
            return 0, 0
        root = self._path
        return latest(root, lambda manifest: verify_generation(root, manifest))

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
        manifest = read_manifest(self._path)
        if manifest["generation"] == self._generation:
            return False
        root = self._path

        def load(manifest: dict[str, Any]) -> Store:
            fresh = Store(root, manifest["model"], manifest["dim"], recall_floor=self._recall_floor)
            fresh._load(manifest, verify=True, previous=self)  # only the new segments and index are opened
            return fresh

        fresh = latest(root, load)
        if fresh._plan.requested != self._plan.requested:
            fresh._plan = replace(fresh._plan, requested=self._plan.requested, calibrated_n=0)
        self.__dict__.update(fresh.__dict__)
        return True

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        if self._path is None:
            return contextlib.nullcontext()
        return _fs.hold_lock_reentrant(self._path / LOCK, timeout=600)
