"""Benchmarks of the hot path: similarity search, check latency, batch clustering, embedding.

Run by ``dedup bench`` (quick: under 5 minutes on 2 cores) and ``python -m benchmarks.hotpath``
(full: adds 1M vectors). Every figure of one run is measured on the same machine in the same
process, so ratios between rows are meaningful even when absolute times are noisy.

Where the vectors come from:
    Real article vectors first: the titles in ``og2021_dev.jsonl`` and ``ntrex_dev.jsonl``
    (a development-data folder, default ``../shared/data``) and the demo corpus, embedded
    with the default model (cached, so re-runs do not embed again). Larger sets are grown
    from them: each synthetic vector is a real one plus Gaussian noise shaped like the
    real data (its principal components), scaled so that a synthetic vector sits from its
    parent about as far as real nearest neighbours sit from each other. Clusters, density
    and anisotropy are therefore those of real news vectors, not of uniform noise.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dedup.config import Config
from dedup.embedding.embed import Encoder, embed_articles, load_encoder
from dedup.errors import ModelError
from dedup.evaluation.machine import machine_info
from dedup.io import read_articles
from dedup.search.index import IndexPlan, SearchResult, VectorIndex, build_index, exact_neighbours, plan_index, recall_at_k
from dedup.types import Article, EmbeddedArticle, PartialDate

__all__ = ["BenchOptions", "grow", "real_vectors", "run"]

logger = logging.getLogger(__name__)

Vectors = NDArray[np.float32]
Search = Callable[[Vectors, int], SearchResult]
RANGE_K = 100
"""Range search is capped at this many results, for exact search too (as retrieval is)."""


@dataclass(frozen=True)
class BenchOptions:
    """What a benchmark run covers.

    Attributes:
        sizes: Index sizes (vectors).
        queries: Queries per configuration (held out: never in the index).
        single: Of those, how many are timed one at a time (p50/p99).
        cluster_sizes: Feed sizes for the batch clustering growth curve.
        embed_articles: Articles for the embedding throughput comparison.
        data_dir: Development data folder (og2021_dev.jsonl, ntrex_dev.jsonl).
        demo_dir: The demo corpus (seed articles).
        sweep: Also measure every rung of the search-parameter ladders (for the plot).

    """

    sizes: tuple[int, ...] = (10_000, 100_000)
    queries: int = 1_000
    single: int = 200
    cluster_sizes: tuple[int, ...] = (2_000, 5_000, 10_000)
    embed_articles: int = 24
    data_dir: Path = Path("../shared/data")
    demo_dir: Path = Path("data")
    sweep: bool = False

    @classmethod
    def quick(cls, data_dir: Path, demo_dir: Path) -> BenchOptions:
        """The ``dedup bench`` run: 10k and 100k vectors, a small clustering curve."""
        return cls(data_dir=data_dir, demo_dir=demo_dir)

    @classmethod
    def full(cls, data_dir: Path, demo_dir: Path) -> BenchOptions:
        """The documented full run: up to 1M vectors and a 100k-article feed."""
        return cls(
            sizes=(10_000, 100_000, 1_000_000),
            queries=1_000,
            single=200,
            cluster_sizes=(12_500, 25_000, 50_000, 100_000),
            embed_articles=48,
            data_dir=data_dir,
            demo_dir=demo_dir,
            sweep=True,
        )


# ------------------------------------------------------------------------------ data
def _titles(path: Path) -> list[Article]:
    if not path.is_file():
        return []
    return [a for a in read_articles([path], skip_invalid=True).articles]


def _bench_articles(options: BenchOptions) -> tuple[list[Article], str]:
    found: list[Article] = []
    sources = []
    for name in ("og2021_dev.jsonl", "ntrex_dev.jsonl"):
        articles = _titles(options.data_dir / name)
        if articles:
            sources.append(f"{options.data_dir / name} ({len(articles)} titles)")
            found += [Article(id=a.id, title=a.title, text="", date=a.date, lang=a.lang) for a in articles]
    demo = read_articles([options.demo_dir], skip_invalid=True).articles if options.demo_dir.exists() else []
    if demo:
        sources.append(f"{options.demo_dir} ({len(demo)} articles)")
        found += list(demo)
    return found, "; ".join(sources) or "none"


def real_vectors(options: BenchOptions, encoder: Encoder) -> tuple[Vectors, str]:
    """Article vectors of the development data and demo corpus (embedded once, cached)."""
    from dedup.embedding.cache import EmbeddingCache

    articles, source = _bench_articles(options)
    if not articles:
        raise FileNotFoundError(f"no articles found in {options.data_dir} or {options.demo_dir}")
    cache = EmbeddingCache.for_model(encoder.name, encoder.dim)
    embedded = embed_articles(articles, encoder, show_progress=True, cache=cache)
    return np.vstack([e.vector for e in embedded]).astype(np.float32), source


def grow(real: Vectors, n: int, *, seed: int = 0) -> Vectors:
    """``n`` vectors: the real ones, then synthetic ones drawn near random real ones.

    Noise follows the real data's principal components; its scale is set so that the
    median cosine of a synthetic vector to its parent equals the median cosine of a real
    vector to its nearest real neighbour.
    """
    rng = np.random.default_rng(seed)
    real = np.ascontiguousarray(real, dtype=np.float32)
    if n <= len(real):
        return real[:n].copy()
    centred = real - real.mean(axis=0)
    _, singular, components = np.linalg.svd(centred[: min(len(real), 5000)], full_matrices=False)
    std = singular / np.sqrt(max(min(len(real), 5000) - 1, 1))
    nn = exact_neighbours(real, real[: min(len(real), 1000)], 2)
    second = nn.similarities[:, 1]
    nn_cos = float(np.median(second[second < 0.9999])) if (second < 0.9999).any() else 0.9
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    out[: len(real)] = real

    def sample(scale: float, rows: int) -> Vectors:
        parents = real[rng.integers(0, len(real), rows)]
        noise = (rng.standard_normal((rows, len(std))).astype(np.float32) * std) @ components
        x: Vectors = (parents + scale * noise).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x

    lo, hi = 0.0, 10.0
    for _ in range(25):  # bisect the noise scale on the median parent cosine
        mid = (lo + hi) / 2
        probe = np.random.default_rng(seed + 1)
        parents_idx = probe.integers(0, len(real), 2000)
        noise = (probe.standard_normal((2000, len(std))).astype(np.float32) * std) @ components
        x = real[parents_idx] + mid * noise
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        cos = float(np.median(np.einsum("ij,ij->i", x, real[parents_idx])))
        lo, hi = (mid, hi) if cos > nn_cos else (lo, mid)
    scale = (lo + hi) / 2
    for start in range(len(real), n, 100_000):
        rows = min(100_000, n - start)
        out[start : start + rows] = sample(scale, rows)
    return out


# --------------------------------------------------------------------------- timing
def _percentiles(seconds: Sequence[float]) -> tuple[float, float]:
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
    p50, p99 = _percentiles(lat)
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
    p50, p99 = _percentiles(lat)
    recall = recall_at_k(index.search(queries, 10), truth, 10)
    return {"index": plan.kind, "param": plan.param, "p50": p50, "p99": p99, "recall": recall, "build_s": plan.seconds}


def _ladder(index: VectorIndex) -> list[int]:
    if index.kind == "hnsw":
        return [16, 32, 64, 128, 256, 512]
    return [p for p in (1, 2, 4, 8, 16, 32, 64, 128, 256) if p <= index.nlist]


# ---------------------------------------------------------------------------- check
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
    v50, v99 = _percentiles(ver)
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


# -------------------------------------------------------------------------- cluster
class _NoEncoder:
    """Stands in for the model when clustering articles whose vectors are given."""

    def __init__(self, dim: int) -> None:
        self._dim = dim

    @property
    def name(self) -> str:
        return "bench/given-vectors"

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str], *, batch_size: int = 32, show_progress: bool = False) -> Vectors:
        raise RuntimeError("the clustering benchmark gives every vector; nothing should be embedded")


def _feed(base: Vectors, titles: Sequence[str], n: int) -> list[EmbeddedArticle]:
    days = 30
    out = []
    for i in range(n):
        title = titles[i % len(titles)]
        day = PartialDate.parse(f"2021-07-{1 + (i * 7919) % days:02d}")
        article = Article(id=f"feed-{i}", title=title, text="", date=day, lang="en")
        vector = base[i]
        out.append(EmbeddedArticle(article, (title,), vector[None, :], vector))
    return out


def cluster_growth(base: Vectors, titles: Sequence[str], options: BenchOptions, config: Config) -> list[dict[str, Any]]:
    """Time and peak memory of clustering feeds of growing size, vectors given."""
    from dedup.detect.detector import Detector
    from dedup.search.store import Store

    rows = []
    for n in options.cluster_sizes:
        feed = _feed(base, titles, n)
        detector = Detector(Store.in_memory("bench/given-vectors", base.shape[1]), _NoEncoder(base.shape[1]), config)
        before = _reset_peak_rss()
        t0 = time.perf_counter()
        result = detector.cluster_embedded(feed)
        seconds = time.perf_counter() - t0
        peak = _peak_rss_mb()
        rows.append(
            {
                "n": n,
                "seconds": round(seconds, 2),
                "ms_per_article": round(1000 * seconds / n, 3),
                "stories": len(result.stories),
                "peak_rss_mb": round(peak, 1),
                "peak_rss_growth_mb": round(peak - before, 1),
            }
        )
        logger.info("clustered %s articles in %.1f s", f"{n:,}", seconds)
    return rows


def _status_mb(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> float:
    """Reset the kernel's peak-RSS mark (Linux) and return the current RSS in MB."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def _peak_rss_mb() -> float:
    return _status_mb("VmHWM")


