"""The vector index behind one small interface: add unit vectors, search by cosine.

Vectors are L2-normalised, so cosine similarity is the inner product. This module is the
only place that knows how FAISS scores; callers always get cosine similarities back.

Three kinds of index, all over full-precision vectors (scores are exact, only the
neighbour *set* of the approximate kinds can miss):

* ``flat``: exact brute force (``IndexFlatIP``). The default below :data:`FLAT_MAX` vectors.
* ``hnsw``: a graph index (``IndexHNSWFlat``, M = :data:`HNSW_M`); ``efSearch`` is set by
  :func:`calibrate` to meet the recall floor on the index's own data.
* ``ivf``: the default from :data:`FLAT_MAX` vectors on; an inverted file (``IndexIVFFlat``)
  trained by k-means on the data; ``nprobe`` is
  calibrated the same way. It is retrained when the data drifts away from its centroids.
  Where it must scan a quarter of its lists or more to meet the floor (data whose clusters
  the lists do not follow), ``auto`` also builds ``hnsw`` and keeps the one that computes
  fewer distances per query (:func:`_cheaper_graph`).

:func:`plan_index` decides which kind a store of a given size should use and says why.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dedup.config import INDEX_KINDS
from dedup.errors import ConfigError, StoreCorruptError
from dedup.search.plan import IndexKind, IndexPlan

__all__ = [
    "FLAT_MAX",
    "HNSW_M",
    "INDEX_KINDS",
    "IndexPlan",
    "SearchResult",
    "VectorIndex",
    "build_index",
    "calibrate",
    "exact_neighbours",
    "limit_threads",
    "merge_results",
    "needs_rebuild",
    "plan_index",
    "plan_reason",
    "recall_at_k",
    "update_index",
]


FLAT_MAX = 20_000
"""Below this many vectors ``auto`` keeps exact search: one query then costs about 2 ms here
(``python -m benchmarks.hotpath``), and an approximate index would save little for its build."""

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
RECALIBRATE_GROWTH = 2.0
"""An approximate index is rebuilt and re-measured when the store has grown this much."""
IVF_DRIFT = 0.05
"""IVF retrains when new vectors sit this much further (mean cosine) from their centroid than at training."""
DRIFT_SAMPLE = 200
"""Fewer new vectors say nothing of drift (10-article adds retrained a 1M shard's IVF every few adds)."""
GRAPH_TRIAL_SCAN = 0.25
"""``auto`` tries HNSW beside an IVF index whose calibrated ``nprobe`` scans this share of its lists or more."""
GRAPH_DISTANCE_COST = 3.0
"""HNSW is kept when its distances per query, times this, are fewer than IVF's: a graph's distance costs about
twice an inverted list's (random access; 85k clustered vectors of the ingest bench, one thread), plus a margin."""
CALIBRATION_QUERIES = 500
CALIBRATION_MARGIN = 0.003
"""The measured recall must exceed the floor by this much, to absorb the sampling error of the estimate."""

FAISS_THREADS_ENV = "DEDUP_FAISS_THREADS"
"""Environment variable: FAISS's OpenMP threads in ``dedup serve`` and ``dedup stream`` (default 1)."""

_NPROBE_LADDER = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_EF_LADDER = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)


@dataclass(frozen=True)
class SearchResult:
    """Neighbours of each query: positions in insertion order and cosine similarities.

    Attributes:
        positions: ``(n_queries, k)`` int64, -1 where fewer than k vectors exist.
        similarities: ``(n_queries, k)`` float32 cosine, -inf where position is -1.
        truncated: Per query, True when the k-th neighbour was returned, so more
            neighbours may exist beyond k.

    """

    positions: NDArray[np.int64]
    similarities: NDArray[np.float32]
    truncated: NDArray[np.bool_]


def limit_threads(threads: int | None = None) -> int:
    """Set FAISS's OpenMP threads and numpy's BLAS threads to ``threads``, else ``$DEDUP_FAISS_THREADS``, else 1.

    A service answers one query per request: spreading such a small search, or the small
    passage products of its verification, over every core gains little and makes latency
    jitter with the cores' other work (and with the other requests' threads), so ``serve``
    and ``stream`` search and verify on one thread per request. Returns the count set.

    Raises:
        ConfigError: When the count (given or from the environment) is not a positive integer.

    """
    import os

    import faiss

    text = str(threads) if threads is not None else os.environ.get(FAISS_THREADS_ENV, "1")
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise ConfigError(f"{FAISS_THREADS_ENV} must be a positive integer, got {text!r}")
    faiss.omp_set_num_threads(count)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=count, user_api="blas")  # numpy's OpenBLAS: the verifier's passage products
    return count


