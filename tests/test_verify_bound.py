"""The exact pruning bound of the verifier's score (dedup/verify_bound.py) and the checks that use it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from dedup.config import Config
from dedup.detect.archive import ArchiveDetector
from dedup.detect.detector import Detector
from dedup.evaluation.ingest_feed import SyntheticFeed
from dedup.io import as_article, read_articles
from dedup.types import Article, EmbeddedArticle, Verdict
from dedup.verify import FEATURES, Trees, VectorMap, Verifier, compare, conflict_veto, pair_features
from dedup.verify_bound import TEXT_FEATURES, Bounds, Pruner, aligned_bounds, max_raw, unknown_row, vector_bounds

from .conftest import SEEDS, HashEncoder

AT = {name: i for i, name in enumerate(FEATURES)}
MAPPED = AT["mapped_similarity"]


def _random_trees(rng: np.random.Generator, n_trees: int = 40, depth: int = 3) -> Trees:
    """Full binary trees of ``depth`` over random features, thresholds and NaN directions."""
    trees = []
    for _ in range(n_trees):
        inner, size = 2**depth - 1, 2 ** (depth + 1) - 1
        trees.append(
            {
                "feature": [int(rng.integers(len(FEATURES))) if k < inner else 0 for k in range(size)],
                "threshold": [float(rng.uniform(-0.5, 1.5)) if k < inner else 0.0 for k in range(size)],
                "missing_left": [bool(rng.random() < 0.5) for _ in range(size)],
                "left": [2 * k + 1 if k < inner else 0 for k in range(size)],
                "right": [2 * k + 2 if k < inner else 0 for k in range(size)],
                "value": [0.0 if k < inner else float(rng.normal()) for k in range(size)],
                "leaf": [k >= inner for k in range(size)],
            }
        )
    return Trees.from_dict({"baseline": float(rng.normal()), "trees": trees}, len(FEATURES))


def _rows(rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    x = rng.uniform(-0.6, 1.6, (n, len(FEATURES)))
    x[rng.random(x.shape) < 0.2] = np.nan
    return x


def _widened(rng: np.random.Generator, x: NDArray[np.float64]) -> Bounds:
    """Bounds that hold ``x``: some features unknown, some known to an interval around their value, the rest exact."""
    exact = Bounds.of(x, rng.random(x.shape) < 0.25)
    spread = rng.random(x.shape) < 0.3
    width = rng.uniform(0, 0.5, x.shape)
    lo = np.where(spread & ~np.isnan(x), np.minimum(exact.lo, x - width), exact.lo)
    hi = np.where(spread & ~np.isnan(x), np.maximum(exact.hi, x + width[::-1]), exact.hi)
    return Bounds(lo, hi, exact.nan | (spread & (rng.random(x.shape) < 0.5)))


@pytest.mark.parametrize("seed", range(5))
def test_the_bound_is_at_least_the_raw_score_of_every_row_it_allows(seed: int) -> None:
    rng = np.random.default_rng(seed)
    trees = _random_trees(rng)
    x = _rows(rng, 500)
    raw = trees.raw(x)
    assert np.allclose(max_raw(trees, Bounds.of(x)), raw, atol=1e-12)  # everything known: the score itself
    bound = max_raw(trees, _widened(rng, x))
    assert (bound >= raw - 1e-12).all()
    assert (bound > raw + 1e-6).any()  # and unknowns do widen it
    everything = max_raw(trees, unknown_row())[0]
    assert everything == pytest.approx(trees.baseline + trees.value.max(axis=1).sum())


@pytest.mark.parametrize("seed", range(3))
def test_the_bound_counts_the_optional_linear_term(seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = _random_trees(rng)
    linear = rng.normal(size=len(FEATURES))
    linear[rng.random(len(FEATURES)) < 0.3] = 0.0
    trees = Trees(
        base.baseline, base.feature, base.threshold, base.missing_left, base.left, base.right, base.value, base.leaf, linear
    )
    x = _rows(rng, 400)
    raw = trees.raw(x)
    assert np.allclose(max_raw(trees, Bounds.of(x)), raw, atol=1e-9)
    assert (max_raw(trees, _widened(rng, x)) >= raw - 1e-9).all()
    assert max_raw(trees, unknown_row())[0] == np.inf  # an unbounded feature with a weight: no bound


def test_the_bound_is_at_least_the_shipped_models_score_on_random_rows() -> None:
    rng = np.random.default_rng(7)
    verifier = Verifier.default()
    x = _rows(rng, 2000)
    x[:1000, AT["title_only"]] = rng.integers(0, 2, 1000)  # title pairs and articles (the shipped title model)
    pruner = Pruner(verifier, 0.5)
    widened = _widened(rng, x)
    for model in (verifier, verifier.titles):
        if model is not None:
            assert (max_raw(model.trees, widened) >= model.trees.raw(x) - 1e-12).all()
    # The score bound never says "cannot reach" of a row that reaches the threshold (the veto only lowers).
    for threshold in (0.3, 0.5, 0.7):
        reach = (pruner if threshold == 0.5 else Pruner(verifier, threshold)).reach(widened)
        assert reach[verifier.scores(x) >= threshold].all(), threshold
        assert not reach.all(), threshold  # and it does bound


def test_a_title_model_is_bounded_by_its_own_trees_and_calibration() -> None:
    """Rows with title_only = 1 are bounded by the title model; unknown title_only by whichever reaches."""
    rng = np.random.default_rng(11)
    main, titles = _random_trees(rng), _random_trees(rng)
    verifier = Verifier(main, (0.7, -0.2), titles=Verifier(titles, (1.5, 0.3)))
    x = _rows(rng, 3000)
    x[:, AT["title_only"]] = rng.integers(0, 2, 3000)
    scores = verifier.scores(x)
    assert 0.05 < (scores >= 0.5).mean() < 0.95
    for bounds in (Bounds.of(x), _widened(rng, x)):
        reach = Pruner(verifier, 0.5).reach(bounds)
        assert reach[scores >= 0.5].all()
    exact = Pruner(verifier, 0.5).reach(Bounds.of(x))
    veto = conflict_veto(x)
    assert (exact[~veto] == (scores[~veto] >= 0.5 - 1e-9)).mean() > 0.999  # everything known: the decision itself
    floors = Pruner(verifier, 0.5).cosine_floor, Pruner(Verifier(main, (0.7, -0.2)), 0.5).cosine_floor
    assert floors[0] == min(floors[1], Pruner(Verifier(titles, (1.5, 0.3)), 0.5).cosine_floor)


def test_the_cosine_floor_is_the_lowest_cosine_from_which_the_threshold_is_reachable() -> None:
    # One tree: cosine <= 0.4 -> -3, else (title_words <= 0.2 -> 0.5 else 2).
    data = {
        "baseline": -1.0,
        "trees": [
            {
                "feature": [AT["article_similarity"], 0, AT["title_words"], 0, 0],
                "threshold": [0.4, 0.0, 0.2, 0.0, 0.0],
                "missing_left": [True, False, False, False, False],
                "left": [1, 0, 3, 0, 0],
                "right": [2, 0, 4, 0, 0],
                "value": [0.0, -3.0, 0.0, 0.5, 2.0],
                "leaf": [False, True, False, True, True],
            }
        ],
    }
    verifier = Verifier(Trees.from_dict(data, len(FEATURES)))
    assert Pruner(verifier, 0.6).cosine_floor == pytest.approx(0.4)  # raw 1 at best above 0.4: logistic 0.73
    assert Pruner(verifier, 0.6).cosine_floor > 0.4  # a cosine of exactly 0.4 goes left
    assert Pruner(verifier, 0.8).cosine_floor == np.inf  # logistic(1) < 0.8: nothing reaches it
    assert Pruner(verifier, 0.01).cosine_floor == -np.inf  # logistic(-4) = 0.018 reaches 0.01


def _feed_pairs() -> tuple[list[EmbeddedArticle], list[EmbeddedArticle]]:
    feed = SyntheticFeed(64, months=1, seed=3)
    stored = [feed.article(i, day=feed.live_day(i)) for i in range(30)]
    queries = [feed.fresh(q) for q in range(6)] + [feed.near_copy(i, 100 + i, noise=0.3) for i in range(6)]
    rng = np.random.default_rng(3)
    for i, original in enumerate(stored[:8]):  # rewritten reports of the same day: not exact repeats
        moved = original.passage_vectors[1:] + 0.05 * rng.standard_normal(original.passage_vectors[1:].shape)
        vectors = (moved / np.linalg.norm(moved, axis=1, keepdims=True)).astype(np.float32)
        mean = vectors.mean(axis=0)
        article = dataclasses.replace(original.article, id=f"rewrite{i}", title=original.passages[1])
        queries.append(EmbeddedArticle(article, original.passages[1:], vectors, (mean / np.linalg.norm(mean)).astype(np.float32)))
    return stored, queries


def _assert_features_within(
    query: EmbeddedArticle, candidates: list[EmbeddedArticle], config: Config, vector_map: VectorMap | None = None
) -> None:
    bounds = vector_bounds(query, candidates, config, vector_map)
    narrower = aligned_bounds(query, candidates, config, bounds)
    text = np.isin(np.array(FEATURES), TEXT_FEATURES)
    assert bounds.nan[:, text].all() and (bounds.lo[:, text] == 0).all() and (bounds.hi[:, text] == 1).all()
    assert (narrower.hi - narrower.lo <= bounds.hi - bounds.lo).all()
    for j, other in enumerate(candidates):
        x = pair_features(
            compare(query, other, config), query, other, max_date_gap_days=config.max_date_gap_days, vector_map=vector_map
        )
        assert np.isnan(x[MAPPED]) == (vector_map is None)
        for b in (bounds, narrower):
            inside = np.where(np.isnan(x), b.nan[j], (b.lo[j] <= x) & (x <= b.hi[j]))
            assert inside.all(), (other.id, [FEATURES[i] for i in np.flatnonzero(~inside)])


def test_vector_bounds_hold_every_feature_of_synthetic_pairs() -> None:
    stored, queries = _feed_pairs()
    rng = np.random.default_rng(5)
    dim = stored[0].vector.shape[0]
    vector_map = VectorMap(("m",), rng.normal(0, 0.3, (dim, 4)), rng.normal(0, 0.3, (dim, 4)))
    for query in queries:
        _assert_features_within(query, stored, Config())
        _assert_features_within(query, stored, Config(), vector_map)


def test_pruning_keeps_every_duplicate_of_synthetic_queries_and_prunes_the_rest() -> None:
    stored, queries = _feed_pairs()
    verifier, config = Verifier.default(), Config()
    pruner = Pruner(verifier, config.threshold)
    kept = duplicates = 0
    for query in queries:
        keep = pruner.must_verify(query, stored, config)
        duplicate = np.array([verifier.decide(query, other, config).is_duplicate for other in stored])
        assert keep[duplicate].all()
        kept, duplicates = kept + int(keep.sum()), duplicates + int(duplicate.sum())
    assert duplicates >= 6  # the rewrites of their originals
    assert kept < len(queries) * len(stored) / 4


def test_an_exact_repeat_is_kept_unless_too_far_in_time() -> None:
    feed = SyntheticFeed(32, months=1, seed=1)
    original = feed.article(5)
    late = feed.article(5, day=feed.day_of(5) + dt.timedelta(days=30))  # the same texts a month later
    other = feed.article(6, day=feed.day_of(5) + dt.timedelta(days=30))
    pruner = Pruner(Verifier.default(), 0.5)
    assert pruner.must_verify(original, [original, late, other], Config()).tolist() == [True, False, False]
    assert pruner.must_verify(late, [original, late, other], Config()).tolist() == [False, True, False]
    with pytest.raises(ValueError, match="threshold"):
        pruner.must_verify(original, [original], Config(threshold=0.7))


def _corpus() -> list[Article]:
    """The seeds and the example batch of data/."""
    batch = json.loads((SEEDS / "examples" / "batch.json").read_text("utf-8"))["articles"]
    return [*read_articles([SEEDS]).articles, *(as_article(r, position=i) for i, r in enumerate(batch))]


def _duplicates(verdicts: list[Verdict]) -> list[tuple[bool, tuple[tuple[str, float], ...], bool]]:
    out = []
    for v in verdicts:
        out.append((v.is_duplicate, tuple((m.id, m.score) for m in v.matches if m.is_duplicate), v.candidates_truncated))
    return out


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8])
def test_a_check_finds_the_same_duplicates_with_and_without_pruning(encoder: HashEncoder, threshold: float) -> None:
    config = Config(threshold=threshold, candidates=6)
    det = Detector.in_memory(config, encoder=encoder, cache=False)
    articles = _corpus()
    items = det.embed(articles)
    det.store.add(items)
    pruned = det.check_embedded(items)
    verified = det.verify_counts["verified"]
    assert verified < det.verify_counts["candidates"]  # something was pruned
    full = det.check_embedded(items, top=100)  # near misses asked for: every candidate verified
    assert any(v.is_duplicate for v in full)
    assert det.verify_counts["verified"] - verified == det.verify_counts["candidates"] / 2
    assert _duplicates(pruned) == _duplicates(full)


def test_an_archive_check_prunes_and_finds_the_same_duplicates(tmp_path: Path, encoder: HashEncoder) -> None:
    det = ArchiveDetector.open(tmp_path / "archive", Config(candidates=8), encoder=encoder, create=True, cache=False)
    articles = _corpus()
    det.add(articles)
    pruned = det.check_many(articles)
    assert det.verify_counts["verified"] < det.verify_counts["candidates"]
    assert _duplicates(pruned) == _duplicates(det.check_many(articles, top=100))


def test_an_archive_check_reads_no_vectors_of_candidates_dated_beyond_the_gap(
    tmp_path: Path, encoder: HashEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: a candidate dated further than max_date_gap_days scores 0; its vectors need not be read."""
    from dedup.search.parts import Part
    from dedup.search.store import Store

    text = "Gdansk opened a desalination plant on Monday, the city said, after two years of works."
    det = ArchiveDetector.open(tmp_path / "archive", Config(candidates=2), encoder=encoder, create=True, cache=False)
    det.add([
        {"id": "near", "title": "Gdansk plant", "text": text, "date": "2025-03-03"},
        {"id": "far", "title": "Gdansk plant", "text": text + " More works follow.", "date": "2025-03-28"},
        {"id": "other", "title": "Markets", "text": "Shares fell in Tokyo as the yen rose.", "date": "2025-03-03"},
    ])  # fmt: skip
    query = det.embed([{"id": "q", "title": "Gdansk plant", "text": text, "date": "2025-03-04"}])
    read: list[str] = []
    records: list[str] = []
    embedded, record = Store.embedded, Part.record
    monkeypatch.setattr(Store, "embedded", lambda store, position: read.append(store.ids[position]) or embedded(store, position))
    monkeypatch.setattr(Part, "record", lambda part, row: records.append(part.ids[row]) or record(part, row))
    pruned = det.check_embedded(query)
    assert read == ["near"] and det.verify_counts["candidates"] == 2  # "far" counted among the candidates, never read
    assert "far" not in records  # its days are in memory (offsets.npy), its record is not read either
    full = det.check_embedded(query, top=5)  # near misses asked for: every candidate read and verified
    assert sorted(read) == ["far", "near", "near"]
    assert [m.id for m in full[0].matches] == ["near", "far"] and full[0].matches[1].score == 0.0
    # The least similar of the k was the far one: more candidates exist (cut), but none can be a duplicate.
    assert _duplicates(pruned) == _duplicates(full) == [(True, (("near", pruned[0].matches[0].score),), False)]


