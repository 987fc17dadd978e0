from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from dedup.embedding.articles import embed_articles
from dedup.embedding.cache import EmbeddingCache
from dedup.types import Article

from .conftest import HashEncoder

ARTICLES = [
    Article(id="a", title="Wildfire near Athens", text="Firefighters battled the blaze.\n\nThousands were evacuated."),
    Article(id="b", title="Wildfire near Athens", text="A different body, same headline."),
]


def test_second_run_embeds_nothing_and_gives_the_same_vectors(tmp_path: Path) -> None:
    encoder = HashEncoder()
    cache = EmbeddingCache(tmp_path / "c.sqlite", encoder.name, encoder.dim)
    first = embed_articles(ARTICLES, encoder, cache=cache)
    assert encoder.calls == 1 and cache.misses == 4 and cache.hits == 0  # the shared title is embedded once
    again = embed_articles(ARTICLES, encoder, cache=EmbeddingCache(tmp_path / "c.sqlite", encoder.name, encoder.dim))
    assert encoder.calls == 1  # nothing new to embed: not even a call
    for x, y in zip(first, again, strict=True):
        np.testing.assert_array_equal(x.passage_vectors, y.passage_vectors)
        np.testing.assert_array_equal(x.vector, y.vector)
    # Same text, other model: not reused.
    other = HashEncoder(name="test/other-model")
    embed_articles(ARTICLES[:1], other, cache=EmbeddingCache(tmp_path / "c.sqlite", other.name, other.dim))
    assert other.calls == 1


def test_a_damaged_cache_only_costs_time(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    encoder = HashEncoder()
    with caplog.at_level(logging.WARNING):
        cache = EmbeddingCache(path, encoder.name, encoder.dim)
        out = embed_articles(ARTICLES, encoder, cache=cache)
    assert len(out) == 2 and encoder.calls == 1
    assert "embedding cache" in caplog.text and str(path) in caplog.text


def test_detector_uses_the_cache_by_default_as_the_cli_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dedup.config import Config
    from dedup.detect.detector import Detector

    monkeypatch.setenv("DEDUP_CACHE_DIR", str(tmp_path))
    encoder = HashEncoder()
    assert Detector.in_memory(Config(), encoder=encoder, cache=False).cache is None
    det = Detector.in_memory(Config(), encoder=encoder)
    assert det.cache is not None and det.cache.path.is_relative_to(tmp_path)
    det.cluster(ARTICLES)
    det.cluster(ARTICLES)
    assert encoder.calls == 1
