r"""Fit the verifier (monotone boosted trees + calibration) on every kind of duplicate and write ``dedup/verifier.json``.

Every data file is given on the command line (nothing defaults to a data folder):

    python -m benchmarks.fit_verifier --semeval DATA/semeval_dev.jsonl --ntrex DATA/ntrex_dev.jsonl \
        --og2021 DATA/og2021_dev.jsonl --seeds DATA/seeds.jsonl [--out dedup/verifier.json] [--rows rows.npz]

Rows come from :mod:`benchmarks.verifier_rows`. First the learned map of the article
vectors (:func:`fit_vector_map`, :mod:`benchmarks.learned_map`; :data:`MAP_PARAMS`) is fitted
on the rated SemEval tune pairs and fills in every row's ``mapped_similarity`` (the tune
rows cross-fitted: each by a map fitted without its fold); it is written as the
``vector_map`` entry (format 9). The model (verifier v9's article model, v7's form) has two
parts:

* a monotone base: a logistic regression on :data:`BASE` (the lead-weighted article
  cosine) with coefficients bounded at zero from below (scipy's L-BFGS-B), shipped as the
  ``linear`` term of :class:`dedup.verify.Trees`;
* scikit-learn's ``HistGradientBoostingClassifier`` with monotone constraints
  (:data:`dedup.verify_features.MONOTONE`: the article cosine and every similarity may only
  raise the score, conflicts only lower it), boosted *on top of* the base: its log-loss
  (:class:`OffsetBinomial`) adds the base's log-odds to the trees' raw score, as an
  ``init_score`` would (scikit-learn's histogram boosting has none).

With ``--titles FILE``, title pairs (``title_only`` = 1: one side a title or a one-line
text) are scored by ``FILE``'s model, written as the ``titles`` entry (format 8), and the
fitted model scores the rest. The shipped parameters keep verifier v6 for titles this way:
v7 ranks every source's pairs better out of fold but clusters the OG2021 held days worse
(B³ 0.680 / ARI 0.471 against 0.689 / 0.526), so the title regime keeps the model that
clusters it best. Title rows are still in the fit (OG2021 regularises the article model:
without them the SemEval held AUC falls from 0.908 to 0.896). The reports then show the
title model's scores for titles, which it was fitted on (in sample, not out of fold).

Each source weighs the same in the fit, however many rows it has. A Platt calibration of
the output is fitted on out-of-fold scores and kept when it lowers the expected
calibration error. The model is written as JSON and evaluated with numpy by
:class:`dedup.verify.Trees` (checked here against scikit-learn).

Printed, all out of fold (folds by story, or by component of the SemEval article graph;
the SemEval held part, the seeds and the template pairs are scored by the final model,
never trained on): per source, the verifier's and the centred cosine's ROC-AUC and
|Pearson|, the SemEval hard-negative AUC, NTREX recall@1, the expected calibration error,
and, with NTREX languages left out of the fit four groups at a time, the share of
translations in an unseen language called duplicates.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sklearn._loss.loss import HalfBinomialLoss

from benchmarks.learned_map import fit_map, mapped_cosine
from benchmarks.verifier_rows import Rows, ntrex_rows, og2021_rows, seeds_rows, semeval_rows, template_rows
from dedup.config import Config
from dedup.embedding.embed import load_encoder
from dedup.evaluation.data import default_cache_dir, embed_cached
from dedup.types import Article, EmbeddedArticle
from dedup.verify import FORMAT, VETO_SCALE, Trees, Verifier, conflict_veto
from dedup.verify_features import FEATURES, MONOTONE, VectorMap

logger = logging.getLogger("benchmarks.fit_verifier")

FOLDS = 5
#: The sources the model may be fitted on (those named in ``--weights`` are).
TRAINABLE = ("semeval", "ntrex", "og2021", "seeds")
TRAINED: tuple[str, ...] = ("semeval", "ntrex", "og2021")
PARAMS = {"max_depth": 3, "learning_rate": 0.05, "max_iter": 150, "min_samples_leaf": 20, "l2_regularization": 1.0}
#: The features of the monotone linear base the trees are fitted on top of.
BASE = ("lead_weighted_similarity",)
#: The learned map of the article vectors (:func:`benchmarks.learned_map.fit_map`).
MAP_PARAMS = {"rank": 32, "lam": 1.0, "steps": 300}
_MAPPED = FEATURES.index("mapped_similarity")
_ROW_FIELDS = ("x", "y", "group1", "group2", "kind", "lang", "overall", "hard", "identical", "va", "vb")


def _fold(source: str, group: str) -> int:
    import hashlib

    return int(hashlib.sha256(f"{source}:{group}".encode()).hexdigest(), 16) % FOLDS


class OffsetBinomial(HalfBinomialLoss):  # type: ignore[misc]
    """The binomial log-loss of ``offset + raw``: boosting starts from a fixed per-row log-odds (the base)."""

    def __init__(self, offset: NDArray[np.float64]) -> None:
        super().__init__(sample_weight=None)
        self.offset = offset

    def _shifted(self, raw: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.ascontiguousarray(raw.reshape(-1) + self.offset)

    def gradient_hessian(
        self,
        y_true: NDArray[np.float64],
        raw_prediction: NDArray[np.float64],
        sample_weight: NDArray[np.float64] | None = None,
        gradient_out: NDArray[np.float64] | None = None,
        hessian_out: NDArray[np.float64] | None = None,
        n_threads: int = 1,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Gradient and hessian at ``offset + raw_prediction``."""
        return super().gradient_hessian(  # type: ignore[no-any-return]
            y_true, self._shifted(raw_prediction), sample_weight, gradient_out, hessian_out, n_threads
        )

    def fit_intercept_only(self, y_true: NDArray[np.float64], sample_weight: NDArray[np.float64] | None = None) -> object:
        """The constant that minimises the loss given the offset (Newton steps)."""
        w = np.ones_like(y_true) if sample_weight is None else sample_weight
        b = 0.0
        for _ in range(30):
            p = 1.0 / (1.0 + np.exp(-(self.offset + b)))
            b += float((w * (y_true - p)).sum() / max(float((w * p * (1 - p)).sum()), 1e-12))
        return np.asarray([b])


