"""What the story browser's ``GET /stories`` costs: the whole store clustered once per commit.

Synthetic stores (no model): stories of 1 to 6 articles, 8 passages each; a member's
passage vectors are its story's passage centres plus noise, so members align passage by
passage and the verifier links them, as translations do. Dates within a story are at most
2 days apart. Times the first ``/stories`` after a commit (snapshot, clustering, JSON) and
a second one (cached), through the real FastAPI app.

Run: ``python -m benchmarks.stories [N ...]`` (default 1000 3000) -> prints a table and writes
``benchmarks/results/stories.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from numpy.typing import NDArray

from dedup import __version__
from dedup.config import Config
from dedup.detect.detector import Detector
from dedup.search.store import Store
from dedup.serve.http import create_app
from dedup.serve.shared import SharedDetector
from dedup.types import Article, EmbeddedArticle, PartialDate

ROOT = Path(__file__).resolve().parents[1]
DIM = 384
WORDS = ["Hanoi", "Laos", "Paris", "Berlin", "minister", "met", "signed", "agreement", "strike", "museum", "police", "court"]


class _NoEncoder:
    """The store is built from vectors; nothing is embedded."""

    name = "bench/synthetic"
    dim = DIM

    def encode(self, texts: Sequence[str], *, batch_size: int = 32, show_progress: bool = False) -> NDArray[np.float32]:
        raise RuntimeError("the benchmark embeds nothing")


def synthetic_items(n: int, seed: int = 0) -> tuple[list[EmbeddedArticle], int]:
    rng = np.random.default_rng(seed)
    items: list[EmbeddedArticle] = []
    stories = 0
    while len(items) < n:
        size, stories = int(rng.integers(1, 7)), stories + 1
        centres = rng.normal(size=(8, DIM)) + 1.5 * rng.normal(size=DIM)[None, :]
        day = dt.date(2024, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365)))
        for _ in range(min(size, n - len(items))):
            vectors = centres + 0.5 * rng.normal(size=(8, DIM))
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            mean = vectors.mean(0)
            passages = tuple(" ".join(rng.choice(WORDS, 12)) + f" {stories} {k}" for k in range(8))
            date = day + dt.timedelta(days=int(rng.integers(0, 3)))
            article = Article(
                id=f"a{len(items):06d}",
                title=passages[0],
                text="\n".join(passages[1:]),
                date=PartialDate(date.year, date.month, date.day),
                lang=("en", "fr", "de")[len(items) % 3],
            )
            items.append(
                EmbeddedArticle(article, passages, vectors.astype(np.float32), (mean / np.linalg.norm(mean)).astype(np.float32))
            )
    return items, stories


def measure(n: int) -> dict[str, object]:
    items, made = synthetic_items(n)
    store = Store.in_memory(_NoEncoder.name, DIM)
    store.add(items)
    client = TestClient(create_app(SharedDetector(Detector(store, _NoEncoder(), Config()))))
    started = time.perf_counter()
    first = client.get("/stories", params={"limit": 20}).json()
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    client.get("/stories", params={"limit": 20, "min_size": 2})
    cached_s = time.perf_counter() - started
    return {
        "articles": n,
        "stories_made": made,
        "stories_found": first["total"],
        "clustering_s": first["clustered_in_s"],
        "first_request_s": round(first_s, 3),
        "cached_request_s": round(cached_s, 4),
    }


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", type=int, metavar="N", help="store sizes (default 1000 3000)")
    sizes = parser.parse_args(argv).sizes or [1000, 3000]
    rows = [measure(n) for n in sizes]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=False)
    record = {
        "benchmark": "stories",
        "dedup": __version__,
        "commit": commit.stdout.strip(),
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        "rows": rows,
    }
    out = ROOT / "benchmarks" / "results" / "stories.json"
    out.write_text(json.dumps(record, indent=1) + "\n", "utf-8")
    print("| articles | stories made | stories found | clustering s | first /stories s | cached /stories s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['articles']} | {r['stories_made']} | {r['stories_found']} | {r['clustering_s']} | "
            f"{r['first_request_s']} | {r['cached_request_s']} |"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
