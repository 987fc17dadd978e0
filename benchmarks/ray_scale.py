"""Batch clustering on Ray: throughput and peak memory for 1 and 2 worker processes, per-stage costs.

Data: NTREX-128 news articles (``../shared/data/ntrex_dev.jsonl``, or ``--data``): the first
``--docs`` documents in all their ~20 languages, so every story has ~20 cross-language
duplicates. Only a temporary copy of that subset is written (deleted at the end).

Runs, all on the same input and the same machine, one after the other:

- **stages**: the local engine in this process, each stage timed apart: reading, cleaning +
  embedding (the int8 default, every core), and search + verification + clustering. Also
  the size of one embedded article (what a window holds in memory per article).
- **local**: ``dedup cluster`` as a user runs it (the local engine), wall time.
- **ray-1**, **ray-2**: ``dedup cluster --engine ray`` on a Ray instance started with 1 and
  2 CPUs (1 and 2 embedding worker processes, one core each), wall time; stories compared with the
  local engine's.

Peak memory is the largest sum of RSS over this process and every process below it (Ray
raylet, GCS, workers and actors), sampled every 0.2 s.

Run: ``python -m benchmarks.ray_scale`` -> prints a table, writes
``benchmarks/results/ray_scale.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from dedup import __version__
from dedup.config import Config
from dedup.detect.detector import Detector
from dedup.evaluation.machine import machine_info
from dedup.io import read_articles

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "ntrex_dev.jsonl"
T = TypeVar("T")


def _tree_rss(pid: int) -> int:
    """RSS in bytes of ``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            statm = (entry / "statm").read_text().split()
        except OSError:
            continue
        children.setdefault(int(stat[1]), []).append(int(entry.name))
        rss[int(entry.name)] = int(statm[1]) * page
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total


