from __future__ import annotations

import numpy as np
import pytest

from dedup.config import Config
from dedup.embed import EmbeddedArticle, pool
from dedup.errors import ConfigError
from dedup.types import Article, PartialDate
from dedup.verify import FEATURES, Verifier, align, compare, features


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _embedded(article: Article, vectors: np.ndarray) -> EmbeddedArticle:
    passages = tuple(f"{article.title} passage {i} 2025" for i in range(len(vectors)))
    return EmbeddedArticle(article, passages, vectors, pool(passages, vectors))


def test_translation_aligns_and_topic_neighbour_does_not() -> None:
    rng = np.random.default_rng(0)
    topic = rng.standard_normal(32)
    source = _unit(topic + rng.standard_normal((8, 32)))
    translation = _unit(source + 0.15 * rng.standard_normal((8, 32)))  # each passage close to its original
    neighbour = _unit(topic + rng.standard_normal((8, 32)))  # same topic, other passages
    pairs = align(source, translation, min_similarity=0.5, min_margin=0.05)
    assert sorted((i, j) for i, j, _, _ in pairs) == [(i, i) for i in range(8)]
    assert len(align(source, neighbour, min_similarity=0.5, min_margin=0.05)) <= 1


def test_align_handles_empty_and_single_passages() -> None:
    one = np.ones((1, 4), np.float32) / 2
    assert align(np.zeros((0, 4), np.float32), one, min_similarity=0.5, min_margin=0.0) == []
    (pair,) = align(one, one, min_similarity=0.5, min_margin=0.0)
    assert pair[:2] == (0, 0) and pair[3] == pytest.approx(0.5)  # runner-up is the similarity floor


def test_date_gap_vetoes_whatever_the_evidence() -> None:
    rng = np.random.default_rng(1)
    vecs = _unit(rng.standard_normal((5, 16)))
    a = _embedded(Article("a", "Talks", date=PartialDate.parse("2025-01-12")), vecs)
    b = _embedded(Article("b", "Talks", date=PartialDate.parse("2023-01")), vecs)
    c = _embedded(Article("c", "Talks", date=PartialDate.parse("2025-01")), vecs)
    verifier = Verifier.default()
    far, near = verifier.decide(a, b, Config()), verifier.decide(a, c, Config())
    assert far.score == 0.0 and not far.is_duplicate and far.evidence.date_gap_days is not None
    assert near.is_duplicate and near.evidence.date_gap_days == 0 and near.evidence.aligned_fraction == 1.0
    assert near.evidence.shared_numbers == ("2025",)


def test_features_follow_the_declared_order() -> None:
    rng = np.random.default_rng(2)
    vecs = _unit(rng.standard_normal((3, 16)))
    a = _embedded(Article("a", "Hanoi talks"), vecs)
    ev = compare(a, a, Config())
    x = features(ev, a, a)
    assert x.shape == (len(FEATURES),)
    assert x[FEATURES.index("aligned_fraction")] == 1.0 and x[FEATURES.index("date_known")] == 0.0


def test_verifier_parameters_are_validated() -> None:
    with pytest.raises(ConfigError, match="coefficients"):
        Verifier((1.0,), 0.0)
    with pytest.raises(ConfigError, match="features"):
        Verifier.from_dict({"features": ["x"], "coef": [1.0], "intercept": 0.0})
    assert 0.0 < Verifier.default().score(np.zeros(len(FEATURES))) < 1.0
