from __future__ import annotations

import json
from importlib import resources
from typing import Any

import numpy as np
import pytest

from dedup.config import Config
from dedup.embedding.articles import pool
from dedup.errors import ConfigError
from dedup.types import Article, EmbeddedArticle, PartialDate
from dedup.verify import (
    FEATURES,
    FORMAT,
    FORMAT8_FEATURES,
    MONOTONE,
    READS,
    Verifier,
    align,
    compare,
    conflict_veto,
    pair_features,
)


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
    x = pair_features(compare(a, a, Config()), a, a)
    assert x.shape == (len(FEATURES),)
    get = FEATURES.index
    assert x[get("aligned_fraction")] == 1.0 and x[get("soft_match")] == pytest.approx(1.0, abs=1e-5)
    assert np.isnan(x[get("date_gap")])  # no dates: nothing to measure, not "no gap"
    assert x[get("number_match")] == 1.0 and x[get("date_match")] == 1.0  # "2025" on both sides


def _stump(feature: int, threshold: float, low: float, high: float, missing_left: bool = True) -> dict[str, list[Any]]:
    return {
        "feature": [feature, 0, 0],
        "threshold": [threshold, 0.0, 0.0],
        "missing_left": [missing_left, False, False],
        "left": [1, 0, 0],
        "right": [2, 0, 0],
        "value": [0.0, low, high],
        "leaf": [False, True, True],
    }


def _params(trees: list[dict[str, list[Any]]], baseline: float = 0.0, **extra: Any) -> dict[str, Any]:
    return {"format": FORMAT, "features": list(FEATURES), "model": {"baseline": baseline, "trees": trees}, **extra}


def test_trees_are_evaluated_from_json() -> None:
    cos, names = FEATURES.index("article_similarity"), FEATURES.index("name_match")
    deep = {  # a tree of depth 2 with an unequal number of nodes, padded by Trees
        "feature": [names, 0, 0, cos, 0],
        "threshold": [0.5, 0.0, 0.0, 0.8, 0.0],
        "missing_left": [False, False, False, True, False],
        "left": [1, 0, 0, 4, 0],
        "right": [3, 0, 0, 2, 0],
        "value": [0.0, -1.0, 2.0, 0.0, 0.5],
        "leaf": [False, True, True, False, True],
    }
    verifier = Verifier.from_dict(_params([_stump(cos, 0.6, -2.0, 2.0), deep], baseline=0.25))
    x = np.zeros((4, len(FEATURES)))
    x[:, cos] = [0.5, 0.7, 0.9, 0.9]
    x[:, names] = [0.1, 0.9, 0.9, np.nan]  # NaN goes right at the root of the second tree (missing_left False)
    expected = 0.25 + np.array([-2.0 - 1.0, 2.0 + 0.5, 2.0 + 2.0, 2.0 + 2.0])
    assert np.allclose(verifier.trees.raw(x), expected)
    assert np.allclose(verifier.scores(x), 1 / (1 + np.exp(-expected)))
    assert verifier.score(x[1]) == pytest.approx(1 / (1 + np.exp(-expected[1])))
    calibrated = Verifier.from_dict(_params([_stump(cos, 0.6, -2.0, 2.0)], calibration={"a": 0.5, "b": -1.0}))
    assert calibrated.score(x[0]) == pytest.approx(1 / (1 + np.exp(-(0.5 * -2.0 - 1.0))))


def test_the_linear_base_adds_to_the_trees() -> None:
    """Verifier v7: raw = baseline + x @ linear (a NaN feature contributes 0) + the trees' leaves."""
    cos, lead = FEATURES.index("article_similarity"), FEATURES.index("lead_weighted_similarity")
    linear = [0.0] * len(FEATURES)
    linear[lead] = 3.0
    params = _params([_stump(cos, 0.6, -2.0, 2.0)], baseline=-1.0)
    params["model"]["linear"] = linear
    verifier = Verifier.from_dict(params)
    x = np.zeros((3, len(FEATURES)))
    x[:, cos] = [0.5, 0.9, 0.9]
    x[:, lead] = [0.4, 0.8, np.nan]
    assert np.allclose(verifier.trees.raw(x), [-1.0 + 1.2 - 2.0, -1.0 + 2.4 + 2.0, -1.0 + 0.0 + 2.0])
    assert verifier.trees.linear.tolist() == linear
    without = Verifier.from_dict(
        {**_params([_stump(cos, 0.6, -2.0, 2.0)], baseline=-1.0), "format": 6, "features": list(FORMAT8_FEATURES)}
    )
    assert not without.trees.linear.any()  # format 6 (v6) has no linear term
    assert np.allclose(without.trees.raw(x), [-3.0, 1.0, 1.0])


