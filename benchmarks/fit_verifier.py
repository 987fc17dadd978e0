"""Refit the verifier's logistic model on the development data and write ``dedup/verifier.json``.

Data (read from ``--data``, default ``../shared/data``; never copied into the repo):

* ``ntrex_dev.jsonl``: NTREX-128 articles, each in ~20 languages (CC BY-SA 4.0). Same
  ``story`` = same article in another language. A fixed subset of documents and
  languages is used for fitting; documents whose id hashes into the held-out half are
  never used here (they are kept for reporting).
* ``og2021_dev.jsonl``: OG2021 titles with story labels (CC BY-NC-ND 4.0, internal
  evaluation only). Titles dated up to ``--og-fit-until`` are used for fitting.
* ``seeds.jsonl``: the five seed articles.

For every article, retrieval proposes its ``k`` nearest articles in the same data set
(exactly as the detector does); each (article, candidate) pair becomes one training row
with the verifier's features and the label "same story". Pairs outside the date window
are left out (the detector vetoes them before the model is consulted).

Two logistic models are fitted: the article model over ``FEATURES`` on every row, and
the title-only model over ``TITLE_FEATURES`` on the rows where both sides are titles only
(in this data: the OG2021 titles). The title-only model is fitted on standardised
features (so that its regularisation treats them alike) and written in raw units.

Run: ``python -m benchmarks.fit_verifier [--data DIR] [--out dedup/verifier.json]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dedup.config import Config
from dedup.embedding.embed import load_encoder
from dedup.evaluation.data import default_cache_dir, embed_cached
from dedup.io import read_articles
from dedup.search.index import VectorIndex
from dedup.types import Article, EmbeddedArticle
from dedup.verify import FEATURES, TITLE_FEATURES, both_titles, compare, features, title_features

logger = logging.getLogger("benchmarks.fit_verifier")

NTREX_LANGS = ("src", "fra", "deu", "spa", "rus", "CN", "vie", "arb")


def held_out(story: str) -> bool:
    """Stories whose id hashes odd are held out from every fit (kept for reporting).

    The same rule as :func:`dedup.evaluation.data.held_out_story`, which ``dedup eval`` uses.
    """
    return int(hashlib.sha256(story.encode()).hexdigest(), 16) % 2 == 1


def load_sets(data: Path, ntrex_docs: int, og_until: str) -> dict[str, tuple[list[Article], list[str]]]:
    """The fitting subsets, each as (articles, story labels)."""
    sets: dict[str, tuple[list[Article], list[str]]] = {}
    arts = read_articles([data / "ntrex_dev.jsonl"], detect_lang=False).articles
    stories = [str(a.extra["story"]) for a in arts]
    docs = sorted({s for s in stories if not held_out(s)})[:ntrex_docs]
    keep = [i for i, a in enumerate(arts) if stories[i] in docs and a.id.rsplit("-", 1)[-1] in NTREX_LANGS]
    sets["ntrex"] = ([arts[i] for i in keep], [stories[i] for i in keep])
    arts = read_articles([data / "og2021_dev.jsonl"], detect_lang=False).articles
    keep = [i for i, a in enumerate(arts) if a.date is not None and str(a.date) <= og_until]
    sets["og2021"] = ([arts[i] for i in keep], [str(arts[i].extra["story"]) for i in keep])
    arts = read_articles([data / "seeds.jsonl"], detect_lang=False).articles
    sets["seeds"] = (list(arts), [str(a.extra["story"]) for a in arts])
    return sets


def pair_rows(
    items: list[EmbeddedArticle], labels: list[str], config: Config, k: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Feature rows (``FEATURES``, ``TITLE_FEATURES``) and labels of every (article, retrieved candidate) pair, each once.

    Rows of pairs that are not two titles (see :func:`dedup.verify.both_titles`) have NaN title features.
    """
    index = VectorIndex(items[0].vector.shape[0])
    index.add(np.vstack([e.vector for e in items]))
    found = index.search(np.vstack([e.vector for e in items]), min(k + 1, len(items)))
    seen: set[tuple[int, int]] = set()
    xs: list[NDArray[np.float64]] = []
    xts: list[NDArray[np.float64]] = []
    ys: list[int] = []
    for i in range(len(items)):
        for j in found.positions[i]:
            key = (min(i, int(j)), max(i, int(j)))
            if j < 0 or key[0] == key[1] or key in seen:
                continue
            seen.add(key)
            ev = compare(items[key[0]], items[key[1]], config)
            if ev.date_gap_days is not None and ev.date_gap_days > config.max_date_gap_days:
                continue
            a, b = items[key[0]], items[key[1]]
            xs.append(features(ev, a, b, max_date_gap_days=config.max_date_gap_days))
            xts.append(
                title_features(ev, a, b, max_date_gap_days=config.max_date_gap_days)
                if both_titles(a, b)
                else np.full(len(TITLE_FEATURES), np.nan)
            )
            ys.append(int(labels[key[0]] == labels[key[1]]))
    return np.vstack(xs), np.vstack(xts), np.asarray(ys, dtype=np.int64)


def _ece(y: NDArray[np.int64], p: NDArray[np.float64], bins: int = 10) -> float:
    """Expected calibration error: mean |observed rate - mean probability| over equal-width bins, weighted by size."""
    edges = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = edges == b
        if mask.any():
            total += mask.sum() * abs(float(y[mask].mean()) - float(p[mask].mean()))
    return total / len(y)


