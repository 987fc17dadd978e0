"""The store manifest (``manifest.json``): its names, its shape check, reading and building it.

The manifest's shape is checked before anything is read (:func:`check_manifest`): a
field of the wrong type, a negative count or a file name that is not a plain name of
the expected form (``seg-000001``, ``index-000001.faiss``, the three segment files) is
reported as :class:`~dedup.errors.StoreCorruptError` naming the manifest and the field,
so a damaged or hostile manifest can never make dedup read files outside the store.

Format version 3 (issue 18: ids and offsets files, float16 passage vectors read from
disk, an index file over the first ``index.count`` articles; from version 3 the offsets
keep each article's days, see :mod:`dedup.search.parts`). A version-2 store is read, and
becomes version 3 at its next commit (its older segments keep their offsets). A
version-1 store is refused with a clear error saying how to rebuild it. A change that an
existing store could not open needs a new version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from dedup._fs import count_field, damaged, list_field, object_field, plain_name, text_field
from dedup._fs import read_manifest as _read_manifest
from dedup.errors import StoreCorruptError, StoreMismatchError
from dedup.search.index import IndexPlan
from dedup.text import CLEANING_VERSION

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "LOCK",
    "MANIFEST",
    "SEGMENT_FILES",
    "Segment",
    "check_manifest",
    "new_manifest",
    "read_manifest",
]

FORMAT = "dedup-store"
FORMAT_VERSION = 3
#: Versions this dedup opens: a version-2 store becomes version 3 at its next commit.
READABLE_VERSIONS = (2, 3)
MANIFEST = "manifest.json"
LOCK = ".lock"
SEGMENT_FILES = ("articles.jsonl", "ids.json", "offsets.npy", "vectors.npy", "passages.npy", "blocks.json")
_SEGMENT_NAME = re.compile(r"seg-\d{6,}(-\d+)?")
_INDEX_NAME = re.compile(r"index-\d{6,}\.faiss")
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RETIRED_NAME = re.compile(rf"{_SEGMENT_NAME.pattern}|{_INDEX_NAME.pattern}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Segment:
    """A segment as its manifest entry describes it.

    Attributes:
        name: Its folder (``seg-000001``).
        count: Articles in it.
        passages: Passage vectors in it.
        files: File name -> ``{"size", "sha256"}``, for the three :data:`SEGMENT_FILES`.

    """

    name: str
    count: int
    passages: int
    files: dict[str, dict[str, Any]]

    @classmethod
    def from_dict(cls, entry: dict[str, Any]) -> Segment:
        """The segment a manifest entry (shape already checked) names."""
        return cls(entry["name"], entry["count"], entry["passages"], entry["files"])

    def to_dict(self) -> dict[str, Any]:
        """The manifest entry."""
        return {"name": self.name, "count": self.count, "passages": self.passages, "files": self.files}


def read_manifest(root: Path) -> dict[str, Any]:
    """Read and check the manifest of the store at ``root``: format, versions and shape.

    Raises:
        StoreNotFoundError: No store at ``root``.
        StoreMismatchError: Another format or cleaning version.
        StoreCorruptError: The manifest is damaged.
        StoreError: It cannot be read.

    """
    manifest = _read_manifest(
        root,
        MANIFEST,
        kind="store",
        fmt=FORMAT,
        create_hint="create one with `dedup add`",
        missing_hint=" (create one with `dedup add`)",
    )
    if manifest.get("format_version") == 1:
        raise StoreMismatchError(
            f"store {root} has format version 1 (dedup before issue 18), this dedup reads {FORMAT_VERSION}: its "
            "passage vectors are now float16 and read from disk; rebuild the store by adding its articles to a new one "
            "(`dedup add --store NEW FILES`), see docs/store-format.md"
        )
    if manifest.get("format_version") not in READABLE_VERSIONS:
        raise StoreMismatchError(
            f"store {root} has format version {manifest.get('format_version')}, this dedup reads {FORMAT_VERSION}"
        )
    if manifest.get("cleaning_version") != CLEANING_VERSION:
        raise StoreMismatchError(
            f"store {root} was built with cleaning version {manifest.get('cleaning_version')}, this dedup uses "
            f"{CLEANING_VERSION}; rebuild the store from its articles"
        )
    check_manifest(root / MANIFEST, manifest)
    return manifest


def new_manifest(
    model: str,
    dim: int,
    generation: int,
    segments: list[Segment],
    index: dict[str, Any],
    retired: list[str],
    dates: list[str] | None = None,
) -> dict[str, Any]:
    """The manifest of a commit: ``index`` is its entry (file, kind, plan, size, sha256).

    ``dates``: the days the stored articles' dates cover (see
    :func:`~dedup.search.routing.widen_dates`); None (unknown) leaves the field out.
    """
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model,
        "dim": dim,
        "cleaning_version": CLEANING_VERSION,
        "generation": generation,
        "count": sum(s.count for s in segments),
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
        "segments": [s.to_dict() for s in segments],
        "index": index,
        "retired": retired,  # named by the previous generation only; removed at the next commit
    }
    if dates is not None:
        manifest["dates"] = list(dates)
    return manifest


def check_manifest(file: Path, manifest: dict[str, Any]) -> None:
    """Check the shape of a store manifest read from ``file``, before anything in it is used.

    Raises:
        StoreCorruptError: A field is missing or of the wrong type or range, or a file name
            is not a plain name of the expected form; the message names ``file`` and the field.

    """
    text_field(file, "model", manifest.get("model"))
    count_field(file, "dim", manifest.get("dim"), minimum=1)
    count_field(file, "generation", manifest.get("generation"))
    total = _check_segments(file, list_field(file, "segments", manifest.get("segments")))
    if count_field(file, "count", manifest.get("count")) != total:
        raise damaged(file, "count", f"the sum of the segment counts ({total})", manifest.get("count"))
    index = object_field(file, "index", manifest.get("index"))
    plain_name(file, "index.file", index.get("file"), _INDEX_NAME)
    _check_file_meta(file, "index", index)
    if "count" in index and count_field(file, "index.count", index.get("count")) > total:
        raise damaged(file, "index.count", f"at most the article count ({total})", index.get("count"))
    plan = object_field(file, "index.plan", index.get("plan", {"kind": index.get("kind", "flat")}))
    try:
        IndexPlan.from_dict(plan)
    except (TypeError, ValueError, StoreCorruptError) as exc:
        raise StoreCorruptError(
            f"{file} is damaged: field 'index.plan' cannot be read ({exc}); restore it from a backup"
        ) from None
    for i, name in enumerate(list_field(file, "retired", manifest.get("retired", []))):
        plain_name(file, f"retired[{i}]", name, _RETIRED_NAME)
    if "dates" in manifest:
        _check_dates(file, list_field(file, "dates", manifest["dates"]))


def _check_dates(file: Path, dates: list[Any]) -> None:
    """``dates`` is ``[]`` or ``[first, last]``, two ISO days in order."""
    want = "[] or two ISO days [first, last], first <= last"
    if len(dates) not in (0, 2) or not all(isinstance(d, str) and _ISO_DAY.match(d) for d in dates):
        raise damaged(file, "dates", want, dates)
    if not dates:
        return
    try:
        first, last = date.fromisoformat(dates[0]), date.fromisoformat(dates[1])
    except ValueError:
        raise damaged(file, "dates", want, dates) from None
    if first > last:
        raise damaged(file, "dates", want, dates)


def _check_segments(file: Path, segments: list[Any]) -> int:
    """Check the segment entries; returns the sum of their counts."""
    names: set[str] = set()
    total = 0
    for i, seg in enumerate(segments):
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
    return total


def _check_file_meta(file: Path, field: str, meta: object) -> None:
    meta = object_field(file, field, meta)
    count_field(file, f"{field}.size", meta.get("size"))
    sha = meta.get("sha256")
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise damaged(file, f"{field}.sha256", "64 lower-case hex digits", sha)
