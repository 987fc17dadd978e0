"""The evaluation harness: run the detector and two baselines on labelled data, side by side.

Every run scores three systems on the same articles, with the same candidate pairs and
the same clustering:

* ``tfidf``: TF-IDF over character 3-5 grams, cosine, a threshold tuned on the tune part;
* ``cosine``: the article embedding and a cosine threshold (what semhash and most tools do);
* ``dedup``: the full pipeline (retrieval, verifier, average linkage, date window).

The data, their tune/held split and their cached vectors come from
:mod:`dedup.evaluation.data`; the baselines and the shared candidate pairs from
:mod:`dedup.evaluation.baselines`; the records from :mod:`dedup.evaluation.results`;
tables and plots from :mod:`dedup.evaluation.report`. This module only runs the systems.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import time
from collections.abc import Hashable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dedup import __version__
from dedup.clustering.batch import cluster_embedded
from dedup.config import Config
from dedup.embedding.embed import Encoder
from dedup.errors import InputError
from dedup.evaluation.baselines import Prepared, cluster_by_matrix, prepare, tune_thresholds
from dedup.evaluation.data import Split, embed_cached, read_labelled, split_parts
from dedup.evaluation.machine import machine_info
from dedup.evaluation.metrics import calibration, clustering_scores, cross_language_recall
from dedup.evaluation.results import SYSTEM_NAMES, SYSTEMS, PartReport, pair_report, true_pairs_by_lang
from dedup.types import Article, EmbeddedArticle
from dedup.verify import Verifier

__all__ = ["embed_items", "evaluate", "run_part", "source_commit"]

logger = logging.getLogger(__name__)


def _dedup_matrix(prep: Prepared) -> NDArray[np.float32]:
    """Ranking of the detector: retrieved candidates by verifier score, then the rest by its cosine."""
    ranked = prep.search.copy()
    for i, j in prep.retrieved:
        ranked[i, j] = ranked[j, i] = 2.0 + prep.verified[i, j]
    return ranked


def run_part(
    prep: Prepared,
    config: Config,
    verifier: Verifier,
    thresholds: dict[str, tuple[float, float]],
    ks: Sequence[int],
) -> dict[str, PartReport]:
    """Score every system on one prepared part; baselines use ``thresholds`` (pair, cluster)."""
    items, stories = prep.items, prep.stories
    langs = [i.article.lang for i in items]
    positives = true_pairs_by_lang(stories, langs)
    y = np.asarray([stories[i] == stories[j] for i, j in prep.pairs], dtype=bool)
    lang_pairs = ["-".join(sorted((langs[i] or "?", langs[j] or "?"))) for i, j in prep.pairs]
    out: dict[str, PartReport] = {}
    for system in SYSTEMS:
        started = time.perf_counter()
        if system == "dedup":
            scores = np.asarray([prep.verified[p] for p in prep.pairs], dtype=np.float64)
            result = cluster_embedded(items, config, verifier)
            labels: Sequence[Hashable] = [result.labels[i.id] for i in items]
            ranking = _dedup_matrix(prep)
            pair_threshold, cluster_threshold = config.threshold, config.cluster_threshold
        else:
            sims = prep.tfidf if system == "tfidf" else prep.cosine
            scores = np.asarray([sims[i, j] for i, j in prep.pairs], dtype=np.float64)
            pair_threshold, cluster_threshold = thresholds[system]
            labels = cluster_by_matrix(len(items), prep.pairs, sims, cluster_threshold)
            ranking = sims
        out[system] = PartReport(
            clustering=clustering_scores(stories, labels),
            pairs=pair_report(y, scores, lang_pairs, positives, pair_threshold),
            retrieval=cross_language_recall(ranking, stories, langs, ks),
            cluster_threshold=cluster_threshold,
            # Only the verifier's score claims to be a probability.
            calibration=calibration(list(y), list(scores)) if system == "dedup" else None,
        )
        logger.info("%s: %d articles scored in %.1f s", system, len(items), time.perf_counter() - started)
    return out


def evaluate(
    path: Path,
    *,
    config: Config | None = None,
    encoder: Encoder | None = None,
    verifier: Verifier | None = None,
    cache: Path | None = None,
    held_days: int = 4,
    ks: Sequence[int] = (1, 10),
    embedded: Sequence[EmbeddedArticle] | None = None,
    langs: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run the three systems on a labelled JSONL file; returns the JSON-ready record.

    Thresholds of the baselines are tuned on the tune part (see
    :func:`dedup.evaluation.data.split_parts`) and applied unchanged to the held part.
    The detector runs with ``config`` as given.

    Args:
        path: Labelled JSONL (``id``, ``title``, ``text``, ``date``, ``lang``, ``story``).
        config: Detector settings (default: :class:`Config`).
        encoder: The model (default: ``config.model``).
        verifier: The verifier (default: the shipped one).
        cache: Embedding cache folder (``None``: no cache).
        held_days: For dated titles-only data: days held aside at the end.
        ks: Cut-offs of recall@k.
        embedded: The file's articles, embedded already (e.g. by a combination of models,
            see ``benchmarks/models.py``); ``encoder`` then only names the model.
        langs: Keep only articles in these languages (default: all).

    Raises:
        ValueError: When ``embedded`` does not hold the file's articles in order.

    """
    config = config or Config()
    verifier = verifier or Verifier.default()
    started = time.perf_counter()
    articles, stories = read_labelled(path)
    if langs is not None:
        keep = _in_languages(articles, langs, path)
        articles, stories = [articles[i] for i in keep], [stories[i] for i in keep]
        embedded = [embedded[i] for i in keep] if embedded is not None else None
    split = split_parts(articles, stories, held_days=held_days)
    items, model_name = embed_items(path, articles, config, encoder, cache, embedded)
    timings = {"read_and_embed_s": round(time.perf_counter() - started, 1)}
    parts: dict[str, dict[str, PartReport]] = {}
    thresholds: dict[str, tuple[float, float]] = {}
    for name, positions in (("tune", split.tune), ("held", split.held)):
        if not positions:
            continue
        t0 = time.perf_counter()
        prep = prepare([items[i] for i in positions], [stories[i] for i in positions], config, verifier)
        if name == "tune":
            thresholds = tune_thresholds(prep)
        parts[name] = run_part(prep, config, verifier, thresholds, ks)
        timings[f"{name}_s"] = round(time.perf_counter() - t0, 1)
    systems = {system: {"name": SYSTEM_NAMES[system], **{p: parts[p][system].to_dict() for p in parts}} for system in SYSTEMS}
    return {
        "benchmark": "eval",
        "dataset": path.stem,
        "data_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "dedup": __version__,
        "commit": source_commit(),
        "machine": machine_info(),
        "model": model_name,
        "langs": sorted({a.lang or "?" for a in articles}),
        "verifier": verifier.source,
        "config": asdict(config),
        "split": _describe(split, stories),
        "tuned_on": "tune part: baseline pair thresholds by pair F1, cluster thresholds by B-cubed F1",
        "systems": systems,
        "timings": {**timings, "total_s": round(time.perf_counter() - started, 1)},
    }


