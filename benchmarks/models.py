"""Which embedding model: mE5-small, USE-multilingual, and their combinations, on the dev data.

Every variant goes through the same harness as ``dedup eval`` (same split, same baselines,
same verifier parameters), so only the vectors change:

* ``e5``: ``dedup/multilingual-e5-small-q4`` (the default);
* ``use``: ``use-multilingual-v3`` (the ``use`` extra);
* ``concat``: both passage vectors concatenated (each unit length, then renormalised).

"One model for retrieval, the other for alignment" is not compared: a store keeps
article and passage vectors of one dimension (mE5 384, USE 512), so it would need a
store format change. The verifier is the shipped one (fitted on mE5 features) for every
variant; the ``cosine`` rows compare the models alone.

Embeddings come from the harness cache, so each model embeds each data set once.

Run: ``python -m benchmarks.models [--data DIR] [--sets seeds,og2021_dev] [--variants e5,use,concat]``
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from dedup.config import Config
from dedup.embedding.embed import USE_MODEL, load_encoder, pool
from dedup.evaluation.data import default_cache_dir, embed_cached, read_labelled
from dedup.evaluation.harness import evaluate
from dedup.evaluation.report import markdown_table
from dedup.types import EmbeddedArticle

ROOT = Path(__file__).resolve().parents[1]
E5 = Config().model
VARIANTS = ("e5", "use", "concat")


def combine(a: list[EmbeddedArticle], b: list[EmbeddedArticle], how: str) -> list[EmbeddedArticle]:
    """Articles embedded by two models, combined as ``how`` says (see the module docs)."""
    out = []
    for x, y in zip(a, b, strict=True):
        if x.passages != y.passages:
            raise ValueError(f"article {x.id}: the two embeddings have different passages")
        if how == "concat":
            passages = np.hstack([x.passage_vectors, y.passage_vectors]) / np.sqrt(2)
            out.append(EmbeddedArticle(x.article, x.passages, passages.astype(np.float32), pool(x.passages, passages)))
        else:
            raise ValueError(f"unknown combination {how!r}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--sets", default="seeds,og2021_dev")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--cache", type=Path, default=default_cache_dir())
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = Config()
    records = []
    for name in args.sets.split(","):
        path = args.data / f"{name}.jsonl"
        articles, _ = read_labelled(path)
        embedded = {
            key: embed_cached(articles, load_encoder(model), cache=args.cache, label=name)
            for key, model in (("e5", E5), ("use", USE_MODEL))
        }
        for variant in args.variants.split(","):
            if variant in ("e5", "use"):
                items = embedded[variant]
            elif variant == "concat":
                items = combine(embedded["e5"], embedded["use"], "concat")
            else:
                raise SystemExit(f"unknown variant {variant!r}; known: {VARIANTS}")
            record = evaluate(path, config=config.with_(model=variant), embedded=items, cache=None)
            record["variant"] = variant
            records.append(record)
    summary = [
        {
            "dataset": r["dataset"],
            "variant": r["variant"],
            **{
                f"{s}_{part}": {
                    "bcubed_f1": r["systems"][s][part]["clustering"]["bcubed"]["f1"],
                    "ari": r["systems"][s][part]["clustering"]["ari"],
                    "pair_best_f1": r["systems"][s][part]["pairs"]["best"]["f1"],
                    "recall@1": r["systems"][s][part]["retrieval"]["recall@1"],
                }
                for s in ("cosine", "dedup")
                for part in ("tune", "held")
                if part in r["systems"][s]
            },
        }
        for r in records
    ]
    (args.out / "models.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    for r in records:
        r["dataset"] = f"{r['dataset']} [{r['variant']}]"
    print(markdown_table(records))


if __name__ == "__main__":
    main()
