"""Batch story clustering on a Ray cluster (``dedup cluster --engine ray``), with Ray Data.

The pipeline is the local one, spread over the cluster:

1. **Read**: one Ray Data task per input file (a JSONL shard or a seed ``.txt``), parsed
   by :func:`dedup.io.read_articles`, so a bad record is reported with its file, line and
   value, as locally. The driver then applies the same rule to ids repeated across shards.
2. **Clean and embed**: Ray Data tasks (:func:`embed_batch`), at most ``workers`` at a
   time; each worker process loads the model once and keeps it for every batch it runs.
   The int8 default model embeds every passage on its own, so a vector does not depend
   on the batch it came in.
3. **Window**: each embedded article is sent to every time window its date meets
   (:mod:`dedup.clustering.windows`); undated articles to their own partition.
4. **Search, verify, cluster**: one Ray Data group per window runs
   :func:`dedup.clustering.batch.cluster_group`, the very function the local engine runs.
5. **Merge**: the driver merges the windows' clusters (:func:`dedup.clustering.batch.merge_results`,
   a union, independent of the order windows finish in) and numbers stories by first
   appearance in the input.

Same input, same configuration: same stories as the local engine (see
``tests/test_ray_engine.py``). The shuffle between steps 3 and 4 uses Ray Data's
task-based sort shuffle, whose blocks Ray rebuilds from lineage when a node dies; embedding
tasks lost with a node run again elsewhere, so a job survives losing a worker node.

Ray is optional: ``pip install 'dedup[ray]'``.
"""

from __future__ import annotations

import functools
import logging
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dedup.clustering.batch import (
    GroupResult,
    build_result,
    cluster_group,
    day_bounds,
    feed_days,
    merge_results,
    window_plan,
)
from dedup.clustering.windows import UNDATED, WindowPlan, partition
from dedup.config import Config
from dedup.embedding.articles import embed_feed
from dedup.embedding.cache import EmbeddingCache
from dedup.embedding.centring import LanguageCentring, centring_for
from dedup.embedding.encoders import Encoder, load_encoder
from dedup.errors import DuplicateIdError, EngineError, InputError, OptionalDependencyError
from dedup.io import STDIN, expand_inputs, read_articles
from dedup.progress import stage
from dedup.types import Article, ClusterResult, EmbeddedArticle
from dedup.verify import Verifier

__all__ = ["RayRun", "cluster_on_ray"]

logger = logging.getLogger(__name__)

#: Articles per embedding task: large enough to amortise a task, small enough to balance.
EMBED_BATCH = 32

#: Shard index in the high bits of an article's ordinal, record index in the low ones.
_SHIFT = 32


@dataclass(frozen=True)
class RayRun:
    """What a Ray job did, for logs and benchmarks.

    Attributes:
        result: The stories.
        articles: The articles read, in input order.
        windows: Number of partitions clustered (time windows, plus one for undated articles).
        seconds: Wall time per stage: ``read``, ``embed`` (cleaning and embedding),
            ``cluster`` (windows, search, verification, clustering) and ``merge``.
        nodes: Alive Ray nodes when the job started.
        cpus: Cluster CPUs when the job started.

    """

    result: ClusterResult
    articles: tuple[Article, ...]
    windows: int
    seconds: dict[str, float]
    nodes: int
    cpus: float


def _ray() -> Any:  # noqa: ANN401 - the ray module
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise OptionalDependencyError("ray", "the Ray engine (--engine ray)", extra="ray") from exc
    return ray


# ------------------------------------------------------------------ stage functions
# Module-level functions and classes: Ray ships them to workers by reference (the workers
# import dedup), not by value.


def read_shard(row: dict[str, Any], *, max_chars: int, skip_invalid: bool) -> list[dict[str, Any]]:
    """Ray Data ``flat_map``: the articles of one input file, with their ordinals."""
    result = read_articles([row["path"]], max_chars=max_chars, skip_invalid=skip_invalid)
    base = int(row["shard"]) << _SHIFT
    return [
        {"ordinal": base + k, "id": a.id, "source": row["path"], "article": pickle.dumps(a)}
        for k, a in enumerate(result.articles)
    ]


@functools.lru_cache(maxsize=2)
def _embedder(config: Config, cache: bool) -> tuple[Encoder, EmbeddingCache | None, LanguageCentring | None]:
    """The encoder, embedding cache and centring of a worker process (loaded once per process)."""
    encoder = load_encoder(config.model, backend=config.backend)
    store = EmbeddingCache.for_model(encoder.name, encoder.dim) if cache else None
    return encoder, store, centring_for(encoder.name, encoder.dim)


