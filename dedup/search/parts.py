"""One segment's articles as the store reads them: ids in memory, everything else on demand.

A segment (format version 3; 2 is read too) is a folder of six files:

* ``ids.json``: the ids, in order (read at open: the store's id table);
* ``offsets.npy``: ``(count + 1, 4)`` int64, for each article the byte offset of its line
  in ``articles.jsonl``, the row of its first passage vector in ``passages.npy``, and the
  first and last day its date can denote (proleptic ordinals; 0 when undated), then the
  two totals and two zeros (read at open: a check leaves out candidates dated too far
  away without reading them). Segments of format 2 have the first two columns only;
* ``articles.jsonl``: one record per article (id, content hash, the article, its passages);
* ``vectors.npy``: the article vectors, float32;
* ``passages.npy``: the passage vectors, float16.

* ``blocks.json``: the block size (``block``, 16 KiB; 1 MiB in segments written before)
  and the SHA-256 of each block of the three files above (read at open).

Those three are not read at open: a check reads the lines and passage vectors of its
candidates only (``os.pread`` on a file kept open, not a memory map, whose touched pages
would count in the process's resident memory), so a store's RAM is its id table and its
vector index. Each block is checked against its SHA-256 the first time it is read
(:class:`FileBytes`), so the first read of a big segment costs a block, not the file;
``ids.json``, ``offsets.npy`` and ``blocks.json`` are checked against the manifest when
they are read, at open.

A :class:`Payload` is a segment's content in memory, as written (:func:`encode_payload`) or
as merged by a compaction (:func:`concat_payloads`): merging is concatenation, with the
offsets shifted, no record is parsed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from dedup.errors import StoreCorruptError
from dedup.search.manifest import Segment
from dedup.types import PartialDate

__all__ = ["BLOCK", "Part", "Payload", "block_checksums", "concat_payloads", "encode_payload", "npy_bytes", "open_part"]

PASSAGE_DTYPE = np.float16
MAPPED = ("articles.jsonl", "vectors.npy", "passages.npy")
BLOCK = 1 << 14
"""The files read on demand are checked in blocks of this many bytes, each the first time it is read.

16 KiB: a candidate's record, vector and passages (about 15 kB in all) cost about four
blocks' hashing on first read, 64 kB, where 1 MiB blocks cost up to 4 MiB (most of a
check's retrieval time on a big shard). The price: ``blocks.json`` lists 64 checksums per
MiB (about 0.4% of the data, read at open). Segments written with another size (1 MiB
before) keep theirs: the size is recorded in ``blocks.json``."""
_BLOCK_SIZES = range(12, 25)
"""Block sizes a reader accepts, as powers of two (4 KiB to 16 MiB)."""


def block_checksums(data: bytes, block: int = BLOCK) -> list[str]:
    """The SHA-256 of each ``block`` bytes of ``data`` (what ``blocks.json`` lists per file)."""
    return [hashlib.sha256(data[i : i + block]).hexdigest() for i in range(0, len(data), block)]


@dataclass(frozen=True)
class Payload:
    """A segment's content in memory: ids, ``articles.jsonl`` bytes, offsets, article and passage vectors."""

    ids: list[str]
    lines: bytes
    offsets: NDArray[np.int64]
    vectors: NDArray[np.float32]
    passages: NDArray[np.float16]