def fit_vector_map(rows: dict[str, Rows], model: str) -> VectorMap:
    """The map fitted on the rated SemEval tune pairs; every row's ``mapped_similarity`` filled in.

    Each SemEval tune row gets its cosine under a map fitted without its fold (the folds
    of :func:`out_of_fold`), so the trees learn what the map does on pairs it has not
    seen; every other row (SemEval held, NTREX, OG2021, the seeds) gets the full map's.
    """
    s = rows["semeval"]
    rated = (s.kind == "tune") & ~np.isnan(s.overall)
    target = 1.0 - (s.overall - 1.0) / 3.0
    full = fit_map(s.va[rated], s.vb[rated], target[rated], models=(model,), **MAP_PARAMS)  # type: ignore[arg-type]
    for r in rows.values():
        if len(r.y):
            r.x[:, _MAPPED] = mapped_cosine(full, r.va, r.vb)
    folds = np.array([_fold("semeval", g) for g in s.group1])
    for k in range(FOLDS):
        part = rated & (folds != k)
        fold_map = fit_map(s.va[part], s.vb[part], target[part], models=(model,), **MAP_PARAMS)  # type: ignore[arg-type]
        test = (s.kind == "tune") & (folds == k)
        s.x[test, _MAPPED] = mapped_cosine(fold_map, s.va[test], s.vb[test])
    return full