def embed_batch(batch: dict[str, np.ndarray], *, config: Config, cache: bool) -> dict[str, np.ndarray]:
    """Ray Data ``map_batches`` task: clean and embed a batch; the rows keep their ordinals.

    The model is loaded once per worker process (cached here) and reused by every batch
    that process runs: Ray keeps its worker processes between tasks.
    """
    articles = [pickle.loads(b) for b in batch["article"]]
    encoder, store, centring = _embedder(config, cache)
    items = embed_feed(
        articles,
        encoder,
        max_passage_chars=config.max_passage_chars,
        batch_size=config.batch_size,
        cache=store,
        centring=centring,
    )
    blobs = np.empty(len(items), dtype=object)
    blobs[:] = [pickle.dumps(i) for i in items]
    spans = [day_bounds(a) for a in articles]
    first = np.asarray([s[0] if s else -1 for s in spans], dtype=np.int64)  # -1: undated (ordinals are >= 1)
    last = np.asarray([s[1] if s else -1 for s in spans], dtype=np.int64)
    return {"ordinal": batch["ordinal"], "item": blobs, "first": first, "last": last}


def to_windows(row: dict[str, Any], *, plan: WindowPlan | None, kept: frozenset[int]) -> list[dict[str, Any]]:
    """Ray Data ``flat_map``: one row per clustered window the article belongs to (0 for all, without windows)."""
    first, last = int(row["first"]), int(row["last"])
    keys = [0] if plan is None else ([UNDATED] if first < 0 else [w for w in plan.windows((first, last)) if w in kept])
    return [{"window": w, "ordinal": row["ordinal"], "item": row["item"]} for w in keys]


def cluster_window(group: dict[str, np.ndarray], *, config: Config, verifier: Verifier) -> dict[str, np.ndarray]:
    """Ray Data ``map_groups``: search, verify and cluster one window's articles."""
    order = np.argsort(group["ordinal"], kind="stable")  # input order, as the local engine sees it
    items: list[EmbeddedArticle] = [pickle.loads(group["item"][i]) for i in order]
    result = cluster_group(items, config, verifier)
    out = np.empty(1, dtype=object)
    out[0] = pickle.dumps((int(group["window"][0]), np.asarray(group["ordinal"])[order].tolist(), result))
    return {"result": out}


# ----------------------------------------------------------------------- the job
def cluster_on_ray(
    inputs: Sequence[str | Path],
    config: Config | None = None,
    *,
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
    cache: bool = False,
    skip_invalid: bool = False,
    verifier: Verifier | None = None,
) -> RayRun:
    """Cluster the articles of ``inputs`` (files or folders) into stories on Ray.

    Args:
        inputs: JSONL shards, seed ``.txt`` files or folders of them (not stdin).
        config: Settings, as for the local engine; ``window_days`` cuts the work.
        address: A running cluster (``ray://host:10001``, ``host:6379`` or ``auto``);
            None starts a Ray instance inside this process for the job.
        workers: Embedding tasks run at once (each worker process loads the model once);
            default: one per ``cpus_per_worker`` CPUs of the cluster.
        cpus_per_worker: Cores each embedding task reserves and uses (``OMP_NUM_THREADS``).
        cache: Use each machine's embedding cache.
        skip_invalid: Skip malformed records with a warning instead of failing.
        verifier: The pairwise decision model (default: the shipped one).

    Raises:
        OptionalDependencyError: Ray is not installed.
        EngineError: Ray cannot connect, or the job failed on the cluster.
        InputError: An input file or record is invalid (names the file and line).

    """
    config = config or Config()
    verifier = verifier or Verifier.default()
    paths = [str(p) for p in expand_inputs(inputs)]
    if STDIN in paths:
        raise InputError("the Ray engine reads files, not stdin; write the feed to a file first", source="<stdin>")
    ray = _ray()
    started_here = not ray.is_initialized()  # else: use this process's connection (e.g. a test's)
    if started_here:
        options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False, "configure_logging": False}
        try:
            if address is None:
                ray.init(include_dashboard=False, **options)
            else:
                ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise EngineError(f"cannot connect to the Ray cluster at {address or 'a new local instance'}: {exc}") from None
    try:
        return _run(ray, paths, config, verifier, workers, cpus_per_worker, cache, skip_invalid)
    except ray.exceptions.RayError as exc:
        cause = exc.cause if isinstance(exc, ray.exceptions.RayTaskError) and exc.cause is not None else exc
        if isinstance(cause, InputError):
            raise cause from None
        raise EngineError(f"the Ray job failed: {cause}") from exc
    finally:
        if started_here:
            ray.shutdown()


