"""The learned low-rank map of the article vectors (``benchmarks/learned_map.py``): fitted, and measured against the cosine."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from benchmarks.learned_map import fit_map, mapped_cosine
from dedup.verify_features import VectorMap


def _stories(n_stories: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two reports per story: the story lives in 4 dimensions, 12 louder ones are noise; pairs of all kinds."""
    rng = np.random.default_rng(seed)
    story = rng.normal(size=(n_stories, 4))
    reports = np.concatenate(
        [np.repeat(story, 2, axis=0) + 0.3 * rng.normal(size=(2 * n_stories, 4)), 1.5 * rng.normal(size=(2 * n_stories, 12))],
        axis=1,
    )
    reports /= np.linalg.norm(reports, axis=1, keepdims=True)
    same = np.arange(n_stories) * 2
    other = rng.permutation(n_stories) * 2 + 1
    first = np.concatenate([same, same])
    second = np.concatenate([same + 1, other])
    y = (first // 2 == second // 2).astype(np.float64)
    return reports[first].astype(np.float32), reports[second].astype(np.float32), y


def test_the_map_learns_which_directions_carry_the_story_and_ranks_unseen_stories_better() -> None:
    a, b, y = _stories(150, 0)
    m = fit_map(a, b, y, rank=4, lam=0.01, steps=300)
    ta, tb, ty = _stories(150, 1)  # other stories, other noise
    plain = roc_auc_score(ty, (ta * tb).sum(axis=1))
    mapped = roc_auc_score(ty, mapped_cosine(m, ta, tb))
    assert plain < 0.9, plain  # the noise must matter, or the test shows nothing
    assert mapped > plain + 0.05, (plain, mapped)


def test_a_strong_penalty_keeps_the_identity() -> None:
    a, b, y = _stories(50, 2)
    m = fit_map(a, b, y, rank=4, lam=1e4, steps=100)
    assert np.abs(mapped_cosine(m, a, b) - (a * b).sum(axis=1)).max() < 0.02
    assert m.dim == 16 and m.u.shape == (16, 4)


def test_the_zero_map_is_the_plain_cosine_and_shapes_are_checked() -> None:
    a, b, y = _stories(20, 3)
    zero = VectorMap(("m",), np.zeros((16, 2)), np.zeros((16, 2)))
    assert np.allclose(mapped_cosine(zero, a, b), (a * b).sum(axis=1), atol=1e-6)
    with pytest.raises(ValueError, match="as many pairs"):
        fit_map(a, b[:-1], y)