def test_a_store_check_reads_nothing_of_candidates_dated_beyond_the_gap(
    encoder: HashEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: as an archive check, a single store's check reads no record or vector of candidates scored 0 by date."""
    from dedup.search.parts import Part

    text = "Valparaiso signed a fishing accord on Tuesday with two neighbours, its mayor said."
    det = Detector.in_memory(Config(candidates=2), encoder=encoder, cache=False)
    stored = det.embed([
        {"id": "near", "title": "Accord", "text": text, "date": "2025-03-03"},
        {"id": "far", "title": "Accord", "text": text + " Talks go on.", "date": "2025-03-28"},
        {"id": "other", "title": "Markets", "text": "Shares fell in Tokyo as the yen rose.", "date": "2025-03-03"},
    ])  # fmt: skip
    det.store.add(stored)
    records: list[str] = []
    record = Part.record
    monkeypatch.setattr(Part, "record", lambda part, row: records.append(part.ids[row]) or record(part, row))
    query = det.embed([{"id": "q", "title": "Accord", "text": text, "date": "2025-03-04"}])
    pruned = det.check_embedded(query)
    assert records == ["near"] and det.verify_counts["candidates"] == 2
    full = det.check_embedded(query, top=5)
    assert [m.id for m in full[0].matches] == ["near", "far"] and full[0].matches[1].score == 0.0
    assert _duplicates(pruned) == _duplicates(full) == [(True, (("near", pruned[0].matches[0].score),), False)]
    again = det.check_embedded([stored[0]])  # a stored article checked against its own store: itself skipped
    assert [m.id for m in again[0].matches if m.is_duplicate] == [] and not again[0].candidates_truncated


@pytest.mark.model
@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.7])
def test_with_the_real_model_pruning_changes_no_duplicate_and_prunes(threshold: float) -> None:
    det = Detector.in_memory(Config(threshold=threshold), cache=False)
    articles = _corpus()
    items = det.embed(articles)
    det.store.add(items[::2])  # half stored; every article checked
    pruned = det.check_embedded(items, add=False)
    assert det.verify_counts["verified"] < det.verify_counts["candidates"]
    assert _duplicates(pruned) == _duplicates(det.check_embedded(items, top=100))
    for query in items:
        _assert_features_within(query, [i for i in items if i.passages and i.id != query.id], det.config)