def _run(
    ray: Any,  # noqa: ANN401
    paths: list[str],
    config: Config,
    verifier: Verifier,
    workers: int | None,
    cpus_per_worker: float,
    cache: bool,
    skip_invalid: bool,
) -> RayRun:
    from ray.data import DataContext, TaskPoolStrategy
    from ray.data.context import ShuffleStrategy

    context = DataContext.get_current()
    context.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED  # tasks: rebuilt from lineage on node loss
    context.enable_progress_bars = False
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    pool = workers or max(1, int(cpus // cpus_per_worker))
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    shards = ray.data.from_items([{"shard": k, "path": p} for k, p in enumerate(paths)], override_num_blocks=len(paths))
    read = shards.flat_map(read_shard, fn_kwargs={"max_chars": config.max_article_chars, "skip_invalid": skip_invalid})
    with stage(f"ray: reading {len(paths)} file(s)"):
        read = read.materialize()
    rows = sorted(read.select_columns(["ordinal", "id", "source", "article"]).take_all(), key=lambda r: int(r["ordinal"]))
    articles, kept = _unique(rows)
    if not articles:
        raise InputError("no articles to process", source=", ".join(paths))
    seconds["read"] = time.perf_counter() - started

    started = time.perf_counter()
    ordinals = [int(rows[k]["ordinal"]) for k in kept]
    plan = window_plan(config)
    if len(kept) < len(rows):  # ids repeated across shards: embed each article once
        read = ray.data.from_items([rows[k] for k in kept])
    # One read block per input file; a task embeds one block, so cut the blocks to a few
    # batches each, or one large file would be embedded by one worker.
    read = read.repartition(max(len(paths), -(-len(articles) // (4 * EMBED_BATCH))))
    # Embedding runs to completion before the windows are cut: the shuffle needs every
    # article anyway. Embedding runs as tasks, not an actor pool: in Ray 2.60 an actor's
    # batches are retried on that same actor once restarted, and when its node is gone and
    # the survivors' CPUs are taken, the job waits for ever (measured: the worker-failure
    # test hung 10 min). A task lost with its node is simply run again elsewhere, and the
    # model still loads once per worker process (see embed_batch).
    embedding = read.map_batches(
        embed_batch,
        fn_kwargs={"config": config, "cache": cache},
        batch_size=EMBED_BATCH,
        compute=TaskPoolStrategy(size=pool),
        num_cpus=cpus_per_worker,
        runtime_env={"env_vars": {"OMP_NUM_THREADS": str(max(1, int(cpus_per_worker)))}},
    )
    with stage(f"ray: embedding {len(articles)} articles on {pool} worker(s)"):
        embedded = embedding.materialize()
    seconds["embed"] = time.perf_counter() - started

    started = time.perf_counter()
    clustered_windows = frozenset(partition(feed_days(articles), plan)) if plan is not None else frozenset()
    windowed = embedded.flat_map(to_windows, fn_kwargs={"plan": plan, "kept": clustered_windows})
    clustered = windowed.groupby("window").map_groups(
        cluster_window, fn_kwargs={"config": config, "verifier": verifier}, batch_format="numpy"
    )
    with stage(f"ray: searching, verifying and clustering {len(clustered_windows) or 1} partition(s)"):
        parts = [pickle.loads(r["result"]) for r in clustered.take_all()]
    seconds["cluster"] = time.perf_counter() - started

    started = time.perf_counter()
    labels, edges = _merge(ordinals, feed_days(articles), plan, parts)
    result = build_result(articles, labels, edges, config.threshold)
    seconds["merge"] = time.perf_counter() - started
    return RayRun(result, tuple(articles), len(parts), seconds, len(nodes), cpus)


def _unique(rows: Sequence[dict[str, Any]]) -> tuple[list[Article], list[int]]:
    """Articles in input order, ids repeated across shards resolved as :func:`read_articles` does."""
    seen: dict[str, tuple[Article, str]] = {}
    articles: list[Article] = []
    kept: list[int] = []
    for k, row in enumerate(rows):
        article: Article = pickle.loads(row["article"])
        previous = seen.get(article.id)
        if previous is not None:
            if previous[0].content_hash != article.content_hash:
                raise DuplicateIdError(
                    f"id {article.id!r} already used by {previous[1]} with different content", source=str(row["source"])
                )
            logger.warning("%s: skipped: repeats id %r of %s with the same content", row["source"], article.id, previous[1])
            continue
        seen[article.id] = (article, str(row["source"]))
        articles.append(article)
        kept.append(k)
    return articles, kept


def _merge(
    ordinals: Sequence[int],
    days: Sequence[tuple[int, int] | None],
    plan: WindowPlan | None,
    parts: Sequence[tuple[int, list[int], GroupResult]],
) -> tuple[list[int], tuple[tuple[int, int, float], ...]]:
    """The windows' results, keyed back to feed positions, merged as the local engine does."""
    position = {o: k for k, o in enumerate(ordinals)}
    results = {window: ([position[o] for o in members], result) for window, members, result in parts}
    if plan is None:
        members, result = results[0]
        if members != list(range(len(ordinals))):
            raise EngineError("the job lost articles: the one partition does not hold them all")
        return list(result.labels), result.edges
    windows = partition(days, plan)
    if {w: m for w, (m, _) in results.items()} != windows:
        raise EngineError(f"the job returned {len(results)} windows, not the {len(windows)} sent, or lost articles")
    return merge_results(len(ordinals), windows, [results[w][1] for w in windows], days, plan)
