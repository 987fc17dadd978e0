"""Time-sharded archive against one store: check latency, opening, adding, agreement.

Data: synthetic embedded articles (no model): ``--stories`` stories over ``--months``
months from 2024-01, each with 1-3 near-copies a few days apart, 3 passage vectors each
(dimension 384, the default model's). Queries are new near-copies of random stories. The
same articles go into one store and into an archive (built with :func:`build_shards`,
2 processes), and the same queries are checked against both (window: the default 7 days).

Run: ``python -m benchmarks.archive`` -> prints a table and writes
``benchmarks/results/archive.json`` (config, git commit, versions, machine, timings).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np
from numpy.typing import NDArray

from dedup import __version__
from dedup.config import Config
from dedup.detect.archive import ArchiveDetector
from dedup.detect.detector import Detector
from dedup.evaluation.machine import machine_info
from dedup.search.archive import Archive
from dedup.search.build import build_shards
from dedup.search.store import Store
from dedup.types import Article, EmbeddedArticle, PartialDate

ROOT = Path(__file__).resolve().parents[1]
DIM = 384


class NoEncoder:
    """Stands in for a model: the benchmark's articles come embedded."""

    name = "bench/synthetic"
    dim = DIM

    def encode(self, texts: Sequence[str], *, batch_size: int = 32, show_progress: bool = False) -> NDArray[np.float32]:
        """Never called."""
        raise RuntimeError("the benchmark embeds nothing")


def _unit(rows: NDArray[np.float32]) -> NDArray[np.float32]:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def _copy(rng: np.random.Generator, centre: NDArray[np.float32], article_id: str, day: dt.date, noise: float) -> EmbeddedArticle:
    passages = _unit(centre + noise * rng.standard_normal(centre.shape).astype(np.float32))
    vector = _unit(passages.mean(axis=0))
    article = Article(id=article_id, title=f"title {article_id}", text="", date=PartialDate.parse(str(day)), lang="en")
    return EmbeddedArticle(article, tuple(f"passage {k} of {article_id}" for k in range(len(passages))), passages, vector)


def _data(
    stories: int, months: int, queries: int, seed: int
) -> tuple[list[EmbeddedArticle], list[EmbeddedArticle], list[EmbeddedArticle]]:
    rng = np.random.default_rng(seed)
    first = dt.date(2024, 1, 1).toordinal()
    days = months * 30
    centres = _unit(rng.standard_normal((stories, 3, DIM)).astype(np.float32))
    starts = rng.integers(0, days, size=stories)
    stored = []
    for s in range(stories):
        for c in range(int(rng.integers(1, 4))):
            stored.append(_copy(rng, centres[s], f"s{s}c{c}", dt.date.fromordinal(first + int(starts[s]) + 2 * c), 0.05))
    picks = rng.integers(0, stories, size=queries)
    asked = [_copy(rng, centres[s], f"q{i}", dt.date.fromordinal(first + int(starts[s]) + 3), 0.05) for i, s in enumerate(picks)]
    last = dt.date.fromordinal(first + days - 1)
    fresh = [_copy(rng, centres[int(rng.integers(0, stories))], f"new{i}", last, 0.05) for i in range(50)]
    return stored, asked, fresh


def _timed(fn: object, calls: Sequence[object]) -> list[float]:
    out = []
    for arg in calls:
        t0 = time.perf_counter()
        fn(arg)  # type: ignore[operator]
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {"p50_ms": round(statistics.median(ordered), 3), "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=int, default=2500)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)  # single-query latency, as a service thread sees it
    stored, queries, fresh = _data(args.stories, args.months, args.queries, args.seed)
    config = Config()
    encoder = NoEncoder()
    work = Path(tempfile.mkdtemp(prefix="dedup-bench-archive-"))
    try:
        t0 = time.perf_counter()
        store = Store.create(work / "one.store", encoder.name, DIM)
        store.add(stored)
        build_single_s = time.perf_counter() - t0
        Archive.create(work / "archive", encoder.name, DIM)
        t0 = time.perf_counter()
        build_shards(work / "archive", stored, workers=2)
        build_archive_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        single = Detector(Store.open(work / "one.store", verify=True), encoder, config)  # type: ignore[arg-type]
        open_single_ms = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        archive = ArchiveDetector(Archive.open(work / "archive", read_only=True), encoder, config)  # type: ignore[arg-type]
        open_archive_ms = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        archive.check_embedded(queries[:1])
        first_check_ms = (time.perf_counter() - t0) * 1000
        archive.check_embedded(queries)  # warm-up: every shard a query needs is open
        single.check_embedded(queries)
        single_ms = _timed(lambda q: single.check_embedded([q]), queries)
        archive_ms = _timed(lambda q: archive.check_embedded([q]), queries)
        a_verdicts = archive.check_embedded(queries)
        s_verdicts = single.check_embedded(queries)
        agree = sum(
            sorted((m.id, m.score) for m in a.duplicates) == sorted((m.id, m.score) for m in b.duplicates)
            for a, b in zip(a_verdicts, s_verdicts, strict=True)
        )
        shards_searched = statistics.mean(len(v.shards) for v in a_verdicts)

        writer = Archive.open(work / "archive")
        add_single_ms = _timed(lambda batch: store.add(batch), [fresh[i : i + 10] for i in range(0, 50, 10)])
        add_archive_ms = _timed(lambda batch: writer.add(batch), [fresh[i : i + 10] for i in range(0, 50, 10)])
        record = {
            "benchmark": "archive",
            "dedup": __version__,
            "git": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip(),
            "faiss": faiss.__version__,
            "numpy": np.__version__,
            "machine": machine_info(),
            "config": {"stories": args.stories, "months": args.months, "queries": args.queries, "seed": args.seed},
            "articles": len(stored),
            "shards": len(writer.keys),
            "search_days": archive.search_days,
            "shards_searched_mean": round(shards_searched, 2),
            "build_s": {"single_store": round(build_single_s, 2), "archive_2_processes": round(build_archive_s, 2)},
            "open_ms": {
                "single_store_verify": round(open_single_ms, 1),
                "archive_read_only": round(open_archive_ms, 1),
                "archive_first_check": round(first_check_ms, 1),
            },
            "check": {"single_store": _summary(single_ms), "archive": _summary(archive_ms)},
            "add_10_to_current_month": {"single_store": _summary(add_single_ms), "archive": _summary(add_archive_ms)},
            "verdicts_agree": f"{agree}/{len(queries)}",
            "duplicates_found": sum(v.is_duplicate for v in a_verdicts),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "archive.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"{record['articles']} articles, {record['shards']} shards, {record['shards_searched_mean']} searched per check")
    print("| | single store | archive |\n|---|---|---|")
    print(f"| check p50 / p99 ms | {record['check']['single_store']} | {record['check']['archive']} |")
    print(f"| open ms | {open_single_ms:.1f} (verified) | {open_archive_ms:.1f} (+{first_check_ms:.1f} first check) |")
    add = record["add_10_to_current_month"]
    print(f"| add 10 to current month p50 ms | {add['single_store']['p50_ms']} | {add['archive']['p50_ms']} |")
    print(f"| build s | {build_single_s:.2f} | {build_archive_s:.2f} (2 processes) |")
    print(f"verdicts agree: {record['verdicts_agree']}, duplicates found {record['duplicates_found']}")


if __name__ == "__main__":
    main()