def test_the_linear_base_is_validated() -> None:
    lead = FEATURES.index("lead_weighted_similarity")
    for bad, match in (([1.0, 2.0], "one finite number"), ([float("nan")] * len(FEATURES), "one finite number")):
        params = _params([_stump(0, 0.5, -1.0, 1.0)])
        params["model"]["linear"] = bad
        with pytest.raises(ConfigError, match=match):
            Verifier.from_dict(params)
    against = [0.0] * len(FEATURES)
    against[lead] = -0.5  # a similarity may only raise the score
    params = _params([_stump(0, 0.5, -1.0, 1.0)])
    params["model"]["linear"] = against
    with pytest.raises(ConfigError, match="monotone direction"):
        Verifier.from_dict(params)


def test_a_title_model_scores_title_pairs_and_the_main_model_the_rest() -> None:
    """Format 8: ``titles`` (its own trees and calibration) scores rows whose title_only is 1."""
    cos, title_only = FEATURES.index("article_similarity"), FEATURES.index("title_only")
    params = _params([_stump(cos, 0.6, -2.0, 2.0)], calibration={"a": 0.5, "b": 0.0})
    params["titles"] = {"model": {"baseline": 1.0, "trees": [_stump(cos, 0.8, -3.0, 3.0)]}, "calibration": {"a": 2.0, "b": -1.0}}
    verifier = Verifier.from_dict(params)
    assert verifier.titles is not None and verifier.titles.calibration == (2.0, -1.0)
    x = np.zeros((4, len(FEATURES)))
    x[:, cos] = [0.7, 0.7, 0.9, 0.5]
    x[:, title_only] = [0.0, 1.0, 1.0, 0.0]
    logistic = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    expected = [logistic(0.5 * 2.0), logistic(2.0 * (1.0 - 3.0) - 1.0), logistic(2.0 * (1.0 + 3.0) - 1.0), logistic(-1.0)]
    assert np.allclose(verifier.scores(x), expected)
    assert [verifier.score(row) for row in x] == pytest.approx(expected)
    assert verifier.title_rows(x).tolist() == [False, True, True, False]
    plain = Verifier.from_dict(_params([_stump(cos, 0.6, -2.0, 2.0)], calibration={"a": 0.5, "b": 0.0}))
    assert np.allclose(plain.scores(x), [logistic(1.0), logistic(1.0), logistic(1.0), logistic(-1.0)])  # no title model
    with pytest.raises(ConfigError, match="cannot have a title model"):
        Verifier.from_dict({**params, "format": 7, "features": list(FORMAT8_FEATURES)})
    nested = {**params, "titles": {**params["titles"]}}
    with pytest.raises(ConfigError, match="malformed"):
        Verifier.from_dict({**nested, "titles": {"calibration": {"a": 1.0, "b": 0.0}}})  # no model
    with pytest.raises(ConfigError, match="monotone"):
        Verifier.from_dict({**params, "titles": {**params["titles"], "calibration": {"a": -2.0, "b": 0.0}}})


def test_verifier_parameters_are_validated() -> None:
    good = _params([_stump(0, 0.5, -1.0, 1.0)])
    with pytest.raises(ConfigError, match="format"):
        Verifier.from_dict({**good, "format": 5})
    with pytest.raises(ConfigError, match="features"):
        Verifier.from_dict({**good, "features": ["x"]})
    with pytest.raises(ConfigError, match="out of range"):
        Verifier.from_dict(_params([_stump(len(FEATURES), 0.5, -1.0, 1.0)]))
    broken = _stump(0, 0.5, -1.0, 1.0)
    broken["left"] = [1, 0]
    with pytest.raises(ConfigError, match="unequal"):
        Verifier.from_dict(_params([broken]))
    with pytest.raises(ConfigError, match="no trees"):
        Verifier.from_dict(_params([]))
    with pytest.raises(ConfigError, match="malformed"):
        Verifier.from_dict({"format": FORMAT, "features": list(FEATURES)})
    with pytest.raises(ConfigError, match="monotone"):
        Verifier.from_dict({**good, "calibration": {"a": -1.0, "b": 0.0}})


def test_the_shipped_parameters_are_read_and_versioned() -> None:
    shipped = json.loads(resources.files("dedup").joinpath("verifier.json").read_text("utf-8"))
    assert shipped["format"] in READS and tuple(shipped["features"]) == FEATURES
    default = Verifier.default()
    assert default.trees.feature.shape[0] == len(shipped["model"]["trees"])
    assert default.calibration == (shipped["calibration"]["a"], shipped["calibration"]["b"])