def fit_title_model(
    x_title: NDArray[np.float64], y_all: NDArray[np.int64], groups: NDArray[np.str_], c: float
) -> dict[str, object]:
    """The title-only model's parameters (raw units) and its out-of-fold report, fitted on the rows of two titles."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import brier_score_loss, f1_score, precision_recall_fscore_support
    from sklearn.model_selection import StratifiedKFold

    rows = ~np.isnan(x_title[:, 0])
    x, y = x_title[rows], y_all[rows]
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    oof = np.zeros(len(y))
    for train, test in folds.split(z, y):
        oof[test] = LogisticRegression(C=c, max_iter=5000).fit(z[train], y[train]).predict_proba(z[test])[:, 1]
    model = LogisticRegression(C=c, max_iter=5000).fit(z, y)
    thresholds = np.round(np.linspace(0.05, 0.95, 19), 2)
    best_t = float(thresholds[int(np.argmax([f1_score(y, oof >= t) for t in thresholds]))])
    p, r, f, _ = precision_recall_fscore_support(y, oof >= best_t, average="binary", zero_division=0)
    coef = model.coef_[0] / scale
    intercept = float(model.intercept_[0]) - float(np.dot(coef, mean))
    logger.info("title-only model: %d rows (%s)", len(y), ", ".join(sorted(set(groups[rows].tolist()))))
    return {
        "features": list(TITLE_FEATURES),
        "coef": [round(float(v), 6) for v in coef],
        "intercept": round(intercept, 6),
        "fitted_on": {name: int((groups[rows] == name).sum()) for name in sorted(set(groups[rows].tolist()))},
        "out_of_fold_report_at_best_threshold": {
            "pairs": len(y),
            "positives": int(y.sum()),
            "precision": round(float(p), 4),
            "recall": round(float(r), 4),
            "f1": round(float(f), 4),
            "brier": round(float(brier_score_loss(y, oof)), 4),
            "ece": round(_ece(y, oof), 4),
        },
        "best_f1_threshold": round(best_t, 2),
    }


def main() -> None:
    """Fit and write the verifier parameters."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import brier_score_loss, f1_score, precision_recall_fscore_support
    from sklearn.model_selection import StratifiedKFold

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "dedup" / "verifier.json")
    parser.add_argument("--model", default=Config().model)
    parser.add_argument("--ntrex-docs", type=int, default=40)
    parser.add_argument("--og-fit-until", default="2021-07-20")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--cache", type=Path, default=default_cache_dir(), help="embedding cache (shared with dedup eval)")
    parser.add_argument("--C", type=float, default=1.0, help="inverse regularisation strength of the logistic model")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    config = Config(model=args.model)
    encoder = load_encoder(config.model)
    sets = load_sets(args.data, args.ntrex_docs, args.og_fit_until)
    xs, xts, ys, groups = [], [], [], []
    for name, (arts, labels) in sets.items():
        started = time.perf_counter()
        label = {"ntrex": "ntrex_dev", "og2021": "og2021_dev"}.get(name, name)
        items = embed_cached(
            arts, encoder, cache=args.cache, label=label, max_passage_chars=config.max_passage_chars, batch_size=config.batch_size
        )
        x, xt, y = pair_rows(items, labels, config, args.k)
        logger.info(
            "%s: %d articles, %d pairs (%d positive), %.0f s", name, len(arts), len(y), y.sum(), time.perf_counter() - started
        )
        xs.append(x)
        xts.append(xt)
        ys.append(y)
        groups += [name] * len(y)
    x_all, y_all = np.vstack(xs), np.concatenate(ys)
    # Each data set weighs the same in the fit, whatever its number of pairs.
    group_arr = np.asarray(groups)
    weights = np.ones(len(y_all))
    for name in sets:
        mask = group_arr == name
        weights[mask] = len(y_all) / (len(sets) * mask.sum())
    model = LogisticRegression(C=args.C, max_iter=5000)
    # Out-of-fold probabilities (5 folds, stratified): the threshold and the calibration
    # report are judged on pairs the model did not see.
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    oof = np.zeros(len(y_all))
    for train, test in folds.split(x_all, y_all * 10 + np.unique(group_arr, return_inverse=True)[1]):
        fold = LogisticRegression(C=args.C, max_iter=5000).fit(x_all[train], y_all[train], sample_weight=weights[train])
        oof[test] = fold.predict_proba(x_all[test])[:, 1]
    model.fit(x_all, y_all, sample_weight=weights)
    thresholds = np.round(np.linspace(0.05, 0.95, 19), 2)
    f1s = [f1_score(y_all, oof >= t, sample_weight=weights) for t in thresholds]
    best_t = float(thresholds[int(np.argmax(f1s))])
    report = {}
    for name in sets:
        mask = group_arr == name
        p, r, f, _ = precision_recall_fscore_support(y_all[mask], oof[mask] >= best_t, average="binary", zero_division=0)
        report[name] = {
            "pairs": int(mask.sum()),
            "positives": int(y_all[mask].sum()),
            "precision": round(float(p), 4),
            "recall": round(float(r), 4),
            "f1": round(float(f), 4),
            "brier": round(float(brier_score_loss(y_all[mask], oof[mask])), 4),
            "ece": round(_ece(y_all[mask], oof[mask]), 4),
        }
    title = fit_title_model(np.vstack(xts), y_all, group_arr, args.C)
    out = {
        "features": list(FEATURES),
        "coef": [round(float(c), 6) for c in model.coef_[0]],
        "intercept": round(float(model.intercept_[0]), 6),
        "source": f"benchmarks/fit_verifier.py, model {config.model}, k={args.k}, C={args.C}, "
        f"ntrex {args.ntrex_docs} docs x {len(NTREX_LANGS)} langs, og2021 <= {args.og_fit_until}, seeds",
        "out_of_fold_report_at_best_threshold": report,
        "best_f1_threshold": round(best_t, 2),
        "title_only": title,
    }
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    logger.info("%s", json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
