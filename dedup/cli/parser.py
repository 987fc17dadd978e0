"""The ``dedup`` command line: subcommands, their flags, and the exit codes.

One function per subcommand adds it to the parser; flags several subcommands share are
defined once (:func:`_common`, :func:`_reading`, :func:`_inputs`, :func:`_store_or_archive`,
...). Values are checked at parse time where argparse can (ranges, finite numbers), so a
bad value exits 2 naming it before any work starts.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dedup import __version__
from dedup.config import BACKENDS, INDEX_KINDS, Config
from dedup.serve.shared import ServiceLimits

__all__ = [
    "EXIT_INPUT",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_MODEL",
    "EXIT_OK",
    "EXIT_STORE",
    "build_parser",
]

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT, EXIT_STORE, EXIT_MODEL, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130

EPILOG = """\
exit codes: 0 success, 1 internal error, 2 usage or input error, 3 store error,
            4 model error, 130 interrupted (a store keeps its previous state)

examples:
  dedup cluster data/                          cluster the demo corpus into stories
  dedup add --store news.store feed.jsonl      create/extend a store
  dedup check --store news.store new.txt       duplicate or new? with evidence
  dedup add --archive news.archive feed.jsonl  a time-sharded archive: one store per month
  dedup cluster data/ --html report.html       stories as a static HTML report (opens from disk)
  dedup eval labelled.jsonl --out results/     quality beside baselines (needs `story`)
  cat feed.jsonl | dedup check --store news.store --json -   machine output
  dedup serve --store news.store               HTTP service and story browser on http://127.0.0.1:8000/
  tail -f feed.jsonl | dedup stream --store news.store   one verdict per line, adding as it goes
"""

INPUTS_HELP = "JSONL files, seed-format .txt files, folders of them, or - for stdin"

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high], refused at parse time (exit 2) with the value named."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # also an integer with more digits than Python converts
            raise argparse.ArgumentTypeError(f"expected an integer, got {text[:40]!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"at least {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def number(low: float = -math.inf, high: float = math.inf, *, above: float | None = None) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high] (or > ``above``); nan and inf are refused at parse time."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text[:40]!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text[:40]!r}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be more than {above:g}, got {value:g}")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in [{low:g}, {high:g}], got {value:g}")
        return value

    parse.__name__ = "number"
    return parse


# ------------------------------------------------------------------- shared flags
def _common() -> argparse.ArgumentParser:
    """Model and detector settings, cache and verbosity: every subcommand that loads the model."""
    common = argparse.ArgumentParser(add_help=False)
    add = common.add_argument
    add("--model", help=f"embedding model: the offline default {Config.model!r}, a sentence-transformers name or a local folder")
    add(
        "--threshold",
        type=number(),
        help=f"duplicate score threshold in [0, 1] (default {Config.threshold}); on `cluster`, the score a pair needs "
        f"to link two stories (default {Config.cluster_threshold})",
    )
    add(
        "--max-date-gap",
        type=int,
        metavar="DAYS",
        help=f"articles further apart are never one story (default {Config.max_date_gap_days})",
    )
    add(
        "--candidates",
        type=int,
        metavar="K",
        help=f"stored articles retrieved per query for verification (default {Config.candidates})",
    )
    add("--max-chars", type=int, metavar="N", help=f"refuse longer articles (default {Config.max_article_chars:,})")
    add(
        "--backend",
        choices=BACKENDS,
        help="how the model runs: auto (the default model: int8 on ONNX Runtime; other local mean-pooled "
        "models: OpenVINO; else torch), onnx-int8, openvino (fp32), torch (plain sentence-transformers)",
    )
    add(
        "--index",
        choices=INDEX_KINDS,
        help="vector index of a store (default: keep the store's; auto for a new one: exact below 20,000 articles, "
        "then IVF tuned to --recall-floor); takes effect at the next add",
    )
    add(
        "--recall-floor",
        type=number(),
        metavar="R",
        help=f"recall@10 against exact search an approximate index must reach (default {Config.recall_floor})",
    )
    add("--no-cache", action="store_true", help="do not use the embedding cache ($DEDUP_CACHE_DIR or ~/.cache/dedup)")
    add("-q", "--quiet", action="store_true", help="no progress bars or info messages")
    return common


def _reading(common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The common flags plus how to treat malformed input records: subcommands that read articles."""
    reading = argparse.ArgumentParser(add_help=False, parents=[common])
    reading.add_argument(
        "--skip-invalid", action="store_true", help="skip malformed input records with a warning instead of failing"
    )
    return reading


