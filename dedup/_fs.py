"""Small file-system helpers shared by the store, the archive and the model cache.

Durable writes (:func:`write_synced`, :func:`write_atomic`), the writer lock
(:func:`hold_lock`), the opening checks (:func:`read_manifest`, :func:`check_vectors`,
:func:`make_folder`) and the field checks every manifest reader shares (:func:`read_json`,
:func:`plain_name`, :func:`count_field`, ...), so a bad manifest or lock is reported the same
way wherever it is found.

Callers use the write and sync functions through the module (``_fs.write_synced``), so a
crash test can stop a commit at any one of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from dedup.errors import StoreCorruptError, StoreError, StoreMismatchError, StoreNotFoundError

__all__ = [
    "check_vectors",
    "count_field",
    "damaged",
    "fsync_dir",
    "hold_lock",
    "hold_lock_reentrant",
    "list_field",
    "make_folder",
    "object_field",
    "plain_name",
    "read_json",
    "read_manifest",
    "sha256_file",
    "sha256_handle",
    "text_field",
    "write_atomic",
    "write_synced",
]


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks."""
    with path.open("rb") as fh:
        return sha256_handle(fh)


def sha256_handle(fh: IO[bytes]) -> str:
    """SHA-256 hex digest of an open binary file, from its start, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    fh.seek(0)
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (renames, new files) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(path: Path, data: bytes) -> dict[str, Any]:
    """Write ``data`` to ``path`` and flush it to disk; returns its ``size`` and ``sha256``."""
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically: a temporary file, flushed, then ``os.replace``.

    The folder is flushed before the replace too, so every file renamed into it before
    (the segments and index a store manifest names) is on disk before the file that names it.
    """
    tmp = path.with_name(f".tmp-{path.name}")
    write_synced(tmp, data)
    fsync_dir(path.parent)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def make_folder(root: Path, what: str) -> None:
    """Create the folder ``root`` (and its parents) for ``what`` (``"a store"``), or raise StoreError naming it."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create {what} at {root}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def hold_lock(lock_file: Path, *, timeout: float = 600) -> Iterator[None]:
    """Hold the writer lock file ``lock_file`` (a :class:`filelock.FileLock`).

    Raises:
        StoreError: When another writer holds it for more than ``timeout`` seconds, or the
            lock file cannot be taken (it is a folder, or not writable); names the file.

    """
    from filelock import FileLock, Timeout

    lock = FileLock(str(lock_file), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise StoreError(f"store {lock_file.parent} is locked by another writer (waited {timeout:.0f} s)") from None
    except OSError as exc:
        raise StoreError(
            f"cannot take the writer lock {lock_file}: {exc.strerror or exc} (it must be a file that dedup may write; "
            "remove it if no writer is running)"
        ) from None
    try:
        yield
    finally:
        lock.release()


# Per thread: the lock files this thread holds through :func:`hold_lock_reentrant`.
_held = threading.local()


@contextlib.contextmanager
def hold_lock_reentrant(lock_file: Path, *, timeout: float = 600) -> Iterator[None]:
    """:func:`hold_lock`, re-entrant within a thread: a thread that holds ``lock_file`` already just goes on."""
    held: set[str] = _held.__dict__.setdefault("paths", set())
    key = str(lock_file.resolve())
    if key in held:
        yield
        return
    with hold_lock(lock_file, timeout=timeout):
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)


def read_json(file: Path, what: str) -> object:
    """The JSON value in ``file`` (a manifest, named ``what`` in messages).

    Raises:
        StoreError: The file cannot be read (permissions, I/O error).
        StoreCorruptError: It is not valid UTF-8 JSON.

    """
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise StoreError(f"cannot read {what} {file}: {exc.strerror or exc}") from None
    try:
        return json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreCorruptError(f"{file} is not valid JSON ({exc}); restore it from a backup") from None


def read_manifest(root: Path, name: str, *, kind: str, fmt: str, create_hint: str, missing_hint: str) -> dict[str, Any]:
    """The manifest ``root / name`` of a ``kind`` (``"store"``, ``"archive"``) whose ``format`` field is ``fmt``.

    The caller checks its version and fields.

    Raises:
        StoreNotFoundError: No folder, or no manifest in it (the message ends with
            ``create_hint``, resp. ``missing_hint``).
        StoreError: The manifest cannot be read.
        StoreCorruptError: It is not valid JSON, or not such a manifest.

    """
    file = root / name
    if not root.is_dir():
        raise StoreNotFoundError(f"no {kind} at {root}: the folder does not exist ({create_hint})")
    if not file.is_file():
        raise StoreNotFoundError(f"no {kind} at {root}: {name} is missing{missing_hint}")
    manifest = read_json(file, f"the {kind} manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        raise StoreCorruptError(f"{file} is not a dedup {kind} manifest")
    return manifest


def check_vectors(kind: str, root: Path, built: tuple[str, int], model: str | None, dim: int | None, *, advice: str = "") -> None:
    """Refuse to open a ``kind`` built with model and dimension ``built`` for a caller's ``model`` and ``dim``.

    None skips a check; ``advice`` ends the model message.

    Raises:
        StoreMismatchError: Naming the folder, the stored and the wanted value.

    """
    stored_model, stored_dim = built
    if model is not None and model != stored_model:
        raise StoreMismatchError(
            f"{kind} {root} was built with model {stored_model!r}, not {model!r}; open it with that model{advice}"
        )
    if dim is not None and dim != stored_dim:
        raise StoreMismatchError(f"{kind} {root} holds vectors of dimension {stored_dim}, the model gives {dim}")


def damaged(file: Path, field: str, wanted: str, value: object) -> StoreCorruptError:
    """The error for a manifest ``file`` whose ``field`` is not ``wanted`` (names file, field and value)."""
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return StoreCorruptError(f"{file} is damaged: field {field!r} must be {wanted}, got {shown}; restore it from a backup")


def count_field(file: Path, field: str, value: object, *, minimum: int = 0) -> int:
    """``value`` as an integer >= ``minimum`` (not a bool, not a string), else StoreCorruptError naming ``field``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise damaged(file, field, f"an integer >= {minimum}", value)
    return value