def check_kind(requested: str) -> str:
    """Validate an index choice (``auto``, ``flat``, ``hnsw``, ``ivf``)."""
    value = requested.lower()
    if value not in INDEX_KINDS:
        raise ConfigError(f"index must be one of {list(INDEX_KINDS)}, got {requested!r}")
    return value


def ivf_lists(n: int) -> int:
    """IVF lists for ``n`` vectors: about 4 sqrt(n), a power of two, at least 64 vectors per list."""
    target = 4 * math.sqrt(max(n, 1))
    nlist = int(2 ** max(4, round(math.log2(target))))
    while nlist > 16 and n < 64 * nlist:
        nlist //= 2
    return nlist


def plan_index(n: int, requested: str = "auto", current: IndexPlan | None = None) -> tuple[IndexKind, bool]:
    """Which kind ``n`` vectors should use, and whether the current index must be rebuilt.

    ``auto`` is exact (flat) below :data:`FLAT_MAX` vectors and IVF from there on: on the
    benchmark's 1M news vectors (``python -m benchmarks.hotpath``) IVF met recall@10 0.99 at
    nprobe 8 (0.9 ms a query), while HNSW (M=32) reached no efSearch up to 2048 that met it.
    Growth and drift are checked by :func:`update_index`.

    Examples:
        >>> plan_index(1_000)
        ('flat', True)
        >>> plan_index(50_000)
        ('ivf', True)
        >>> plan_index(50_000, "flat")
        ('flat', True)

    """
    requested = check_kind(requested)
    auto: IndexKind = "flat" if n < FLAT_MAX else "hnsw" if current is not None and current.kind == "hnsw" else "ivf"
    kind: IndexKind = auto if requested == "auto" else requested  # type: ignore[assignment]  # validated
    if kind != "flat" and n < 2:
        kind = "flat"
    if current is None or current.kind != kind:
        return kind, True
    return kind, False


def plan_reason(requested: str, kind: IndexKind, n: int) -> str:
    """Why ``kind`` serves ``n`` vectors when ``requested`` was asked for (for ``dedup info``)."""
    if check_kind(requested) != "auto":
        return f"chosen by the user ({requested})"
    if kind == "flat":
        return f"auto: fewer than {FLAT_MAX:,} vectors, exact search is fast enough"
    return f"auto: {n:,} vectors >= {FLAT_MAX:,}, an inverted file answers in a fraction of brute force time"


