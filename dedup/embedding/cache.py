"""A persistent embedding cache: passage text -> vector, per model, so nothing is embedded twice.

Keys are the SHA-256 of the model name and the exact passage text, so a cached vector is
only ever reused for the same text under the same model (and prompt: the encoder name
includes it). The cache is a single SQLite file (standard library, safe across processes,
atomic per transaction); a damaged cache is reported and ignored, never fatal: it only
costs time.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dedup._fs import cache_root

__all__ = ["EmbeddingCache", "default_cache_dir"]

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """Where embeddings are cached: :func:`dedup._fs.cache_root`."""
    return cache_root()


class EmbeddingCache:
    """Vectors of one model, keyed by passage text.

    Args:
        path: The SQLite file (created with its folder when missing).
        model: The encoder name; part of every key.
        dim: Vector dimension; rows of another size are ignored.

    """

    def __init__(self, path: str | Path, model: str, dim: int) -> None:
        self.path = Path(path)
        self.model = model
        self.dim = dim
        self.hits = 0
        self.misses = 0
        self._conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL) WITHOUT ROWID")
            self._conn = conn
        except (sqlite3.Error, OSError) as exc:
            logger.warning("embedding cache %s is unusable (%s); embedding without it", self.path, exc)

    @classmethod
    def for_model(cls, model: str, dim: int, cache_dir: Path | None = None) -> EmbeddingCache:
        """The cache file of ``model`` under ``cache_dir`` (default :func:`default_cache_dir`)."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_") or "model"
        return cls((cache_dir or default_cache_dir()) / "embeddings" / f"{safe}.sqlite", model, dim)

    def _key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.model}\0{text}".encode()).digest()

    def get(self, texts: Sequence[str]) -> list[NDArray[np.float32] | None]:
        """The cached vector of each text, or None where it is not cached."""
        out: list[NDArray[np.float32] | None] = [None] * len(texts)
        if self._conn is None or not texts:
            self.misses += len(texts)
            return out
        keys = [self._key(t) for t in texts]
        found: dict[bytes, bytes] = {}
        try:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(self._conn.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk).fetchall())
        except sqlite3.Error as exc:
            logger.warning("embedding cache %s cannot be read (%s); ignoring it", self.path, exc)
            found = {}
        for i, key in enumerate(keys):
            blob = found.get(key)
            if blob is not None and len(blob) == 4 * self.dim:
                out[i] = np.frombuffer(blob, dtype=np.float32)
        hits = sum(v is not None for v in out)
        self.hits += hits
        self.misses += len(texts) - hits
        return out

    def put(self, texts: Sequence[str], vectors: NDArray[np.float32]) -> None:
        """Remember vectors (one transaction; failures only log)."""
        if self._conn is None or not texts:
            return
        rows = [(self._key(t), np.ascontiguousarray(v, dtype=np.float32).tobytes()) for t, v in zip(texts, vectors, strict=True)]
        try:
            with self._conn:
                self._conn.execute("BEGIN")
                self._conn.executemany("INSERT OR REPLACE INTO vectors (key, vector) VALUES (?, ?)", rows)
        except sqlite3.Error as exc:
            logger.warning("embedding cache %s cannot be written (%s); continuing without caching", self.path, exc)

    def __len__(self) -> int:
        if self._conn is None:
            return 0
        return int(self._conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