def test_vector_bounds_hold_for_articles_longer_than_the_decay_table() -> None:
    feed = SyntheticFeed(48, months=1, seed=5)
    rng = np.random.default_rng(5)
    base = feed.article(1, day=feed.live_day(0))
    passages = tuple(f"Passage {i} of Town{i % 7} reported {100 + i} cases." for i in range(90))
    vectors = rng.standard_normal((90, 48)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    mean = vectors.mean(axis=0)
    long = EmbeddedArticle(base.article, passages, vectors, (mean / np.linalg.norm(mean)).astype(np.float32))
    others = [feed.article(i, day=feed.live_day(i)) for i in range(2, 8)]
    _assert_features_within(long, others, Config())
    _assert_features_within(others[0], [long, *others[1:]], Config())


def test_a_verifier_with_a_linear_term_on_text_features_still_prunes_exactly() -> None:
    shipped = Verifier.default().trees
    linear = np.zeros(len(FEATURES))
    linear[[AT["name_match"], AT["number_match"], AT["aligned_margin"]]] = [0.8, 0.5, 1.0]
    linear[AT["name_conflict"]] = -0.7
    trees = Trees(
        shipped.baseline, shipped.feature, shipped.threshold, shipped.missing_left, shipped.left, shipped.right,
        shipped.value, shipped.leaf, linear,
    )  # fmt: skip
    verifier, config = Verifier(trees), Config()
    pruner = Pruner(verifier, config.threshold)
    stored, queries = _feed_pairs()
    kept = 0
    for query in queries:
        keep = pruner.must_verify(query, stored, config)
        duplicate = np.array([verifier.decide(query, other, config).is_duplicate for other in stored])
        assert keep[duplicate].all()
        kept += int(keep.sum())
    assert kept < len(queries) * len(stored) / 2
