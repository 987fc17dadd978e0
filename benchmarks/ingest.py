"""The live-archive benchmark, full version: sustained adds and checks up to a million articles.

What is measured, and how, is :mod:`dedup.evaluation.bench_ingest`: at each size, the archive
is bulk-loaded (big batches, not timed), then checks and 10-article adds are timed,
interleaved; open time and RSS are measured in a fresh process, disk from the folder.
``dedup bench --parts ingest`` is the quick run (10k and 100k).

Usage (from the repository root)::

    python -m benchmarks.ingest                                  # 10k, 100k and 1M
    python -m benchmarks.ingest --sizes 10000,100000             # the quick sizes
    python -m benchmarks.ingest --work /big/disk                 # where the archive is built
    python -m benchmarks.ingest --work /big/disk --reuse         # keep the archive there, reuse it next time
    python -m benchmarks.ingest --vectors uniform                # random vectors: the index's worst case
    python -m benchmarks.ingest --report benchmarks/results/ingest.json   # the table only

A million articles take tens of GB of disk with float32 passage vectors (``--work`` puts
them elsewhere than the system's temporary folder); progress lines go to stderr. Writes
``ingest.json`` (config, git commit, library versions, machine, one row per size) and
``ingest.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np

from dedup import __version__
from dedup.evaluation.bench_ingest import IngestOptions, describe, ingest_benchmark
from dedup.evaluation.bench_report import markdown, write
from dedup.evaluation.ingest_feed import VECTOR_KINDS
from dedup.evaluation.machine import machine_info

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes are comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = IngestOptions()
    parser.add_argument("--sizes", type=_sizes, default=(10_000, 100_000, 1_000_000), help="archive sizes (default 10k,100k,1M)")
    parser.add_argument("--adds", type=int, default=defaults.adds, help="timed adds per size")
    parser.add_argument("--checks", type=int, default=defaults.checks, help="timed checks per size")
    parser.add_argument("--batch", type=int, default=defaults.batch, help="articles per timed add")
    parser.add_argument("--bulk-batch", type=int, default=defaults.bulk_batch, help="articles per add while bulk-loading")
    parser.add_argument("--months", type=int, default=defaults.months, help="months the archive's dates cover")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--vectors",
        choices=VECTOR_KINDS,
        default=defaults.vectors,
        help="synthetic vectors: clustered by topic and story like news (default), or uniform random (no structure)",
    )
    parser.add_argument(
        "--faiss-threads", type=int, default=defaults.faiss_threads, help="FAISS threads while timed (0: FAISS's default)"
    )
    parser.add_argument("--work", type=Path, help="folder to build the archive in (default: the system's temporary folder)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the archive in --work and reuse it next time (no bulk load up to the size it holds; smaller sizes skipped)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where ingest.json and ingest.md go")
    parser.add_argument("--report", type=Path, help="only print the table of an existing ingest.json")
    args = parser.parse_args()
    if args.report:
        print(markdown(json.loads(args.report.read_text("utf-8"))))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("faiss").setLevel(logging.WARNING)
    options = IngestOptions(
        sizes=args.sizes,
        adds=args.adds,
        checks=args.checks,
        batch=args.batch,
        bulk_batch=args.bulk_batch,
        months=args.months,
        seed=args.seed,
        vectors=args.vectors,
        faiss_threads=args.faiss_threads,
        work_dir=args.work,
        reuse=args.reuse,
    )
    git = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=False).stdout.strip()
    report = {
        "benchmark": "ingest",
        "dedup": __version__,
        "git": git,
        "faiss": faiss.__version__,
        "numpy": np.__version__,
        "machine": machine_info(),
        "ingest_setup": describe(options),
    }
    report["ingest"] = ingest_benchmark(options, on_row=lambda rows: write({**report, "ingest": rows}, args.out, "ingest"))
    write(report, args.out, "ingest")
    print(markdown(report))


if __name__ == "__main__":
    main()
