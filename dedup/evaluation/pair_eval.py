"""Evaluation on labelled pairs: the detector's score beside three baseline similarities.

Every pair of a pairs file (:mod:`dedup.evaluation.pairs`) is scored by four systems:

* ``dedup``: the detector's final score (:meth:`dedup.detect.detector.Detector.compare`,
  i.e. :meth:`dedup.verify.Verifier.decide`);
* ``centred``: dedup's own article cosine (language-centred vectors), where the score starts from;
* ``cosine``: the plain article cosine of the same model (the passages' mean, uncentred);
* ``tfidf``: cosine of TF-IDF vectors over character 3-5 grams (scikit-learn).

Each distinct article is embedded once, through the evaluation's embedding cache. Pairs
are split into a tune and a held part by connected component (:func:`split_pairs`);
nothing is tuned here, both parts are reported, the held part is the one to quote.
Per part and per language pair: ROC-AUC, hard-negative AUC, Pearson and Spearman with
``overall``, best F1 and its threshold, and the detector's calibration error
(:func:`dedup.evaluation.ranking.ranking_scores`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from dedup import __version__
from dedup.config import Config
from dedup.embedding.embed import Encoder, pool
from dedup.errors import InputError
from dedup.evaluation.baselines import tfidf_similarities
from dedup.evaluation.harness import embed_items, source_commit
from dedup.evaluation.machine import machine_info
from dedup.evaluation.pairs import LabelledPair, pair_articles, read_pairs, split_pairs
from dedup.evaluation.ranking import ranking_scores
from dedup.evaluation.results import PAIR_SYSTEM_NAMES, PAIR_SYSTEMS
from dedup.types import EmbeddedArticle
from dedup.verify import Verifier

__all__ = ["evaluate_pairs", "part_report", "score_pairs"]

logger = logging.getLogger(__name__)


SPLIT_RULE = "by connected component of the article graph: held = components whose representative's sha256 is odd"


def score_pairs(
    pairs: Sequence[LabelledPair], items: Sequence[EmbeddedArticle], config: Config, verifier: Verifier
) -> dict[str, list[float]]:
    """Each system's score of each pair; ``items`` hold every article of the pairs (any order)."""
    index = {item.id: k for k, item in enumerate(items)}
    missing = sorted({i for p in pairs for i in (p.id1, p.id2)} - index.keys())
    if missing:
        raise ValueError(f"no embedded article for ids {missing[:5]}")
    plain = np.vstack([pool(i.passages, i.passage_vectors) for i in items]).astype(np.float32)
    tfidf = tfidf_similarities([i.article for i in items])
    out: dict[str, list[float]] = {s: [] for s in PAIR_SYSTEMS}
    for p in pairs:
        a, b = index[p.id1], index[p.id2]
        match = verifier.decide(items[a], items[b], config)
        out["dedup"].append(float(match.score))
        out["centred"].append(float(match.evidence.article_similarity))
        out["cosine"].append(float(plain[a] @ plain[b]))
        out["tfidf"].append(float(tfidf[a, b]))
    return out


def part_report(pairs: Sequence[LabelledPair], scores: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """Per system: the scores on all ``pairs`` (``"all"``) and per language pair (``"by_lang_pair"``)."""
    groups: dict[str, list[int]] = {}
    for k, p in enumerate(pairs):
        groups.setdefault(p.lang_pair, []).append(k)
    out: dict[str, dict[str, Any]] = {}
    for system in PAIR_SYSTEMS:

        def measure(keep: Sequence[int], system: str = system) -> dict[str, Any]:
            return ranking_scores(
                [scores[system][k] for k in keep],
                labels=[pairs[k].label for k in keep],
                overall=[pairs[k].overall for k in keep],
                hard=[pairs[k].hard_negative for k in keep],
                probability=system == "dedup",
            ).to_dict()

        out[system] = {
            "all": measure(range(len(pairs))),
            "by_lang_pair": {lang: measure(keep) for lang, keep in sorted(groups.items())},
        }
    return out


def evaluate_pairs(
    path: Path,
    *,
    config: Config | None = None,
    encoder: Encoder | None = None,
    verifier: Verifier | None = None,
    cache: Path | None = None,
    embedded: Sequence[EmbeddedArticle] | None = None,
    langs: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Score the detector and the baselines on a labelled pairs file; returns the JSON-ready record.

    Args:
        path: JSONL of labelled pairs (see :func:`dedup.evaluation.pairs.read_pairs`).
        config: Detector settings (default: :class:`Config`).
        encoder: The model (default: ``config.model``).
        verifier: The verifier (default: the shipped one).
        cache: Embedding cache folder (``None``: no cache).
        embedded: The file's distinct articles (:func:`dedup.evaluation.pairs.pair_articles`),
            embedded already, in order; ``encoder`` then only names the model.
        langs: Keep only pairs whose two languages are both in ``langs`` (default: all).

    Raises:
        InputError: On a bad line of the file (naming it), or when no pair is in ``langs``.

    """
    config = config or Config()
    verifier = verifier or Verifier.default()
    started = time.perf_counter()
    pairs = read_pairs(path)
    if langs is not None:
        pairs = [p for p in pairs if p.lang1 in set(langs) and p.lang2 in set(langs)]
        if not pairs:
            raise InputError(f"no pair with both languages in {sorted(langs)}", source=str(path))
    articles = pair_articles(pairs)
    items, model_name = embed_items(path, articles, config, encoder, cache, embedded)
    timings = {"read_and_embed_s": round(time.perf_counter() - started, 1)}
    t0 = time.perf_counter()
    tune, held = split_pairs(pairs)
    parts = {"tune": tune, "held": held}
    systems: dict[str, dict[str, Any]] = {s: {"name": PAIR_SYSTEM_NAMES[s]} for s in PAIR_SYSTEMS}
    for name, part in parts.items():
        if not part:
            continue
        for system, report in part_report(part, score_pairs(part, items, config, verifier)).items():
            systems[system][name] = report
    timings["score_s"] = round(time.perf_counter() - t0, 1)
    logger.info("%s: %d pairs (%d articles) scored in %.1f s", path.name, len(pairs), len(articles), timings["score_s"])
    return {
        "benchmark": "eval_pairs",
        "dataset": path.stem,
        "data_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "dedup": __version__,
        "commit": source_commit(),
        "machine": machine_info(),
        "model": model_name,
        "verifier": verifier.source,
        "config": asdict(config),
        "split": {"rule": SPLIT_RULE, **{name: _describe(part) for name, part in parts.items()}},
        "systems": systems,
        "timings": {**timings, "total_s": round(time.perf_counter() - started, 1)},
    }


def _describe(part: Sequence[LabelledPair]) -> dict[str, int]:
    return {
        "pairs": len(part),
        "articles": len({i for p in part for i in (p.id1, p.id2)}),
        "positives": sum(p.label == 1 for p in part),
        "negatives": sum(p.label == 0 for p in part),
        "hard_negatives": sum(p.label == 0 and p.hard_negative for p in part),
    }
