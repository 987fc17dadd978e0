"""Which clusterer to run on the verified graph: a comparison on OG2021 (or any labelled set).

The graph is the detector's: every article's ``candidates`` nearest neighbours by article
cosine, each pair scored by the verifier (0 beyond the date window). On it we compare:

* connected components of the edges at or above the threshold (single linkage);
* average linkage (``dedup.clustering.linkage.average_linkage``, the detector's clusterer);
* Leiden (leidenalg, CPM and modularity) and Louvain (igraph) on the same edges, weighted by score;
* HDBSCAN on the precomputed distance ``1 - score`` (unscored pairs at distance 1).

Thresholds / resolutions are chosen on the tune part by B-cubed F1 and reported on the
held part, as in ``benchmarks/eval.py``. Needs the ``bench`` extra.

Run: ``python -m benchmarks.clusterers [--data DIR] [--set og2021_dev]``
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dedup.clustering.linkage import average_linkage, find_root
from dedup.config import Config
from dedup.embedding.embed import load_encoder
from dedup.evaluation.baselines import Prepared, prepare
from dedup.evaluation.data import default_cache_dir, embed_cached, read_labelled, split_parts
from dedup.evaluation.metrics import clustering_scores
from dedup.verify import Verifier

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("benchmarks.clusterers")

Edges = list[tuple[int, int, float]]


def components(n: int, edges: Edges, t: float) -> list[int]:
    parent = list(range(n))

    def find(i: int) -> int:
        return find_root(parent, i)

    for i, j, s in edges:
        if s >= t:
            parent[find(i)] = find(j)
    return [find(i) for i in range(n)]


def _graph(n: int, edges: Edges, t: float) -> Any:  # noqa: ANN401  (igraph.Graph, untyped)
    import igraph as ig

    kept = [(i, j, s) for i, j, s in edges if s >= t]
    g = ig.Graph(n=n, edges=[(i, j) for i, j, _ in kept])
    g.es["weight"] = [s for _, _, s in kept]
    return g


def leiden_cpm(n: int, edges: Edges, t: float, resolution: float) -> list[int]:
    import leidenalg

    g = _graph(n, edges, t)
    part = leidenalg.find_partition(g, leidenalg.CPMVertexPartition, weights="weight", resolution_parameter=resolution, seed=0)
    return list(part.membership)


def leiden_modularity(n: int, edges: Edges, t: float, resolution: float) -> list[int]:
    import leidenalg

    g = _graph(n, edges, t)
    part = leidenalg.find_partition(
        g, leidenalg.RBConfigurationVertexPartition, weights="weight", resolution_parameter=resolution, seed=0
    )
    return list(part.membership)


def louvain(n: int, edges: Edges, t: float, resolution: float) -> list[int]:
    g = _graph(n, edges, t)
    return list(g.community_multilevel(weights="weight", resolution=resolution).membership)


def hdbscan_labels(n: int, edges: Edges, min_cluster_size: int, epsilon: float) -> list[int]:
    import hdbscan

    dist = np.ones((n, n), dtype=np.float64)
    for i, j, s in edges:
        dist[i, j] = dist[j, i] = min(dist[i, j], 1.0 - s)
    np.fill_diagonal(dist, 0.0)
    labels = hdbscan.HDBSCAN(
        metric="precomputed", min_cluster_size=min_cluster_size, min_samples=1, cluster_selection_epsilon=epsilon
    ).fit_predict(dist)
    # noise points are singletons
    out, nxt = [], int(labels.max()) + 1
    for label in labels:
        if label < 0:
            out.append(nxt)
            nxt += 1
        else:
            out.append(int(label))
    return out


def methods(
    config: Config, score: Callable[[int, int], float]
) -> dict[str, tuple[list[dict[str, float]], Callable[..., list[int]]]]:
    ts = [0.3, 0.5, 0.7, 0.9]
    return {
        "connected components": ([{"t": t} for t in ts], lambda n, e, t: components(n, e, t)),
        "average linkage": (
            [{"t": t, "linkage": lk} for t in ts for lk in (0.3, 0.5, 0.7)],
            lambda n, e, t, linkage: average_linkage(n, e, score, threshold=t, linkage=linkage),
        ),
        "leiden CPM": ([{"t": t, "resolution": r} for t in ts for r in (0.1, 0.3, 0.5, 0.7)], leiden_cpm),
        "leiden modularity": ([{"t": t, "resolution": r} for t in ts for r in (0.5, 1.0, 2.0, 5.0)], leiden_modularity),
        "louvain": ([{"t": t, "resolution": r} for t in ts for r in (0.5, 1.0, 2.0, 5.0)], louvain),
        "hdbscan": (
            [{"min_cluster_size": m, "epsilon": e} for m in (2, 3) for e in (0.0, 0.3, 0.5)],
            hdbscan_labels,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--set", default="og2021_dev")
    parser.add_argument("--model", default=Config().model)
    parser.add_argument("--cache", type=Path, default=default_cache_dir())
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = Config(model=args.model)
    verifier = Verifier.default()
    path = args.data / f"{args.set}.jsonl"
    articles, stories = read_labelled(path)
    split = split_parts(articles, stories)
    items = embed_cached(articles, load_encoder(config.model), cache=args.cache, label=path.stem)
    results: dict[str, dict[str, object]] = {}
    chosen: dict[str, dict[str, float]] = {}
    for part, positions in (("tune", split.tune), ("held", split.held)):
        if not positions:
            continue
        prep = prepare([items[i] for i in positions], [stories[i] for i in positions], config, verifier)
        n = len(prep.items)
        edges: Edges = [(i, j, prep.verified[i, j]) for i, j in sorted(prep.retrieved)]
        cache: dict[tuple[int, int], float] = dict(prep.verified)

        def score(i: int, j: int, prep: Prepared = prep, cache: dict[tuple[int, int], float] = cache) -> float:
            key = (min(i, j), max(i, j))
            if key not in cache:
                cache[key] = verifier.decide(prep.items[key[0]], prep.items[key[1]], config).score
            return cache[key]

        for name, (grid, run) in methods(config, score).items():
            started = time.perf_counter()
            if part == "tune":
                best, best_f1 = grid[0], -1.0
                for params in grid:
                    f1 = clustering_scores(prep.stories, run(n, edges, **params)).bcubed.f1
                    if f1 > best_f1:
                        best, best_f1 = params, f1
                chosen[name] = best
            labels = run(n, edges, **chosen[name])
            scores = clustering_scores(prep.stories, labels).to_dict()
            results.setdefault(name, {"params": chosen[name]})[part] = scores
            logger.info("%s %s %s: %s (%.1f s)", part, name, chosen[name], scores, time.perf_counter() - started)
    record = {"benchmark": "clusterers", "dataset": args.set, "model": config.model, "split": split.rule, "results": results}
    (args.out / f"clusterers_{args.set}.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print("| clusterer | params (tuned) | part | B³ P | B³ R | B³ F1 | ARI | pair P | pair R |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, res in results.items():
        for part in ("tune", "held"):
            if part in res:
                c = res[part]
                b, p = c["bcubed"], c["pairwise"]  # type: ignore[index]
                print(
                    f"| {name} | {res['params']} | {part} | {b['precision']:.3f} | {b['recall']:.3f} | {b['f1']:.3f} "
                    f"| {c['ari']:.3f} | {p['precision']:.3f} | {p['recall']:.3f} |"  # type: ignore[index]
                )


if __name__ == "__main__":
    main()
