"""Store segments on disk: writing one, and reading a generation's segments and index whole.

A segment is an immutable folder (``seg-000001/``) of three files: ``articles.jsonl``
(one record per article: id, content hash, the article as :meth:`~dedup.types.Article.to_record`
writes it, its cleaned passages and the offset of its first passage vector),
``vectors.npy`` (the article vectors) and ``passages.npy`` (the passage vectors). It is
written under a temporary name, flushed, then renamed into place (:func:`write_segment`).

A reader opens all of a generation's files (up to ``_PINNED_FILES``) before it reads any
(:func:`read_generation`): an open file outlives its name, so a commit that removes them
meanwhile cannot take them away. A file that cannot be opened or read raises
:class:`Unreadable`, so the store can tell "a commit removed it" from "the store is damaged".
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from dedup import _fs
from dedup.errors import StoreCorruptError, StoreError
from dedup.search.manifest import MANIFEST, SEGMENT_FILES, Segment, read_manifest
from dedup.types import EmbeddedArticle

__all__ = [
    "RETRY_SECONDS",
    "Rows",
    "SegmentData",
    "Unreadable",
    "article_record",
    "collect_garbage",
    "latest",
    "read_generation",
    "verify_generation",
    "write_index_file",
    "write_manifest",
    "write_segment",
]

# How long a reader keeps rereading the manifest while commits remove the files it was loading.
RETRY_SECONDS = 30.0
# A reader opens this many of a generation's files before it reads any (an open file outlives its
# name, so no commit can take them away); the files of a store with more segments open one by one.
_PINNED_FILES = 192


@dataclass(frozen=True)
class SegmentData:
    """A segment read from disk: its manifest entry, article records, article and passage vectors."""

    segment: Segment
    records: list[dict[str, Any]]
    vectors: NDArray[np.float32]
    passages: NDArray[np.float32]


class Unreadable(Exception):
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
    """``path`` open for reading; an OSError becomes :class:`Unreadable`."""
    try:
        return path.open("rb")
    except OSError as exc:
        raise Unreadable(path, exc) from None


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """An OSError while reading ``path`` becomes :class:`Unreadable`."""
    try:
        yield
    except OSError as exc:
        raise Unreadable(path, exc) from None


class Rows:
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


_T = TypeVar("_T")
logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ writing
def article_record(item: EmbeddedArticle) -> dict[str, Any]:
    """The ``articles.jsonl`` record of an embedded article (its ``passage_offset`` set when written)."""
    return {
        "id": item.id,
        "content_hash": item.article.content_hash,
        "article": item.article.to_record(),
        "passages": list(item.passages),
        "passage_offset": 0,
    }


def _npy_bytes(array: NDArray[np.float32]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def write_segment(
    root: Path, name: str, records: Sequence[dict[str, Any]], vectors: NDArray[np.float32], passages: NDArray[np.float32]
) -> Segment:
    """Write the segment ``root / name``: its files under a temporary folder, flushed, then renamed into place."""
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root))
    articles = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    files = {
        "articles.jsonl": _fs.write_synced(tmp / "articles.jsonl", articles),
        "vectors.npy": _fs.write_synced(tmp / "vectors.npy", _npy_bytes(vectors)),
        "passages.npy": _fs.write_synced(tmp / "passages.npy", _npy_bytes(passages)),
    }
    _fs.fsync_dir(tmp)
    final = root / name
    if final.exists():  # left by a crashed writer, never named by a manifest
        shutil.rmtree(final)
    os.rename(tmp, final)
    return Segment(name, len(records), len(passages), files)


def write_index_file(root: Path, name: str, data: bytes) -> dict[str, Any]:
    """Write the index file ``root / name`` under a temporary name, flushed, then renamed; returns its size and sha256."""
    tmp = root / f".tmp-{name}"
    meta = _fs.write_synced(tmp, data)
    os.replace(tmp, root / name)
    return meta


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Replace the manifest atomically: the commit point."""
    # Compact, so the C encoder writes it: an indented manifest is encoded in pure Python,
    # which made every commit slower as segments accumulate.
    _fs.write_atomic(root / MANIFEST, json.dumps(manifest, separators=(",", ":")).encode("utf-8"))


def collect_garbage(root: Path, keep: set[str]) -> None:
    """Remove the store files in ``root`` (``.tmp-*``, ``seg-*``, ``index-*``) whose names are not in ``keep``."""
    for entry in root.iterdir():
        if entry.name in keep:
            continue
        if entry.name.startswith((".tmp-", "seg-", "index-")):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


