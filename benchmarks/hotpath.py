"""The hot-path benchmark, full version.

Similarity search up to 1M vectors, check latency, batch clustering up to a 100k-article
feed, embedding throughput. Writes JSON, markdown and a recall-versus-speed plot into
``benchmarks/results/``.

Usage (from the repository root; takes about 30-40 minutes on 2 cores)::

    python -m benchmarks.hotpath                       # full run
    python -m benchmarks.hotpath --quick               # what `dedup bench` runs (< 5 min)
    python -m benchmarks.hotpath --parts check         # only check latency (the auto index per size)
    python -m benchmarks.hotpath --report benchmarks/results/hotpath.json   # table + plot only

Data: titles of ``../shared/data/og2021_dev.jsonl`` and ``ntrex_dev.jsonl`` (``--data``) and
the demo corpus in ``data/``, embedded with the default model, grown to 1M vectors as
:mod:`dedup.evaluation.bench_data` describes. Only aggregate figures are written, never the texts.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from dedup.evaluation.bench import run
from dedup.evaluation.bench_data import BenchOptions
from dedup.evaluation.bench_report import markdown, write

RESULTS = Path(__file__).parent / "results"


def plot(report: dict[str, Any], path: Path) -> None:
    """Recall@10 against single-query p50 latency, one line per index and size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    series: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for row in report["search"]:
        series.setdefault((row["index"], row["n"]), []).append((row["p50_ms"], row["recall_at_10"]))
    for (index, n), points in sorted(series.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        points.sort()
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o" if len(points) > 1 else "s", label=f"{index} n={n:,}")
    ax.axhline(0.99, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("single-query latency p50 (ms, log scale)")
    ax.set_ylabel("recall@10 against exact search")
    ax.set_title(f"Similarity search on {report['machine']['cpus']} CPU cores ({report['model']})")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="development data folder")
    parser.add_argument("--quick", action="store_true", help="the quick run of `dedup bench`")
    parser.add_argument("--report", type=Path, help="only turn an existing JSON result into the table and plot")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--parts", default="embed,search,check,cluster", help="subset of embed,search,check,cluster")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    name = "hotpath_quick" if args.quick else "hotpath"
    if parts != ("embed", "search", "check", "cluster"):
        name += "_" + "_".join(parts)
    if args.report:
        report = json.loads(args.report.read_text("utf-8"))
        name = args.report.stem
    else:
        options = BenchOptions.quick(args.data, Path("data")) if args.quick else BenchOptions.full(args.data, Path("data"))
        report = run(options, parts=parts, checkpoint=lambda partial: write(partial, args.out, name))
        write(report, args.out, name)
    if "search" in report:
        plot(report, args.out / f"{name}.png")
    print(markdown(report))


if __name__ == "__main__":
    main()
