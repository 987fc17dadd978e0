"""Exceptions raised by dedup.

The hierarchy::

    DedupError                  base class; catch this to catch everything dedup raises
    ├── ConfigError             an invalid configuration value
    ├── InputError              bad input: names the source (file), line and offending value
    │   └── DuplicateIdError    the same id twice in one input, or re-added with other content
    │       └── IdConflictError an id is already stored with other content (and not replacing)
    ├── ModelError              the embedding model cannot be built, found or loaded
    │   └── OptionalDependencyError  an optional package is missing; says what to install
    ├── EngineError             the distributed engine (Ray) cannot connect or its job failed
    └── StoreError              a store cannot be opened, read or written
        ├── StoreNotFoundError  no store at the given path
        ├── StoreMismatchError  the store was built with another model, dimension or format
        └── StoreCorruptError   a store file is missing, truncated or altered
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DedupError",
    "DuplicateIdError",
    "EngineError",
    "IdConflictError",
    "InputError",
    "ModelError",
    "OptionalDependencyError",
    "StoreCorruptError",
    "StoreError",
    "StoreMismatchError",
    "StoreNotFoundError",
]


class DedupError(Exception):
    """Base class of every error raised by dedup."""


class ConfigError(DedupError, ValueError):
    """A configuration value is out of range or of the wrong kind."""


class InputError(DedupError, ValueError):
    """An input record cannot be used.

    Args:
        message: What is wrong, naming the offending value.
        source: The file (or ``"<stdin>"``) the record came from, if known.
        line: The 1-based line number in ``source``, if known.

    """

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None) -> None:
        self.source = source
        self.line = line
        self.reason = message
        where = ""
        if source is not None:
            where = f"{source}:{line}: " if line is not None else f"{source}: "
        super().__init__(f"{where}{message}")


class DuplicateIdError(InputError):
    """An id occurs twice in one input, or is re-added to a store with different content."""


class IdConflictError(DuplicateIdError):
    """An id is already stored with other content, and the caller did not ask to replace it."""


class ModelError(DedupError):
    """The embedding model cannot be built, found or loaded."""


class OptionalDependencyError(ModelError, ImportError):
    """An optional package is needed for this feature but is not installed."""

    def __init__(self, package: str, feature: str, extra: str | None = None) -> None:
        hint = f"pip install 'dedup[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"{feature} needs the package {package!r}, which is not installed: run `{hint}`")
        self.package = package


class EngineError(DedupError):
    """The distributed engine (Ray) cannot connect, or a job on it failed."""


class StoreError(DedupError):
    """A store cannot be opened, read or written."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """There is no store at the given path."""


class StoreMismatchError(StoreError):
    """The store was built with another model, dimension, cleaning or format version."""


class StoreCorruptError(StoreError):
    """A store file is missing, truncated or does not match its recorded checksum."""
