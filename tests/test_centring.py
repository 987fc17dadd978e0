"""Language centring (dedup/embedding/centring.py): fitting, applying, the shipped means, store identity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dedup.config import Config
from dedup.detect.detector import Detector
from dedup.embedding.articles import embed_articles
from dedup.embedding.centring import LanguageCentring, centring_for
from dedup.embedding.naming import vector_space
from dedup.errors import ModelError, StoreMismatchError
from dedup.search.store import Store
from dedup.types import Article

from .conftest import HashEncoder

DEFAULT_ENCODER_NAME = "dedup/multilingual-e5-small-q4:int8#query"  # the default path
FP32_ENCODER_NAME = "dedup/multilingual-e5-small-q4#query"  # --backend openvino / torch


def _clustered(
    rng: np.random.Generator, langs: list[str], stories: int, dim: int = 32
) -> tuple[np.ndarray, list[str], list[int]]:
    """Each story a random direction; each language a strong shared offset (as a multilingual model shows)."""
    story_dirs = rng.normal(size=(stories, dim))
    lang_dirs = {lang: 3.0 * rng.normal(size=dim) for lang in langs}
    rows, row_langs, row_stories = [], [], []
    for s in range(stories):
        for lang in langs:
            rows.append(story_dirs[s] + lang_dirs[lang] + 0.1 * rng.normal(size=dim))
            row_langs.append(lang)
            row_stories.append(s)
    v = np.asarray(rows, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True), row_langs, row_stories


def test_centring_recovers_cross_language_neighbours_that_the_language_offset_hides() -> None:
    langs = ["en", "fr", "lo", "ar"]
    # one draw, so the language offsets are the same in both halves; fit on the first 50 stories
    all_v, all_langs, all_stories = _clustered(np.random.default_rng(0), langs, stories=100)
    fit_v, fit_langs = all_v[:200], all_langs[:200]
    test_v, test_langs, test_stories = all_v[200:], all_langs[200:], all_stories[200:]
    centring = LanguageCentring.fit(["m"], fit_v, fit_langs)

    def recall_at_1(v: np.ndarray) -> float:
        sims = v @ v.T
        hits = total = 0
        for i in range(len(v)):
            for lang in langs:
                if lang == test_langs[i]:
                    continue
                cols = [j for j in range(len(v)) if test_langs[j] == lang]
                best = max(cols, key=lambda j: sims[i, j])
                hits += test_stories[best] == test_stories[i]
                total += 1
        return hits / total

    raw, centred = recall_at_1(test_v), recall_at_1(centring.apply(test_v, test_langs))
    assert centred > 0.95
    assert centred > raw + 0.2, (raw, centred)


def test_apply_gives_unit_vectors_and_uses_the_shared_mean_for_unknown_languages() -> None:
    means = {"en": np.array([1.0, 0.0, 0.0], np.float32), "fr": np.array([0.0, 1.0, 0.0], np.float32)}
    c = LanguageCentring(("m",), 1, means, np.array([0.5, 0.5, 0.0], np.float32))
    v = np.array([[1.0, 1.0, 1.0]] * 5, dtype=np.float32)
    out = c.apply(v, ["en", "fr", "pt-BR", None, "EN-gb"])
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(out[0], np.array([0, 1, 1]) / np.sqrt(2), rtol=1e-6)
    np.testing.assert_allclose(out[1], np.array([1, 0, 1]) / np.sqrt(2), rtol=1e-6)
    np.testing.assert_allclose(out[2], out[3])  # no mean for pt, none for unknown: the shared one
    np.testing.assert_allclose(out[4], out[0])  # region and case do not matter
    with pytest.raises(ValueError, match="2 vectors but 1 languages"):
        c.apply(v[:2], ["en"])


def test_round_trip_and_refusal_of_wrong_dimensions() -> None:
    rng = np.random.default_rng(1)
    c = LanguageCentring.fit(["m"], rng.normal(size=(6, 4)).astype(np.float32), ["en", "en", "fr", "fr", None, "de"], version=3)
    back = LanguageCentring.from_dict(json.loads(json.dumps(c.to_dict())))
    assert back.tag == "lang-centred-v3" and sorted(back.means) == ["de", "en", "fr"]
    np.testing.assert_allclose(back.means["fr"], c.means["fr"], atol=1e-6)
    bad = c.to_dict()
    bad["means"]["fr"] = [0.0, 1.0]
    with pytest.raises(ModelError, match="'fr' has shape"):
        LanguageCentring.from_dict(bad)
    with pytest.raises(ValueError, match="nothing to fit"):
        LanguageCentring.fit(["m"], np.zeros((2, 4), np.float32), [None, ""])


def test_shipped_means_belong_to_the_default_model_only() -> None:
    shipped = centring_for(DEFAULT_ENCODER_NAME, 384)
    assert shipped is not None and shipped.version >= 1
    assert centring_for(FP32_ENCODER_NAME, 384) is shipped
    assert {"en", "fr", "vi", "lo", "ar", "hi", "he", "id", "zh"} <= set(shipped.means)
    assert all(m.shape == (384,) for m in shipped.means.values())
    assert centring_for(DEFAULT_ENCODER_NAME, 512) is None
    assert centring_for("sentence-transformers/LaBSE", 768) is None
    assert vector_space("x", None) == "x"
    assert vector_space(DEFAULT_ENCODER_NAME, shipped) == f"{DEFAULT_ENCODER_NAME}+lang-centred-v{shipped.version}"


def test_embed_articles_centres_article_vectors_but_not_passage_vectors() -> None:
    encoder = HashEncoder(dim=8)
    centring = LanguageCentring(("m",), 1, {"en": np.full(8, 0.2, np.float32)}, np.zeros(8, np.float32))
    arts = [Article(id="a", title="Storm hits the coast", text="Winds of 120 km/h.", lang="en")]
    raw = embed_articles(arts, encoder, centring=None)[0]
    centred = embed_articles(arts, encoder, centring=centring)[0]
    np.testing.assert_array_equal(raw.passage_vectors, centred.passage_vectors)
    expected = centring.apply(raw.vector[None, :], ["en"])[0]
    np.testing.assert_allclose(centred.vector, expected, rtol=1e-6)
    assert not np.allclose(raw.vector, centred.vector)


def test_a_store_of_uncentred_vectors_is_refused_with_a_rebuild_hint(tmp_path: Path) -> None:
    class DefaultNamed(HashEncoder):
        @property
        def name(self) -> str:
            return DEFAULT_ENCODER_NAME

    encoder = DefaultNamed(dim=384)
    Store.create(tmp_path / "old", DEFAULT_ENCODER_NAME, 384)  # what dedup 0.1 recorded
    with pytest.raises(StoreMismatchError, match=r"not language-centred.*rebuild it"):
        Detector.open(tmp_path / "old", Config(), encoder=encoder)
    det = Detector.open(tmp_path / "new", Config(), encoder=encoder, create=True)
    assert det.centring is not None
    assert det.store.model == f"{DEFAULT_ENCODER_NAME}+{det.centring.tag}"