def _inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=INPUTS_HELP)


def _json(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--json", action="store_true", help=help_text)


def _store(p: argparse.ArgumentParser, *, create: bool = False) -> None:
    """``--store DIR`` (required), and ``--create`` where a missing store may be made."""
    p.add_argument("--store", required=True, type=Path, metavar="DIR", help="store directory")
    if create:
        p.add_argument("--create", action="store_true", help="create the store if it does not exist")


def _store_or_archive(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--store", type=Path, metavar="DIR", help="store directory")
    where.add_argument(
        "--archive", type=Path, metavar="DIR", help="time-sharded archive directory: one store per month, plus undated"
    )


def _served(p: argparse.ArgumentParser, *, read_only: bool) -> None:
    """``--store DIR`` or ``--archive DIR`` (one required), ``--create``, and for ``serve`` ``--read-only``."""
    _store_or_archive(p)
    p.add_argument("--create", action="store_true", help="create the store or archive if it does not exist")
    if read_only:
        p.add_argument(
            "--read-only",
            action="store_true",
            help="a replica: take no lock, write nothing (/add and /check-and-add answer 403); it picks up the "
            "writer's commits before each request. Many read-only servers beside one writer serve many clients",
        )


def _top(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--top", type=integer(0), default=0, metavar="K", help=help_text)


# -------------------------------------------------------------------- subcommands
def _add_add(sub: Subparsers, reading: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "add",
        parents=[reading],
        help="embed articles and add them to a store (created if missing)",
        description="Embed articles and add them to a store, atomically. Re-adding the same id "
        "with the same content is a no-op; other content is an error unless --replace.",
    )
    _inputs(p)
    _store_or_archive(p)
    p.add_argument("--replace", action="store_true", help="replace stored articles whose id has new content")
    _json(p, "print a JSON summary")


def _add_check(sub: Subparsers, reading: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "check",
        parents=[reading],
        help="is each article a duplicate of a stored one?",
        description="Print, for each article, DUPLICATE or NEW, with the matched stored articles, "
        "their scores and the evidence (language pair, date gap, aligned passages).",
    )
    _inputs(p)
    _store_or_archive(p)
    p.add_argument(
        "--search-days",
        type=int,
        metavar="DAYS",
        help="with --archive: search the shards of the months within DAYS of the article's date, plus undated "
        "(default: --max-date-gap); an undated article searches every shard",
    )
    p.add_argument("--add", action="store_true", help="store each article after checking it")
    _top(p, "also list the K best candidates that are not duplicates (near misses)")
    _json(p, "one JSON object per article: {id, duplicate, matches}")


def _add_cluster(sub: Subparsers, reading: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "cluster",
        parents=[reading],
        help="group articles into stories",
        description="Give every article a story id. Prints a readable summary; --out writes "
        "JSONL {id, story, ...}; --json prints that JSONL instead of the summary; --html writes a "
        "self-contained HTML report.",
    )
    _inputs(p)
    p.add_argument("--store", type=Path, metavar="DIR", help="also cluster the articles of this store")
    p.add_argument("--out", type=Path, metavar="FILE", help="write JSONL {id, story, ...} to FILE")
    _json(p, "print JSONL to stdout instead of the summary")
    p.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="also write a self-contained HTML report (stories, members by language, evidence, charts); opens from disk",
    )
    p.add_argument(
        "--window-days",
        type=int,
        metavar="DAYS",
        help=f"cluster in calendar windows of DAYS days, overlapping by --max-date-gap; 0: the whole feed at once "
        f"(default {Config.window_days})",
    )
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        help="local: this process (the default); ray: Ray Data, on the cluster at --ray-address or on a Ray "
        "instance started for the job (needs `pip install 'dedup[ray]'`)",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="run on this Ray cluster (e.g. 10.0.0.5:6379, ray://host:10001, auto); implies --engine ray",
    )
    p.add_argument("--workers", type=int, metavar="N", help="Ray engine: embedding actors (default: one per cluster CPU)")
    # The clustering decision (issue 17): --threshold (a common flag) is, on `cluster`, the score a pair
    # needs to link two stories (Config.cluster_threshold); --linkage is how close linked stories must be.
    p.add_argument(
        "--linkage",
        type=number(0, 1),
        metavar="SCORE",
        help="average pair score two linked stories need between them to merge (average linkage; 0 merges every "
        f"link, as single linkage; higher keeps stories tighter; default {Config.cluster_linkage})",
    )


def _add_serve(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "serve",
        parents=[common],
        help="HTTP service over a store or an archive: check, add, check-and-add, cluster",
        description="Serve a store or a time-sharded archive over HTTP (FastAPI on uvicorn): "
        "POST /check, /add, /check-and-add, /cluster; "
        "GET /article, /story, /stories, /neighbours, /evidence, /health, /metrics; the story browser at /; "
        "the OpenAPI document at /openapi.json and /docs. "
        "Errors are 4xx with a JSON body {error, detail}. Stop with Ctrl-C.",
    )
    _served(p, read_only=True)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=integer(0, 65535), default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument(
        "--token",
        help="require 'Authorization: Bearer TOKEN' on every endpoint but /health (default: $DEDUP_TOKEN, else none)",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow a --host other than loopback without a token (anyone who can reach it can read and add articles)",
    )
    _service_limits(p)


def _service_limits(p: argparse.ArgumentParser) -> None:
    """The limits of ``serve``: request size, batch, work per request, connections, timeouts."""
    add = p.add_argument
    add(
        "--max-body-mb",
        type=number(high=4096, above=0),
        default=16.0,
        metavar="MB",
        help="largest request body, in (0, 4096] (default 16)",
    )
    add("--max-batch", type=integer(1), default=100, metavar="N", help="most articles per request (default 100)")
    add(
        "--max-request-chars",
        type=integer(1),
        default=ServiceLimits.max_request_chars,
        metavar="N",
        help="most characters (titles and texts together) one request may ask to embed; more is a 413, so one "
        f"large request cannot hold the others up for long (default {ServiceLimits.max_request_chars:,})",
    )
    add(
        "--limit-concurrency",
        type=integer(1),
        metavar="N",
        help="answer 503 (Retry-After) beyond N requests in flight; idle connections do not count; /health is "
        "never refused (default: no limit)",
    )
    add(
        "--keep-alive",
        type=integer(1, 3600),
        default=ServiceLimits.keep_alive_s,
        metavar="S",
        help=f"close a connection idle this many seconds between requests (default {ServiceLimits.keep_alive_s})",
    )
    add(
        "--read-timeout",
        type=number(high=3600, above=0),
        default=ServiceLimits.read_timeout_s,
        metavar="S",
        help="seconds a client has to send a request's head (from connecting, or its first byte), and again its "
        f"body; slower ones get a 408 and are closed (default {ServiceLimits.read_timeout_s:g})",
    )


def _add_stream(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "stream",
        parents=[common],
        help="JSONL articles on stdin -> one JSON verdict per line on stdout, adding new ones",
        description="Read JSONL articles from stdin; for each, write one JSON verdict line to stdout "
        "({id, duplicate, matches, line, stored}) and store the article (check-and-add). A bad line is "
        "reported on stderr and skipped; the stream goes on. A verdict is written after its article is "
        "committed. Exit 0, or 2 if some lines were rejected.",
    )
    _served(p, read_only=False)
    p.add_argument("--no-add", action="store_true", help="only check: store nothing")
    _top(p, "also list the K best candidates that are not duplicates")


def _add_bench(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "bench",
        parents=[common],
        help="benchmark the hot path: similarity search, check latency, clustering, embedding (quick: < 5 min)",
        description="Measure, in one run on this machine: each vector index (numpy brute force, FAISS flat, IVF, "
        "HNSW) at 10k and 100k vectors (build time, bytes/vector, p50/p99 single-query latency, batched queries/s, "
        "recall@1/@10 and range-search recall against exact search); check latency split into retrieval and "
        "verification; batch clustering time and memory for growing feeds; embedding throughput of the default "
        "path against plain sentence-transformers. Vectors: the demo corpus (--demo), plus the titles of "
        "og2021_dev.jsonl and ntrex_dev.jsonl when --data names a folder holding them, embedded, then grown "
        "with synthetic neighbours; the output names the source. The full run (1M vectors) is "
        "`python -m benchmarks.hotpath`.",
    )
    p.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="a development data folder holding og2021_dev.jsonl and/or ntrex_dev.jsonl (default: the demo corpus alone)",
    )
    p.add_argument("--demo", type=Path, default=Path("data"), help="demo corpus folder (default data)")
    p.add_argument(
        "--parts",
        default="embed,search,check,cluster",
        help="comma-separated subset of embed,search,check,cluster,ingest (ingest, the live archive: sustained "
        "10-article adds and checks, open time, RSS and disk per article, runs only when named)",
    )
    p.add_argument("--sizes", metavar="N,N", help="index sizes, and archive sizes for ingest (default 10000,100000)")
    p.add_argument("--cluster-sizes", metavar="N,N", help="feed sizes for the clustering curve (default 2000,5000,10000)")
    p.add_argument("--out", type=Path, metavar="DIR", help="also write bench.json and bench.md into DIR")
    _json(p, "print one JSON object instead of the tables")