def text_field(file: Path, field: str, value: object) -> str:
    """``value`` as a non-empty string, else StoreCorruptError naming ``field``."""
    if not isinstance(value, str) or not value:
        raise damaged(file, field, "a non-empty string", value)
    return value


def object_field(file: Path, field: str, value: object) -> dict[str, Any]:
    """``value`` as a JSON object, else StoreCorruptError naming ``field``."""
    if not isinstance(value, dict):
        raise damaged(file, field, "an object", value)
    return value


def list_field(file: Path, field: str, value: object) -> list[Any]:
    """``value`` as a JSON list, else StoreCorruptError naming ``field``."""
    if not isinstance(value, list):
        raise damaged(file, field, "a list", value)
    return value


def plain_name(file: Path, field: str, value: object, pattern: re.Pattern[str]) -> str:
    """``value`` as a plain file name matching ``pattern`` (no folder, no ``..``), else StoreCorruptError.

    A manifest names files inside its own folder only: a name such as ``../../etc/passwd``
    or ``/tmp/x`` is refused, so a damaged or hostile manifest cannot make dedup read or
    delete files elsewhere.
    """
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise damaged(file, field, f"a file name matching {pattern.pattern!r}", value)
    return value


def cache_root() -> Path:
    """The one folder where dedup caches models, embeddings and evaluation vectors.

    Returns:
        ``$DEDUP_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/dedup``, else ``~/.cache/dedup``.

    """
    explicit = os.environ.get("DEDUP_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "dedup"
    return Path.home() / ".cache" / "dedup"
