"""Seed score matrix: article cosine vs verifier score on the five seed articles.

Data: ``data/`` (the seed articles, copied from ``../shared/seeds``). Also measures the
model load time and embedding throughput on this machine.

Run: ``python -m benchmarks.seed_matrix`` -> prints tables and writes
``benchmarks/results/seed_matrix.json``.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np

from dedup import __version__
from dedup.config import Config
from dedup.embedding.embed import embed_articles, load_encoder, pool
from dedup.evaluation.machine import machine_info
from dedup.io import read_articles
from dedup.verify import Verifier

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    config = Config()
    started = time.perf_counter()
    encoder = load_encoder(config.model)
    load_s = time.perf_counter() - started
    articles = list(read_articles([ROOT / "data"]).articles)
    embed_articles(articles[:1], encoder)  # warm-up
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        items = embed_articles(articles, encoder, max_passage_chars=config.max_passage_chars)
        times.append(time.perf_counter() - t0)
    embed_s = float(np.median(times))
    passages = sum(len(i.passages) for i in items)
    verifier = Verifier.default()
    names = [a.id[:3] for a in articles]
    n = len(items)
    cosine = np.array([[float(items[i].vector @ items[j].vector) for j in range(n)] for i in range(n)])
    plain_vectors = [pool(i.passages, i.passage_vectors) for i in items]  # before language centring
    plain = np.array([[float(plain_vectors[i] @ plain_vectors[j]) for j in range(n)] for i in range(n)])
    score = np.array([[verifier.decide(items[i], items[j], config).score if i != j else 1.0 for j in range(n)] for i in range(n)])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=False
    ).stdout.strip()
    record = {
        "benchmark": "seed_matrix",
        "dedup": __version__,
        "commit": commit,
        "model": encoder.name,
        "machine": machine_info(),
        "ids": names,
        "model_load_s": round(load_s, 2),
        "embed_median_s": round(embed_s, 3),
        "articles_per_s": round(n / embed_s, 2),
        "passages_per_s": round(passages / embed_s, 1),
        "passages": passages,
        "article_cosine": np.round(cosine, 4).tolist(),
        "article_cosine_plain": np.round(plain, 4).tolist(),
        "verifier_score": np.round(score, 4).tolist(),
    }
    out = ROOT / "benchmarks" / "results" / "seed_matrix.json"
    out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    for title, m in (("article cosine, plain", plain), ("article cosine, language-centred", cosine), ("verifier score", score)):
        print(f"\n{title}\n      " + "  ".join(f"{x:>6}" for x in names))
        for i, row in enumerate(m):
            print(f"{names[i]:>5} " + "  ".join(f"{x:6.3f}" for x in row))
    print(
        f"\nmodel load {load_s:.1f} s; embedding {n} articles ({passages} passages): median {embed_s:.2f} s "
        f"= {n / embed_s:.2f} articles/s, {passages / embed_s:.0f} passages/s"
    )


if __name__ == "__main__":
    main()
