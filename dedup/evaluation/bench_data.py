"""Where the benchmark's vectors come from: the demo corpus (or given development data), grown.

Real article vectors first: the demo corpus shipped in ``data/``, or, when a development
data folder is given (``dedup bench --data DIR``), the titles of ``og2021_dev.jsonl`` and
``ntrex_dev.jsonl`` in it as well, embedded with the default model (cached, so re-runs do
not embed again). Larger sets are grown from them: each synthetic vector is a real one
plus Gaussian noise shaped like the real data (its principal components), scaled so that
a synthetic vector sits from its parent about as far as real nearest neighbours sit from
each other. Clusters, density and anisotropy are therefore those of real news vectors,
not of uniform noise. Every report names its source (:func:`bench_articles`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dedup.embedding.embed import Encoder, embed_articles
from dedup.errors import InputError
from dedup.io import read_articles
from dedup.search.index import exact_neighbours
from dedup.types import Article

__all__ = ["DEV_FILES", "BenchOptions", "bench_articles", "grow", "real_vectors", "throughput_articles"]

Vectors = NDArray[np.float32]

#: The development data files read from ``BenchOptions.data_dir``, when one is given.
DEV_FILES = ("og2021_dev.jsonl", "ntrex_dev.jsonl")


@dataclass(frozen=True)
class BenchOptions:
    """What a benchmark run covers.

    Attributes:
        sizes: Index sizes (vectors).
        queries: Queries per configuration (held out: never in the index).
        single: Of those, how many are timed one at a time (p50/p99).
        cluster_sizes: Feed sizes for the batch clustering growth curve.
        embed_articles: Articles for the embedding throughput comparison.
        data_dir: A development data folder (``og2021_dev.jsonl``, ``ntrex_dev.jsonl``), or
            ``None``: the demo corpus alone.
        demo_dir: The demo corpus (seed articles).
        sweep: Also measure every rung of the search-parameter ladders (for the plot).

    """

    sizes: tuple[int, ...] = (10_000, 100_000)
    queries: int = 1_000
    single: int = 200
    cluster_sizes: tuple[int, ...] = (2_000, 5_000, 10_000)
    embed_articles: int = 24
    data_dir: Path | None = None
    demo_dir: Path = Path("data")
    sweep: bool = False

    @classmethod
    def quick(cls, data_dir: Path | None, demo_dir: Path) -> BenchOptions:
        """The ``dedup bench`` run: 10k and 100k vectors, a small clustering curve."""
        return cls(data_dir=data_dir, demo_dir=demo_dir)

    @classmethod
    def full(cls, data_dir: Path | None, demo_dir: Path) -> BenchOptions:
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


def _demo(options: BenchOptions) -> list[Article]:
    return list(read_articles([options.demo_dir], skip_invalid=True).articles) if options.demo_dir.exists() else []


def bench_articles(options: BenchOptions) -> tuple[list[Article], str]:
    """The articles whose vectors seed the benchmark, and their source in words.

    The source reads ``"demo corpus data (5 articles)"`` without a data folder; with one,
    each development file and its number of titles come first.

    Raises:
        InputError: When a data folder is given but holds none of :data:`DEV_FILES`, or
            when no article is found at all.

    """
    found: list[Article] = []
    sources = []
    if options.data_dir is not None:
        for name in DEV_FILES:
            path = options.data_dir / name
            titles = list(read_articles([path], skip_invalid=True).articles) if path.is_file() else []
            if titles:
                sources.append(f"{path} ({len(titles)} titles)")
                found += [Article(id=a.id, title=a.title, text="", date=a.date, lang=a.lang) for a in titles]
        if not found:
            raise InputError(f"--data holds none of {', '.join(DEV_FILES)}", source=str(options.data_dir))
    demo = _demo(options)
    if demo:
        sources.append(f"demo corpus {options.demo_dir} ({len(demo)} articles)")
        found += demo
    if not found:
        raise InputError(
            "the demo corpus was not found: run from the repository root, or give --demo", source=str(options.demo_dir)
        )
    return found, "; ".join(sources)


def real_vectors(options: BenchOptions, encoder: Encoder) -> tuple[Vectors, str]:
    """Article vectors of the benchmark's articles (embedded once, cached) and their source."""
    from dedup.embedding.cache import EmbeddingCache

    articles, source = bench_articles(options)
    cache = EmbeddingCache.for_model(encoder.name, encoder.dim)
    embedded = embed_articles(articles, encoder, cache=cache)  # progress: as the command says (-q)
    return np.vstack([e.vector for e in embedded]).astype(np.float32), source


def throughput_articles(options: BenchOptions) -> tuple[list[Article], str]:
    """Articles for the embedding throughput (full texts): NTREX when given, else the demo corpus."""
    ntrex = options.data_dir / "ntrex_dev.jsonl" if options.data_dir is not None else None
    if ntrex is not None and ntrex.is_file():
        articles = read_articles([ntrex], skip_invalid=True).articles
        step = max(1, len(articles) // options.embed_articles)
        chosen = list(articles[::step][: options.embed_articles])
        return chosen, f"{ntrex} ({len(chosen)} of {len(articles)} articles)"
    demo = _demo(options)
    return demo, f"demo corpus {options.demo_dir} ({len(demo)} articles)"


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
