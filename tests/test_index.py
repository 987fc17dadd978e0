from __future__ import annotations

import numpy as np
import pytest

from dedup.errors import StoreCorruptError
from dedup.index import VectorIndex


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_search_equals_numpy_brute_force() -> None:
    rng = np.random.default_rng(0)
    base, queries = _unit(rng, 2000, 48), _unit(rng, 50, 48)
    index = VectorIndex(48)
    index.add(base[:1000])
    index.add(base[1000:])
    found = index.search(queries, 10)
    exact = np.argsort(-(queries @ base.T), axis=1)[:, :10]
    recall = np.mean([len(set(found.positions[q]) & set(exact[q])) / 10 for q in range(50)])
    assert recall == 1.0
    np.testing.assert_allclose(found.similarities[:, 0], (queries @ base.T).max(axis=1), rtol=1e-5)
    assert found.truncated.all()


def test_small_index_and_roundtrip() -> None:
    rng = np.random.default_rng(1)
    index = VectorIndex(8)
    assert index.search(_unit(rng, 2, 8), 5).positions.shape == (2, 0)
    index.add(_unit(rng, 3, 8))
    found = index.search(_unit(rng, 1, 8), 5)
    assert found.positions.shape == (1, 3) and not found.truncated[0]
    copy = VectorIndex.from_bytes(index.to_bytes(), 8)
    assert len(copy) == 3
    with pytest.raises(StoreCorruptError, match="dimension 8, expected 16"):
        VectorIndex.from_bytes(index.to_bytes(), 16)
    with pytest.raises(StoreCorruptError):
        VectorIndex.from_bytes(b"garbage" * 10, 8)
    with pytest.raises(ValueError, match="dimension 8"):
        index.add(np.zeros((1, 9), dtype=np.float32))