def _add_eval(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "eval",
        parents=[common],
        help="measure detection quality on labelled JSONL (articles or pairs), beside baselines",
        description="Score the detector, TF-IDF char n-grams and article-embedding cosine on labelled JSONL "
        "(id, title, text, date, lang, story): B-cubed, ARI, pair P/R/F1 and PR curve, cross-language "
        "recall@1/@10, per language pair. Baseline thresholds are tuned on a tune part and reported on a "
        "held part. Prints a markdown table; --out writes eval_<data>.json and a PR-curve PNG. "
        "A file whose first record has id1, id2, text1, text2 is read as labelled pairs (SemEval-2022 "
        "Task 8: lang1, lang2, overall, label, scores): the detector's score, its centred cosine, the "
        "plain cosine and TF-IDF get ROC-AUC, hard-negative AUC, Pearson/Spearman with overall, best F1 "
        "and ECE, per language pair, on a tune and a held part split by connected component.",
    )
    p.add_argument("inputs", nargs="+", metavar="DATA", help="labelled JSONL files (required: there is no default data)")
    p.add_argument("--out", type=Path, metavar="DIR", help="write eval_<data>.json and eval_<data>_pr.png into DIR")
    _json(p, "print the JSON records instead of the table")
    p.add_argument("--cache", type=Path, metavar="DIR", help="embedding cache (default ~/.cache/dedup/eval)")
    p.add_argument("--no-plot", action="store_true", help="with --out: skip the PNG (no matplotlib needed)")
    p.add_argument("--langs", metavar="L1,L2", help="evaluate only articles in these languages (comma-separated)")
    p.add_argument(
        "--held-days",
        type=integer(0),
        default=4,
        metavar="N",
        help="dated titles-only data: hold the last N days aside (default 4)",
    )


def _add_info_and_model(sub: Subparsers) -> None:
    p = sub.add_parser("info", help="describe a store: model, size, index")
    _store(p)
    p = sub.add_parser("model", help="build the default model into the cache now (it is built on first use too)")
    p.add_argument("--force", action="store_true", help="rebuild even if present")


def build_parser() -> argparse.ArgumentParser:
    """The ``dedup`` parser: every subcommand, its flags and help, the exit codes in the epilog."""
    parser = argparse.ArgumentParser(
        prog="dedup",
        description="Find reports of the same news story across outlets and languages.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dedup {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common()
    reading = _reading(common)
    for add_reader in (_add_add, _add_check, _add_cluster):
        add_reader(sub, reading)
    for add_service in (_add_serve, _add_stream, _add_bench, _add_eval):
        add_service(sub, common)
    _add_info_and_model(sub)
    # --- store upkeep (issue 18): `compact` and `verify`, defined in dedup/cli/maintain.py
    from dedup.cli.maintain import add_parsers as add_maintenance_parsers

    add_maintenance_parsers(sub)
    # --- end of store upkeep
    return parser
