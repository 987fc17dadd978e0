"""Store files on disk: writing a segment, the index file and the manifest; opening a generation.

A segment is an immutable folder (``seg-000001/``) of the five files described in
:mod:`dedup.search.parts`. It is written under a temporary name, flushed, then renamed
into place (:func:`write_segment`).

A reader opens all of a generation's files (up to ``_PINNED_FILES``) before it reads any
(:func:`read_generation`): an open file outlives its name (a part keeps its data files
open), so a commit that removes them meanwhile cannot take them away. A file that
cannot be opened or read raises :class:`Unreadable`, so the store can tell "a commit
removed it" from "the store is damaged" (:func:`latest` then reads the newer generation).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, TypeVar

from dedup import _fs
from dedup.errors import StoreCorruptError, StoreError
from dedup.search.manifest import MANIFEST, SEGMENT_FILES, Segment, read_manifest
from dedup.search.parts import BLOCK, MAPPED, Part, Payload, block_checksums, npy_bytes, open_part
from dedup.types import EmbeddedArticle

__all__ = [
    "RETRY_SECONDS",
    "Unreadable",
    "article_record",
    "collect_garbage",
    "latest",
    "open_written",
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

_T = TypeVar("_T")
logger = logging.getLogger(__name__)


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


# ------------------------------------------------------------------------------ writing
def article_record(item: EmbeddedArticle) -> dict[str, Any]:
    """The ``articles.jsonl`` record of an embedded article."""
    return {
        "id": item.id,
        "content_hash": item.article.content_hash,
        "article": item.article.to_record(),
        "passages": list(item.passages),
    }


def write_segment(root: Path, name: str, payload: Payload) -> Segment:
    """Write the segment ``root / name``: its files under a temporary folder, flushed, then renamed into place."""
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root))
    contents = {
        "articles.jsonl": payload.lines,
        "ids.json": json.dumps(payload.ids, ensure_ascii=False).encode("utf-8"),
        "offsets.npy": npy_bytes(payload.offsets),
        "vectors.npy": npy_bytes(payload.vectors),
        "passages.npy": npy_bytes(payload.passages),
    }
    blocks = {"block": BLOCK, **{file: block_checksums(contents[file], BLOCK) for file in MAPPED}}
    contents["blocks.json"] = json.dumps(blocks).encode("utf-8")
    files = {file: _fs.write_synced(tmp / file, data) for file, data in contents.items()}
    _fs.fsync_dir(tmp)
    final = root / name
    if final.exists():  # left by a crashed writer, never named by a manifest
        shutil.rmtree(final)
    os.rename(tmp, final)
    return Segment(name, len(payload.ids), len(payload.passages), files)


def open_written(root: Path, segment: Segment, dim: int) -> Part:
    """The part of a segment this process has just written (its checksums were computed from the bytes written)."""
    folder = root / segment.name
    with contextlib.ExitStack() as own, _reading(folder):
        files = {name: own.enter_context(_open(folder / name)) for name in SEGMENT_FILES}
        return open_part(folder, segment, dim, files, verify=False)


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
def read_generation(
    root: Path,
    manifest: dict[str, Any],
    *,
    verify: bool,
    take: Callable[[Segment, Part], None],
    reuse: Mapping[str, Part] | None = None,
    parse_index: Callable[[int], _T] | None = None,
) -> _T | None:
    """Open the segments ``manifest`` names, handing each part to ``take`` in order; returns the parsed index file.

    ``reuse``: parts already open, by segment name (segments are immutable), handed on as
    they are. ``parse_index`` reads the index from the index file's descriptor; without it,
    the index file is not read and None is returned.

    Every file's size is checked; the index file, ``ids.json`` and ``offsets.npy`` are read
    (and, with ``verify``, checksummed) now, the rest is kept open and checked on first read
    (see :mod:`dedup.search.parts`). The index file's checksum is computed in a second
    thread while ``parse_index`` reads it (both release the GIL), and a mismatch raises
    before the parsed index is returned.

    Raises:
        StoreCorruptError: A file fails its checks or does not parse.
        Unreadable: A file cannot be opened or read.

    """
    meta = manifest["index"]
    index_path = root / meta["file"]
    segments = [Segment.from_dict(seg) for seg in manifest["segments"]]
    reuse = reuse or {}
    wanted = [index_path] if parse_index is not None else []
    wanted += [root / seg.name / name for seg in segments if seg.name not in reuse for name in SEGMENT_FILES]
    with contextlib.ExitStack() as pins:
        handles = {path: pins.enter_context(_open(path)) for path in wanted[:_PINNED_FILES]}
        for segment in segments:
            if segment.name in reuse:
                take(segment, reuse[segment.name])
                continue
            folder = root / segment.name
            with contextlib.ExitStack() as own, _reading(folder):
                files = {name: handles.get(folder / name) or own.enter_context(_open(folder / name)) for name in SEGMENT_FILES}
                take(segment, open_part(folder, segment, manifest["dim"], files, verify=verify))
        if parse_index is None:
            return None
        with _reading(index_path):
            _check_open_file(handles[index_path], index_path, meta, verify=False)
            return _parse_checked(handles[index_path].fileno(), index_path, meta["sha256"] if verify else None, parse_index)


def _sha256_fd(fd: int) -> str:
    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, 1 << 22, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def _parse_checked(fd: int, path: Path, sha256: str | None, parse: Callable[[int], _T]) -> _T:
    """``parse(fd)``, while another thread checks the file against ``sha256`` (None: no check); the checksum error first."""
    if sha256 is None:
        return parse(fd)
    with ThreadPoolExecutor(max_workers=1) as pool:
        digest = pool.submit(_sha256_fd, fd)
        try:
            parsed, error = parse(fd), None
        except StoreCorruptError as exc:
            parsed, error = None, exc
        if digest.result() != sha256:
            raise StoreCorruptError(
                f"store file {path} does not match its checksum: it was altered; restore the store from a backup"
            )
    if error is not None:
        raise error
    return parsed  # type: ignore[return-value]  # set whenever error is None


def _altered(path: Path) -> StoreCorruptError:
    return StoreCorruptError(f"store file {path} does not match its checksum: it was altered; restore the store from a backup")


def _check_open_file(fh: IO[bytes], path: Path, meta: dict[str, Any], verify: bool) -> None:
    size = os.fstat(fh.fileno()).st_size
    if size != meta["size"]:
        raise StoreCorruptError(
            f"store file {path} has {size} bytes, the manifest says {meta['size']}: it was truncated or altered; "
            "restore the store from a backup"
        )
    if verify and _fs.sha256_handle(fh) != meta["sha256"]:
        raise _altered(path)
    fh.seek(0)


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
