"""The evaluation harness: run the detector and two baselines on labelled data, side by side.

Input is JSONL with a ``story`` field (same story = duplicates). Every run scores three
systems on the same articles, with the same candidate pairs and the same clustering:

* ``tfidf``: TF-IDF over character 3-5 grams, cosine, a threshold tuned on the tune part;
* ``cosine``: the article embedding and a cosine threshold (what semhash and most tools do);
* ``dedup``: the full pipeline (retrieval, verifier, average linkage, date window).

Data are split into a *tune* part (thresholds are chosen there) and a *held* part
(reported with the thresholds chosen on the tune part): OG2021-like data (titles only,
dated) split by date (the last ``held_days`` days are held), other data split by story
(stories whose sha256 is odd are held, as in ``benchmarks/fit_verifier.py``).

Embeddings are cached on disk (one ``.npz`` per model and data file, keyed by the
article's content hash), so re-runs never embed again. The metrics live in
:mod:`dedup.evaluation.metrics`; this module only runs systems and collects their scores.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import subprocess
import time
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from dedup import __version__
from dedup._fs import cache_root
from dedup.clustering.linkage import average_linkage
from dedup.config import Config
from dedup.detect.detector import Detector
from dedup.embedding.centring import LanguageCentring
from dedup.embedding.embed import Encoder, article_passages, assemble, embed_articles, pool, resolve_centring
from dedup.errors import InputError, OptionalDependencyError
from dedup.evaluation.machine import machine_info
from dedup.evaluation.metrics import (
    PRF,
    Calibration,
    ClusteringScores,
    PRCurve,
    RetrievalScores,
    calibration,
    clustering_scores,
    cross_language_recall,
    pair_scores,
    pr_curve,
)
from dedup.io import read_articles
from dedup.search.store import Store
from dedup.text import CLEANING_VERSION
from dedup.types import Article, EmbeddedArticle
from dedup.verify import Verifier

__all__ = [
    "SYSTEMS",
    "PartReport",
    "Split",
    "default_cache_dir",
    "embed_cached",
    "evaluate",
    "markdown_table",
    "plot_pr_curves",
    "read_labelled",
    "split_parts",
    "threshold_table",
]

#: The systems every run compares, in report order.
SYSTEMS = ("tfidf", "cosine", "dedup")
SYSTEM_NAMES = {
    "tfidf": "TF-IDF char 3-5 grams + threshold",
    "cosine": "article embedding cosine + threshold",
    "dedup": "dedup (verifier + average linkage)",
}

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """Where evaluation embeddings are kept: ``eval/`` under :func:`dedup._fs.cache_root`."""
    return cache_root() / "eval"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def _key(article: Article, passages: Sequence[str]) -> str:
    payload = "\x1f".join((article.content_hash, *passages))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def embed_cached(
    articles: Sequence[Article],
    encoder: Encoder,
    *,
    cache: Path | None,
    label: str,
    max_passage_chars: int = 500,
    batch_size: int | None = None,
    chunk: int = 256,
    centring: LanguageCentring | Literal["auto"] | None = "auto",
) -> list[EmbeddedArticle]:
    """Embed articles, reusing and extending the on-disk cache ``cache/<model>/<label>.npz``.

    An article is looked up by the hash of its content and its cleaned passages, so a
    change of cleaning or passage length embeds it again. New vectors are saved every
    ``chunk`` articles, so an interrupted run keeps what it computed.

    Args:
        articles: Articles to embed.
        encoder: The model.
        cache: Cache root; ``None`` disables caching.
        label: Names the cache file (e.g. the data file's stem).
        max_passage_chars: As :attr:`dedup.config.Config.max_passage_chars`.
        batch_size: Encoder batch size.
        chunk: Articles embedded between two saves.
        centring: As :func:`dedup.embedding.embed.embed_articles` (the cache holds passage vectors only).

    Returns:
        One :class:`EmbeddedArticle` per article, in order.

    """
    per_article = [article_passages(a, max_passage_chars) for a in articles]
    keys = [_key(a, p) for a, p in zip(articles, per_article, strict=True)]
    path = None
    stored: dict[str, NDArray[np.float32]] = {}
    if cache is not None:
        path = cache / _slug(encoder.name) / f"{_slug(label)}-c{CLEANING_VERSION}-p{max_passage_chars}.npz"
        stored = _load(path, encoder.dim)
    missing = [i for i, k in enumerate(keys) if k not in stored]
    if missing:
        logger.info("embedding %d of %d articles with %s (%s)", len(missing), len(articles), encoder.name, label)
    for start in range(0, len(missing), chunk):
        part = missing[start : start + chunk]
        done = embed_articles([articles[i] for i in part], encoder, max_passage_chars=max_passage_chars, batch_size=batch_size)
        for i, item in zip(part, done, strict=True):
            stored[keys[i]] = item.passage_vectors
        if path is not None:
            _save(path, stored)
            logger.info("cached %d/%d", min(start + chunk, len(missing)), len(missing))
    return assemble(articles, per_article, [stored[k] for k in keys], resolve_centring(centring, encoder))


def _load(path: Path, dim: int) -> dict[str, NDArray[np.float32]]:
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = [str(k) for k in data["keys"]]
            offsets = data["offsets"]
            vectors = data["vectors"].astype(np.float32)
    except (OSError, KeyError, ValueError) as exc:
        logger.warning("ignoring unreadable embedding cache %s: %s", path, exc)
        return {}
    if vectors.ndim != 2 or vectors.shape[1] != dim or len(offsets) != len(keys) + 1:
        logger.warning("ignoring embedding cache %s: shape %s does not fit dimension %d", path, vectors.shape, dim)
        return {}
    return {k: vectors[offsets[i] : offsets[i + 1]] for i, k in enumerate(keys)}


def _save(path: Path, stored: dict[str, NDArray[np.float32]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(stored)
    offsets = np.cumsum([0] + [len(stored[k]) for k in keys]).astype(np.int64)
    vectors = np.vstack([stored[k] for k in keys]) if keys else np.zeros((0, 0), dtype=np.float32)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, keys=np.asarray(keys), offsets=offsets, vectors=vectors)
    tmp.replace(path)


# ----------------------------------------------------------------------------- data
def read_labelled(path: Path) -> tuple[list[Article], list[str]]:
    """Articles of a labelled JSONL file and their ``story`` labels.

    Raises:
        InputError: When an article has no ``story`` field.

    """
    articles = list(read_articles([path], detect_lang=True).articles)
    stories: list[str] = []
    for article in articles:
        story = article.extra.get("story")
        if story is None or story == "":
            raise InputError(f"article {article.id!r} has no 'story' label; evaluation needs one per article", source=str(path))
        stories.append(str(story))
    return articles, stories


def held_out_story(story: str) -> bool:
    """Stories whose sha256 is odd are held out (as in ``benchmarks/fit_verifier.py``)."""
    return int(hashlib.sha256(story.encode()).hexdigest(), 16) % 2 == 1


@dataclass(frozen=True)
class Split:
    """Which articles thresholds are tuned on, and which are held aside for reporting.

    Attributes:
        rule: How the split was made, in words.
        tune: Positions of the tune part.
        held: Positions of the held part (may be empty).

    """

    rule: str
    tune: tuple[int, ...]
    held: tuple[int, ...]


def split_parts(articles: Sequence[Article], stories: Sequence[str], *, held_days: int = 4, min_stories: int = 10) -> Split:
    """Split labelled data into a tune part and a held part.

    * Titles-only data where every article is dated (a feed, like OG2021): the last
      ``held_days`` days are held (later news is what a tuned detector meets next);
    * other data with at least ``min_stories`` stories: stories whose sha256 is odd are held;
      (a feed of at most ``held_days`` days is split as undated data);
    * smaller data (the seeds): no held part; everything is the tune part.
    """
    n = len(articles)
    titles_only = all(not a.text.strip() for a in articles)
    dates = [a.date for a in articles]
    if n and titles_only and all(d is not None for d in dates):
        last = max(d.bounds()[1] for d in dates if d is not None)
        cut = last - dt.timedelta(days=held_days - 1)
        held = tuple(i for i, d in enumerate(dates) if d is not None and d.bounds()[0] >= cut)
        held_set = set(held)
        tune = tuple(i for i in range(n) if i not in held_set)
        if tune:
            return Split(f"by date: held = articles dated {cut.isoformat()} .. {last.isoformat()}", tune, held)
    if len(set(stories)) >= min_stories:
        held = tuple(i for i, s in enumerate(stories) if held_out_story(s))
        held_set = set(held)
        return Split("by story: held = stories whose sha256 is odd", tuple(i for i in range(n) if i not in held_set), held)
    return Split(
        "none: too few stories to hold any aside; thresholds are tuned and reported on the same data", tuple(range(n)), ()
    )


# -------------------------------------------------------------------------- results
@dataclass(frozen=True)
class PairReport:
    """Pair decisions of one system on the candidate pairs of one part.

    Precision and recall are over the candidate pairs (each article's nearest neighbours
    by each system's own ranking: the detector's, plain cosine and TF-IDF; the same pairs
    for every system): the threshold
    decides among what retrieval proposes. Clustering then reaches pairs beyond them.

    Attributes:
        candidates: Number of scored candidate pairs.
        positives: True pairs in the part (candidates or not).
        ceiling: Share of all true pairs that are candidates.
        threshold: Decision threshold used.
        at_threshold: Precision, recall, F1 at ``threshold``.
        best_threshold: Threshold of best F1 on this part (for reference: on the held
            part it is *not* what is reported).
        best: Scores at ``best_threshold``.
        separation: Lowest score of a true pair minus highest score of a false pair
            (positive: one threshold separates them all).
        curve: The precision-recall curve.
        by_lang_pair: ``"en-fr"`` -> (scores at ``threshold``, true candidate pairs).

    """

    candidates: int
    positives: int
    ceiling: float
    threshold: float
    at_threshold: PRF
    best_threshold: float
    best: PRF
    separation: float | None
    curve: PRCurve
    by_lang_pair: dict[str, tuple[PRF, int]]

    def to_dict(self, curve_points: int = 200) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "candidates": self.candidates,
            "positives": self.positives,
            "ceiling": round(self.ceiling, 4),
            "threshold": round(self.threshold, 4),
            "at_threshold": self.at_threshold.to_dict(),
            "best_threshold": round(self.best_threshold, 4),
            "best": self.best.to_dict(),
            "separation": None if self.separation is None else round(self.separation, 4),
            "by_lang_pair": {k: {**v.to_dict(), "positives": n} for k, (v, n) in sorted(self.by_lang_pair.items())},
            "pr_curve": self.curve.to_dict(curve_points),
        }


@dataclass(frozen=True)
class PartReport:
    """Everything measured for one system on one part of the data."""

    clustering: ClusteringScores
    pairs: PairReport
    retrieval: RetrievalScores
    cluster_threshold: float
    calibration: Calibration | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "cluster_threshold": round(self.cluster_threshold, 4),
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "clustering": self.clustering.to_dict(),
            "pairs": self.pairs.to_dict(),
            "retrieval": self.retrieval.to_dict(),
        }


# --------------------------------------------------------------------------- running
def _true_pairs_by_lang(stories: Sequence[str], langs: Sequence[str | None]) -> Counter[str]:
    per_story: dict[str, Counter[str]] = {}
    for story, lang in zip(stories, langs, strict=True):
        per_story.setdefault(story, Counter())[lang or "?"] += 1
    out: Counter[str] = Counter()
    for counts in per_story.values():
        items = sorted(counts.items())
        for x, (la, ca) in enumerate(items):
            out[f"{la}-{la}"] += ca * (ca - 1) // 2
            for lb, cb in items[x + 1 :]:
                out[f"{la}-{lb}"] += ca * cb
    return out


def _top_k_pairs(sims: NDArray[np.float32], k: int) -> set[tuple[int, int]]:
    n = sims.shape[0]
    k = min(k, n - 1)
    if k <= 0:
        return set()
    masked = sims.copy()
    np.fill_diagonal(masked, -np.inf)
    top = np.argpartition(-masked, k - 1, axis=1)[:, :k]
    return {(min(i, int(j)), max(i, int(j))) for i in range(n) for j in top[i]}


def _tfidf_similarities(articles: Sequence[Article]) -> NDArray[np.float32]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [f"{a.title}\n{a.text}".lower() for a in articles]
    matrix = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=1).fit_transform(texts)
    sims: NDArray[np.float32] = (matrix @ matrix.T).toarray().astype(np.float32)
    return sims


def _cluster_by_matrix(n: int, pairs: Sequence[tuple[int, int]], sims: NDArray[np.float32], threshold: float) -> list[int]:
    """The detector's average linkage over a dense similarity matrix (the baselines' clusterer).

    :func:`dedup.clustering.linkage.average_linkage` with ``linkage=threshold``, the mean between two
    clusters computed exactly from the matrix instead of sampled above 256 cross pairs.
    """
    edges = [(i, j, float(sims[i, j])) for i, j in pairs]
    return average_linkage(
        n,
        edges,
        lambda i, j: float(sims[i, j]),
        threshold=threshold,
        linkage=threshold,
        cross_mean=lambda a, b: float(sims[np.ix_(a, b)].mean()),
    )


def _pair_report(
    y: NDArray[np.bool_],
    scores: NDArray[np.float64],
    lang_pairs: Sequence[str],
    positives: Counter[str],
    threshold: float,
) -> PairReport:
    """Pair decisions on the candidate pairs; recall is over the true pairs among them.

    The share of all true pairs that are candidates at all is reported as ``ceiling``.
    """
    total = sum(positives.values())
    curve = pr_curve(list(y), list(scores))
    best_threshold, best = curve.best_f1() if len(y) else (threshold, PRF(1.0, 0.0, 0.0))
    by_lang: dict[str, tuple[PRF, int]] = {}
    groups = np.asarray(lang_pairs)
    for group in sorted(set(lang_pairs)):
        mask = groups == group
        by_lang[group] = (pair_scores(list(y[mask]), list(scores[mask]), threshold), int(y[mask].sum()))
    separation = float(scores[y].min() - scores[~y].max()) if y.any() and (~y).any() else None
    return PairReport(
        candidates=len(y),
        positives=total,
        ceiling=float(y.sum()) / total if total else 1.0,
        threshold=threshold,
        at_threshold=pair_scores(list(y), list(scores), threshold),
        best_threshold=best_threshold,
        best=best,
        separation=separation,
        curve=curve,
        by_lang_pair=by_lang,
    )


@dataclass(frozen=True)
class _Prepared:
    """One part's shared material: similarity matrices, candidate pairs, verifier scores."""

    items: list[EmbeddedArticle]
    stories: list[str]
    cosine: NDArray[np.float32]
    search: NDArray[np.float32]
    tfidf: NDArray[np.float32]
    pairs: list[tuple[int, int]]
    verified: dict[tuple[int, int], float]
    retrieved: set[tuple[int, int]]


