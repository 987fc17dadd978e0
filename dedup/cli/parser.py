"""The ``dedup`` command line: subcommands, their flags, and the exit codes.

Each subcommand shows only the flags it uses. One function per subcommand adds it
(``_add_<name>(sub)``) and opts into the shared flag groups it needs, one line each:
:func:`_model_options` (model, backend, cache), :func:`_decision_options` (threshold, date
gap, candidates), :func:`_reading_options` (article size, malformed records),
:func:`_index_options` (a store's vector index), :func:`_quiet`. A flag of one subcommand
is one ``p.add_argument`` line in its function. Every subcommand's help ends with its exit
codes. Values are checked at parse time where argparse can (ranges, finite numbers, input
extensions), so a bad value exits 2 naming it, with the subcommand's usage, before any work.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from dedup import __version__
from dedup.config import BACKENDS, INDEX_KINDS, Config
from dedup.io import JSONL_SUFFIXES, STDIN, TEXT_SUFFIXES
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

INPUTS_HELP = "JSONL files (.jsonl, .ndjson, .json), seed-format .txt files, folders of them, or - for stdin"

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


def input_path(text: str) -> str:
    """An argparse type: an input file, folder or ``-``; a file of another extension is refused with a hint.

    A missing path passes (the reader names it); a folder passes (the reader takes its
    ``.txt`` and ``.jsonl`` files).
    """
    if text == STDIN:
        return text
    path = Path(text)
    if path.is_dir() or (not path.exists() and not path.suffix):
        return text
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES | TEXT_SUFFIXES:
        return text
    what = f"extension {suffix!r}" if suffix else "no extension"
    raise argparse.ArgumentTypeError(
        f"{text!r} has {what}: dedup reads {', '.join(sorted(JSONL_SUFFIXES))} (JSON lines) and .txt (seed format); "
        "convert it (a CSV: one JSON object per row), or rename it if it is one of those"
    )


# ------------------------------------------------------------------------- parser
class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors show the usage of the subcommand they concern.

    Plain argparse reports a subcommand's unknown flag with the top-level usage; here
    ``dedup cluster --bogus`` shows ``dedup cluster``'s usage (exit 2).
    """

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """Parse ``args``; unknown arguments are reported by the subcommand's parser."""
        argv = list(sys.argv[1:] if args is None else args)
        name = next((a for a in argv if not a.startswith("-")), None)
        command = self.subcommand(name)
        if command is not None:
            # Before parsing: else the value of an unknown flag is taken for an input
            # (`add --threshold 0.5 f.jsonl` would complain about a file named 0.5).
            for token in argv[argv.index(str(name)) + 1 :]:
                if token == "--":
                    break
                if _unknown_option(command, token):
                    command.error(f"unrecognized arguments: {token} (see `dedup {name} --help` for its flags)")
        parsed, extras = self.parse_known_args(argv, namespace)
        if extras:
            command = self.subcommand(getattr(parsed, "command", None))
            (command or self).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def subcommand(self, name: str | None) -> argparse.ArgumentParser | None:
        """The parser of subcommand ``name`` (None when there is none)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and name in action.choices:
                found: argparse.ArgumentParser = action.choices[name]
                return found
        return None


def _unknown_option(parser: argparse.ArgumentParser, token: str) -> bool:
    """Whether ``token`` looks like a flag that ``parser`` does not know (abbreviations count as known)."""
    if not token.startswith("-") or token == "-" or _NEGATIVE.match(token):
        return False
    known = parser._option_string_actions
    if token.startswith("--"):
        flag = token.split("=", 1)[0]
        return not any(option.startswith(flag) for option in known if option.startswith("--"))
    return token[:2] not in known


_NEGATIVE = re.compile(r"^-\d+$|^-\d*\.\d+$")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written (they are wrapped when the subcommand is added)."""


class _Moved(argparse.Action):
    """A flag that was renamed: using it is a usage error (exit 2) naming the new flag."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, hint: str, **kwargs: Any) -> None:  # noqa: ANN401
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs=1, help=argparse.SUPPRESS, **kwargs)
        self.hint = hint

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object, option_string: str | None = None
    ) -> NoReturn:
        parser.error(f"{option_string} {self.hint}")


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


# ------------------------------------------------------------------- shared flags
def _model_options(p: argparse.ArgumentParser, *, cache: bool = True) -> None:
    """``--model``, ``--backend`` and (where an embedding cache is used) ``--no-cache``."""
    add = p.add_argument
    add("--model", help=f"embedding model: the offline default {Config.model!r}, a sentence-transformers name or a local folder")
    add(
        "--backend",
        choices=BACKENDS,
        help="how the model runs: auto (the default model: int8 on ONNX Runtime; other local mean-pooled "
        "models: OpenVINO; else torch), onnx-int8, openvino (fp32), torch (plain sentence-transformers)",
    )
    if cache:
        add("--no-cache", action="store_true", help="do not use the embedding cache ($DEDUP_CACHE_DIR or ~/.cache/dedup)")


def _decision_options(p: argparse.ArgumentParser) -> None:
    """What makes two articles duplicates: ``--threshold``, ``--max-date-gap``, ``--candidates``."""
    add = p.add_argument
    add("--threshold", type=number(), help=f"duplicate score threshold in [0, 1] (default {Config.threshold})")
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


def _reading_options(p: argparse.ArgumentParser, *, skip: bool = True) -> None:
    """``--max-chars`` and (for files read at once) ``--skip-invalid``."""
    p.add_argument("--max-chars", type=int, metavar="N", help=f"refuse longer articles (default {Config.max_article_chars:,})")
    if skip:
        p.add_argument(
            "--skip-invalid", action="store_true", help="skip malformed input records with a warning instead of failing"
        )


def _index_options(p: argparse.ArgumentParser, *, floor_only: bool = False) -> None:
    """A store's vector index: ``--index`` and ``--recall-floor``."""
    if not floor_only:
        p.add_argument(
            "--index",
            choices=INDEX_KINDS,
            help="vector index of a store (default: keep the store's; auto for a new one: exact below 20,000 "
            "articles, then IVF tuned to --recall-floor); takes effect at the next add",
        )
    p.add_argument(
        "--recall-floor",
        type=number(),
        metavar="R",
        help=f"recall@10 against exact search an approximate index must reach (default {Config.recall_floor})",
    )


