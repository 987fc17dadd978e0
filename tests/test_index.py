from __future__ import annotations

import numpy as np
import pytest

from dedup.errors import ConfigError, StoreCorruptError
from dedup.search.index import FAISS_THREADS_ENV, VectorIndex, limit_threads


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


# ---------------------------------------------------------------- approximate indexes
def _embedded(article_id: str, vector: np.ndarray):  # type: ignore[no-untyped-def]
    from dedup.types import Article, EmbeddedArticle

    v = np.asarray(vector, dtype=np.float32)
    return EmbeddedArticle(Article(id=article_id, title=f"t {article_id}"), (f"t {article_id}",), v[None, :], v)


def _clustered(seed: int, n: int, d: int = 32, centres: int = 200, spread: float = 0.35) -> np.ndarray:
    """Unit vectors in clusters, like news embeddings: many topics, near neighbours within each."""
    rng = np.random.default_rng(seed)
    c = _unit(rng, centres, d)
    x = c[rng.integers(0, centres, n)] + spread * rng.standard_normal((n, d)).astype(np.float32) / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_each_index_meets_its_recall_floor_on_fresh_queries(kind: str) -> None:
    from dedup.search.index import build_index, exact_neighbours, recall_at_k

    data = _clustered(0, 6000)
    base, queries = data[:5000], data[5000:5300]  # queries never enter the index
    index, plan = build_index(base, kind, floor=0.99)
    assert plan.kind == kind and index.kind == kind
    truth = exact_neighbours(base, queries, 10)
    recall = recall_at_k(index.search(queries, 10), truth)
    assert recall >= 0.98, f"{kind}: recall@10 {recall:.3f} with {plan.describe()}"
    if kind != "flat":
        assert plan.recall >= 0.99 and plan.param > 0 and plan.calibrated_n == 5000
        # Library defaults are not kept: the parameter is the one calibration measured.
        lower = {"hnsw": 16, "ivf": 1}[kind]
        if plan.param > lower:
            index.set_param(lower)
            assert recall_at_k(index.search(queries, 10), truth) <= recall


def test_recall_counts_ties_as_found() -> None:
    from dedup.search.index import exact_neighbours, recall_at_k

    data = _clustered(3, 500)
    doubled = np.vstack([data, data])  # every vector twice: which copy comes back is arbitrary
    truth = exact_neighbours(doubled, data[:20], 10)
    shuffled = exact_neighbours(doubled[::-1].copy(), data[:20], 10)
    assert recall_at_k(shuffled, truth) == 1.0


def test_auto_choice_switches_at_the_documented_size() -> None:
    from dedup.search.index import FLAT_MAX, IndexPlan, plan_index

    assert plan_index(FLAT_MAX - 1) == ("flat", True)
    assert plan_index(FLAT_MAX) == ("ivf", True)
    ivf = IndexPlan("ivf", "x", calibrated_n=FLAT_MAX)
    assert plan_index(FLAT_MAX + 10, "auto", ivf) == ("ivf", False)
    assert plan_index(10, "ivf") == ("ivf", True)
    assert plan_index(1, "hnsw") == ("flat", True)  # nothing to approximate
    with pytest.raises(Exception, match="index must be one of"):
        plan_index(10, "lsh")


