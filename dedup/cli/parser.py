"""The ``dedup`` command line: subcommands, their flags, and the exit codes.

Each subcommand shows only the flags it uses. One function per subcommand adds it
(``_add_<name>(sub)``) and opts into the shared flag groups of :mod:`dedup.cli.flags` it
needs, one line each: ``model_options`` (model, backend, cache), ``decision_options``
(threshold, date gap, candidates), ``reading_options`` (article size, malformed records),
``index_options`` (a store's vector index), ``quiet``. A flag of one subcommand
is one ``p.add_argument`` line in its function. Every subcommand's help ends with its exit
codes. Values are checked at parse time where argparse can (ranges, finite numbers, input
extensions), so a bad value exits 2 naming it, with the subcommand's usage, before any work.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dedup import __version__
from dedup.cli.flags import (
    Parser,
    decision_options,
    index_options,
    input_path,
    inputs,
    integer,
    json_flag,
    model_options,
    number,
    out_dir,
    quiet,
    reading_options,
    store_or_archive,
    top,
)
from dedup.cli.maintain import add_parsers as add_maintenance_parsers
from dedup.config import Config
from dedup.serve.shared import ServiceLimits

__all__ = [
    "EXIT_INPUT",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_MODEL",
    "EXIT_OK",
    "EXIT_STORE",
    "Parser",
    "build_parser",
    "input_path",
    "integer",
    "number",
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
  dedup eval labelled.jsonl --out-dir results/ quality beside baselines (needs `story`)
  cat feed.jsonl | dedup check --store news.store --json -   machine output
  dedup serve --store news.store               HTTP service and story browser on http://127.0.0.1:8000/
  tail -f feed.jsonl | dedup stream --store news.store   one verdict per line, adding as it goes
"""

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written (they are wrapped when the subcommand is added)."""


#: Exit codes every subcommand can give, and the line each gets in its help.
_EXITS = {
    0: "success",
    1: "internal error (a bug: please report it)",
    2: "usage error or bad input (file, line and value named)",
    3: "store error: missing, locked, damaged, or another model's",
    4: "model error: the model cannot be loaded, or an optional package is missing",
    130: "interrupted (Ctrl-C); a store keeps its previous state",
}


def _sub(sub: Subparsers, name: str, *, help_text: str, description: str, exits: dict[int, str]) -> argparse.ArgumentParser:
    """Add subcommand ``name``: its description wrapped, its exit codes (``exits`` overrides the wording) as the epilog."""
    codes = {**{code: _EXITS[code] for code in exits}, **{code: text for code, text in exits.items() if text}}
    epilog = "exit codes:\n" + "\n".join(f"  {code:>3}  {codes[code]}" for code in sorted(codes))
    return sub.add_parser(
        name,
        help=help_text,
        description=textwrap.fill(description, width=88),
        epilog=epilog,
        formatter_class=_Formatter,
    )


#: Codes of a subcommand that embeds articles into or against a store.
_STORE_WORK = {0: "", 1: "", 2: "", 3: "", 4: "", 130: ""}


def _served(p: argparse.ArgumentParser, *, read_only: bool) -> None:
    """``--store DIR`` or ``--archive DIR`` (one required), ``--create``, and for ``serve`` ``--read-only``."""
    store_or_archive(p)
    p.add_argument("--create", action="store_true", help="create the store or archive if it does not exist")
    if read_only:
        p.add_argument(
            "--read-only",
            action="store_true",
            help="a replica: take no lock, write nothing (/add and /check-and-add answer 403); it picks up the "
            "writer's commits before each request. Many read-only servers beside one writer serve many clients",
        )


# -------------------------------------------------------------------- subcommands
def _add_add(sub: Subparsers) -> None:
    p = _sub(
        sub,
        "add",
        help_text="embed articles and add them to a store (created if missing)",
        description="Embed articles and add them to a store, atomically. Re-adding the same id "
        "with the same content is a no-op; other content is an error unless --replace.",
        exits=_STORE_WORK,
    )
    inputs(p)
    store_or_archive(p)
    p.add_argument("--replace", action="store_true", help="replace stored articles whose id has new content")
    json_flag(p, "print a JSON summary")
    model_options(p)
    reading_options(p)
    index_options(p)
    quiet(p)


def _add_check(sub: Subparsers) -> None:
    p = _sub(
        sub,
        "check",
        help_text="is each article a duplicate of a stored one?",
        description="Print, for each article, DUPLICATE or NEW, with the matched stored articles, "
        "their scores and the evidence (language pair, date gap, aligned passages).",
        exits={**_STORE_WORK, 0: "success, whatever the verdicts"},
    )
    inputs(p)
    store_or_archive(p)
    p.add_argument(
        "--search-days",
        type=int,
        metavar="DAYS",
        help="with --archive: search the shards of the months within DAYS of the article's date, plus undated "
        "(default: --max-date-gap); an undated article searches every shard",
    )
    p.add_argument("--add", action="store_true", help="store each article after checking it")
    top(p, "also list the K best candidates that are not duplicates (near misses)")
    json_flag(p, "one JSON object per article: {id, duplicate, matches}")
    model_options(p)
    decision_options(p)
    reading_options(p)
    index_options(p)
    quiet(p)


def _add_cluster(sub: Subparsers) -> None:
    p = _sub(
        sub,
        "cluster",
        help_text="group articles into stories",
        description="Give every article a story id. Prints a readable summary; --out writes "
        "JSONL {id, story, ...}; --json prints that JSONL instead of the summary; --html writes a "
        "self-contained HTML report.",
        exits={**_STORE_WORK, 1: "internal error, or the Ray job failed", 3: "store error (with --store)"},
    )
    inputs(p)
    p.add_argument("--store", type=Path, metavar="DIR", help="also cluster the articles of this store")
    p.add_argument("--out", type=Path, metavar="FILE", help="write JSONL {id, story, ...} to FILE")
    json_flag(p, "print JSONL to stdout instead of the summary")
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
    # The clustering decision (issue 17): --threshold is, on `cluster`, the score a pair needs to
    # link two stories (Config.cluster_threshold); --linkage is how close linked stories must be.
    p.add_argument(
        "--linkage",
        type=number(0, 1),
        metavar="SCORE",
        help="average pair score two linked stories need between them to merge (average linkage; 0 merges every "
        f"link, as single linkage; higher keeps stories tighter; default {Config.cluster_linkage})",
    )
    model_options(p)
    decision_options(
        p,
        threshold_help=f"the score in [0, 1] a pair needs to link two stories (default {Config.cluster_threshold})",
    )
    reading_options(p)
    quiet(p)


def _add_serve(sub: Subparsers) -> None:
    p = _sub(
        sub,
        "serve",
        help_text="HTTP service over a store or an archive: check, add, check-and-add, cluster",
        description="Serve a store or a time-sharded archive over HTTP (FastAPI on uvicorn): "
        "POST /check, /add, /check-and-add, /cluster; "
        "GET /article, /story, /stories, /neighbours, /evidence, /health, /metrics; the story browser at /; "
        "the OpenAPI document at /openapi.json and /docs. "
        "Errors are 4xx with a JSON body {error, detail}. Stop with Ctrl-C.",
        exits={**_STORE_WORK, 0: "stopped", 2: "usage error (a bad flag, a busy port, a public address without a token)"},
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
    model_options(p)
    decision_options(p)
    reading_options(p, skip=False)
    index_options(p)
    quiet(p)


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


def _add_stream(sub: Subparsers) -> None:
    p = _sub(
        sub,
        "stream",
        help_text="JSONL articles on stdin -> one JSON verdict per line on stdout, adding new ones",
        description="Read JSONL articles from stdin; for each, write one JSON verdict line to stdout "
        "({id, duplicate, matches, line, stored}) and store the article (check-and-add). A bad line is "
        "reported on stderr and skipped; the stream goes on. A verdict is written after its article is "
        "committed.",
        exits={**_STORE_WORK, 0: "every line was used", 2: "usage error, or some lines were rejected (each reported)"},
    )
    _served(p, read_only=False)
    p.add_argument("--no-add", action="store_true", help="only check: store nothing")
    top(p, "also list the K best candidates that are not duplicates")
    model_options(p)
    decision_options(p)
    reading_options(p, skip=False)
    index_options(p)
    quiet(p)


def _add_bench(sub: Subparsers) -> None:
    p = _sub(
        sub,
        "bench",
        help_text="benchmark the hot path: similarity search, check latency, clustering, embedding (quick: < 5 min)",
        description="Measure, in one run on this machine: each vector index (numpy brute force, FAISS flat, IVF, "
        "HNSW) at 10k and 100k vectors (build time, bytes/vector, p50/p99 single-query latency, batched queries/s, "
        "recall@1/@10 and range-search recall against exact search); check latency split into retrieval and "
        "verification; batch clustering time and memory for growing feeds; embedding throughput of the default "
        "path against plain sentence-transformers. Vectors: the demo corpus (--demo), plus the titles of "
        "og2021_dev.jsonl and ntrex_dev.jsonl when --data names a folder holding them, embedded, then grown "
        "with synthetic neighbours; the output names the source. The full run (1M vectors) is "
        "`python -m benchmarks.hotpath`.",
        exits={0: "", 1: "", 2: "", 4: "", 130: ""},
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
    out_dir(p, "also write bench.json and bench.md into DIR (created if missing)")
    json_flag(p, "print one JSON object instead of the tables")
    model_options(p, cache=False)
    p.add_argument(
        "--candidates",
        type=int,
        metavar="K",
        help=f"stored articles retrieved per query for verification (default {Config.candidates})",
    )
    index_options(p, floor_only=True)
    quiet(p)


def _add_eval(sub: Subparsers) -> None:
    p = _sub(
        sub,
        "eval",
        help_text="measure detection quality on labelled JSONL (articles or pairs), beside baselines",
        description="Score the detector, TF-IDF char n-grams and article-embedding cosine on labelled JSONL "
        "(id, title, text, date, lang, story): B-cubed, ARI, pair P/R/F1 and PR curve, cross-language "
        "recall@1/@10, per language pair. Baseline thresholds are tuned on a tune part and reported on a "
        "held part. Prints a markdown table; --out-dir writes eval_<data>.json and a PR-curve PNG. "
        "A file whose first record has id1, id2, text1, text2 is read as labelled pairs (SemEval-2022 "
        "Task 8: lang1, lang2, overall, label, scores): the detector's score, its centred cosine, the "
        "plain cosine and TF-IDF get ROC-AUC, hard-negative AUC, Pearson/Spearman with overall, best F1 "
        "and ECE, per language pair, on a tune and a held part split by connected component.",
        exits={0: "", 1: "", 2: "", 4: "", 130: ""},
    )
    inputs(p, "DATA", "labelled JSONL files (required: there is no default data)")
    out_dir(p, "write eval_<data>.json and eval_<data>_pr.png into DIR")
    json_flag(p, "print the JSON records instead of the table")
    p.add_argument("--cache", type=Path, metavar="DIR", help="embedding cache (default ~/.cache/dedup/eval)")
    p.add_argument("--no-plot", action="store_true", help="with --out-dir: skip the PNG (no matplotlib needed)")
    p.add_argument("--langs", metavar="L1,L2", help="evaluate only articles in these languages (comma-separated)")
    p.add_argument(
        "--held-days",
        type=integer(0),
        default=4,
        metavar="N",
        help="dated titles-only data: hold the last N days aside (default 4)",
    )
    model_options(p)
    decision_options(p)
    reading_options(p, skip=False)
    quiet(p)


def _add_info(sub: Subparsers) -> None:
    p = _sub(
        sub,
        "info",
        help_text="describe a store or an archive: model, size, index",
        description="Describe a store (model, articles, vector dimension, which vector index is in use and why) "
        "or an archive (model, articles, its shards and their sizes, read from their manifests). It never writes.",
        exits={0: "", 1: "", 2: "", 3: ""},
    )
    store_or_archive(p)
    json_flag(p, "print one JSON object instead of the text")


def _add_model(sub: Subparsers) -> None:
    p = _sub(
        sub,
        "model",
        help_text="build the default model into the cache now (it is built on first use too)",
        description="Build the default model (int8 ONNX, from the weights a package ships) into the model "
        "cache ($DEDUP_CACHE_DIR or ~/.cache/dedup/models). Every command builds it on first use; this "
        "does it ahead of time (e.g. in a container image).",
        exits={0: "", 1: "", 2: "", 4: "", 130: ""},
    )
    p.add_argument("--force", action="store_true", help="rebuild even if present")
    json_flag(p, 'print {"model": PATH} instead of the text')
    quiet(p)


#: The subcommands, in the order ``dedup --help`` lists them. A new one: its ``_add_<name>``, here.
SUBCOMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    _add_add,
    _add_check,
    _add_cluster,
    _add_serve,
    _add_stream,
    _add_bench,
    _add_eval,
    _add_info,
    _add_model,
    add_maintenance_parsers,  # store upkeep (issue 18): `compact` and `verify`, in dedup/cli/maintain.py
)


def build_parser() -> Parser:
    """The ``dedup`` parser: every subcommand, its flags, help and exit codes; examples in the epilog."""
    parser = Parser(
        prog="dedup",
        description="Find reports of the same news story across outlets and languages.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dedup {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=argparse.ArgumentParser)
    for add_subcommand in SUBCOMMANDS:
        add_subcommand(sub)
    return parser