class VectorIndex:
    """Inner-product search over unit vectors, exact (flat) or approximate (hnsw, ivf).

    Args:
        dim: Vector dimension.
        kind: ``"flat"``, ``"hnsw"`` or ``"ivf"`` (an IVF index must be trained: use
            :func:`build_index`).
        nlist: IVF lists.

    """

    def __init__(self, dim: int, kind: IndexKind = "flat", *, nlist: int = 0) -> None:
        import faiss

        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self._dim = dim
        self._kind: IndexKind = kind
        self._param = 0
        if kind == "flat":
            self._index: Any = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            self._index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            self._index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            self.set_param(64)
        elif kind == "ivf":
            if nlist < 1:
                raise ValueError("an IVF index needs nlist >= 1")
            self._index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            self.set_param(min(8, nlist))
        else:
            raise ValueError(f"unknown index kind {kind!r}")

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._dim

    @property
    def kind(self) -> IndexKind:
        """``"flat"``, ``"hnsw"`` or ``"ivf"``."""
        return self._kind

    @property
    def param(self) -> int:
        """The search parameter in use: efSearch (hnsw), nprobe (ivf), 0 (flat)."""
        return self._param

    @property
    def nlist(self) -> int:
        """IVF lists (0 for other kinds)."""
        return int(self._index.nlist) if self._kind == "ivf" else 0

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def set_param(self, value: int) -> None:
        """Set efSearch (hnsw) or nprobe (ivf); ignored for flat."""
        if self._kind == "hnsw":
            self._index.hnsw.efSearch = int(value)
            self._param = int(value)
        elif self._kind == "ivf":
            self._param = max(1, min(int(value), self.nlist))
            self._index.nprobe = self._param

    def train(self, vectors: NDArray[np.float32], *, seed: int = 0) -> float:
        """Train an IVF index on (a sample of) ``vectors``; returns the mean centroid cosine."""
        if self._kind != "ivf":
            return 0.0
        vectors = self._check(vectors)
        sample = _sample(vectors, 64 * self.nlist, seed)
        self._index.cp.seed = seed
        self._index.train(sample)
        return self.centroid_similarity(sample)

    def centroid_similarity(self, vectors: NDArray[np.float32]) -> float:
        """IVF: mean cosine of ``vectors`` to their nearest centroid (0.0 for other kinds)."""
        if self._kind != "ivf" or not len(vectors):
            return 0.0
        sims, _ = self._index.quantizer.search(self._check(vectors), 1)
        return float(np.mean(sims))

    def add(self, vectors: NDArray[np.float32]) -> None:
        """Append vectors; their positions continue from ``len(self)``."""
        vectors = self._check(vectors)
        if len(vectors):
            self._index.add(vectors)

    def search(self, queries: NDArray[np.float32], k: int) -> SearchResult:
        """The ``k`` most similar stored vectors of each query, best first."""
        queries = self._check(queries)
        n = len(queries)
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        kk = min(k, len(self))
        if kk == 0:
            return SearchResult(np.full((n, 0), -1, dtype=np.int64), np.zeros((n, 0), dtype=np.float32), np.zeros(n, dtype=bool))
        sims, pos = self._index.search(queries, kk)
        sims = np.where(pos < 0, -np.inf, sims).astype(np.float32)
        truncated = np.full(n, len(self) > kk, dtype=bool)
        return SearchResult(pos.astype(np.int64), sims, truncated)

    def copy(self) -> VectorIndex:
        """An independent copy (a failed commit must leave the live index untouched)."""
        return VectorIndex.from_bytes(self.to_bytes(), self._dim, param=self._param)

    def to_bytes(self) -> bytes:
        """Serialise the index."""
        import faiss

        return bytes(faiss.serialize_index(self._index).tobytes())

    @classmethod
    def from_bytes(cls, data: bytes, dim: int, *, param: int = 0) -> VectorIndex:
        """Load a serialised index, checking its dimension; ``param`` restores efSearch/nprobe.

        Raises:
            StoreCorruptError: When the bytes are not a FAISS index of that dimension.

        """
        import faiss

        try:
            index: Any = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            raise StoreCorruptError(f"the vector index cannot be read: {exc}") from None
        return cls._wrap(index, dim, param)

    @classmethod
    def from_file(cls, fd: int, dim: int, *, param: int = 0) -> VectorIndex:
        """Load the index file open as ``fd`` (as :meth:`from_bytes`).

        FAISS reads it itself through ``/proc/self/fd`` where that exists (the same open
        file, without the copies of :meth:`from_bytes`: a 1M shard's index is 130 MB),
        else its bytes are read and passed to :meth:`from_bytes`.
        """
        import faiss

        proc = Path(f"/proc/self/fd/{fd}")
        if not proc.exists():
            return cls.from_bytes(os.pread(fd, os.fstat(fd).st_size, 0), dim, param=param)
        try:
            index: Any = faiss.read_index(str(proc))
        except RuntimeError as exc:
            raise StoreCorruptError(f"the vector index cannot be read: {exc}") from None
        return cls._wrap(index, dim, param)

    @classmethod
    def _wrap(cls, index: Any, dim: int, param: int) -> VectorIndex:  # noqa: ANN401  # a FAISS index (untyped)
        import faiss

        if index.d != dim:
            raise StoreCorruptError(f"the vector index has dimension {index.d}, expected {dim}")
        out = cls(dim)
        if isinstance(index, faiss.IndexHNSWFlat):
            out._kind = "hnsw"
        elif isinstance(index, faiss.IndexIVFFlat):
            out._kind = "ivf"
        elif not isinstance(index, faiss.IndexFlatIP):
            raise StoreCorruptError(f"unexpected vector index type {type(index).__name__}")
        out._index = index
        if param:
            out.set_param(param)
        elif out._kind == "hnsw":
            out._param = int(index.hnsw.efSearch)
        elif out._kind == "ivf":
            out._param = int(index.nprobe)
        return out

    def _check(self, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        arr = np.ascontiguousarray(vectors, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self._dim:
            raise ValueError(f"expected vectors of dimension {self._dim}, got shape {arr.shape}")
        return arr


def _sample(vectors: NDArray[np.float32], size: int, seed: int) -> NDArray[np.float32]:
    if len(vectors) <= size:
        return vectors
    rows = np.random.default_rng(seed).choice(len(vectors), size, replace=False)
    return np.ascontiguousarray(vectors[np.sort(rows)])


def exact_neighbours(vectors: NDArray[np.float32], queries: NDArray[np.float32], k: int) -> SearchResult:
    """Exact top-``k`` neighbours (brute force), the ground truth for recall."""
    index = VectorIndex(vectors.shape[1])
    index.add(vectors)
    return index.search(queries, k)


def recall_at_k(found: SearchResult, truth: SearchResult, k: int | None = None) -> float:
    """Mean share of the true top-``k`` neighbours that were found, ties counted as found.

    A found neighbour counts when its similarity reaches the k-th true similarity (less
    1e-6): with duplicate vectors in the data, which of several equal neighbours comes
    back is arbitrary, and exact search itself would otherwise score below 1.

    Examples:
        >>> import numpy as np
        >>> def result(sims):
        ...     s = np.array(sims, dtype=np.float32)
        ...     return SearchResult(np.zeros(s.shape, np.int64), s, np.zeros(len(s), bool))
        >>> recall_at_k(result([[0.9, 0.5]]), result([[0.9, 0.8]]))
        0.5
        >>> recall_at_k(result([[0.9, 0.8]]), result([[0.9, 0.8]]), k=1)
        1.0

    """
    k = k or truth.similarities.shape[1]
    if k == 0 or not len(truth.similarities):
        return 1.0
    kth = truth.similarities[:, k - 1 : k] - 1e-6
    got = found.similarities[:, :k]
    hits = np.minimum((got >= kth).sum(axis=1), k)
    return float(hits.mean() / k)


def calibrate(
    index: VectorIndex,
    indexed: NDArray[np.float32],
    queries: NDArray[np.float32],
    *,
    floor: float = 0.99,
    k: int = 10,
    ladder: tuple[int, ...] | None = None,
) -> tuple[int, float] | None:
    """The smallest search parameter whose recall@k against exact search meets ``floor``.

    ``indexed`` are the vectors in ``index``; ``queries`` must NOT be in it (a stored vector
    finds its own neighbourhood far too easily, which overstates recall). The index is
    left set to the chosen value. ``ladder``: the values tried, in order (default: every
    value for the kind).

    Returns:
        ``(param, measured recall)``, or None when no setting reaches the floor.

    """
    if index.kind == "flat" or not len(queries):
        return 0, 1.0
    truth = exact_neighbours(indexed, queries, k)
    if ladder is None:
        ladder = _EF_LADDER if index.kind == "hnsw" else (*(p for p in _NPROBE_LADDER if p < index.nlist), index.nlist)
    target = min(1.0, floor + CALIBRATION_MARGIN)
    for value in ladder:
        index.set_param(value)
        recall = recall_at_k(index.search(queries, k), truth)
        if recall >= target:
            return value, recall
    return None


def build_index(
    vectors: NDArray[np.float32], requested: str = "auto", *, floor: float = 0.99, seed: int = 0
) -> tuple[VectorIndex, IndexPlan]:
    """Build the index ``requested`` (or the one :func:`plan_index` picks) over ``vectors``.

    Approximate indexes are calibrated to ``floor``; one that cannot reach it falls back to
    exact search, and the plan says so.
    """
    started = time.perf_counter()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    kind, _ = plan_index(n, requested)
    why = plan_reason(requested, kind, n)
    if kind == "flat":
        index = VectorIndex(dim)
        index.add(vectors)
        return index, IndexPlan("flat", why, check_kind(requested), calibrated_n=n, seconds=time.perf_counter() - started)
    index = VectorIndex(dim, kind, nlist=ivf_lists(n) if kind == "ivf" else 0)
    # The newest vectors are the calibration queries: measured before they join the index,
    # they stand for new articles checked against the archive. Insertion order is kept.
    held = min(CALIBRATION_QUERIES, n // 10)
    centroid = index.train(vectors[: n - held] if held else vectors, seed=seed)
    if held and kind == "ivf":  # the drift reference, measured on vectors k-means did not see
        centroid = index.centroid_similarity(vectors[n - held :])
    index.add(vectors[: n - held])
    found = calibrate(index, vectors[: n - held], vectors[n - held :], floor=floor)
    index.add(vectors[n - held :])
    if found is None:
        index = VectorIndex(dim)
        index.add(vectors)
        reason = f"{why}; but no {kind} setting reached recall@10 {floor} on this data, so exact search is used"
        return index, IndexPlan("flat", reason, check_kind(requested), calibrated_n=n, seconds=time.perf_counter() - started)
    param, recall = found
    if held and kind == "ivf" and check_kind(requested) == "auto" and param >= GRAPH_TRIAL_SCAN * index.nlist:
        graph = _cheaper_graph(index, vectors, held, floor)
        if graph is not None:
            index, (param, recall), why = graph
            kind, centroid = "hnsw", 0.0
    plan = IndexPlan(
        kind,
        f"{why}; search parameter set to meet recall@10 >= {floor}",
        check_kind(requested),
        param=param,
        nlist=index.nlist,
        recall=recall,
        calibrated_n=n,
        centroid_similarity=centroid,
        seconds=time.perf_counter() - started,
    )
    return index, plan


def _cheaper_graph(
    ivf: VectorIndex, vectors: NDArray[np.float32], held: int, floor: float
) -> tuple[VectorIndex, tuple[int, float], str] | None:
    """An HNSW index over ``vectors`` calibrated as ``ivf`` was, if it computes fewer distances per query; else None.

    FAISS counts the distances each search computes: a count does not depend on the
    machine's load, so the choice is the same on every run over the same data.
    """
    import faiss

    n = len(vectors)
    queries = vectors[n - held :]
    graph = VectorIndex(vectors.shape[1], "hnsw")
    graph.add(vectors[: n - held])
    found = calibrate(graph, vectors[: n - held], queries, floor=floor, ladder=_EF_LADDER[: _EF_LADDER.index(512) + 1])
    if found is None:
        return None
    stats: Any = faiss.cvar  # FAISS's global search counters (untyped)
    stats.indexIVF_stats.reset()
    ivf.search(queries, 10)
    scanned = stats.indexIVF_stats.ndis / held + ivf.nlist  # the lists' vectors and the centroids
    stats.hnsw_stats.reset()
    graph.search(queries, 10)
    walked = stats.hnsw_stats.ndis / held
    if GRAPH_DISTANCE_COST * walked >= scanned:
        return None
    graph.add(queries)
    why = (
        f"auto: {n:,} vectors >= {FLAT_MAX:,}; an inverted file had to scan {ivf.param} of its {ivf.nlist} lists, "
        f"a graph (HNSW) computes {walked:,.0f} distances per query where it computed {scanned:,.0f}"
    )
    return graph, found, why


def update_index(
    index: VectorIndex,
    plan: IndexPlan,
    new: NDArray[np.float32],
    all_vectors: Callable[[], NDArray[np.float32]],
    *,
    floor: float = 0.99,
) -> tuple[VectorIndex, IndexPlan]:
    """Add ``new`` to ``index``, rebuilding (and re-measuring) when due.

    ``all_vectors`` returns every vector, ``new`` included; it is called only to rebuild.
    Rebuilds when the plan's kind changes with size (``auto`` crossing :data:`FLAT_MAX`),
    when an IVF index has drifted away from its centroids, or when an approximate index
    has grown :data:`RECALIBRATE_GROWTH` times since its search parameter was measured
    (an IVF index then also gets more lists). ``index`` is modified in place unless a new
    one is built; pass a copy for atomic commits.
    """
    if needs_rebuild(index, plan, new, len(index) + len(new)):
        built, fresh = build_index(all_vectors(), plan.requested, floor=floor)
        if fresh.kind == "ivf" and plan.kind == "ivf":
            fresh = replace(fresh, reason=f"{fresh.reason} (retrained: the data drifted or grew)")
        return built, fresh
    index.add(new)
    return index, plan


def needs_rebuild(index: VectorIndex, plan: IndexPlan, new: NDArray[np.float32], n: int) -> bool:
    """Whether adding ``new`` (making ``n`` vectors in all) calls for a rebuild (see :func:`update_index`).

    ``index`` (its centroids measure drift on :data:`DRIFT_SAMPLE` or more new vectors) may hold fewer than ``n - len(new)``.
    """
    kind, rebuild = plan_index(n, plan.requested, plan)
    if not rebuild and kind == "ivf" and len(new) >= DRIFT_SAMPLE:
        rebuild = plan.centroid_similarity - index.centroid_similarity(new) > IVF_DRIFT  # far from the centroids
    if not rebuild and kind != "flat" and n >= RECALIBRATE_GROWTH * max(plan.calibrated_n, 1):
        rebuild = True  # re-measured from scratch: amortised, like a growing array
    return rebuild


def merge_results(first: SearchResult, second: SearchResult, offset: int, k: int, total: int) -> SearchResult:
    """The best ``k`` of two searches over disjoint vectors, ``second``'s positions shifted by ``offset``.

    ``total`` is the number of vectors both searched together; ``truncated`` is set when
    more than ``k`` exist.
    """
    shifted = np.where(second.positions >= 0, second.positions + offset, -1)
    positions = np.hstack([first.positions, shifted])
    sims = np.hstack([first.similarities, second.similarities])
    width = min(k, total)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :width]
    n = len(positions)
    return SearchResult(
        np.take_along_axis(positions, order, axis=1),
        np.take_along_axis(sims, order, axis=1),
        np.full(n, total > width, dtype=bool),
    )