def _prepare(items: list[EmbeddedArticle], stories: list[str], config: Config, verifier: Verifier) -> _Prepared:
    # The baseline compares plain article vectors (the passages' mean, as other tools embed an
    # article); the detector retrieves by its own, language-centred article vectors.
    plain = np.vstack([pool(i.passages, i.passage_vectors) for i in items]).astype(np.float32)
    cosine: NDArray[np.float32] = plain @ plain.T
    vectors = np.vstack([i.vector for i in items]).astype(np.float32)
    search: NDArray[np.float32] = vectors @ vectors.T
    tfidf = _tfidf_similarities([i.article for i in items])
    retrieved = _top_k_pairs(search, config.candidates)
    pairs = sorted(retrieved | _top_k_pairs(cosine, config.candidates) | _top_k_pairs(tfidf, config.candidates))
    verified = {(i, j): verifier.decide(items[i], items[j], config).score for i, j in pairs}
    return _Prepared(items, stories, cosine, search, tfidf, pairs, verified, retrieved)


def _dedup_matrix(prep: _Prepared) -> NDArray[np.float32]:
    """Ranking of the detector: retrieved candidates by verifier score, then the rest by its cosine."""
    ranked = prep.search.copy()
    for i, j in prep.retrieved:
        ranked[i, j] = ranked[j, i] = 2.0 + prep.verified[i, j]
    return ranked