# ---------------------------------------------------------------------------- embed
def embedding_throughput(articles: Sequence[Article], config: Config) -> dict[str, Any]:
    """Articles/s of our default path against plain sentence-transformers (torch), same run.

    Each encodes the same passages, a group of eight articles per call (as a feed arrives),
    with its own defaults: plain sentence-transformers sorts a call's texts by characters
    and runs batches of 32; the int8 default runs one passage per request, one request per
    core; OpenVINO (fp32, when the default is not already it) batches by tokens, 8 per
    request. The order rotates between groups, so all see the same machine load. Also
    reports how close each path's vectors are to plain sentence-transformers', and a
    re-run through the cache.
    """
    from dedup.embedding.cache import EmbeddingCache
    from dedup.embedding.embed import article_passages

    ours = load_encoder(config.model, backend=config.backend)
    plain = load_encoder(config.model, backend="torch")
    encoders: list[tuple[str, Encoder]] = [("plain", plain), ("ours", ours)]
    if type(ours).__name__ != "OpenVINOEncoder":
        try:
            encoders.append(("openvino", load_encoder(config.model, backend="openvino")))
        except ModelError as exc:  # e.g. a hub model: no fp32 fast path to show
            logger.info("no OpenVINO row: %s", exc)
    groups = [
        [p for a in articles[start : start + 8] for p in article_passages(a, config.max_passage_chars)]
        for start in range(0, len(articles), 8)
    ]
    texts = [p for group in groups for p in group]
    for _, encoder in encoders:
        encoder.encode(texts[:16])
    times: dict[str, list[float]] = {name: [] for name, _ in encoders}
    out: dict[str, list[Vectors]] = {name: [] for name, _ in encoders}
    for k, group in enumerate(groups):
        for name, encoder in encoders[k % len(encoders) :] + encoders[: k % len(encoders)]:
            t0 = time.perf_counter()
            out[name].append(encoder.encode(group))
            times[name].append(time.perf_counter() - t0)
    reference = np.vstack(out["plain"])
    tmp = EmbeddingCache(Path(os.environ.get("TMPDIR", "/tmp")) / f"dedup-bench-{os.getpid()}.sqlite", ours.name, ours.dim)
    try:
        embed_articles(articles, ours, cache=tmp)
        t0 = time.perf_counter()
        embed_articles(articles, ours, cache=tmp)
        cached_s = time.perf_counter() - t0
    finally:
        tmp.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{tmp.path}{suffix}").unlink(missing_ok=True)
    paths = []
    for name, encoder in encoders:
        cos = np.einsum("ij,ij->i", np.vstack(out[name]), reference)
        paths.append(
            {
                "path": name,
                "backend": type(encoder).__name__,
                "encoder": encoder.name,
                "articles_per_s": round(len(articles) / sum(times[name]), 2),
                "passages_per_s": round(len(texts) / sum(times[name]), 1),
                "speedup": round(sum(times["plain"]) / sum(times[name]), 2),
                "speedup_median_group": round(float(np.median(np.divide(times["plain"], times[name]))), 2),
                "cosine_to_plain_min": round(float(cos.min()), 6),
                "cosine_to_plain_mean": round(float(cos.mean()), 6),
            }
        )
    row = {p["path"]: p for p in paths}
    return {
        "articles": len(articles),
        "passages": len(texts),
        "groups": len(groups),
        "paths": paths,
        "ours_backend": row["ours"]["backend"],
        "plain_backend": row["plain"]["backend"],
        "ours_articles_per_s": row["ours"]["articles_per_s"],
        "plain_articles_per_s": row["plain"]["articles_per_s"],
        "speedup": row["ours"]["speedup"],
        "speedup_median_group": row["ours"]["speedup_median_group"],
        "cosine_min": row["ours"]["cosine_to_plain_min"],
        "cosine_mean": row["ours"]["cosine_to_plain_mean"],
        "cached_rerun_articles_per_s": round(len(articles) / max(cached_s, 1e-9), 1),
    }


