"""The verifier v7 fit (``benchmarks/fit_verifier.py``): a monotone linear base, trees boosted on top of it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import fit_verifier as fv
from benchmarks.learned_map import fit_map, mapped_cosine
from dedup.verify import FEATURES, FORMAT, FORMAT8_FEATURES, Trees, Verifier

LEAD = FEATURES.index("lead_weighted_similarity")
NAMES = FEATURES.index("name_match")


def _data(n: int, seed: int, sign: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (n, len(FEATURES)))
    x[rng.uniform(size=x.shape) < 0.05] = np.nan
    lead = np.nan_to_num(x[:, LEAD], nan=0.5)
    names = np.nan_to_num(x[:, NAMES], nan=0.5)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-sign * (6 * lead - 3) - 2 * (names - 0.5)))).astype(np.float64)
    return x, y, np.ones(n)


def test_the_base_is_monotone_even_when_the_data_disagree() -> None:
    x, y, w = _data(2000, 0)
    linear, _ = fv.fit_base(x, y, w)
    assert linear[LEAD] > 3.0 and np.count_nonzero(linear) == len(fv.BASE)
    flipped, _ = fv.fit_base(*_data(2000, 1, sign=-1.0))  # the lead cosine lowers the odds here
    assert flipped[LEAD] == pytest.approx(0.0, abs=1e-6)  # bounded at 0: never against its monotone direction


def test_trees_boost_on_top_of_the_base_and_export_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(fv.PARAMS, "max_iter", 20)
    x, y, w = _data(1500, 2)
    linear, intercept = fv.fit_base(x, y, w)
    model = fv.Stacked(linear, intercept, None)
    trees = fv.make_model(model.base(x))
    trees.fit(x, y, sample_weight=w)  # type: ignore[attr-defined]
    model.trees = trees
    raw = model.decision_function(x)
    assert np.allclose(raw - model.base(x), trees.decision_function(x))  # type: ignore[attr-defined]
    # The trees start from the base: they add the evidence it lacks (name_match), so the sum fits better.
    base_loss = np.mean(np.logaddexp(0, model.base(x)) - y * model.base(x))
    assert np.mean(np.logaddexp(0, raw) - y * raw) < base_loss
    exported = fv.export_trees(model)
    mine = Trees.from_dict(exported, len(FEATURES))
    assert np.allclose(mine.raw(x), raw, atol=1e-9)  # numpy (with the linear term) = scikit-learn + base
    params = {"format": FORMAT, "features": list(FEATURES), "model": exported}
    assert Verifier.from_dict(params).trees.linear[LEAD] == pytest.approx(linear[LEAD])


def test_a_carried_title_model_scores_the_title_rows_of_the_report_and_of_the_output(tmp_path: Path) -> None:
    """``--titles FILE``: title rows (title_only = 1) are scored by FILE's model, the rest by the fitted one."""
    cos, title_only = FEATURES.index("article_similarity"), FEATURES.index("title_only")
    stump = {
        "feature": [cos, 0, 0],
        "threshold": [0.5, 0.0, 0.0],
        "missing_left": [True, False, False],
        "left": [1, 0, 0],
        "right": [2, 0, 0],
        "value": [0.0, -4.0, 4.0],
        "leaf": [False, True, True],
    }
    carried = {"format": 6, "features": list(FORMAT8_FEATURES), "source": "old", "model": {"baseline": 0.0, "trees": [stump]}}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(carried), encoding="utf-8")
    entry, titles = fv.title_model(path)
    x = np.zeros((4, len(FEATURES)))
    x[:, cos] = [0.9, 0.9, 0.1, 0.1]
    x[:, title_only] = [1.0, 0.0, 1.0, 0.0]
    z = np.zeros(4)  # the fitted model's raw score: 0 everywhere, probability 0.5
    scores = fv.final_scores(z, x, (1.0, 0.0), True, titles)
    assert np.allclose(scores, [1 / (1 + np.exp(-4.0)), 0.5, 1 / (1 + np.exp(4.0)), 0.5])
    assert np.allclose(fv.final_scores(z, x, (1.0, 0.0), True), 0.5)  # without: the fitted model everywhere
    out = {"format": 8, "features": list(FORMAT8_FEATURES), "model": {"baseline": 0.0, "trees": [stump]}, "titles": entry}
    assert np.allclose(Verifier.from_dict(out).scores(x)[[0, 2]], scores[[0, 2]])  # the output scores titles the same
    nested = {**out, "source": "new"}
    path.write_text(json.dumps(nested), encoding="utf-8")
    with pytest.raises(SystemExit, match="title model would be dropped"):
        fv.title_model(path)


def test_the_vector_map_is_cross_fitted_on_the_semeval_tune_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tune rows get a map fitted without their fold; held rows and other sources the full map's cosine."""
    monkeypatch.setattr(fv, "MAP_PARAMS", {"rank": 2, "lam": 0.1, "steps": 60})
    rng = np.random.default_rng(0)
    n, dim = 120, 8
    va = rng.standard_normal((n, dim)).astype(np.float32)
    vb = (va + rng.standard_normal((n, dim))).astype(np.float32)
    overall = rng.uniform(1, 4, n)
    roots = np.array([f"c{i}" for i in range(n)])
    kind = np.where(np.arange(n) < 90, "tune", "held")
    x = np.full((n, len(FEATURES)), np.nan)
    semeval = fv.Rows(
        "semeval", x, (overall < 2).astype(float), roots, roots, kind, np.full(n, ""), overall=overall, va=va, vb=vb
    )
    other = fv.Rows(
        "ntrex",
        np.full((5, len(FEATURES)), np.nan),
        np.ones(5),
        *(np.full(5, "s"),) * 2,
        np.full(5, "knn"),
        np.full(5, ""),
        va=va[:5],
        vb=vb[:5],
    )
    full = fv.fit_vector_map({"semeval": semeval, "ntrex": other}, "m/one")
    at = FEATURES.index("mapped_similarity")
    assert full.models == ("m/one",)
    expected = mapped_cosine(full, va, vb)
    held = kind == "held"
    assert np.allclose(semeval.x[held, at], expected[held]) and np.allclose(other.x[:, at], expected[:5])
    assert not np.isnan(semeval.x[:, at]).any()
    assert np.abs(semeval.x[~held, at] - expected[~held]).min() > 0  # every tune row: another map's cosine
    folds = np.array([fv._fold("semeval", g) for g in roots])
    k = int(folds[0])
    part = ~held & (folds != k)
    fold_map = fit_map(va[part], vb[part], 1 - (overall[part] - 1) / 3, models=("m/one",), **fv.MAP_PARAMS)  # type: ignore[arg-type]
    test = ~held & (folds == k)
    assert np.allclose(semeval.x[test, at], mapped_cosine(fold_map, va[test], vb[test]), atol=1e-6)