def _run_part(
    prep: _Prepared,
    config: Config,
    verifier: Verifier,
    thresholds: dict[str, tuple[float, float]],
    ks: Sequence[int],
) -> dict[str, PartReport]:
    items, stories = prep.items, prep.stories
    n = len(items)
    langs = [i.article.lang for i in items]
    positives = _true_pairs_by_lang(stories, langs)
    y = np.asarray([stories[i] == stories[j] for i, j in prep.pairs], dtype=bool)
    lang_pairs = ["-".join(sorted((langs[i] or "?", langs[j] or "?"))) for i, j in prep.pairs]
    out: dict[str, PartReport] = {}
    for system in SYSTEMS:
        started = time.perf_counter()
        if system == "dedup":
            scores = np.asarray([prep.verified[p] for p in prep.pairs], dtype=np.float64)
            dim = items[0].vector.shape[0]
            detector = Detector(Store.in_memory("eval", dim), _NoEncoder(dim), config, verifier)
            result = detector.cluster_embedded(items)
            labels: Sequence[Hashable] = [result.labels[i.id] for i in items]
            ranking = _dedup_matrix(prep)
            pair_threshold, cluster_threshold = config.threshold, config.cluster_threshold
        else:
            sims = prep.tfidf if system == "tfidf" else prep.cosine
            scores = np.asarray([sims[i, j] for i, j in prep.pairs], dtype=np.float64)
            pair_threshold, cluster_threshold = thresholds[system]
            labels = _cluster_by_matrix(n, prep.pairs, sims, cluster_threshold)
            ranking = sims
        out[system] = PartReport(
            clustering=clustering_scores(stories, labels),
            pairs=_pair_report(y, scores, lang_pairs, positives, pair_threshold),
            retrieval=cross_language_recall(ranking, stories, langs, ks),
            cluster_threshold=cluster_threshold,
            # Only the verifier's score claims to be a probability.
            calibration=calibration(list(y), list(scores)) if system == "dedup" else None,
        )
        logger.info("%s: %d articles scored in %.1f s", system, n, time.perf_counter() - started)
    return out