def measured(fn: Callable[[], T]) -> tuple[T, float, int]:
    """Run ``fn``; its result, wall seconds and the peak RSS of this process tree (bytes)."""
    peak = [_tree_rss(os.getpid())]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], _tree_rss(os.getpid()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        out = fn()
    finally:
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    return out, seconds, peak[0]


def groups(result: Any) -> list[list[str]]:  # noqa: ANN401
    return sorted(sorted(s.article_ids) for s in result.stories)


DAY_S = 86_400


def capacity(record: dict[str, Any], hotpath: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """The capacity table for 100k, 1M and 10M articles a day, derived from the measurements.

    - Embedding: core-seconds per article of one one-core Ray worker (``ray-1``'s embed stage).
    - Embedding worker memory: peak RSS of ``ray-2`` minus ``ray-1`` (one more worker process).
    - Clustering a window of N articles: this run's per-article cost (one window of the
      NTREX subset) grown with N as the hot-path clustering curve grows
      (``benchmarks/results/hotpath.json``: per-article cost at 100k over that at 12.5k, per
      8x more articles); one core per window.
    - Window memory: N embedded articles of this run's median size; driver memory: N
      articles' text (pickled Article, mean over the NTREX subset).

    Daily batches with ``--window-days 1``: a window holds one day's articles.
    """
    runs = {r["run"]: r for r in record["runs"]}
    st = record["stages"]
    n = st["articles"]
    embed_core_s = runs["ray-1"]["job_seconds"]["embed"] / n
    worker_mb = runs["ray-2"]["peak_rss_mb"] - runs["ray-1"]["peak_rss_mb"]
    curve = sorted(hotpath["cluster"], key=lambda r: r["n"])
    growth = (curve[-1]["ms_per_article"] / curve[0]["ms_per_article"]) ** (1 / math.log(curve[-1]["n"] / curve[0]["n"], 8))
    rows = []
    for per_day in (100_000, 1_000_000, 10_000_000):
        cluster_ms = st["cluster_ms_per_article"] * growth ** math.log(per_day / n, 8)
        rows.append(
            {
                "articles_per_day": per_day,
                "embed_cores": per_day * embed_core_s / DAY_S,
                "embed_worker_memory_gb": worker_mb / 1024,
                "cluster_ms_per_article": cluster_ms,
                "cluster_core_hours": per_day * cluster_ms / 1000 / 3600,
                "window_memory_gb": per_day * st["embedded_article_bytes_median"] / 2**30,
                "driver_memory_gb": per_day * st["article_bytes_mean"] / 2**30,
            }
        )
    lines = [
        "| articles a day | embedding: cores (at 100% busy) | embedding: memory per worker | clustering one day's window: "
        "core-hours (one core) | window memory (one worker) | driver memory | first bottleneck |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["window_memory_gb"] > 24 or r["cluster_core_hours"] > 24:
            limit = "the day's window: one process must hold it" + (
                " and it takes more than a day on one core" if r["cluster_core_hours"] > 24 else ""
            )
        else:
            limit = "embedding (none at this size on this 2-core, 24 GiB machine)"
        lines.append(
            f"| {r['articles_per_day']:,} | {r['embed_cores']:.2f} | {r['embed_worker_memory_gb']:.2f} GB | "
            f"{r['cluster_core_hours']:.2f} h ({r['cluster_ms_per_article']:.1f} ms/article) | "
            f"{r['window_memory_gb']:.1f} GB | {r['driver_memory_gb']:.1f} GB | {limit} |"
        )
    lines += [
        "",
        f"From: embedding {1000 * embed_core_s:.1f} ms of one core per article (ray-1's embed stage, {n} articles); "
        f"one more worker process: {worker_mb} MB (ray-2 minus ray-1 peak); clustering "
        f"{st['cluster_ms_per_article']} ms/article for a window of {n}, x{growth:.2f} per 8x more articles "
        f"(hot-path curve, {curve[0]['n']:,} to {curve[-1]['n']:,}); {st['embedded_article_bytes_median'] / 1024:.1f} kB "
        f"per embedded article; {st['article_bytes_mean'] / 1024:.1f} kB per article on the driver.",
    ]
    return lines, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="NTREX dev set (JSONL with a 'story' field)")
    parser.add_argument("--docs", type=int, default=20, help="NTREX documents to take, each in all its languages")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    import ray

    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    keep = set(sorted({r["story"] for r in rows})[: args.docs])
    subset = [r for r in rows if r["story"] in keep]
    config = Config()
    record: dict[str, Any] = {
        "benchmark": "ray_scale",
        "data": f"{args.data} (first {args.docs} NTREX documents in all languages: {len(subset)} articles)",
        "dedup": __version__,
        "ray": ray.__version__,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip(),
        "machine": machine_info(),
        "config": {"window_days": config.window_days, "max_date_gap_days": config.max_date_gap_days},
    }
    with tempfile.TemporaryDirectory() as tmp:
        shards = []
        for k in range(4):  # four JSONL shards, as a feed arrives
            path = Path(tmp) / f"ntrex-{k}.jsonl"
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in subset[k::4]), encoding="utf-8")
            shards.append(path)

        # --- per-stage costs, local engine, this process
        (articles, read_s, _) = measured(lambda: read_articles(shards).articles)
        det = Detector.in_memory(config)  # no embedding cache: every run embeds
        det.embed(articles[:2])  # load the model (and build the int8 file if missing) outside the timings
        items, embed_s, _ = measured(lambda: det.embed(articles))
        passages = sum(len(i.passages) for i in items)
        local_result, cluster_s, _ = measured(lambda: det.cluster_embedded(items))
        size = statistics.median(len(pickle.dumps(i)) for i in items)
        text_size = statistics.mean(len(pickle.dumps(a)) for a in articles)
        n = len(articles)
        record["stages"] = {
            "articles": n,
            "passages": passages,
            "read_ms_per_article": round(1000 * read_s / n, 3),
            "embed_ms_per_article": round(1000 * embed_s / n, 1),
            "embed_cores": os.cpu_count(),
            "embed_articles_per_s": round(n / embed_s, 2),
            "cluster_ms_per_article": round(1000 * cluster_s / n, 2),
            "embedded_article_bytes_median": int(size),
            "article_bytes_mean": int(text_size),
            "stories": len(local_result.stories),
        }
        print(json.dumps(record["stages"]))

        runs: list[dict[str, Any]] = []
        _, local_s, local_peak = measured(lambda: Detector.in_memory(config).cluster(list(read_articles(shards).articles)))
        runs.append(
            {"run": "local", "workers": os.cpu_count(), "seconds": round(local_s, 1), "peak_rss_mb": round(local_peak / 2**20)}
        )
        from dedup.clustering.ray_engine import cluster_on_ray

        for cpus in (1, 2):

            def job(cpus: int = cpus) -> Any:  # noqa: ANN401
                ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
                try:
                    return cluster_on_ray(shards, config)
                finally:
                    ray.shutdown()

            run, seconds, peak = measured(job)
            same = groups(run.result) == groups(local_result)
            runs.append(
                {
                    "run": f"ray-{cpus}",
                    "workers": cpus,
                    "seconds": round(seconds, 1),
                    "job_seconds": {k: round(v, 1) for k, v in run.seconds.items()},
                    "peak_rss_mb": round(peak / 2**20),
                    "same_stories_as_local": same,
                }
            )
            print(json.dumps(runs[-1]))
        for r in runs:
            r["articles_per_s"] = round(n / r["seconds"], 2)
        record["runs"] = runs
    hotpath = json.loads((ROOT / "benchmarks" / "results" / "hotpath.json").read_text(encoding="utf-8"))
    capacity_lines, record["capacity"] = capacity(record, hotpath)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ray_scale.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    table = [
        "| run | worker processes | wall s | articles/s | peak RSS (all processes) | same stories as local |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        table.append(
            f"| {r['run']} | {r['workers']} | {r['seconds']} | {r['articles_per_s']} | {r['peak_rss_mb']} MB | "
            f"{r.get('same_stories_as_local', '')} |"
        )
    s = record["stages"]
    table += [
        "",
        f"Stages (local engine, {s['articles']} articles, {s['passages']} passages): read {s['read_ms_per_article']} ms/article, "
        f"embed {s['embed_ms_per_article']} ms/article on {s['embed_cores']} cores ({s['embed_articles_per_s']} articles/s), "
        f"search + verify + cluster {s['cluster_ms_per_article']} ms/article; an embedded article holds "
        f"{s['embedded_article_bytes_median'] / 1024:.1f} kB (median).",
        "",
        *capacity_lines,
        "",
        f"Machine: {record['machine']['cpus']} cores, {record['machine']['cpu']}; "
        f"int8/bf16 instruction sets: {', '.join(record['machine']['isa']) or 'not read'}.",
    ]
    (args.out / "ray_scale.md").write_text("\n".join(table) + "\n", encoding="utf-8")
    print("\n".join(table))


if __name__ == "__main__":
    main()
