"""Benchmarks of the hot path: similarity search, check latency, batch clustering, embedding.

Run by ``dedup bench`` (quick: under 5 minutes on 2 cores) and ``python -m benchmarks.hotpath``
(full: adds 1M vectors). Every figure of one run is measured on the same machine in the same
process, so ratios between rows are meaningful even when absolute times are noisy.

The vectors: :mod:`dedup.evaluation.bench_data` (the demo corpus, or given development
data, grown with synthetic vectors; every report names its source). The parts:
:mod:`dedup.evaluation.bench_search` (indexes, check latency),
:mod:`dedup.evaluation.bench_embed` (embedding throughput) and the clustering growth curve
here; the live archive (sustained adds and checks, open time, memory and disk per
article): :mod:`dedup.evaluation.bench_ingest`. Tables: :mod:`dedup.evaluation.bench_report`.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dedup.clustering.batch import cluster_embedded
from dedup.config import Config
from dedup.embedding.embed import embed_articles, load_encoder
from dedup.evaluation.bench_data import BenchOptions, bench_articles, grow, real_vectors, throughput_articles
from dedup.evaluation.bench_embed import embedding_throughput
from dedup.evaluation.bench_ingest import IngestOptions, describe, ingest_benchmark
from dedup.evaluation.bench_search import check_latency, search_benchmark
from dedup.evaluation.machine import machine_info
from dedup.types import Article, EmbeddedArticle, PartialDate
from dedup.verify import Verifier

__all__ = ["DEFAULT_PARTS", "PARTS", "cluster_growth", "run"]

logger = logging.getLogger(__name__)

Vectors = NDArray[np.float32]


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
    verifier = Verifier.default()
    rows = []
    for n in options.cluster_sizes:
        feed = _feed(base, titles, n)
        before = _reset_peak_rss()
        t0 = time.perf_counter()
        result = cluster_embedded(feed, config, verifier)
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


PARTS = ("embed", "search", "check", "cluster", "ingest")
#: The parts a run covers unless told otherwise (``ingest`` builds an archive on disk: asked for by name).
DEFAULT_PARTS = PARTS[:4]


def run(
    options: BenchOptions,
    config: Config | None = None,
    *,
    parts: Sequence[str] = DEFAULT_PARTS,
    checkpoint: Callable[[dict[str, Any]], None] | None = None,
    ingest_options: IngestOptions | None = None,
) -> dict[str, Any]:
    """Run the benchmark parts and return one JSON-ready object.

    ``checkpoint`` is called with the report so far after each part, so a long run that
    fails late keeps what it measured. The ``ingest`` part (not run unless asked for)
    measures the live archive (:mod:`dedup.evaluation.bench_ingest`) at ``ingest_options``,
    by default at ``options.sizes``; asked for alone, it loads no model.
    """

    def save(report: dict[str, Any]) -> None:
        if checkpoint is not None:
            checkpoint(report)

    config = config or Config()
    started = time.perf_counter()
    if not set(parts) - {"ingest"}:  # the live-archive benchmark alone: no model, no grown vectors
        return _run_ingest({"machine": machine_info()}, options, config, ingest_options, save, started)
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
            "source": source,
            "real_vectors": len(real),
            "synthetic_vectors": max(0, len(grown) - len(real)),
            "grown_to": largest,
            "method": "real article vectors + synthetic ones drawn near random real ones (PCA-shaped noise)",
            "queries": held,
        },
        "model": encoder.name,
        "dim": encoder.dim,
    }
    if "embed" in parts:
        logger.info("embedding throughput")
        articles, articles_source = throughput_articles(options)
        report["embedding"] = {**embedding_throughput(articles, config), "source": articles_source}
        save(report)
    if "search" in parts:
        report["search"], report["index_plans"], measured = search_benchmark(base, queries, options, config)
        save(report)
    if "check" in parts:
        embedded = embed_articles(throughput_articles(options)[0][:12] or [Article(id="x", title="x")], encoder)
        report["check"] = check_latency(base, queries, embedded, options, config, measured if "search" in parts else None)
        save(report)
    if "cluster" in parts:
        titles = [a.title for a in bench_articles(options)[0]] or ["untitled"]
        report["cluster"] = cluster_growth(base, titles, options, config)
        save(report)
    if "ingest" in parts:
        return _run_ingest(report, options, config, ingest_options, save, started)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def _run_ingest(
    report: dict[str, Any],
    options: BenchOptions,
    config: Config,
    ingest_options: IngestOptions | None,
    save: Callable[[dict[str, Any]], None],
    started: float,
) -> dict[str, Any]:
    """Add the live-archive part to ``report`` (at ``options.sizes`` unless ``ingest_options`` says otherwise)."""
    ingest = ingest_options or IngestOptions(sizes=tuple(options.sizes))
    report["ingest_setup"] = describe(ingest)
    report["ingest"] = ingest_benchmark(ingest, config, on_row=lambda rows: save({**report, "ingest": rows}))
    report["seconds"] = round(time.perf_counter() - started, 1)
    save(report)
    return report