def _quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or lines, no info messages")


def _inputs(p: argparse.ArgumentParser, metavar: str = "INPUT", help_text: str = INPUTS_HELP) -> None:
    p.add_argument("inputs", nargs="+", type=input_path, metavar=metavar, help=help_text)


def _json(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--json", action="store_true", help=help_text)


def _out_dir(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--out-dir DIR``; the old ``--out`` (a file everywhere else) is refused with a hint."""
    p.add_argument("--out-dir", type=Path, metavar="DIR", help=help_text)
    p.add_argument("--out", action=_Moved, hint="is now --out-dir DIR here (a folder); --out names a file (dedup cluster)")


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


def _top(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--top", type=integer(0), default=0, metavar="K", help=help_text)


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
    _inputs(p)
    _store_or_archive(p)
    p.add_argument("--replace", action="store_true", help="replace stored articles whose id has new content")
    _json(p, "print a JSON summary")
    _model_options(p)
    _reading_options(p)
    _index_options(p)
    _quiet(p)


def _add_check(sub: Subparsers) -> None:
    p = _sub(
        sub,
        "check",
        help_text="is each article a duplicate of a stored one?",
        description="Print, for each article, DUPLICATE or NEW, with the matched stored articles, "
        "their scores and the evidence (language pair, date gap, aligned passages).",
        exits={**_STORE_WORK, 0: "success, whatever the verdicts"},
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
    _model_options(p)
    _decision_options(p)
    _reading_options(p)
    _index_options(p)
    _quiet(p)


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
    _model_options(p)
    _decision_options(p)
    _reading_options(p)
    _quiet(p)


def _add_serve(sub: Subparsers) -> None:
    p = _sub(
        sub,
        "serve",
        help_text="HTTP service over a store: check, add, check-and-add, cluster",
        description="Serve a store over HTTP (FastAPI on uvicorn): POST /check, /add, /check-and-add, /cluster; "
        "GET /article, /story, /stories, /neighbours, /evidence, /health, /metrics; the story browser at /; "
        "the OpenAPI document at /openapi.json and /docs. "
        "Errors are 4xx with a JSON body {error, detail}. Stop with Ctrl-C.",
        exits={**_STORE_WORK, 0: "stopped", 2: "usage error (a bad flag, a busy port, a public address without a token)"},
    )
    _store(p, create=True)
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
    _model_options(p, cache=False)
    _decision_options(p)
    _reading_options(p, skip=False)
    _index_options(p)
    _quiet(p)


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
    _store(p, create=True)
    p.add_argument("--no-add", action="store_true", help="only check: store nothing")
    _top(p, "also list the K best candidates that are not duplicates")
    _model_options(p, cache=False)
    _decision_options(p)
    _reading_options(p, skip=False)
    _index_options(p)
    _quiet(p)


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
    p.add_argument("--parts", default="embed,search,check,cluster", help="comma-separated subset of embed,search,check,cluster")
    p.add_argument("--sizes", metavar="N,N", help="index sizes (default 10000,100000)")
    p.add_argument("--cluster-sizes", metavar="N,N", help="feed sizes for the clustering curve (default 2000,5000,10000)")
    _out_dir(p, "also write bench.json and bench.md into DIR (created if missing)")
    _json(p, "print one JSON object instead of the tables")
    _model_options(p, cache=False)
    p.add_argument(
        "--candidates",
        type=int,
        metavar="K",
        help=f"stored articles retrieved per query for verification (default {Config.candidates})",
    )
    _index_options(p, floor_only=True)
    _quiet(p)


def _add_eval(sub: Subparsers) -> None:
    p = _sub(
        sub,
        "eval",
        help_text="measure detection quality on labelled JSONL, beside two baselines",
        description="Score the detector, TF-IDF char n-grams and article-embedding cosine on labelled JSONL "
        "(id, title, text, date, lang, story): B-cubed, ARI, pair P/R/F1 and PR curve, cross-language "
        "recall@1/@10, per language pair. Baseline thresholds are tuned on a tune part and reported on a "
        "held part. Prints a markdown table; --out-dir writes eval_<data>.json and a PR-curve PNG.",
        exits={0: "", 1: "", 2: "", 4: "", 130: ""},
    )
    _inputs(p, "DATA", "labelled JSONL files (required: there is no default data)")
    _out_dir(p, "write eval_<data>.json and eval_<data>_pr.png into DIR")
    _json(p, "print the JSON records instead of the table")
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
    _model_options(p)
    _decision_options(p)
    _reading_options(p, skip=False)
    _quiet(p)


def _add_info(sub: Subparsers) -> None:
    p = _sub(
        sub,
        "info",
        help_text="describe a store or an archive: model, size, index",
        description="Describe a store (model, articles, vector dimension, which vector index is in use and why) "
        "or an archive (model, articles, its shards and their sizes). Reads the manifests only: fast, and "
        "it never writes.",
        exits={0: "", 1: "", 2: "", 3: ""},
    )
    _store_or_archive(p)
    _json(p, "print one JSON object instead of the text")


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
    _json(p, 'print {"model": PATH} instead of the text')
    _quiet(p)


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