def _throughput_articles(options: BenchOptions) -> list[Article]:
    ntrex = options.data_dir / "ntrex_dev.jsonl"
    if ntrex.is_file():
        articles = read_articles([ntrex], skip_invalid=True).articles
        step = max(1, len(articles) // options.embed_articles)
        return list(articles[::step][: options.embed_articles])
    return list(read_articles([options.demo_dir], skip_invalid=True).articles)


_PATH_NAMES = {"plain": "plain sentence-transformers", "ours": "dedup default", "openvino": "OpenVINO fp32"}

# ------------------------------------------------------------------------------ run
PARTS = ("embed", "search", "check", "cluster")


def run(
    options: BenchOptions,
    config: Config | None = None,
    *,
    parts: Sequence[str] = PARTS,
    checkpoint: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the benchmark parts and return one JSON-ready object.

    ``checkpoint`` is called with the report so far after each part, so a long run that
    fails late keeps what it measured.
    """

    def save(report: dict[str, Any]) -> None:
        if checkpoint is not None:
            checkpoint(report)

    config = config or Config()
    started = time.perf_counter()
    encoder = load_encoder(config.model, backend=config.backend)
    real, source = real_vectors(options, encoder)
    largest = max([*options.sizes, *options.cluster_sizes])
    held = options.queries
    grown = grow(real, largest + held, seed=0)
    # Held-out queries: real vectors (shuffled) and synthetic ones, never in the indexed set.
    rng = np.random.default_rng(1)
    perm = rng.permutation(len(grown))
    queries = grown[perm[:held]]
    base = grown[np.sort(perm[held:])]
    report: dict[str, Any] = {
        "machine": machine_info(),
        "data": {
            "real_vectors": len(real),
            "sources": source,
            "grown_to": largest,
            "method": "real article vectors + synthetic ones drawn near random real ones (PCA-shaped noise)",
            "queries": held,
        },
        "model": encoder.name,
        "dim": encoder.dim,
    }
    if "embed" in parts:
        logger.info("embedding throughput")
        report["embedding"] = embedding_throughput(_throughput_articles(options), config)
        save(report)
    if "search" in parts:
        report["search"], report["index_plans"], measured = search_benchmark(base, queries, options, config)
        save(report)
    if "check" in parts:
        embedded = embed_articles(_throughput_articles(options)[:12] or [Article(id="x", title="x")], encoder)
        report["check"] = check_latency(base, queries, embedded, options, config, measured if "search" in parts else None)
        save(report)
    if "cluster" in parts:
        titles = [a.title for a in _bench_articles(options)[0]] or ["untitled"]
        report["cluster"] = cluster_growth(base, titles, options, config)
        save(report)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def markdown(report: dict[str, Any]) -> str:
    """The README tables of a report."""
    lines = []
    if "search" in report:
        lines += [
            "| index | n | param | build s | bytes/vector | p50 ms | p99 ms | queries/s | recall@1 | recall@10 | range recall |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in report["search"]:
            if r["index"] in ("ivf", "hnsw") and not r.get("chosen", True):
                continue
            lines.append(
                f"| {r['index']} | {r['n']:,} | {r['param'] or '-'} | {r['build_s']:.1f} | {r['bytes_per_vector']:.0f} | "
                f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['qps']:,.0f} | {r['recall_at_1']:.3f} | {r['recall_at_10']:.3f} | "
                f"{r['range_recall']:.3f} |"
            )
    if "check" in report:
        lines += [
            "",
            "| store size | index (auto) | retrieval p50 ms | retrieval p99 ms | recall@10 "
            "| verification p50 ms | verification p99 ms |",
            "|---:|---|---:|---:|---:|---:|---:|",
        ]
        for r in report["check"]:
            lines.append(
                f"| {r['n']:,} | {r['index']} | {r['retrieval_p50_ms']:.3f} | {r['retrieval_p99_ms']:.3f} | "
                f"{r['retrieval_recall_at_10']:.3f} | {r['verification_p50_ms']:.1f} | {r['verification_p99_ms']:.1f} |"
            )
    if "cluster" in report:
        lines += ["", "| feed size | seconds | ms/article | peak RSS MB |", "|---:|---:|---:|---:|"]
        for r in report["cluster"]:
            lines.append(f"| {r['n']:,} | {r['seconds']:.1f} | {r['ms_per_article']:.2f} | {r['peak_rss_mb']:.0f} |")
    if "embedding" in report:
        e = report["embedding"]
        lines += [
            "",
            "| embedding path | articles/s | passages/s | speed-up (all / median group) | cosine to plain: min / mean |",
            "|---|---:|---:|---:|---|",
            *(
                f"| {_PATH_NAMES.get(p['path'], p['path'])} ({p['backend']}) | {p['articles_per_s']:.2f} | "
                f"{p['passages_per_s']:.1f} | {p['speedup']:.2f}x / {p['speedup_median_group']:.2f}x | "
                f"{p['cosine_to_plain_min']:.4f} / {p['cosine_to_plain_mean']:.4f} |"
                for p in e.get("paths", [])
            ),
            f"| dedup, re-run (embedding cache) | {e['cached_rerun_articles_per_s']:,.0f} | - | - | - |",
            "",
            f"{e['articles']} articles, {e['passages']} passages, in {e.get('groups', '?')} groups of 8 articles.",
        ]
    machine = report.get("machine", {})
    if machine:
        isa = ", ".join(machine.get("isa", [])) or "not read"
        lines += ["", f"Machine: {machine.get('cpus', '?')} cores, {machine.get('cpu', '?')}; int8/bf16 instruction sets: {isa}."]
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], out_dir: Path, name: str) -> Path:
    """Write ``<name>.json`` and ``<name>.md`` into ``out_dir``; returns the JSON path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(report, indent=1) + "\n", "utf-8")
    (out_dir / f"{name}.md").write_text(markdown(report), "utf-8")
    return path
