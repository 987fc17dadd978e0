r"""Fit and measure the learned low-rank map of the article vectors (verifier v9's ``mapped_similarity``).

    python -m benchmarks.learned_map --semeval DATA/semeval_dev.jsonl [--rank 32] [--lam 1.0] [--steps 300] \
        [--out benchmarks/results/learned_map_semeval.json]

The map (:class:`dedup.verify_features.VectorMap`) moves each centred article vector ``v``
to ``v + (v V) Uᵀ``, of rank ``--rank`` (``U`` starts at zero, so training starts from the
identity), and the pair's score is the cosine of the moved vectors. It is fitted with Adam on the SemEval tune
part's pairs (squared error between ``sigmoid(s · cos + b)`` and the rating mapped to
``[0, 1]``: ``1 - (overall - 1) / 3``), with an L2 penalty ``--lam`` on ``M`` that pulls
it back to the identity.

Printed, against the centred cosine it starts from (ROC-AUC / hard-negative AUC /
|Pearson with overall|, :func:`dedup.evaluation.ranking.ranking_scores`):

* the tune part out of fold: five folds by connected component of the article graph,
  each scored by a map fitted on the other four;
* the held part, scored by a map fitted on every tune pair.

The figures are also written as JSON to ``--out`` (a SemEval-derived file: git ignores it).

:func:`fit_map` is also what ``benchmarks/fit_verifier.py`` fits the shipped map with
(``docs/quality.md``, verifier v9).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dedup.config import Config
from dedup.evaluation.data import default_cache_dir, embed_cached
from dedup.evaluation.harness import source_commit
from dedup.evaluation.machine import machine_info
from dedup.evaluation.pairs import LabelledPair, components, pair_articles, read_pairs, split_pairs
from dedup.evaluation.ranking import RankingScores, ranking_scores
from dedup.verify_features import VectorMap

logger = logging.getLogger("benchmarks.learned_map")

FOLDS = 5


def fit_map(
    a: NDArray[np.float32],
    b: NDArray[np.float32],
    target: NDArray[np.float64],
    *,
    rank: int = 32,
    lam: float = 1.0,
    steps: int = 300,
    seed: int = 0,
    models: tuple[str, ...] = (),
) -> VectorMap:
    """The map (rank ``rank``) under which the cosine of ``a[i], b[i]`` predicts ``target[i]``.

    Args:
        a: First vectors of the pairs, shape ``(n, d)``.
        b: Second vectors, same shape.
        target: Wanted similarity of each pair, in ``[0, 1]``.
        rank: Rank of ``M``.
        lam: L2 penalty on ``V Uᵀ`` (per dimension): larger keeps the map nearer the identity.
        steps: Adam steps over all pairs at once.
        seed: Seeds the initial ``V``.
        models: The models whose vectors ``a`` and ``b`` are (:attr:`VectorMap.models`).

    """
    import torch

    if a.shape != b.shape or len(a) != len(target):
        raise ValueError(f"need as many pairs as targets: {a.shape}, {b.shape}, {len(target)}")
    gen = torch.Generator().manual_seed(seed)
    ta, tb = torch.from_numpy(np.ascontiguousarray(a, np.float32)), torch.from_numpy(np.ascontiguousarray(b, np.float32))
    want = torch.from_numpy(np.asarray(target, np.float32))
    dim = ta.shape[1]
    u = torch.zeros(dim, rank, requires_grad=True)
    v = (0.01 * torch.randn(dim, rank, generator=gen)).requires_grad_()
    scale = torch.tensor(5.0, requires_grad=True)
    bias = torch.tensor(-3.0, requires_grad=True)
    opt = torch.optim.Adam([u, v, scale, bias], lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        m = v @ u.T
        ma = torch.nn.functional.normalize(ta + ta @ m, dim=1)
        mb = torch.nn.functional.normalize(tb + tb @ m, dim=1)
        pred = torch.sigmoid(scale * (ma * mb).sum(1) + bias)
        loss = ((pred - want) ** 2).mean() + lam * (m**2).sum() / dim
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    fitted = f"{len(target)} pairs, rank {rank}, lam {lam}, {steps} steps, seed {seed}"
    return VectorMap(models, u.detach().numpy().astype(np.float64), v.detach().numpy().astype(np.float64), fitted)


def mapped_cosine(vector_map: VectorMap, a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float64]:
    """Cosine of each row pair under the map."""
    out: NDArray[np.float64] = (vector_map.apply(a) * vector_map.apply(b)).sum(axis=1)
    return out


def rating_target(pairs: Sequence[LabelledPair]) -> NDArray[np.float64]:
    """The rating as a similarity in ``[0, 1]`` (1 = same story); pairs must be rated."""
    return np.asarray([1.0 - (float(p.overall) - 1.0) / 3.0 for p in pairs if p.overall is not None])


def _report(part: Sequence[LabelledPair], scores: NDArray[np.float64]) -> RankingScores:
    return ranking_scores(
        scores.tolist(),
        labels=[p.label for p in part],
        overall=[p.overall for p in part],
        hard=[p.hard_negative for p in part],
    )


def _line(name: str, r: RankingScores) -> str:
    return f"{name:34s} AUC {r.auc:.3f}  hard AUC {r.hard_auc:.3f}  |Pearson| {abs(r.pearson):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--semeval", type=Path, required=True, help="labelled pairs (semeval_dev.jsonl)")
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--lam", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--cache", type=Path, default=default_cache_dir(), help="evaluation embedding cache")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/learned_map_semeval.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from dedup.embedding.embed import load_encoder

    config = Config()
    pairs = read_pairs(args.semeval)
    tune, held = split_pairs(pairs)
    items = embed_cached(
        pair_articles(pairs), load_encoder(config.model), cache=args.cache, max_passage_chars=config.max_passage_chars
    )
    vectors = {item.id: item.vector for item in items}

    def ends(part: Sequence[LabelledPair]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        return np.vstack([vectors[p.id1] for p in part]), np.vstack([vectors[p.id2] for p in part])

    def fitted(part: Sequence[LabelledPair]) -> VectorMap:
        rated = [p for p in part if p.overall is not None]
        a, b = ends(rated)
        return fit_map(a, b, rating_target(rated), rank=args.rank, lam=args.lam, steps=args.steps)

    roots = components((p.id1, p.id2) for p in pairs)
    root_of = {(p.id1, p.id2): r for p, r in zip(pairs, roots, strict=True)}
    fold = [int(hashlib.sha256(root_of[(p.id1, p.id2)].encode()).hexdigest(), 16) // 2 % FOLDS for p in tune]
    out_of_fold = np.zeros(len(tune))
    for k in range(FOLDS):
        m = fitted([p for p, f in zip(tune, fold, strict=True) if f != k])
        test = [i for i, f in enumerate(fold) if f == k]
        a, b = ends([tune[i] for i in test])
        out_of_fold[test] = mapped_cosine(m, a, b)
    m = fitted(tune)
    print(f"map rank {args.rank}, lam {args.lam}, {args.steps} steps; |V Uᵀ| = {np.linalg.norm(m.v @ m.u.T):.3f}")
    record: dict[str, object] = {
        "params": {"rank": args.rank, "lam": args.lam, "steps": args.steps, "model": config.model},
        "commit": source_commit(),
        "machine": machine_info(),
    }
    for name, part, mapped in (("tune (out of fold)", tune, out_of_fold), ("held", held, mapped_cosine(m, *ends(held)))):
        a, b = ends(part)
        for system, scores in (("centred cosine", (a.astype(np.float64) * b).sum(axis=1)), ("mapped cosine", mapped)):
            r = _report(part, scores)
            print(_line(f"{name}: {system}", r))
            record[f"{name}: {system}"] = {"auc": r.auc, "hard_auc": r.hard_auc, "pearson": r.pearson, "pairs": r.pairs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