def test_raising_the_cosine_never_lowers_the_score() -> None:
    """The monotone rule, on the shipped model: every feature marked +1 (the cosine first) only raises the score."""
    verifier = Verifier.default()
    rng = np.random.default_rng(5)
    base = rng.uniform(0.0, 1.0, (300, len(FEATURES)))
    base[rng.uniform(size=base.shape) < 0.1] = np.nan  # missing evidence too
    base[:150, FEATURES.index("title_only")] = 0.0  # articles: the conflict veto can apply
    base[150:225, FEATURES.index("title_only")] = 1.0  # title pairs: the title model, where there is one
    grid = np.linspace(-0.2, 1.0, 25)
    for name, direction in MONOTONE.items():
        col = FEATURES.index(name)
        scores = []
        for value in grid:
            x = base.copy()
            x[:, col] = value
            scores.append(verifier.scores(x))
        steps = np.diff(np.vstack(scores), axis=0) * direction
        assert steps.min() >= -1e-12, name
    cos = FEATURES.index("article_similarity")
    low, high = base.copy(), base.copy()
    low[:, cos], high[:, cos] = 0.2, 0.9
    assert (verifier.scores(high) > verifier.scores(low)).mean() > 0.5  # and the cosine matters


def _row(**values: float) -> np.ndarray:
    row = np.full(len(FEATURES), 0.5)
    row[FEATURES.index("title_only")] = 0.0
    for name, value in values.items():
        row[FEATURES.index(name)] = value
    return row


def test_conflict_veto_needs_conflicting_names_and_numbers_and_nothing_shared() -> None:
    """Only sentence shapes in common: no shared name, no shared number, and both conflicting in the matched passages."""
    template = _row(name_match=0.0, number_match=0.0, name_conflict=1.0, number_conflict=0.6)
    assert conflict_veto(template).tolist() == [True]
    for change in (
        {"name_match": 0.2},  # a name in common
        {"number_match": 0.2},  # a number in common
        {"name_conflict": 0.3},  # names mostly left out, not replaced
        {"number_conflict": np.nan},  # no numbers to compare
        {"name_match": np.nan},  # no names on one side (a script without capitals)
        {"title_only": 1.0},  # titles name too little
    ):
        row = template.copy()
        for name, value in change.items():
            row[FEATURES.index(name)] = value
        assert conflict_veto(row).tolist() == [False], change
    verifier = Verifier.default()
    free = template.copy()
    free[FEATURES.index("number_match")] = 1e-9
    assert verifier.score(template) < Config().threshold and verifier.score(template) < verifier.score(free)
    assert verifier.scores(np.vstack([template, free])).tolist() == [verifier.score(template), verifier.score(free)]


def test_a_vector_map_is_read_from_format_9_and_applies_to_the_models_it_names() -> None:
    mapped, dim = FEATURES.index("mapped_similarity"), 16
    entry = {"models": ["m/one"], "u": np.zeros((dim, 2)).tolist(), "v": np.zeros((dim, 2)).tolist(), "fitted_on": "test"}
    params = _params([_stump(mapped, 0.5, -3.0, 3.0)], vector_map=entry)  # NaN (no map) goes left
    verifier = Verifier.from_dict(params)
    assert verifier.vector_map is not None and verifier.map_for("m/one", dim) is verifier.vector_map
    assert verifier.map_for("m/two", dim) is None and verifier.map_for("m/one", 8) is None
    rng = np.random.default_rng(4)
    base = rng.standard_normal((3, dim))
    a = _embedded(Article("a", "Talks in Hanoi"), _unit(base))
    b = _embedded(Article("b", "Hanoi talks"), _unit(base + 0.1 * rng.standard_normal((3, dim))))
    assert float(a.vector @ b.vector) > 0.5  # under the zero map the mapped similarity is this cosine
    logistic = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    assert verifier.decide(a, b, Config(model="m/one")).score == pytest.approx(logistic(3.0))
    assert verifier.decide(a, b, Config(model="m/two")).score == pytest.approx(logistic(-3.0))  # not its space: NaN
    with pytest.raises(ConfigError, match="cannot have a vector map"):
        Verifier.from_dict({**params, "format": 8, "features": list(FORMAT8_FEATURES)})
    for bad in ({**entry, "v": np.zeros((dim, 3)).tolist()}, {**entry, "models": []}, [1, 2], {**entry, "u": "x"}):
        with pytest.raises(ConfigError, match="malformed"):
            Verifier.from_dict({**params, "vector_map": bad})


def test_parameters_of_format_8_are_read_without_the_mapped_similarity() -> None:
    cos = FEATURES.index("article_similarity")
    old = {"format": 8, "features": list(FORMAT8_FEATURES), "model": {"baseline": 0.0, "trees": [_stump(cos, 0.5, -1.0, 1.0)]}}
    old["model"]["linear"] = [0.0] * len(FORMAT8_FEATURES)
    verifier = Verifier.from_dict(old)
    assert verifier.trees.linear.shape == (len(FEATURES),) and verifier.vector_map is None
    with pytest.raises(ConfigError, match="features"):
        Verifier.from_dict({**old, "features": list(FEATURES)})  # format 8 never had the 21st
    with pytest.raises(ConfigError, match="features"):
        Verifier.from_dict({**old, "format": 9})  # format 9 must have it