def _in_languages(articles: Sequence[Article], langs: Sequence[str], path: Path) -> list[int]:
    """Positions of the articles in ``langs``; an error naming them when there is none."""
    keep = [i for i, a in enumerate(articles) if a.lang in set(langs)]
    if not keep:
        raise InputError(f"no article in languages {sorted(langs)}", source=str(path))
    return keep


def embed_items(
    path: Path,
    articles: Sequence[Article],
    config: Config,
    encoder: Encoder | None,
    cache: Path | None,
    embedded: Sequence[EmbeddedArticle] | None,
) -> tuple[list[EmbeddedArticle], str]:
    """The articles embedded (given, or through the cache) and the model's name."""
    from dedup.embedding.embed import load_encoder

    if embedded is not None:
        if [e.id for e in embedded] != [a.id for a in articles]:
            raise ValueError(f"the embedded articles are not those of {path}, in order")
        return list(embedded), encoder.name if encoder is not None else config.model
    encoder = encoder or load_encoder(config.model)
    items = embed_cached(
        articles, encoder, cache=cache, label=path.stem, max_passage_chars=config.max_passage_chars, batch_size=config.batch_size
    )
    return items, encoder.name


def _describe(split: Split, stories: Sequence[str]) -> dict[str, Any]:
    return {
        "rule": split.rule,
        "tune": {"articles": len(split.tune), "stories": len({stories[i] for i in split.tune})},
        "held": {"articles": len(split.held), "stories": len({stories[i] for i in split.held})},
    }


def source_commit() -> str:
    """The short git commit of the running code ("unknown" outside a git checkout)."""
    root = Path(__file__).resolve().parents[2]
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=root, check=False, timeout=10
        )
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"