def encode_payload(records: Sequence[dict[str, Any]], vectors: NDArray[np.float32], passages: NDArray[Any]) -> Payload:
    """The payload of new articles: their records (with ``passages``), article and passage vectors."""
    lines = [(json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8") for r in records]
    offsets = np.zeros((len(records) + 1, 4), dtype=np.int64)
    offsets[1:, 0] = np.cumsum([len(line) for line in lines])
    offsets[1:, 1] = np.cumsum([len(r["passages"]) for r in records])
    for row, record in enumerate(records):
        if record["article"].get("date"):
            offsets[row, 2:] = [day.toordinal() for day in PartialDate.parse(record["article"]["date"]).bounds()]
    return Payload(
        [r["id"] for r in records],
        b"".join(lines),
        offsets,
        np.ascontiguousarray(vectors, dtype=np.float32),
        np.ascontiguousarray(passages, dtype=PASSAGE_DTYPE),
    )


def concat_payloads(payloads: Sequence[Payload]) -> Payload:
    """One payload holding ``payloads`` in order (a merge of consecutive segments)."""
    offsets = []
    base = np.zeros(4, dtype=np.int64)
    for payload in payloads:  # each article's row: its starts shifted, its days as they are (unknown: 0)
        own = np.zeros((len(payload.ids), 4), dtype=np.int64)
        own[:, : payload.offsets.shape[1]] = payload.offsets[:-1]
        offsets.append(own + base)
        base[:2] += payload.offsets[-1, :2]
    offsets.append(base[None, :])
    return Payload(
        [i for p in payloads for i in p.ids],
        b"".join(p.lines for p in payloads),
        np.vstack(offsets),
        np.vstack([p.vectors for p in payloads]),
        np.vstack([p.passages for p in payloads]),
    )


def npy_bytes(array: NDArray[Any]) -> bytes:
    """``array`` in the ``.npy`` format."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


class FileBytes:
    """The bytes of an open file, read on demand (``os.pread``): nothing stays in this process's memory.

    Not a memory map: pages a map touches (and those the kernel maps around them) count in
    the process's resident memory; a read copies only what was asked for.
    """

    def __init__(self, fh: IO[bytes], path: Path, blocks: list[str] | None = None, block: int = BLOCK) -> None:
        self._block = block
        self._fd = os.dup(fh.fileno())  # the file stays readable after a commit removes its name
        self._size = os.fstat(self._fd).st_size
        self._path = path
        self._blocks = blocks  # the SHA-256 of each ``block`` bytes; None: not checked
        self._checked: set[int] = set()
        weakref.finalize(self, os.close, self._fd)

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, key: slice) -> bytes:
        """The bytes ``key`` selects, their blocks checked against their SHA-256 first (each block once).

        Raises:
            StoreCorruptError: A block was altered.

        """
        start, stop, _ = key.indices(self._size)
        size = self._block
        first, last = start // size, (stop - 1) // size
        if self._blocks is None or stop <= start or self._checked.issuperset(range(first, last + 1)):
            return self.peek(start, stop)
        # One read of the blocks around the bytes: the bytes returned are those checked.
        span = os.pread(self._fd, min((last + 1) * size, self._size) - first * size, first * size)
        for block in range(first, last + 1):
            if block not in self._checked:
                data = span[(block - first) * size : (block - first + 1) * size]
                if hashlib.sha256(data).hexdigest() != self._blocks[block]:
                    raise _altered(self._path)
                self._checked.add(block)
        return span[start - first * size : stop - first * size]

    def peek(self, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)``, unchecked (a header whose format is checked on its own)."""
        return os.pread(self._fd, max(stop - start, 0), start)


class FileRows:
    """The rows of a 2-D ``.npy`` array in a file, read on demand (see :class:`FileBytes`)."""

    def __init__(self, data: FileBytes, dtype: type[np.generic], shape: tuple[int, int]) -> None:
        self._data = data
        self._dtype = np.dtype(dtype)
        self._shape = shape
        self._offset = _header_length(data.peek(0, 4096), self._dtype, shape)
        self._row = shape[1] * self._dtype.itemsize
        if data.__len__() != self._offset + shape[0] * self._row:
            raise ValueError(f"the file holds {len(data) - self._offset} bytes of data, not {shape[0] * self._row}")

    def __len__(self) -> int:
        return self._shape[0]

    def __getitem__(self, key: slice) -> NDArray[Any]:
        start, stop, _ = key.indices(self._shape[0])
        stop = max(stop, start)
        raw = self._data[self._offset + start * self._row : self._offset + stop * self._row]
        return np.frombuffer(raw, dtype=self._dtype).reshape(stop - start, self._shape[1])


class Part:
    """A segment's articles by row: ids and offsets in memory; lines and vectors in memory or read from disk.

    Build with :meth:`from_payload` (in memory) or :func:`open_part` (from disk).
    """

    def __init__(
        self,
        payload: Payload,
        *,
        files: tuple[FileBytes, FileRows, FileRows] | None = None,
        where: str = "in memory",
    ) -> None:
        self._payload = payload
        self._lines: bytes | FileBytes = files[0] if files else payload.lines
        self._vectors: NDArray[Any] | FileRows = files[1] if files else payload.vectors
        self._passages: NDArray[Any] | FileRows = files[2] if files else payload.passages
        self._where = where

    @classmethod
    def from_payload(cls, payload: Payload) -> Part:
        """A part held in memory (an in-memory store's)."""
        return cls(payload)

    @property
    def ids(self) -> list[str]:
        """Ids, in order."""
        return self._payload.ids

    def __len__(self) -> int:
        return len(self._payload.ids)

    def record(self, row: int) -> dict[str, Any]:
        """The ``articles.jsonl`` record of row ``row``.

        Raises:
            StoreCorruptError: The line does not parse, or is not a record of this article.

        """
        start, stop = (int(x) for x in self._payload.offsets[row : row + 2, 0])
        try:
            record = json.loads(self._lines[start:stop].decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
            raise StoreCorruptError(f"segment {self._where} cannot be read ({exc}); restore it from a backup") from None
        if not _valid_record(record) or record["id"] != self._payload.ids[row]:
            raise StoreCorruptError(f"segment {self._where} holds an article record of the wrong shape; restore it from a backup")
        return record  # type: ignore[no-any-return]  # checked by _valid_record

    def days(self, row: int) -> tuple[int, int] | None:
        """The first and last day (proleptic ordinals) row ``row``'s date can denote; None: undated, or not kept (format 2)."""
        offsets = self._payload.offsets
        if offsets.shape[1] < 4 or not offsets[row, 2]:
            return None
        return int(offsets[row, 2]), int(offsets[row, 3])

    def vectors(self, start: int = 0, stop: int | None = None) -> NDArray[np.float32]:
        """Article vectors of rows ``[start, stop)``."""
        return self._vectors[start:stop]

    def passages(self, row: int) -> NDArray[np.float32]:
        """The passage vectors of row ``row``, as float32."""
        first, last = (int(x) for x in self._payload.offsets[row : row + 2, 1])
        return np.asarray(self._passages[first:last], dtype=np.float32)

    def payload(self) -> Payload:
        """The whole content (for a merge), read from disk."""
        p = self._payload
        return Payload(p.ids, self._lines[:], p.offsets, np.array(self._vectors[:]), np.array(self._passages[:]))


def _valid_record(record: object) -> bool:
    return (
        isinstance(record, dict)
        and isinstance(record.get("id"), str)
        and isinstance(record.get("article"), dict)
        and isinstance(record.get("passages"), list)
        and isinstance(record.get("content_hash"), str)
    )


# ------------------------------------------------------------------------------ opening
def open_part(folder: Path, segment: Segment, dim: int, handles: dict[str, IO[bytes]], *, verify: bool) -> Part:
    """The part of the segment in ``folder`` from its open files (``handles``: file name -> open file).

    Sizes are checked now; ``ids.json`` and ``offsets.npy`` are read (and, with ``verify``,
    checksummed) now; the other three are kept open, and each block checked on its first read.

    Raises:
        StoreCorruptError: A file fails its checks, does not parse, or disagrees with the manifest.
        OSError: A file cannot be read.

    """
    for name, fh in handles.items():
        _check_size(fh, folder / name, segment.files[name])
    small: dict[str, bytes] = {}
    for name in ("ids.json", "offsets.npy", "blocks.json"):
        small[name] = handles[name].read()
        if verify and hashlib.sha256(small[name]).hexdigest() != segment.files[name]["sha256"]:
            raise _altered(folder / name)
    try:
        blocks = json.loads(small["blocks.json"].decode("utf-8"))
        size = blocks.get("block") if isinstance(blocks, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or size not in {1 << k for k in _BLOCK_SIZES}:
            raise ValueError("blocks.json is not a list of block checksums")
        for name in MAPPED:
            if not isinstance(blocks.get(name), list) or len(blocks[name]) != -(-segment.files[name]["size"] // size):
                raise ValueError(f"blocks.json does not list the blocks of {name}")
        data = {name: FileBytes(handles[name], folder / name, blocks[name] if verify else None, size) for name in MAPPED}
        ids = json.loads(small["ids.json"].decode("utf-8"))
        offsets = np.load(io.BytesIO(small["offsets.npy"]), allow_pickle=False)
        vectors = FileRows(data["vectors.npy"], np.float32, (segment.count, dim))
        passages = FileRows(data["passages.npy"], PASSAGE_DTYPE, (segment.passages, dim))
    except (ValueError, EOFError, UnicodeDecodeError) as exc:
        raise StoreCorruptError(f"segment {folder} cannot be read ({exc}); restore it from a backup") from None
    if not isinstance(ids, list) or len(ids) != segment.count or not all(isinstance(i, str) for i in ids):
        raise StoreCorruptError(f"segment {folder}: ids.json does not list {segment.count} ids; restore it from a backup")
    if (
        offsets.shape not in {(segment.count + 1, 2), (segment.count + 1, 4)}
        or offsets.dtype != np.int64
        or (np.diff(offsets[:, :2], axis=0) < 0).any()
        or tuple(offsets[-1]) != (len(data["articles.jsonl"]), segment.passages, 0, 0)[: offsets.shape[1]]
        or (offsets.shape[1] == 4 and ((offsets[:, 2:] < 0).any() or (offsets[:, 3] < offsets[:, 2]).any()))
    ):
        raise StoreCorruptError(f"segment {folder}: offsets.npy does not match its files; restore it from a backup")

    empty = np.zeros((0, dim), dtype=np.float32)
    payload = Payload(ids, b"", offsets, empty, empty.astype(PASSAGE_DTYPE))
    files = (data["articles.jsonl"], vectors, passages)
    return Part(payload, files=files, where=str(folder))


def _check_size(fh: IO[bytes], path: Path, meta: dict[str, Any]) -> None:
    size = os.fstat(fh.fileno()).st_size
    if size != meta["size"]:
        raise StoreCorruptError(
            f"store file {path} has {size} bytes, the manifest says {meta['size']}: it was truncated or altered; "
            "restore the store from a backup"
        )


def _altered(path: Path) -> StoreCorruptError:
    return StoreCorruptError(f"store file {path} does not match its checksum: it was altered; restore the store from a backup")


def _header_length(head: bytes, dtype: np.dtype[Any], shape: tuple[int, int]) -> int:
    """The length of the ``.npy`` header at the start of ``head``, checked to describe ``dtype`` and ``shape``.

    Raises:
        ValueError: It is not such an array.

    """
    stream = io.BytesIO(head)
    version = np.lib.format.read_magic(stream)
    if version != (1, 0):
        raise ValueError(f"unexpected .npy version {version}")
    got_shape, fortran, got_dtype = np.lib.format.read_array_header_1_0(stream)
    if fortran or got_dtype != dtype or tuple(got_shape) != shape:
        raise ValueError(f"array of shape {got_shape} and type {got_dtype}, expected {shape} {dtype}")
    return stream.tell()
