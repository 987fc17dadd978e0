"""The search half of the benchmark: every vector index against exact search, and check latency.

Each index (numpy brute force, FAISS flat, IVF, HNSW) is measured at every size: build
time, bytes per vector, p50/p99 single-query latency, batched queries per second,
recall@1/@10 and range-search recall against exact search. Check latency is split into
retrieval (the index ``auto`` picks at that size) and verification.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dedup.config import Config
from dedup.evaluation.bench_data import BenchOptions
from dedup.search.index import IndexPlan, SearchResult, VectorIndex, build_index, exact_neighbours, plan_index, recall_at_k
from dedup.types import EmbeddedArticle

__all__ = ["RANGE_K", "check_latency", "percentiles", "search_benchmark"]

logger = logging.getLogger(__name__)

Vectors = NDArray[np.float32]
Search = Callable[[Vectors, int], SearchResult]
RANGE_K = 100
"""Range search is capped at this many results, for exact search too (as retrieval is)."""


def percentiles(seconds: Sequence[float]) -> tuple[float, float]:
    """The 50th and 99th percentiles of ``seconds``, in milliseconds."""
    ms = np.asarray(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


class _NumpyIndex:
    """Brute force in numpy: the baseline every index is compared with."""

    kind = "numpy"

    def __init__(self, vectors: Vectors) -> None:
        self.vectors = vectors

    def search(self, queries: Vectors, k: int) -> SearchResult:
        if len(queries) > 64:  # bounded memory: 64 x n similarities at a time
            parts = [self.search(queries[i : i + 64], k) for i in range(0, len(queries), 64)]
            return SearchResult(
                np.vstack([p.positions for p in parts]),
                np.vstack([p.similarities for p in parts]),
                np.concatenate([p.truncated for p in parts]),
            )
        sims = queries @ self.vectors.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_sims, axis=1)
        positions = np.take_along_axis(top, order, axis=1).astype(np.int64)
        return SearchResult(
            positions, np.take_along_axis(top_sims, order, axis=1).astype(np.float32), np.zeros(len(queries), bool)
        )


def _search_row(
    name: str,
    search: Search,
    *,
    n: int,
    queries: Vectors,
    truth: SearchResult,
    single: int,
    build_s: float,
    bytes_per_vector: float,
    param: int,
    range_check: Callable[[Search], tuple[float, float]],
) -> dict[str, Any]:
    search(queries[:5], 10)  # warm up
    lat = []
    for q in queries[:single]:
        t0 = time.perf_counter()
        search(q[None, :], 10)
        lat.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    found = search(queries, 10)
    batch_s = time.perf_counter() - t0
    p50, p99 = percentiles(lat)
    range_recall, range_precision = range_check(search)
    return {
        "index": name,
        "n": n,
        "param": param,
        "build_s": round(build_s, 3),
        "bytes_per_vector": round(bytes_per_vector, 1),
        "p50_ms": round(p50, 4),
        "p99_ms": round(p99, 4),
        "qps": round(len(queries) / batch_s, 1),
        "recall_at_1": round(recall_at_k(found, truth, 1), 4),
        "recall_at_10": round(recall_at_k(found, truth, 10), 4),
        "range_recall": round(range_recall, 4),
        "range_precision": round(range_precision, 4),
    }


def search_benchmark(
    base: Vectors, queries: Vectors, options: BenchOptions, config: Config
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[int, dict[str, Any]]]:
    """One row per (index, size): build time, memory, latency, throughput, recall.

    Also returns, per size, the retrieval figures of the index ``auto`` picks there, with
    ``config.candidates`` neighbours per query as a check asks (reused by the check latency).
    """
    rows: list[dict[str, Any]] = []
    plans: dict[str, Any] = {}
    retrieval: dict[int, dict[str, Any]] = {}
    for n in options.sizes:
        vectors = base[:n]
        truth = exact_neighbours(vectors, queries, RANGE_K)
        # The duplicate threshold's range search: the cosine at which a query has ~10 neighbours.
        threshold = float(np.median(truth.similarities[:, 9]))
        exact_range = [set(p[s >= threshold].tolist()) for p, s in zip(truth.positions, truth.similarities, strict=True)]
        ties = [float(s[s >= threshold].min()) if (s >= threshold).any() else 2.0 for s in truth.similarities]
        flat = VectorIndex(vectors.shape[1])
        flat.add(vectors)

        def range_check(
            search: Search, threshold: float = threshold, ties: list[float] = ties, exact_range: list[set[int]] = exact_range
        ) -> tuple[float, float]:
            got = search(queries, RANGE_K)
            hits = returned = relevant = 0
            for row in range(len(queries)):
                kept = got.similarities[row] >= threshold
                positions = set(got.positions[row][kept].tolist())
                # Equal similarities at the cut are interchangeable (duplicate vectors).
                tie_hits = int((got.similarities[row][kept] >= ties[row] - 1e-6).sum())
                hits += min(len(exact_range[row]), max(len(positions & exact_range[row]), tie_hits))
                returned += len(positions)
                relevant += len(exact_range[row])
            return (hits / relevant if relevant else 1.0), (hits / returned if returned else 1.0)

        common: dict[str, Any] = {
            "n": n,
            "queries": queries,
            "truth": truth,
            "single": options.single,
            "range_check": range_check,
        }
        logger.info("n=%s: numpy brute force", f"{n:,}")
        rows.append(
            _search_row(
                "numpy", _NumpyIndex(vectors).search, build_s=0.0, bytes_per_vector=4 * vectors.shape[1], param=0, **common
            )
        )
        if plan_index(n)[0] == "flat":
            retrieval[n] = _retrieval(flat, IndexPlan("flat", "auto"), queries, truth, options, config)
        rows.append(_search_row("flat", flat.search, build_s=0.0, bytes_per_vector=len(flat.to_bytes()) / n, param=0, **common))
        del flat
        for kind in ("ivf", "hnsw"):
            logger.info("n=%s: building %s", f"{n:,}", kind)
            t0 = time.perf_counter()
            index, plan = build_index(vectors, kind)
            build_s = time.perf_counter() - t0
            plans[f"{kind}@{n}"] = plan.to_dict()
            if plan_index(n)[0] == kind:
                retrieval[n] = _retrieval(index, plan, queries, truth, options, config)
            size = len(index.to_bytes()) / n
            ladder = sorted({*_ladder(index), index.param}) if options.sweep else [index.param]
            for value in ladder:
                index.set_param(value)
                row = _search_row(kind, index.search, build_s=build_s, bytes_per_vector=size, param=value, **common)
                row["chosen"] = value == plan.param and plan.kind == kind
                rows.append(row)
            del index
    return rows, plans, retrieval


def _retrieval(
    index: VectorIndex, plan: IndexPlan, queries: Vectors, truth: SearchResult, options: BenchOptions, config: Config
) -> dict[str, Any]:
    lat = []
    for q in queries[: options.single]:
        t0 = time.perf_counter()
        index.search(q[None, :], config.candidates)
        lat.append(time.perf_counter() - t0)
    p50, p99 = percentiles(lat)
    recall = recall_at_k(index.search(queries, 10), truth, 10)
    return {"index": plan.kind, "param": plan.param, "p50": p50, "p99": p99, "recall": recall, "build_s": plan.seconds}


def _ladder(index: VectorIndex) -> list[int]:
    if index.kind == "hnsw":
        return [16, 32, 64, 128, 256, 512]
    return [p for p in (1, 2, 4, 8, 16, 32, 64, 128, 256) if p <= index.nlist]


def check_latency(
    base: Vectors,
    queries: Vectors,
    embedded: Sequence[EmbeddedArticle],
    options: BenchOptions,
    config: Config,
    measured: dict[int, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Check latency per store size: retrieval (the auto-chosen index) and verification, separately."""
    from dedup.verify import Verifier

    verifier = Verifier.default()
    rows = []
    # Verification does not depend on the store size: k candidates are verified per check.
    # It is timed on real embedded articles (full texts), each against k real others.
    ver = []
    for i, item in enumerate(embedded):
        others = [embedded[(i + j) % len(embedded)] for j in range(1, config.candidates + 1)]
        t0 = time.perf_counter()
        for other in others:
            verifier.decide(item, other, config)
        ver.append(time.perf_counter() - t0)
    v50, v99 = percentiles(ver)
    for n in options.sizes:
        got = (measured or {}).get(n)
        if got is None:
            index, plan = build_index(base[:n], "auto", floor=config.recall_floor)
            got = _retrieval(index, plan, queries, exact_neighbours(base[:n], queries, 10), options, config)
            del index
        rows.append(
            {
                "n": n,
                "index": got["index"],
                "param": got["param"],
                "retrieval_p50_ms": round(got["p50"], 3),
                "retrieval_p99_ms": round(got["p99"], 3),
                "retrieval_recall_at_10": round(got["recall"], 4),
                "verification_p50_ms": round(v50, 3),
                "verification_p99_ms": round(v99, 3),
                "candidates": config.candidates,
                "index_build_s": round(got["build_s"], 1),
            }
        )
    return rows