class _NoEncoder:
    """Stands in for the model when everything is embedded already (the harness embeds via its cache)."""

    def __init__(self, dim: int) -> None:
        self._dim = dim

    @property
    def name(self) -> str:
        return "eval"

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str], *, batch_size: int = 32, show_progress: bool = False) -> NDArray[np.float32]:
        raise RuntimeError("the evaluation harness embeds through its cache; the detector must not embed")


def tune_thresholds(prep: _Prepared, grid: Sequence[float] | None = None) -> dict[str, tuple[float, float]]:
    """Baseline thresholds chosen on the tune part: (pair threshold by pair F1, cluster threshold by B-cubed F1).

    ``grid``: cluster thresholds to try (default: 14 quantiles of the candidate pairs' scores).
    """
    y = np.asarray([prep.stories[i] == prep.stories[j] for i, j in prep.pairs], dtype=bool)
    out: dict[str, tuple[float, float]] = {}
    for system in ("tfidf", "cosine"):
        sims = prep.tfidf if system == "tfidf" else prep.cosine
        scores = [float(sims[i, j]) for i, j in prep.pairs]
        pair_t, _ = pr_curve(list(y), scores).best_f1() if len(y) else (0.5, None)
        # Models differ in where their cosines sit (mE5: a narrow band near 0.8), so the grid
        # spans quantiles of the candidate pairs' scores rather than fixed values.
        candidates = (
            grid if grid is not None else sorted({round(float(q), 3) for q in np.quantile(scores, np.linspace(0.5, 0.995, 14))})
        )
        best_t, best_f1 = candidates[0], -1.0
        for t in candidates:
            f1 = clustering_scores(prep.stories, _cluster_by_matrix(len(prep.items), prep.pairs, sims, t)).bcubed.f1
            if f1 > best_f1:
                best_t, best_f1 = t, f1
        logger.info(
            "%s: pair threshold %.3f, cluster threshold %.2f (B-cubed F1 %.3f on the tune part)", system, pair_t, best_t, best_f1
        )
        out[system] = (float(pair_t), float(best_t))
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

    Thresholds of the baselines are tuned on the tune part (see :func:`split_parts`) and
    applied unchanged to the held part. The detector runs with ``config`` as given.

    Args:
        path: Labelled JSONL (``id``, ``title``, ``text``, ``date``, ``lang``, ``story``).
        config: Detector settings (default: :class:`Config`).
        encoder: The model (default: ``config.model``).
        verifier: The verifier (default: the shipped one).
        cache: Embedding cache root (``None``: no cache).
        held_days: For dated titles-only data: days held aside at the end.
        ks: Cut-offs of recall@k.
        embedded: The file's articles, embedded already (e.g. by a combination of models,
            see ``benchmarks/models.py``); ``encoder`` then only names the model.
        langs: Keep only articles in these languages (default: all).

    Raises:
        ValueError: When ``embedded`` does not hold the file's articles in order.

    """
    from dedup.embedding.embed import load_encoder

    config = config or Config()
    verifier = verifier or Verifier.default()
    started = time.perf_counter()
    articles, stories = read_labelled(path)
    if langs is not None:
        keep = [i for i, a in enumerate(articles) if a.lang in set(langs)]
        if not keep:
            raise InputError(f"no article in languages {sorted(langs)}", source=str(path))
        articles, stories = [articles[i] for i in keep], [stories[i] for i in keep]
        embedded = [embedded[i] for i in keep] if embedded is not None else None
    split = split_parts(articles, stories, held_days=held_days)
    if embedded is not None:
        if [e.id for e in embedded] != [a.id for a in articles]:
            raise ValueError(f"the embedded articles are not those of {path}, in order")
        items = list(embedded)
        model_name = encoder.name if encoder is not None else config.model
    else:
        encoder = encoder or load_encoder(config.model)
        model_name = encoder.name
        items = embed_cached(
            articles,
            encoder,
            cache=cache,
            label=path.stem,
            max_passage_chars=config.max_passage_chars,
            batch_size=config.batch_size,
        )
    embed_s = time.perf_counter() - started
    parts: dict[str, dict[str, PartReport]] = {}
    thresholds: dict[str, tuple[float, float]] = {}
    timings = {"read_and_embed_s": round(embed_s, 1)}
    for name, positions in (("tune", split.tune), ("held", split.held)):
        if not positions:
            continue
        t0 = time.perf_counter()
        prep = _prepare([items[i] for i in positions], [stories[i] for i in positions], config, verifier)
        if name == "tune":
            thresholds = tune_thresholds(prep)
        parts[name] = _run_part(prep, config, verifier, thresholds, ks)
        timings[f"{name}_s"] = round(time.perf_counter() - t0, 1)
    systems: dict[str, Any] = {}
    for system in SYSTEMS:
        systems[system] = {"name": SYSTEM_NAMES[system], **{part: parts[part][system].to_dict() for part in parts}}
    return {
        "benchmark": "eval",
        "dataset": path.stem,
        "data_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "dedup": __version__,
        "commit": _commit(),
        "machine": machine_info(),
        "model": model_name,
        "langs": sorted({a.lang or "?" for a in articles}),
        "verifier": verifier.source,
        "config": asdict(config),
        "split": {
            "rule": split.rule,
            "tune": {"articles": len(split.tune), "stories": len({stories[i] for i in split.tune})},
            "held": {"articles": len(split.held), "stories": len({stories[i] for i in split.held})},
        },
        "tuned_on": "tune part: baseline pair thresholds by pair F1, cluster thresholds by B-cubed F1",
        "systems": systems,
        "timings": {**timings, "total_s": round(time.perf_counter() - started, 1)},
    }


def _commit() -> str:
    root = Path(__file__).resolve().parents[2]
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=root, check=False, timeout=10
        )
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


# ------------------------------------------------------------------------- reporting
def markdown_table(records: Sequence[dict[str, Any]]) -> str:
    """One markdown table row per data set, part and system."""
    head = (
        "| data | part | system | B³ P | B³ R | B³ F1 | ARI | pair P | pair R | pair F1 | R@1 | R@10 | worst pair R@1 |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    for rec in records:
        for part in ("tune", "held"):
            for system in SYSTEMS:
                sysrec = rec["systems"][system]
                if part not in sysrec:
                    continue
                r = sysrec[part]
                c, p, ret = r["clustering"], r["pairs"]["at_threshold"], r["retrieval"]
                worst = min(ret["by_pair"].items(), key=lambda kv: kv[1]["recall@1"], default=None)
                worst_text = f"{worst[0]} {worst[1]['recall@1']:.3f}" if worst else "–"
                bc = c["bcubed"]
                rows.append(
                    f"| {rec['dataset']} | {part} ({rec['split'][part]['articles']}) | {system} "
                    f"| {bc['precision']:.3f} | {bc['recall']:.3f} | **{bc['f1']:.3f}** | **{c['ari']:.3f}** "
                    f"| {p['precision']:.3f} | {p['recall']:.3f} | {p['f1']:.3f} "
                    f"| {_fmt(ret.get('recall@1'))} | {_fmt(ret.get('recall@10'))} "
                    f"| {worst_text} |"
                )
    return "\n".join(rows)


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) and value == value else "–"


def plot_pr_curves(record: dict[str, Any], path: Path) -> None:
    """Write the precision-recall curves of every system and part as a PNG.

    Raises:
        OptionalDependencyError: When matplotlib is not installed.

    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise OptionalDependencyError("matplotlib", "the precision-recall plot (pip install 'dedup[bench]')") from exc
    parts = [p for p in ("tune", "held") if p in record["systems"]["dedup"]]
    fig, axes = plt.subplots(1, len(parts), figsize=(5.5 * len(parts), 4.5), squeeze=False)
    for ax, part in zip(axes[0], parts, strict=True):
        for system in SYSTEMS:
            rep = record["systems"][system][part]["pairs"]
            curve = rep["pr_curve"]
            ax.plot(curve["recall"], curve["precision"], label=f"{system} (best F1 {rep['best']['f1']:.2f})")
            at = rep["at_threshold"]
            ax.scatter([at["recall"]], [at["precision"]], marker="o", s=25)
        ax.set_title(f"{record['dataset']}: {part} part ({record['split'][part]['articles']} articles)")
        ax.set_xlabel("recall (of true candidate pairs)")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
    fig.suptitle(f"pair decisions, model {record['model']}; dots: chosen thresholds", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_record(record: dict[str, Any], out_dir: Path, *, plot: bool = True) -> Path:
    """Write ``eval_<dataset>.json`` (and the PR plot ``eval_<dataset>_pr.png``) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"eval_{record['dataset']}.json"
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if plot:
        plot_pr_curves(record, out_dir / f"eval_{record['dataset']}_pr.png")
    return path


def threshold_table(records: Sequence[dict[str, Any]], thresholds: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9)) -> str:
    """Precision and recall of the detector's pair decisions at several thresholds, per data set and part.

    Read from each record's precision-recall curve (the point at the lowest curve threshold
    at or above each value), so users can pick ``--threshold`` by the trade-off they want.
    """
    head = "| data | part | " + " | ".join(f"t={t:g}: P / R" for t in thresholds) + " |"
    rows = [head, "|---|---|" + "---|" * len(thresholds)]
    for rec in records:
        for part in ("tune", "held"):
            rep = rec["systems"]["dedup"].get(part)
            if rep is None:
                continue
            curve = rep["pairs"]["pr_curve"]
            cells = []
            for t in thresholds:
                above = [k for k, x in enumerate(curve["threshold"]) if x >= t]
                if above:
                    k = above[-1]
                    cells.append(f"{curve['precision'][k]:.2f} / {curve['recall'][k]:.2f}")
                else:
                    cells.append("– / 0.00")
            rows.append(f"| {rec['dataset']} | {part} | " + " | ".join(cells) + " |")
    return "\n".join(rows)