def test_store_moves_to_ivf_past_the_threshold_and_reopens(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import dedup.search.index as index_module
    from dedup.search.store import Store

    monkeypatch.setattr(index_module, "FLAT_MAX", 400)
    store = Store.create(tmp_path / "s", "m", 16)
    vectors = _clustered(5, 1200, d=16)
    store.add([_embedded(f"a{i}", vectors[i]) for i in range(300)])
    assert store.index_plan.kind == "flat"
    store.add([_embedded(f"a{i}", vectors[i]) for i in range(300, 600)])
    plan = store.index_plan
    assert plan.kind == "ivf" and plan.requested == "auto" and "400" in plan.reason and plan.param > 0
    reopened = Store.open(tmp_path / "s")
    assert reopened.index_plan == plan and reopened.index_kind == "ivf"
    top = reopened.search(vectors[10][None, :], 1)
    assert reopened.ids[int(top.positions[0, 0])] == "a10"
    # A small add does not rebuild; doubling the size does (re-measured parameter).
    reopened.add([_embedded(f"a{i}", vectors[i]) for i in range(600, 650)])
    assert reopened.index_plan.calibrated_n == plan.calibrated_n
    reopened.add([_embedded(f"a{i}", vectors[i]) for i in range(650, 1200)])
    assert reopened.index_plan.calibrated_n == 1200
    # The user's choice wins and is kept.
    forced = Store.open(tmp_path / "s", index="flat")
    forced.add([_embedded("z", vectors[0] * -1)])
    assert Store.open(tmp_path / "s").index_plan.kind == "flat"
    assert Store.open(tmp_path / "s").index_plan.requested == "flat"


def test_auto_takes_a_graph_where_an_inverted_file_must_scan_most_of_its_lists(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 18: where IVF meets the floor only by scanning most lists, ``auto`` keeps HNSW if it computes fewer distances."""
    from dedup.search.index import FLAT_MAX, build_index, exact_neighbours, plan_index, recall_at_k
    from dedup.search.store import Store

    rng = np.random.default_rng(3)
    spread = _unit(rng, FLAT_MAX + 300, 32)  # no clusters: every IVF list holds some of each query's neighbours
    vectors, queries = spread[:FLAT_MAX], spread[FLAT_MAX:]
    index, plan = build_index(vectors, "auto")
    assert plan.kind == index.kind == "hnsw" and plan.requested == "auto" and plan.nlist == 0
    assert "inverted file had to scan" in plan.reason and plan.recall >= 0.99
    assert recall_at_k(index.search(queries, 10), exact_neighbours(vectors, queries, 10)) >= 0.98  # out of sample
    assert plan_index(FLAT_MAX + 10, "auto", plan) == ("hnsw", False)  # kept by later adds until the store doubles
    forced, forced_plan = build_index(vectors, "ivf")  # the user's choice is not second-guessed
    assert forced.kind == forced_plan.kind == "ivf"
    clustered, clustered_plan = build_index(_clustered(4, FLAT_MAX, d=32), "auto")  # lists that follow the clusters
    assert clustered.kind == clustered_plan.kind == "ivf"
    store = Store.create(tmp_path / "s", "m", 32)
    store.add([_embedded(f"a{i}", v) for i, v in enumerate(vectors)])
    assert Store.open(tmp_path / "s").index_plan == store.index_plan and store.index_kind == "hnsw"
    top = Store.open(tmp_path / "s").search(vectors[:50], 1).positions[:, 0]
    assert (top == np.arange(50)).mean() >= 0.98


def test_ivf_retrains_when_the_data_drifts() -> None:
    from dedup.search.index import build_index, update_index

    old = _clustered(7, 3000, d=16)
    index, plan = build_index(old, "ivf")
    same = _clustered(7, 3100, d=16)[3000:]
    kept, kept_plan = update_index(index, plan, same, lambda: np.vstack([old, same]))
    assert kept is index and kept_plan == plan
    rng = np.random.default_rng(9)
    elsewhere = _unit(rng, 200, 16)  # far from every trained centroid
    everything = np.vstack([old, same, elsewhere])
    rebuilt, fresh = update_index(kept, kept_plan, elsewhere, lambda: everything)
    assert rebuilt is not kept and fresh.kind == "ivf" and "retrained" in fresh.reason
    assert len(rebuilt) == len(everything)


def test_store_search_over_an_ivf_file_and_its_exact_tail_meets_the_recall_floor(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Issue 18: adds after the IVF build are searched exactly beside it; recall@10 against brute force stays >= 0.95."""
    import dedup.search.index as index_module
    import dedup.search.store as store_module
    from dedup.search.index import exact_neighbours, recall_at_k
    from dedup.search.store import Store

    monkeypatch.setattr(index_module, "FLAT_MAX", 400)
    monkeypatch.setattr(store_module, "TAIL_MAX", 150)
    vectors = _clustered(11, 1000, d=16)
    store = Store.create(tmp_path / "s", "m", 16, index="ivf")  # auto may take a graph here (its own test)
    store.add([_embedded(f"a{i}", vectors[i]) for i in range(500)])
    for start in range(500, 950, 50):  # 450 more in 9 adds: one fold at 650, 800, 950; the rest in the tail
        store.add([_embedded(f"a{i}", vectors[i]) for i in range(start, start + 50)])
    assert store.index_kind == "ivf"
    queries = vectors[950:]
    truth = exact_neighbours(vectors[:950], queries, 10)
    for reader in (store, Store.open(tmp_path / "s")):
        found = reader.search(queries, 10)
        assert recall_at_k(found, truth) >= 0.95
        assert [reader.ids[int(p)] for p in reader.search(vectors[:950:37], 1).positions[:, 0]] == [
            f"a{i}" for i in range(0, 950, 37)
        ]


def test_a_store_judges_drift_on_its_whole_tail_not_on_each_small_add(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Issue 18: 10-article adds far from the centroids by chance retrained a 1M shard's IVF (18 s) every few adds."""
    import dedup.search.index as index_module
    import dedup.search.store as store_module
    from dedup.search.store import Store

    monkeypatch.setattr(index_module, "FLAT_MAX", 400)
    monkeypatch.setattr(store_module, "TAIL_MAX", 300)
    store = Store.create(tmp_path / "s", "m", 16, index="ivf")  # drift is an inverted file's
    store.add([_embedded(f"a{i}", v) for i, v in enumerate(_clustered(5, 1000, d=16))])
    trained = store.index_plan
    assert trained.kind == "ivf"
    elsewhere = _unit(np.random.default_rng(6), 305, 16)  # far from every trained centroid
    for start in range(0, 290, 10):  # small adds into the exact tail: no retraining, however far they lie
        store.add([_embedded(f"e{start + i}", v) for i, v in enumerate(elsewhere[start : start + 10])])
        assert store.index_plan == trained
    store.add([_embedded(f"e{290 + i}", v) for i, v in enumerate(elsewhere[290:])])  # the tail folds: judged whole
    assert store.index_plan.calibrated_n == 1305  # retrained on everything, the drifted tail in it
    assert len(store) == 1305 and Store.open(tmp_path / "s").search(elsewhere[:5], 1).positions[:, 0].tolist() == [
        1000 + i for i in range(5)
    ]


def test_limit_threads_sets_faiss_threads_from_the_argument_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import faiss
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    before = faiss.omp_get_max_threads()
    blas = threadpool_limits(limits=None)  # restores BLAS's threads at the end
    try:
        monkeypatch.delenv(FAISS_THREADS_ENV, raising=False)
        assert limit_threads() == 1 and faiss.omp_get_max_threads() == 1
        assert blas_threads() == {1}  # numpy's BLAS too (the verifier's products)
        monkeypatch.setenv(FAISS_THREADS_ENV, "2")
        assert limit_threads() == 2 and faiss.omp_get_max_threads() == 2 and blas_threads() == {2}
        assert limit_threads(1) == 1 and faiss.omp_get_max_threads() == 1
        for bad in ("0", "-3", "many", ""):
            monkeypatch.setenv(FAISS_THREADS_ENV, bad)
            with pytest.raises(ConfigError, match=FAISS_THREADS_ENV):
                limit_threads()
    finally:
        faiss.omp_set_num_threads(before)
        blas.restore_original_limits()
