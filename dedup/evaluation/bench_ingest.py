"""The live-archive benchmark: sustained adds while checks run, at growing archive sizes.

Run by ``dedup bench --parts ingest`` (quick: 10k and 100k articles) and
``python -m benchmarks.ingest`` (full: up to 1M). It measures whatever the
:class:`~dedup.search.archive.Archive` and its shards do, through their public API only.

What one size ``n`` costs, in order:

1. **Bulk load** (not timed as a figure): the archive is filled up to ``n`` articles with
   big batches (``bulk_batch``), month by month. Growing a million articles by 10-article
   batches would take too long wherever an add costs O(store), so only the operations
   below are measured at each size.
2. **Sustained ingest**, in one writer process: ``checks`` checks and ``adds`` adds of
   ``batch``-article batches, interleaved (check, then add, as a check-and-add service
   does), all dated in the live end of the feed (its last week). A check is retrieval plus
   verification (:meth:`~dedup.detect.archive.ArchiveDetector.check_embedded`); embedding
   is excluded: the queries come embedded. Half the queries are near-copies of stored
   live articles (they must be found), half are new articles (they must not be).
   A few untimed operations warm up first.
3. **Open and memory**, in a fresh process: the time from ``Archive.open`` (read-only,
   checksums verified as by default) to the first verdict (so the shards a live check
   needs are loaded), the time to open every other shard too, and the resident memory
   (``/proc/self/statm``) that opening the whole archive added, per stored article. When
   memory runs short (:data:`MEMORY_RESERVE`), it stops opening shards and divides by the
   articles of the shards it opened (the row's ``shards_opened`` says so).
4. **Disk**: the bytes of every file in the archive folder, per stored article.

The articles: :class:`~dedup.evaluation.ingest_feed.SyntheticFeed` (vectors of the model's
dimension clustered by topic and story as real news embeddings are, or with ``vectors="uniform"``
random unit vectors; real passage counts and lengths; dates spread over ``months`` months so
that the archive shards by time).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dedup.config import Config
from dedup.detect.archive import ArchiveDetector
from dedup.detect.common import space_of
from dedup.errors import ConfigError, DedupError
from dedup.evaluation.ingest_feed import LIVE_DAYS, VECTOR_KINDS, SyntheticFeed
from dedup.search.archive import Archive
from dedup.types import EmbeddedArticle, Verdict
from dedup.verify import Verifier

__all__ = ["MODEL", "IngestOptions", "available_bytes", "describe", "ingest_benchmark", "rss_bytes"]

logger = logging.getLogger(__name__)

#: The vector space recorded in the benchmark's archive (no model is loaded).
MODEL = "bench/synthetic"
#: The open probe stops opening shards when less memory than this (plus twice the largest
#: shard so far) is left; its RSS figure then covers the shards it opened.
MEMORY_RESERVE = 2 << 30
#: A reused archive is measured as size ``n`` while it holds at most this many times ``n`` articles
#: (each run adds its live batches to it); a smaller size is skipped.
REUSE_SLACK = 1.1
#: The default model's dimension (multilingual-e5-small, ``Config.model``'s default).
DEFAULT_DIM = 384


@dataclass(frozen=True)
class IngestOptions:
    """What an ingest benchmark run covers.

    Attributes:
        sizes: Archive sizes (articles) at which the figures are measured.
        adds: Timed adds per size.
        checks: Timed checks per size.
        batch: Articles per timed add.
        bulk_batch: Articles per add while bulk-loading up to a size.
        months: Calendar months the archive's dates cover (about ``n / months`` articles per shard).
        dim: Vector dimension (the default model's).
        warmup: Untimed checks and adds before the timed ones, at each size.
        seed: Everything drawn depends on it.
        vectors: The feed's vectors: ``"clustered"`` (topics and stories, like news) or ``"uniform"``
            (random unit vectors: no structure, the worst case of an inverted-file index).
        faiss_threads: FAISS's OpenMP threads while checks and adds are timed and in the open
            probe (1: single-query latency as one service thread sees it, steady on a busy
            machine); 0 leaves FAISS's default (every core). Bulk loading keeps the default.
        work_dir: Where the archive is built (in a temporary folder, removed at the end);
            None: the system's temporary folder. A million articles need tens of GB.
        reuse: Keep the archive in ``work_dir`` (a folder named after the feed's parameters,
            with a ``state.json`` of what it holds) and reuse it on the next run: no bulk load
            up to the size it already has; sizes it exceeds by more than :data:`REUSE_SLACK` are
            skipped (each run adds its live batches). Needs ``work_dir``.

    """

    sizes: tuple[int, ...] = (10_000, 100_000)
    adds: int = 200
    checks: int = 200
    batch: int = 10
    bulk_batch: int = 10_000
    months: int = 12
    dim: int = DEFAULT_DIM
    warmup: int = 5
    seed: int = 0
    vectors: str = "clustered"
    faiss_threads: int = 1
    work_dir: Path | None = None
    reuse: bool = False

    def __post_init__(self) -> None:
        if not self.sizes or any(not isinstance(n, int) or n < 1 for n in self.sizes):
            raise ConfigError(f"ingest sizes must be positive integers, got {self.sizes!r}")
        for name in ("adds", "checks", "batch", "bulk_batch", "months", "dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.reuse and self.work_dir is None:
            raise ConfigError("reusing the benchmark's archive needs a work folder (--work DIR)")
        if self.vectors not in VECTOR_KINDS:
            raise ConfigError(f"vectors must be one of {list(VECTOR_KINDS)}, got {self.vectors!r}")
        for name in ("warmup", "faiss_threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")


class _Embedded:
    """Stands in for the model: every article the benchmark checks or adds comes embedded."""

    def __init__(self, dim: int) -> None:
        self._dim = dim

    @property
    def name(self) -> str:
        return MODEL

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str], *, batch_size: int = 32, show_progress: bool = False) -> NDArray[np.float32]:
        """Never called: the benchmark embeds nothing."""
        raise RuntimeError("the ingest benchmark embeds nothing")


def rss_bytes() -> int:
    """The resident memory of this process now (``/proc/self/statm``); the peak where that cannot be read."""
    try:
        resident = int(Path("/proc/self/statm").read_text().split()[1])
        return resident * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def available_bytes() -> int | None:
    """The memory the system can still give (``MemAvailable`` of ``/proc/meminfo``), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _ms(seconds: Sequence[float]) -> tuple[float, float]:
    ms = 1000 * np.asarray(seconds, dtype=np.float64)
    return round(float(np.percentile(ms, 50)), 3), round(float(np.percentile(ms, 99)), 3)


@contextlib.contextmanager
def _faiss_threads(threads: int) -> Iterator[None]:
    """FAISS's OpenMP and numpy's BLAS thread counts set to ``threads`` (0: unchanged) for the block, then restored.

    As ``serve`` and ``stream`` set them (:func:`dedup.search.index.limit_threads`).
    """
    if not threads:
        yield
        return
    import faiss
    from threadpoolctl import threadpool_limits

    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            yield
    finally:
        faiss.omp_set_num_threads(previous)


def _disk_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


# --------------------------------------------------------------------------- bulk load
def _bulk_load(path: Path, feed: SyntheticFeed, indices: range, options: IngestOptions, config: Config) -> float:
    """Add feed articles ``indices`` month by month in big batches; returns the seconds it took."""
    started = time.perf_counter()
    months: dict[str, list[int]] = {}
    for i in indices:
        months.setdefault(feed.day_of(i).strftime("%Y-%m"), []).append(i)
    done = 0
    for month, members in sorted(months.items()):
        # A fresh writer per month, so that only one shard is held in memory at a time.
        archive = Archive.open(
            path, model=MODEL, dim=options.dim, verify=False, index=config.index, recall_floor=config.recall_floor
        )
        for start in range(0, len(members), options.bulk_batch):
            archive.add(feed.articles(members[start : start + options.bulk_batch]))
        done += len(members)
        del archive
        gc.collect()
        seconds = time.perf_counter() - started
        logger.info("ingest: bulk-loaded %s: %s of %s articles (%.0f s)", month, f"{done:,}", f"{len(indices):,}", seconds)
    return time.perf_counter() - started


# --------------------------------------------------------------------------- sustained ingest
@dataclass(frozen=True)
class _Sustained:
    """The timings of one size's sustained phase."""

    add_seconds: list[float]
    check_seconds: list[float]
    retrieval_seconds: list[float]
    verdicts: list[Verdict]
    live_shard: str
    live_shard_articles: int
    live_shard_index: str


def _queries(feed: SyntheticFeed, loaded: int, count: int, first: int) -> list[EmbeddedArticle]:
    """``count`` queries numbered from ``first``: near-copies of stored live articles, alternating with new ones."""
    rng = np.random.default_rng([feed.seed, 99, first])
    live = [i for i in range(loaded) if feed.is_live(i)]
    wanted = (count + 1) // 2
    targets: list[int] = [int(i) for i in rng.choice(live, size=wanted, replace=len(live) < wanted)] if live else []
    out: list[EmbeddedArticle] = []
    for q in range(count):
        if q % 2 == 0 and q // 2 < len(targets):
            out.append(feed.near_copy(targets[q // 2], first + q))
        else:
            out.append(feed.fresh(first + q))
    return out


def _sustain(
    path: Path, feed: SyntheticFeed, options: IngestOptions, config: Config, loaded: int, live_next: int, query_next: int
) -> _Sustained:
    """Warm up, then time interleaved checks and adds against the archive at its current size."""
    archive = Archive.open(path, model=MODEL, dim=options.dim, index=config.index, recall_floor=config.recall_floor)
    detector = ArchiveDetector(archive, _Embedded(options.dim), config)
    warm = _queries(feed, loaded, options.warmup, query_next)
    queries = _queries(feed, loaded, options.checks, query_next + options.warmup)
    batches = [feed.live_batch(live_next + k * options.batch, options.batch) for k in range(options.warmup + options.adds)]
    for k, query in enumerate(warm):
        detector.check_embedded([query])
        archive.add(batches[k])
    adds: list[float] = []
    checks: list[float] = []
    retrievals: list[float] = []
    verdicts: list[Verdict] = []
    for j in range(max(options.adds, options.checks)):
        if j < options.checks:
            t0 = time.perf_counter()
            verdicts += detector.check_embedded([queries[j]])
            checks.append(time.perf_counter() - t0)
            t0 = time.perf_counter()  # the retrieval share of that check, timed again on its own
            archive.search(  # as the check retrieves: candidates dated beyond the gap left unread
                queries[j],
                config.candidates,
                search_days=detector.search_days,
                min_similarity=config.min_candidate_similarity,
                max_gap_days=config.max_date_gap_days,
            )
            retrievals.append(time.perf_counter() - t0)
        if j < options.adds:
            t0 = time.perf_counter()
            archive.add(batches[options.warmup + j])
            adds.append(time.perf_counter() - t0)
    live_key = feed.last_day.strftime("%Y-%m")
    shard = archive.shard(live_key)
    return _Sustained(adds, checks, retrievals, verdicts, live_key, len(shard), shard.index_kind)


# --------------------------------------------------------------------------- fresh process
def _probe(path: str, feed: SyntheticFeed, query: int, config: Config, threads: int) -> dict[str, Any]:
    """In a fresh process: open the archive, check one live article, open every shard, measure RSS."""
    with _faiss_threads(threads):
        return _probe_timed(path, feed, query, config)


def _probe_timed(path: str, feed: SyntheticFeed, query: int, config: Config) -> dict[str, Any]:
    dim = feed.dim
    item = feed.fresh(query)
    # The process's one-off start-up (the vector-space name, the verifier's parameters) is not the archive's.
    space_of(_Embedded(dim))
    Verifier.default()
    gc.collect()
    before = rss_bytes()
    t0 = time.perf_counter()
    archive = Archive.open(path, model=MODEL, dim=dim, read_only=True)
    detector = ArchiveDetector(archive, _Embedded(dim), config)
    detector.check_embedded([item])
    open_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    largest = rss_bytes() - before  # the most one shard (or the first check's shards) added so far
    for key in archive.keys:
        free = available_bytes()
        if free is not None and free < MEMORY_RESERVE + 2 * largest:
            logger.warning("ingest: memory is short: %s of %s shards opened", len(archive.opened), len(archive.keys))
            break
        ahead = rss_bytes()
        archive.shard(key)
        largest = max(largest, rss_bytes() - ahead)
    open_all_s = time.perf_counter() - t0
    detector.check_embedded([item])
    gc.collect()
    grown = rss_bytes() - before
    opened = sum(len(archive.shard(key)) for key in archive.opened)
    return {
        "open_s": open_s,
        "open_all_s": open_all_s,
        "rss_growth": grown,
        "articles": archive.count(),
        "articles_opened": opened,
        "shards": len(archive.keys),
        "shards_opened": len(archive.opened),
    }


def _probe_main() -> None:
    """Entry of the fresh process: arguments as one JSON object in ``argv[1]``, the result as JSON on stdout."""
    args = json.loads(sys.argv[1])
    config = Config(**args["config"])
    feed = SyntheticFeed(args["dim"], args["months"], args["seed"], args["vectors"])
    result = _probe(args["path"], feed, args["query"], config, args["threads"])
    sys.stdout.write(json.dumps(result) + "\n")


def _probe_fresh(path: Path, options: IngestOptions, query: int, config: Config) -> dict[str, Any]:
    """Run :func:`_probe` in a new Python process (this one's import path), whatever started this one."""
    args: dict[str, Any] = {"path": str(path), "dim": options.dim, "months": options.months, "seed": options.seed}
    args["vectors"] = options.vectors
    args.update(query=query, threads=options.faiss_threads)
    args["config"] = asdict(config)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    code = "from dedup.evaluation.bench_ingest import _probe_main; _probe_main()"
    done = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise DedupError(f"the open/RSS probe process failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- the run
def _row(n: int, bulk_s: float, sustained: _Sustained, probe: dict[str, Any], disk: int, batch: int) -> dict[str, Any]:
    add_p50, add_p99 = _ms(sustained.add_seconds)
    check_p50, check_p99 = _ms(sustained.check_seconds)
    retrieval_p50, retrieval_p99 = _ms(sustained.retrieval_seconds)
    articles = int(probe["articles"])
    verdicts = sustained.verdicts
    near = [v for v in verdicts if v.id.startswith("query")]
    fresh = [v for v in verdicts if not v.id.startswith("query")]
    return {
        "n": n,
        "articles": articles,
        "shards": int(probe["shards"]),
        "shards_opened": int(probe["shards_opened"]),
        "add_p50_ms": add_p50,
        "add_p99_ms": add_p99,
        "check_p50_ms": check_p50,
        "check_p99_ms": check_p99,
        "retrieval_p50_ms": retrieval_p50,
        "retrieval_p99_ms": retrieval_p99,
        "open_ms": round(1000 * probe["open_s"], 1),
        "open_all_shards_ms": round(1000 * probe["open_all_s"], 1),
        "rss_bytes_per_article": round(probe["rss_growth"] / max(int(probe["articles_opened"]), 1), 1),
        "disk_bytes_per_article": round(disk / max(articles, 1), 1),
        "adds": len(sustained.add_seconds),
        "checks": len(sustained.check_seconds),
        "batch": batch,
        "shards_searched_mean": round(float(np.mean([len(v.shards) for v in verdicts])), 2) if verdicts else 0.0,
        "near_copies": len(near),
        "near_copies_found": sum(v.is_duplicate for v in near),
        "new_articles": len(fresh),
        "new_articles_flagged": sum(v.is_duplicate for v in fresh),
        "live_shard": sustained.live_shard,
        "live_shard_articles": sustained.live_shard_articles,
        "live_shard_index": sustained.live_shard_index,
        "bulk_load_s": round(bulk_s, 1),
    }


def _plain(value: object) -> object:
    """``value`` as JSON writes and reads it back (tuples as lists, paths as text)."""
    if isinstance(value, tuple):
        return list(value)
    return str(value) if isinstance(value, Path) else value


def describe(options: IngestOptions) -> dict[str, Any]:
    """The setup a report names beside its rows (what was measured, and how)."""
    return {
        "method": (
            f"bulk-load to each size in batches of {options.bulk_batch:,} (not timed), then {options.checks} checks "
            f"and {options.adds} adds of {options.batch} articles, interleaved, dated in the last {LIVE_DAYS} days; "
            "checks are retrieval + verification (embedding excluded); open time and RSS in a fresh process; "
            + (
                f"FAISS and BLAS on {options.faiss_threads} thread(s) while timed"
                if options.faiss_threads
                else "FAISS's and BLAS's default threads"
            )
        ),
        "vectors": (
            "clustered by topic and story (as news embeddings are)" if options.vectors == "clustered" else "random unit vectors"
        )
        + f", dimension {options.dim}; NTREX-shaped passage counts and lengths",
        "options": {k: _plain(v) for k, v in asdict(options).items()},
    }


def ingest_benchmark(
    options: IngestOptions, config: Config | None = None, *, on_row: Callable[[list[dict[str, Any]]], None] | None = None
) -> list[dict[str, Any]]:
    """Grow an archive through ``options.sizes`` and measure it at each (see the module docstring).

    ``on_row`` is called with the rows so far after each size, so a long run that fails late
    keeps what it measured.

    Returns:
        One JSON-ready row per size: ``n``, ``add_p50_ms``, ``add_p99_ms``, ``check_p50_ms``,
        ``check_p99_ms``, ``open_ms``, ``rss_bytes_per_article``, ``disk_bytes_per_article``
        and the counts that make them checkable.

    """
    config = config or Config()
    feed = SyntheticFeed(options.dim, options.months, options.seed, options.vectors)
    root, state = _work_folder(options, config)
    path = root / "archive"
    rows: list[dict[str, Any]] = []
    try:
        for n in sorted(set(options.sizes)):
            if state["loaded"] + state["live_next"] > REUSE_SLACK * n:
                logger.warning("ingest: the reused archive holds far more than %s articles: that size is skipped", f"{n:,}")
                continue
            missing = max(0, n - state["loaded"] - state["live_next"])
            loaded = state["loaded"]
            bulk_s = _bulk_load(path, feed, range(loaded, loaded + missing), options, config) if missing else 0.0
            state["loaded"] = loaded = loaded + missing
            _save_state(root, state)
            logger.info("ingest: %s articles; %s checks and %s adds of %s", f"{n:,}", options.checks, options.adds, options.batch)
            with _faiss_threads(options.faiss_threads):
                sustained = _sustain(path, feed, options, config, loaded, state["live_next"], state["query_next"])
            state["live_next"] += (options.warmup + options.adds) * options.batch
            state["query_next"] += options.warmup + options.checks + 1
            _save_state(root, state)
            probe = _probe_fresh(path, options, state["query_next"] - 1, config)
            rows.append(_row(n, bulk_s, sustained, probe, _disk_bytes(path), options.batch))
            logger.info("ingest: %s", rows[-1])
            if on_row is not None:
                on_row(rows)
    finally:
        if not options.reuse:
            shutil.rmtree(root, ignore_errors=True)
    return rows


_STATE = "state.json"


def _work_folder(options: IngestOptions, config: Config) -> tuple[Path, dict[str, int]]:
    """The folder holding the benchmark's ``archive`` and what it holds: bulk articles, live adds and queries used.

    Without ``reuse``, a new temporary folder and an empty archive. With it, the folder in
    ``work_dir`` named after the feed; an archive there whose ``state.json`` matches its
    article count is reused, anything else there is removed and started afresh.
    """
    empty = {"loaded": 0, "live_next": 0, "query_next": 0}
    if options.work_dir is not None:
        try:
            options.work_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the work folder {options.work_dir}: {exc.strerror or exc}") from None
    if not options.reuse:
        root = Path(tempfile.mkdtemp(prefix="dedup-bench-ingest-", dir=options.work_dir))
        Archive.create(root / "archive", MODEL, options.dim, index=config.index, recall_floor=config.recall_floor)
        return root, empty
    assert options.work_dir is not None
    root = options.work_dir / f"dedup-bench-ingest-{options.vectors}-d{options.dim}-m{options.months}-s{options.seed}"
    try:
        state = {key: int(value) for key, value in json.loads((root / _STATE).read_text("utf-8")).items()}
        if set(state) == set(empty) and Archive.open(root / "archive", model=MODEL, dim=options.dim).count() == (
            state["loaded"] + state["live_next"]
        ):
            logger.info("ingest: reusing the archive in %s (%s articles)", root, f"{state['loaded'] + state['live_next']:,}")
            return root, state
    except (OSError, ValueError, TypeError, AttributeError, DedupError):
        pass
    logger.info("ingest: no reusable archive in %s: building one", root)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    Archive.create(root / "archive", MODEL, options.dim, index=config.index, recall_floor=config.recall_floor)
    _save_state(root, empty)
    return root, dict(empty)


def _save_state(root: Path, state: dict[str, int]) -> None:
    (root / _STATE).write_text(json.dumps(state), "utf-8")