# ------------------------------------------------------------------------------ reading
def read_generation(root: Path, manifest: dict[str, Any], *, verify: bool, take: Callable[[SegmentData], None]) -> bytes:
    """Read the segments ``manifest`` names, handing each to ``take`` in order; returns the index file's bytes.

    Every file is checked against its size (and, with ``verify``, its SHA-256) and each
    segment against its manifest entry and the store's dimension.

    Raises:
        StoreCorruptError: A file fails its checks or does not parse.
        Unreadable: A file cannot be opened or read.

    """
    meta = manifest["index"]
    index_path = root / meta["file"]
    segments = [Segment.from_dict(seg) for seg in manifest["segments"]]
    wanted = [index_path] + [root / seg.name / name for seg in segments for name in SEGMENT_FILES]
    with contextlib.ExitStack() as pins:
        handles = {path: pins.enter_context(_open(path)) for path in wanted[:_PINNED_FILES]}
        for segment in segments:
            take(_read_segment(root / segment.name, segment, manifest["dim"], verify, handles))
        with _reading(index_path):
            _check_open_file(handles[index_path], index_path, meta, verify)
            return handles[index_path].read()


def _read_segment(folder: Path, segment: Segment, dim: int, verify: bool, handles: dict[Path, IO[bytes]]) -> SegmentData:
    loaded: dict[str, Any] = {}
    for name in SEGMENT_FILES:
        path = folder / name
        with contextlib.ExitStack() as own, _reading(path):
            fh = handles.get(path) or own.enter_context(_open(path))
            _check_open_file(fh, path, segment.files[name], verify)
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
    if vectors.shape != (segment.count, dim) or passages.shape != (segment.passages, dim):
        raise StoreCorruptError(f"segment {folder} has arrays of the wrong shape; restore it from a backup")
    if len(records) != segment.count:
        raise StoreCorruptError(f"segment {folder} lists {len(records)} articles, the manifest says {segment.count}")
    if not all(map(_valid_record, records)):
        raise StoreCorruptError(f"segment {folder} holds an article record of the wrong shape; restore it from a backup")
    return SegmentData(segment, records, vectors, passages)


def _check_open_file(fh: IO[bytes], path: Path, meta: dict[str, Any], verify: bool) -> None:
    size = os.fstat(fh.fileno()).st_size
    if size != meta["size"]:
        raise StoreCorruptError(
            f"store file {path} has {size} bytes, the manifest says {meta['size']}: it was truncated or altered; "
            "restore the store from a backup"
        )
    if verify and _fs.sha256_handle(fh) != meta["sha256"]:
        raise StoreCorruptError(f"store file {path} does not match its checksum: it was altered; restore the store from a backup")
    fh.seek(0)


def _valid_record(record: object) -> bool:
    return (
        isinstance(record, dict)
        and isinstance(record.get("id"), str)
        and isinstance(record.get("article"), dict)
        and isinstance(record.get("passages"), list)
        and isinstance(record.get("passage_offset"), int)
        and isinstance(record.get("content_hash"), str)
    )


def verify_generation(root: Path, manifest: dict[str, Any]) -> tuple[int, int]:
    """Check the size and SHA-256 of every file ``manifest`` names; returns (files, bytes) checked.

    Raises:
        StoreCorruptError: A file fails its checks.
        Unreadable: A file cannot be opened or read.

    """
    meta = manifest["index"]
    wanted = [(root / meta["file"], meta)] + [
        (root / seg["name"] / name, seg["files"][name]) for seg in manifest["segments"] for name in SEGMENT_FILES
    ]
    size = 0
    for path, file_meta in wanted:
        with _open(path) as fh, _reading(path):
            _check_open_file(fh, path, file_meta, verify=True)
        size += int(file_meta["size"])
    return len(wanted), size


def latest(root: Path, attempt: Callable[[dict[str, Any]], _T]) -> _T:
    """``attempt(manifest)`` on the latest manifest of the store at ``root``.

    Writers in another process may commit (and remove files the manifest named) while it
    runs: when it fails on a missing or changed file and the manifest has changed meanwhile,
    it runs again on the newer one, for up to ``RETRY_SECONDS``.
    """
    deadline = time.monotonic() + RETRY_SECONDS
    changes = 0
    while True:
        manifest = read_manifest(root)
        try:
            return attempt(manifest)
        except (StoreCorruptError, Unreadable) as exc:
            if read_manifest(root)["generation"] == manifest["generation"]:
                raise (exc.reported() if isinstance(exc, Unreadable) else exc) from None
            changes += 1
            if time.monotonic() > deadline:
                raise StoreError(
                    f"store {root} changed {changes} times while it was being read (writers commit faster "
                    f"than it loads) and could not be read whole within {RETRY_SECONDS:.0f} s; try again"
                ) from None
            logger.debug("store %s: generation %s changed while reading; reading it again", root, manifest["generation"])
