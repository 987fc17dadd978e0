"""Detection quality on the development data: the detector beside two baselines.

Runs :func:`dedup.evaluation.harness.evaluate` (the same code as ``dedup eval``) on each labelled
data set, writes ``benchmarks/results/eval_<data>.json`` and ``eval_<data>_pr.png``, and
prints the markdown table that the README shows.

Data are read from ``--data`` (default ``../shared/data`` beside the repository) and never
copied into the repository: only aggregate figures are written.

A set whose records are labelled pairs (``semeval_dev``: id1, id2, text1, text2, ...) is
scored by :func:`dedup.evaluation.pair_eval.evaluate_pairs` (ROC-AUC, hard-negative AUC,
correlation with ``overall``, best F1, ECE, per language pair) and printed in its own tables.

Run: ``python -m benchmarks.eval [--data DIR] [--sets seeds,og2021_dev,ntrex_dev,semeval_dev] [--model M]``
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from dedup.config import Config
from dedup.evaluation.data import default_cache_dir
from dedup.evaluation.harness import evaluate
from dedup.evaluation.pair_eval import evaluate_pairs
from dedup.evaluation.pairs import is_pairs_file
from dedup.evaluation.report import markdown_table, pairs_lang_table, pairs_table, threshold_table, write_record

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--sets", default="seeds,og2021_dev,ntrex_dev,semeval_dev")
    parser.add_argument("--model", default=Config().model)
    parser.add_argument("--cache", type=Path, default=default_cache_dir())
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--ntrex-langs", help="NTREX: only these languages (comma-separated ISO codes; default all 21)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = Config(model=args.model)
    records, pair_records = [], []
    for name in args.sets.split(","):
        path = args.data / f"{name}.jsonl"
        if is_pairs_file(path):
            pair_records.append(evaluate_pairs(path, config=config, cache=args.cache))
            write_record(pair_records[-1], args.out)
            continue
        langs = args.ntrex_langs.split(",") if args.ntrex_langs and name.startswith("ntrex") else None
        record = evaluate(path, config=config, cache=args.cache, langs=langs)
        write_record(record, args.out)
        records.append(record)
    if records:
        print(markdown_table(records))
        print()
        print(threshold_table(records))
    for record in pair_records:
        print()
        print(pairs_table([record]))
        print()
        print(pairs_lang_table(record, "held"))


if __name__ == "__main__":
    main()
