from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from dedup.config import Config
from dedup.embedding.articles import pool
from dedup.errors import ConfigError
from dedup.types import Article, EmbeddedArticle, PartialDate
from dedup.verify import FEATURES, TITLE_FEATURES, Verifier, align, both_titles, compare, features, title_features, title_words


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
    # score is the logistic of coef . x + intercept, with each coefficient on its own feature
    verifier = Verifier(tuple(float(i) for i in range(len(FEATURES))), -2.0)
    for i in range(len(FEATURES)):
        x = np.zeros(len(FEATURES))
        x[i] = 1.0
        assert verifier.score(x) == pytest.approx(1.0 / (1.0 + np.exp(2.0 - i)))
    # the shipped parameters are those of dedup/verifier.json, in its feature order
    shipped = json.loads(resources.files("dedup").joinpath("verifier.json").read_text("utf-8"))
    default = Verifier.default()
    assert default.coef == tuple(shipped["coef"]) and default.intercept == shipped["intercept"]
    assert default.title_coef == tuple(shipped["title_only"]["coef"])
    assert default.score(np.zeros(len(FEATURES))) == pytest.approx(1.0 / (1.0 + np.exp(-shipped["intercept"])))


def _title_item(article: Article, vector: np.ndarray) -> EmbeddedArticle:
    vectors = _unit(vector[None, :])
    return EmbeddedArticle(article, (article.title,), vectors, vectors[0])


def test_title_words_counts_runs_of_letters_and_digits() -> None:
    assert title_words("Osaka wins, 6-3 | Sports") == 5
    assert title_words("Сборная Самоа будет представлена") == 4
    assert title_words(" -- | ") == 0


def test_title_features_split_evidence_by_language() -> None:
    e1, e2 = np.eye(8)[0], np.eye(8)[1]
    # cosine of the two titles: 0.6 (3-4-5 triangle), the same for both pairs
    en = _title_item(Article("en", "Osaka wins the final in Tokyo", lang="en"), 0.6 * e1 + 0.8 * e2)
    en2 = _title_item(Article("en2", "Osaka wins", lang="en"), e1)
    fr = _title_item(Article("fr", "Osaka gagne", lang="fr"), e1)
    assert both_titles(en, en2)
    same = title_features(compare(en, en2, Config()), en, en2)
    cross = title_features(compare(en, fr, Config()), en, fr)
    assert same.shape == (len(TITLE_FEATURES),)
    assert np.array_equal(same[: len(FEATURES)], features(compare(en, en2, Config()), en, en2))
    get = TITLE_FEATURES.index
    # same language: the character overlap counts, the title cosine goes to the base feature only
    assert same[get("same_language")] == 1.0
    assert same[get("title_words")] == pytest.approx(0.2)  # the shorter title has 2 words
    assert same[get("same_language_char_overlap")] == pytest.approx(same[get("title_char_overlap")])
    assert same[get("same_language_char_overlap")] > 0.0
    assert same[get("cross_language_title_similarity")] == 0.0
    # across languages: the other way round
    assert cross[get("same_language")] == 0.0
    assert cross[get("same_language_char_overlap")] == 0.0
    assert cross[get("cross_language_title_similarity")] == pytest.approx(0.6)
    # an unknown language is never "the same"
    unknown = _title_item(Article("u", "Osaka wins"), e1)
    assert title_features(compare(unknown, unknown, Config()), unknown, unknown)[get("same_language")] == 0.0


def test_title_only_pairs_use_the_title_model() -> None:
    rng = np.random.default_rng(3)
    a = _title_item(Article("a", "Osaka wins", lang="en"), rng.standard_normal(8))
    b = _title_item(Article("b", "Osaka wins again", lang="en"), rng.standard_normal(8))
    long = _embedded(Article("c", "Osaka wins", lang="en"), _unit(rng.standard_normal((3, 8))))
    other_long = _embedded(Article("d", "Osaka loses", lang="en"), _unit(rng.standard_normal((3, 8))))
    zeros = (0.0,) * len(FEATURES)
    # the article model says 0.5 whatever the evidence; the title model says more than 0.5 for a same-language pair
    title_coef = (0.0,) * (len(TITLE_FEATURES) - 4) + (3.0, 0.0, 0.0, 0.0)
    verifier = Verifier(zeros, 0.0, title_coef=title_coef, title_intercept=0.0)
    assert verifier.decide(a, b, Config()).score == pytest.approx(1 / (1 + np.exp(-3.0)))
    assert verifier.decide(long, other_long, Config()).score == pytest.approx(0.5)
    assert verifier.decide(long, long, Config()).score == 1.0  # an exact repeat, whatever the model says
    # a title against a full article is the article model's
    assert not both_titles(a, long)
    assert verifier.decide(a, long, Config()).score == pytest.approx(0.5)
    # without a title model, title-only pairs are scored by the article model
    assert Verifier(zeros, 0.0).decide(a, b, Config()).score == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="no title-only model"):
        Verifier(zeros, 0.0).score_title(np.zeros(len(TITLE_FEATURES)))


def test_title_model_parameters_are_validated() -> None:
    with pytest.raises(ConfigError, match="title-only model needs"):
        Verifier((0.0,) * len(FEATURES), 0.0, title_coef=(1.0,))
    data = {"features": list(FEATURES), "coef": [0.0] * len(FEATURES), "intercept": 0.0}
    with pytest.raises(ConfigError, match="title-only verifier parameters"):
        Verifier.from_dict({**data, "title_only": {"features": ["x"], "coef": [1.0], "intercept": 0.0}})
    loaded = Verifier.from_dict(
        {**data, "title_only": {"features": list(TITLE_FEATURES), "coef": [0.5] * len(TITLE_FEATURES), "intercept": -1.0}}
    )
    assert loaded.title_coef == (0.5,) * len(TITLE_FEATURES) and loaded.title_intercept == -1.0
    assert Verifier.default().title_coef is not None
