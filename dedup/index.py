"""The vector index behind one small interface: add unit vectors, search by cosine.

Vectors are L2-normalised, so cosine similarity is the inner product. This module is the
only place that knows how FAISS scores; callers always get cosine similarities back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import StoreCorruptError

__all__ = ["SearchResult", "VectorIndex"]


@dataclass(frozen=True)
class SearchResult:
    """Neighbours of each query: positions in insertion order and cosine similarities.

    Attributes:
        positions: ``(n_queries, k)`` int64, -1 where fewer than k vectors exist.
        similarities: ``(n_queries, k)`` float32 cosine, -inf where position is -1.
        truncated: Per query, True when the k-th neighbour was returned, so more
            neighbours may exist beyond k.

    """

    positions: NDArray[np.int64]
    similarities: NDArray[np.float32]
    truncated: NDArray[np.bool_]


class VectorIndex:
    """Exact inner-product search (FAISS ``IndexFlatIP``) over unit vectors.

    Args:
        dim: Vector dimension.

    """

    def __init__(self, dim: int) -> None:
        import faiss

        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self._dim = dim
        self._index: Any = faiss.IndexFlatIP(dim)

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._dim

    @property
    def kind(self) -> str:
        """The FAISS index type in use."""
        return "Flat"

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, vectors: NDArray[np.float32]) -> None:
        """Append vectors; their positions continue from ``len(self)``."""
        vectors = self._check(vectors)
        self._index.add(vectors)

    def search(self, queries: NDArray[np.float32], k: int) -> SearchResult:
        """The ``k`` most similar stored vectors of each query, best first."""
        queries = self._check(queries)
        n = len(queries)
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        kk = min(k, len(self))
        if kk == 0:
            return SearchResult(np.full((n, 0), -1, dtype=np.int64), np.zeros((n, 0), dtype=np.float32), np.zeros(n, dtype=bool))
        sims, pos = self._index.search(queries, kk)
        truncated = np.full(n, len(self) > kk, dtype=bool)
        return SearchResult(pos.astype(np.int64), sims.astype(np.float32), truncated)

    def to_bytes(self) -> bytes:
        """Serialise the index."""
        import faiss

        return bytes(faiss.serialize_index(self._index).tobytes())

    @classmethod
    def from_bytes(cls, data: bytes, dim: int) -> VectorIndex:
        """Load a serialised index, checking its dimension.

        Raises:
            StoreCorruptError: When the bytes are not a FAISS index of that dimension.

        """
        import faiss

        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            raise StoreCorruptError(f"the vector index cannot be read: {exc}") from None
        if index.d != dim:
            raise StoreCorruptError(f"the vector index has dimension {index.d}, expected {dim}")
        out = cls(dim)
        out._index = index
        return out

    def _check(self, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        arr = np.ascontiguousarray(vectors, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self._dim:
            raise ValueError(f"expected vectors of dimension {self._dim}, got shape {arr.shape}")
        return arr