def fit_base(x: NDArray[np.float64], y: NDArray[np.float64], w: NDArray[np.float64]) -> tuple[NDArray[np.float64], float]:
    """The monotone base: a weighted logistic regression on :data:`BASE`, coefficients >= 0 (NaN read as 0).

    Returns:
        One coefficient per feature of :data:`FEATURES` (0 outside :data:`BASE`) and the intercept.

    """
    from scipy.optimize import minimize

    cols = [FEATURES.index(name) for name in BASE]
    xb = np.nan_to_num(x[:, cols], nan=0.0)
    share = w / w.sum()

    def loss(theta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        p = 1.0 / (1.0 + np.exp(-(xb @ theta[:-1] + theta[-1])))
        value = -float((share * (y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12))).sum())
        grad = share * (p - y)
        return value + 1e-3 * float(theta[:-1] @ theta[:-1]), np.append(xb.T @ grad + 2e-3 * theta[:-1], grad.sum())

    bounds = [(0.0, None)] * len(cols) + [(None, None)]
    theta = minimize(loss, np.zeros(len(cols) + 1), jac=True, method="L-BFGS-B", bounds=bounds).x
    linear = np.zeros(len(FEATURES))
    linear[cols] = theta[:-1]
    return linear, float(theta[-1])


class Stacked:
    """The base's log-odds plus the trees fitted on top of it (what :class:`dedup.verify.Trees` evaluates)."""

    def __init__(self, linear: NDArray[np.float64], intercept: float, trees: object) -> None:
        self.linear, self.intercept, self.trees = linear, intercept, trees

    def base(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """The base's log-odds of rows ``x``."""
        out: NDArray[np.float64] = np.nan_to_num(x, nan=0.0) @ self.linear + self.intercept
        return out

    def decision_function(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """The raw (log-odds) score of rows ``x``."""
        return self.base(x) + self.trees.decision_function(x)  # type: ignore[attr-defined,no-any-return]


def make_model(offset: NDArray[np.float64]) -> object:
    """The untrained trees (monotone constraints from :data:`MONOTONE`), boosted from ``offset``."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    cst = [MONOTONE.get(name, 0) for name in FEATURES]
    return HistGradientBoostingClassifier(
        loss=OffsetBinomial(offset),
        monotonic_cst=cst,
        random_state=0,
        early_stopping=False,  # the offset is per training row: no validation split
        **PARAMS,  # type: ignore[arg-type]
    )


def training_set(
    rows: dict[str, Rows], masks: dict[str, NDArray[np.bool_]], weights: dict[str, float]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Stacked rows, labels and weights: each source's rows weigh ``weights[source]`` in total."""
    xs, ys, ws = [], [], []
    for name, mask in masks.items():
        r = rows[name]
        keep = mask & r.trainable & ~r.identical
        if not keep.any():
            continue
        y = r.y[keep]
        # Within a source, positives and negatives weigh the same (NTREX neighbours are nearly all positives).
        w = np.where(y == 1, 0.5 / max((y == 1).sum(), 1), 0.5 / max((y == 0).sum(), 1)) * weights.get(name, 1.0)
        xs.append(r.x[keep])
        ys.append(y)
        ws.append(w)
    w_all = np.concatenate(ws)
    return np.vstack(xs), np.concatenate(ys), w_all * len(w_all) / w_all.sum()


def fit(rows: dict[str, Rows], masks: dict[str, NDArray[np.bool_]], weights: dict[str, float]) -> Stacked:
    """The base, and the trees on top of it, fitted on the masked trainable rows."""
    x, y, w = training_set(rows, masks, weights)
    linear, intercept = fit_base(x, y, w)
    stacked = Stacked(linear, intercept, None)
    trees = make_model(stacked.base(x))
    trees.fit(x, y, sample_weight=w)  # type: ignore[attr-defined]
    stacked.trees = trees
    return stacked


def out_of_fold(rows: dict[str, Rows], weights: dict[str, float]) -> dict[str, NDArray[np.float64]]:
    """Raw (log-odds) scores of every row by a model that did not see its story/component; the rest by the full model."""
    out = {name: np.full(len(r.y), np.nan) for name, r in rows.items()}
    folds = {
        name: (np.array([_fold(name, g) for g in r.group1]), np.array([_fold(name, g) for g in r.group2]))
        for name, r in rows.items()
    }
    for k in range(FOLDS):
        masks = {n: (folds[n][0] != k) & (folds[n][1] != k) for n in TRAINED if n in rows}
        model = fit(rows, masks, weights)
        for name in TRAINED:
            if name not in rows:
                continue
            r = rows[name]
            test = ((folds[name][0] == k) | (folds[name][1] == k)) & r.trainable & np.isnan(out[name])
            if test.any():
                out[name][test] = model.decision_function(r.x[test])  # type: ignore[attr-defined]
    full = fit(rows, {n: np.ones(len(rows[n].y), dtype=bool) for n in TRAINED if n in rows}, weights)
    for name, r in rows.items():
        rest = np.isnan(out[name])
        if rest.any():
            out[name][rest] = full.decision_function(r.x[rest])  # type: ignore[attr-defined]
    return out


def unseen_languages(rows: dict[str, Rows], weights: dict[str, float], groups: int = 4) -> dict[str, NDArray[np.float64]]:
    """NTREX raw scores with the row's non-English language left out of the fit (languages in ``groups`` groups)."""
    r = rows["ntrex"]
    langs = sorted(set(r.lang.tolist()) - {"src"})
    out = np.full(len(r.y), np.nan)
    for g in range(groups):
        left_out = set(langs[g::groups])
        masks = {n: np.ones(len(rows[n].y), dtype=bool) for n in TRAINED if n in rows}
        masks["ntrex"] = ~np.isin(r.lang, list(left_out))
        model = fit(rows, masks, weights)
        test = ~masks["ntrex"]
        out[test] = model.decision_function(r.x[test])  # type: ignore[attr-defined]
    return {"ntrex": out}


def export_trees(model: Stacked) -> dict[str, object]:
    """The fitted model as JSON-ready lists (the format :meth:`dedup.verify.Trees.from_dict` reads)."""
    trees = []
    for (predictor,) in model.trees._predictors:  # type: ignore[attr-defined]
        nodes = predictor.nodes
        trees.append(
            {
                "feature": [int(v) for v in nodes["feature_idx"]],
                "threshold": [float(v) for v in nodes["num_threshold"]],
                "missing_left": [bool(v) for v in nodes["missing_go_to_left"]],
                "left": [int(v) for v in nodes["left"]],
                "right": [int(v) for v in nodes["right"]],
                "value": [float(v) if leaf else 0.0 for v, leaf in zip(nodes["value"], nodes["is_leaf"], strict=True)],
                "leaf": [bool(v) for v in nodes["is_leaf"]],
            }
        )
    baseline = float(np.ravel(model.trees._baseline_prediction)[0]) + model.intercept  # type: ignore[attr-defined]
    return {
        "kind": "monotone linear base + gradient-boosted trees on top (log-odds)",
        "baseline": baseline,
        "linear": [float(v) for v in model.linear],
        "trees": trees,
    }


def ece(y: NDArray[np.float64], p: NDArray[np.float64], bins: int = 10) -> float:
    """Expected calibration error: mean |observed rate - mean score| over equal-width bins, weighted by size."""
    edges = np.minimum((p * bins).astype(int), bins - 1)
    total = sum(
        abs(float(y[edges == b].mean()) - float(p[edges == b].mean())) * (edges == b).sum()
        for b in range(bins)
        if (edges == b).any()
    )
    return float(total / max(len(y), 1))


def platt(raw: dict[str, NDArray[np.float64]], rows: dict[str, Rows], weights: dict[str, float]) -> tuple[float, float]:
    """Slope and intercept of a logistic map of the out-of-fold raw scores (each trained source weighing the same)."""
    from sklearn.linear_model import LogisticRegression

    zs, ys, ws = [], [], []
    for name in TRAINED:
        r = rows[name]
        keep = r.trainable & ~r.identical
        zs.append(raw[name][keep])
        ys.append(r.y[keep])
        ws.append(np.full(keep.sum(), weights.get(name, 1.0) / max(keep.sum(), 1)))
    w = np.concatenate(ws)
    lr = LogisticRegression(C=100.0).fit(np.concatenate(zs)[:, None], np.concatenate(ys), sample_weight=w * len(w) / w.sum())
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def _auc(y: NDArray[np.float64], s: NDArray[np.float64]) -> float:
    from sklearn.metrics import roc_auc_score

    ok = ~np.isnan(y)
    return float(roc_auc_score(y[ok], s[ok])) if 0 < np.nansum(y) < ok.sum() else float("nan")


def _pearson(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    ok = ~np.isnan(a) & ~np.isnan(b)
    return float(abs(np.corrcoef(a[ok], b[ok])[0, 1])) if ok.sum() > 2 else float("nan")


def recall_rows(r: Rows, score: NDArray[np.float64], threshold: float) -> tuple[float, float, dict[str, float]]:
    """NTREX recall@1, the share of true translations scored >= ``threshold``, and that share per language."""
    r1 = np.char.startswith(r.kind.astype(str), "r1:")
    hits, called, per_lang = [], [], {}
    for q in np.unique(r.kind[r1]):
        m = r.kind == q
        hits.append(r.y[m][np.argmax(score[m])])
        true = m & (r.y == 1)
        if true.any():
            called.append((float(score[true].max() >= threshold), str(r.lang[m][0])))
    for lang in sorted({lang for _, lang in called}):
        per_lang[lang] = float(np.mean([c for c, la in called if la == lang]))
    return float(np.mean(hits)), float(np.mean([c for c, _ in called])), per_lang


def report(rows: dict[str, Rows], scores: dict[str, NDArray[np.float64]], threshold: float) -> dict[str, dict[str, object]]:
    """Per source: the verifier against the centred cosine, out of fold (see the module docstring)."""
    out: dict[str, dict[str, object]] = {}
    cos_ix = FEATURES.index("article_similarity")
    for name, r in rows.items():
        s = np.where(r.identical, 1.0, scores[name])
        cos = r.x[:, cos_ix]
        parts = {"held": r.kind == "held"} if name == "semeval" else {}
        parts["all" if name != "semeval" else "tune"] = r.kind != "held" if name == "semeval" else np.ones(len(r.y), dtype=bool)
        if name == "ntrex":
            parts = {"knn": r.kind == "knn", "r1": np.char.startswith(r.kind.astype(str), "r1:")}
        if name == "og2021":
            parts["late (eval)"] = r.kind == "eval"
        for part, m in parts.items():
            lab = m & ~np.isnan(r.y)
            entry: dict[str, object] = {"pairs": int(m.sum()), "positives": int(np.nansum(r.y[m]))}
            if lab.any() and 0 < r.y[lab].sum() < lab.sum():
                entry.update(auc=_auc(r.y[lab], s[lab]), auc_cosine=_auc(r.y[lab], cos[lab]))
                entry.update(pearson=_pearson(r.y[lab], s[lab]), pearson_cosine=_pearson(r.y[lab], cos[lab]))
                entry["ece"] = ece(r.y[lab], s[lab])
            if name == "semeval":
                hard = m & ((r.y == 1) | r.hard)
                entry.update(hard_auc=_auc(r.y[hard], s[hard]), hard_auc_cosine=_auc(r.y[hard], cos[hard]))
                entry.update(
                    overall_pearson=_pearson(r.overall[lab], s[lab]), overall_pearson_cosine=_pearson(r.overall[lab], cos[lab])
                )
            if name == "seeds" or name == "template":
                entry["scores"] = [round(float(v), 3) for v in s[m]]
                entry["labels"] = [None if np.isnan(v) else int(v) for v in r.y[m]]
            out[f"{name} {part}"] = entry
        if name == "ntrex":
            r1, called, _ = recall_rows(r, s, threshold)
            out["ntrex r1"].update(recall_at_1=r1, called_duplicate=called)
    return {k: {kk: round(v, 4) if isinstance(v, float) else v for kk, v in e.items()} for k, e in out.items()}


def build_rows(args: argparse.Namespace, config: Config) -> dict[str, Rows]:
    """Every source's rows (from ``--rows`` when that file exists; written there otherwise)."""
    if args.rows is not None and args.rows.exists():
        data = np.load(args.rows, allow_pickle=False)
        names = sorted({k.split("/")[0] for k in data.files})
        if any(f"{n}/va" not in data.files for n in names):
            raise SystemExit(f"{args.rows}: rows without article vectors (written before verifier v9): delete it")
        return {n: Rows(n, *(data[f"{n}/{f}"] for f in _ROW_FIELDS)) for n in names}
    encoder = load_encoder(config.model)

    def embed(arts: Sequence[Article], label: str) -> list[EmbeddedArticle]:
        return embed_cached(arts, encoder, cache=args.cache, label=label, max_passage_chars=config.max_passage_chars)

    makers = {
        "semeval": lambda: semeval_rows(args.semeval, embed, config),
        "ntrex": lambda: ntrex_rows(args.ntrex, embed, config, args.k),
        "og2021": lambda: og2021_rows(args.og2021, embed, config, args.k, args.og_fit_until),
        "seeds": lambda: seeds_rows(args.seeds, embed, config),
        "template": lambda: template_rows(embed, config),
    }
    rows = {}
    for name, make in makers.items():
        started = time.perf_counter()
        rows[name] = make()
        logger.info(
            "%s: %d rows (%d positive) in %.0f s", name, len(rows[name].y), np.nansum(rows[name].y), time.perf_counter() - started
        )
    if args.rows is not None:
        np.savez(args.rows, **{f"{n}/{f}": getattr(r, f) for n, r in rows.items() for f in _ROW_FIELDS})
    return rows


def parse_args() -> argparse.Namespace:
    """The command line (every data path is required)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("semeval", "ntrex", "og2021", "seeds"):
        parser.add_argument(f"--{name}", type=Path, required=True, help=f"the {name} dev file (JSONL)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "dedup" / "verifier.json")
    parser.add_argument(
        "--rows", type=Path, default=None, help="feature rows cache (.npz; derived data, keep it out of the repo)"
    )
    parser.add_argument("--cache", type=Path, default=default_cache_dir(), help="embedding cache (shared with dedup eval)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="threads of the tree fitting")
    parser.add_argument("--og-fit-until", default="2021-07-20")
    parser.add_argument(
        "--weights",
        default="semeval=1,ntrex=1,og2021=2,seeds=0.25",
        help="total weight of each trained source (others: evaluation only)",
    )
    parser.add_argument("--no-veto", action="store_true", help="report without the conflict veto (for comparison)")
    parser.add_argument(
        "--titles",
        type=Path,
        default=None,
        help="a verifier.json whose model (and calibration) scores title pairs (title_only = 1) instead of the fitted one",
    )
    return parser.parse_args()


def final_scores(
    z: NDArray[np.float64], x: NDArray[np.float64], cal: tuple[float, float], veto: bool, titles: Verifier | None = None
) -> NDArray[np.float64]:
    """Calibrated scores of raw scores ``z`` of rows ``x``, after the conflict veto (as :meth:`Verifier.scores`).

    With ``titles``, title rows (``title_only`` = 1) are scored by that model instead (the
    veto never applies to them).
    """
    p: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-(cal[0] * z + cal[1])))
    if titles is not None:
        titled = x[:, FEATURES.index("title_only")] == 1
        p[titled] = titles.scores(x[titled])
    return np.where(conflict_veto(x), VETO_SCALE * p, p) if veto else p


def title_model(path: Path) -> tuple[dict[str, object], Verifier]:
    """The ``titles`` entry of the output, taken from ``path``'s main model, and that model (for the reports)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    carried = Verifier.from_dict(data)
    if carried.titles is not None:
        raise SystemExit(f"{path}: its title model would be dropped; give a file without one")
    entry = {"model": data["model"], "calibration": data.get("calibration", {"a": 1.0, "b": 0.0})}
    return {"source": f"{path.name}: {data.get('source', '')}", **entry}, carried


def main() -> None:
    """Fit, check the numpy trees against scikit-learn, report out of fold, write the parameters."""
    from threadpoolctl import threadpool_limits

    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    titles_entry, titles = title_model(args.titles) if args.titles is not None else (None, None)
    threadpool_limits(args.threads)  # OpenMP threads fight over shared cores; one is often faster
    config = Config()
    rows = build_rows(args, config)
    vector_map = fit_vector_map(rows, config.model)
    weights = {k: float(v) for k, v in (item.split("=") for item in args.weights.split(","))}
    global TRAINED
    TRAINED = tuple(n for n in TRAINABLE if weights.get(n, 0.0) > 0)
    if "seeds" in TRAINED:  # the seed pairs are a source like the others (their folds: by article)
        rows["seeds"].kind = np.where(rows["seeds"].kind == "eval", "pair", rows["seeds"].kind)
    raw = out_of_fold(rows, weights)
    cal = platt(raw, rows, weights)
    model = fit(rows, {n: np.ones(len(rows[n].y), dtype=bool) for n in TRAINED}, weights)
    trees = export_trees(model)
    mine = Trees.from_dict(trees, len(FEATURES)).raw(rows["semeval"].x)
    gap = float(np.abs(mine - model.decision_function(rows["semeval"].x)).max())
    if gap > 1e-6:
        raise SystemExit(f"numpy trees disagree with scikit-learn by {gap}")
    reports = {}
    for label, (a, b) in (("trees", (1.0, 0.0)), ("platt", cal)):
        scores = {n: final_scores(z, rows[n].x, (a, b), not args.no_veto, titles) for n, z in raw.items()}
        reports[label] = report(rows, scores, config.threshold)
    eces = {k: float(np.mean([e.get("ece", 0.0) for n, e in reports[k].items() if n.split()[0] in TRAINED])) for k in reports}  # type: ignore[misc]
    chosen = "platt" if eces["platt"] < eces["trees"] else "trees"
    a, b = cal if chosen == "platt" else (1.0, 0.0)
    unseen = unseen_languages(rows, weights)["ntrex"]
    _, called, per_lang = recall_rows(
        rows["ntrex"], final_scores(unseen, rows["ntrex"].x, (a, b), not args.no_veto, titles), config.threshold
    )
    out = {
        "format": FORMAT,
        "features": list(FEATURES),
        "source": f"benchmarks/fit_verifier.py, model {config.model}, k={args.k}, weights {weights}, "
        f"{PARAMS}, base {list(BASE)}, calibration {chosen}",
        "calibration": {"a": round(a, 6), "b": round(b, 6)},
        "out_of_fold": reports[chosen],
        "unseen_languages_called_duplicate": {"all": round(called, 4), **{k: round(v, 4) for k, v in per_lang.items()}},
        "model": trees,
        "vector_map": {
            "models": list(vector_map.models),
            "fitted_on": f"SemEval dev tune part, the raters' overall: {vector_map.fitted_on}",
            "u": np.round(vector_map.u, 6).tolist(),
            "v": np.round(vector_map.v, 6).tolist(),
        },
    }
    if titles_entry is not None:
        out["titles"] = titles_entry
    if Verifier.from_dict(out).map_for(config.model, vector_map.dim) is None:  # refuses what it cannot read
        raise SystemExit(f"the written map would not apply to {config.model}")
    args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    for label in reports:
        logger.info("-- %s (mean ECE of trained sources %.4f)%s", label, eces[label], "  <- shipped" if label == chosen else "")
        for name, entry in reports[label].items():
            logger.info("  %-18s %s", name, json.dumps({k: v for k, v in entry.items() if k not in ("scores", "labels")}))
            if "scores" in entry:
                logger.info("  %-18s scores %s labels %s", "", entry["scores"], entry["labels"])
    logger.info(
        "unseen NTREX languages, translations called duplicates: %s", json.dumps(out["unseen_languages_called_duplicate"])
    )


if __name__ == "__main__":
    main()
