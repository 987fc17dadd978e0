"""The ``dedup`` command: parse arguments, call the :class:`~dedup.detect.detector.Detector`, print.

Exit codes:
    0  success (for ``check``: whatever the verdicts)
    1  unexpected internal error (a bug: please report it; one line, no traceback unless DEDUP_DEBUG=1)
    2  usage error or bad input (file, line and value are named)
    3  store error: missing, locked, damaged, or built with another model
    4  model error: the embedding model cannot be built or loaded (or an optional package is missing)
    130  interrupted (Ctrl-C); a store being written keeps its previous state

``stream`` exits 0 when every line was used, 2 when some were rejected (each is reported on
stderr as it comes; the stream goes on), 3 or 4 when the store or the model fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO

from dedup import __version__
from dedup.config import Config
from dedup.detect.detector import Detector
from dedup.errors import ConfigError, DedupError, EngineError, InputError, ModelError, OptionalDependencyError, StoreError
from dedup.io import read_articles, write_jsonl
from dedup.serve.shared import ServiceLimits
from dedup.types import Article, ClusterResult, EmbeddedArticle, Verdict

__all__ = ["main"]

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


def _integer(low: int, high: int | None = None) -> Callable[[str], int]:
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


def _number(low: float = -math.inf, high: float = math.inf, *, above: float | None = None) -> Callable[[str], float]:
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


def _shown(text: str) -> str:
    """``text`` as is when every character prints, else its quoted, escaped repr (no forged lines, no surrogates)."""
    return text if text.isprintable() else repr(text)


def _one_line(text: str) -> str:
    """A message on one line: control characters, line separators and surrogates escaped."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--model", help=f"embedding model: the offline default {Config.model!r}, a sentence-transformers name or a local folder"
    )
    common.add_argument("--threshold", type=_number(), help=f"duplicate score threshold in [0, 1] (default {Config.threshold})")
    common.add_argument(
        "--max-date-gap",
        type=int,
        metavar="DAYS",
        help=f"articles further apart are never one story (default {Config.max_date_gap_days})",
    )
    common.add_argument(
        "--candidates",
        type=int,
        metavar="K",
        help=f"stored articles retrieved per query for verification (default {Config.candidates})",
    )
    common.add_argument(
        "--max-chars", type=int, metavar="N", help=f"refuse longer articles (default {Config.max_article_chars:,})"
    )
    common.add_argument(
        "--backend",
        choices=("auto", "onnx-int8", "openvino", "torch"),
        help="how the model runs: auto (the default model: int8 on ONNX Runtime; other local mean-pooled "
        "models: OpenVINO; else torch), onnx-int8, openvino (fp32), torch (plain sentence-transformers)",
    )
    common.add_argument(
        "--index",
        choices=("auto", "flat", "hnsw", "ivf"),
        help="vector index of a store (default: keep the store's; auto for a new one: exact below 20,000 articles, "
        "then IVF tuned to --recall-floor); takes effect at the next add",
    )
    common.add_argument(
        "--recall-floor",
        type=_number(),
        metavar="R",
        help=f"recall@10 against exact search an approximate index must reach (default {Config.recall_floor})",
    )
    common.add_argument(
        "--no-cache", action="store_true", help="do not use the embedding cache ($DEDUP_CACHE_DIR or ~/.cache/dedup)"
    )
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info messages")
    reading = argparse.ArgumentParser(add_help=False, parents=[common])
    reading.add_argument(
        "--skip-invalid", action="store_true", help="skip malformed input records with a warning instead of failing"
    )

    parser = argparse.ArgumentParser(
        prog="dedup",
        description="Find reports of the same news story across outlets and languages.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dedup {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    inputs_help = "JSONL files, seed-format .txt files, folders of them, or - for stdin"

    p = sub.add_parser(
        "add",
        parents=[reading],
        help="embed articles and add them to a store (created if missing)",
        description="Embed articles and add them to a store, atomically. Re-adding the same id "
        "with the same content is a no-op; other content is an error unless --replace.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=inputs_help)
    _store_or_archive(p)
    p.add_argument("--replace", action="store_true", help="replace stored articles whose id has new content")
    p.add_argument("--json", action="store_true", help="print a JSON summary")

    p = sub.add_parser(
        "check",
        parents=[reading],
        help="is each article a duplicate of a stored one?",
        description="Print, for each article, DUPLICATE or NEW, with the matched stored articles, "
        "their scores and the evidence (language pair, date gap, aligned passages).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=inputs_help)
    _store_or_archive(p)
    p.add_argument(
        "--search-days",
        type=int,
        metavar="DAYS",
        help="with --archive: search the shards of the months within DAYS of the article's date, plus undated "
        "(default: --max-date-gap); an undated article searches every shard",
    )
    p.add_argument("--add", action="store_true", help="store each article after checking it")
    p.add_argument(
        "--top",
        type=_integer(0),
        default=0,
        metavar="K",
        help="also list the K best candidates that are not duplicates (near misses)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per article: {id, duplicate, matches}")

    p = sub.add_parser(
        "cluster",
        parents=[reading],
        help="group articles into stories",
        description="Give every article a story id. Prints a readable summary; --out writes "
        "JSONL {id, story, ...}; --json prints that JSONL instead of the summary; --html writes a "
        "self-contained HTML report.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=inputs_help)
    p.add_argument("--store", type=Path, metavar="DIR", help="also cluster the articles of this store")
    p.add_argument("--out", type=Path, metavar="FILE", help="write JSONL {id, story, ...} to FILE")
    p.add_argument("--json", action="store_true", help="print JSONL to stdout instead of the summary")
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

    p = sub.add_parser(
        "serve",
        parents=[common],
        help="HTTP service over a store: check, add, check-and-add, cluster",
        description="Serve a store over HTTP (FastAPI on uvicorn): POST /check, /add, /check-and-add, /cluster; "
        "GET /article, /story, /stories, /neighbours, /evidence, /health, /metrics; the story browser at /; "
        "the OpenAPI document at /openapi.json and /docs. "
        "Errors are 4xx with a JSON body {error, detail}. Stop with Ctrl-C.",
    )
    p.add_argument("--store", required=True, type=Path, metavar="DIR", help="store directory")
    p.add_argument("--create", action="store_true", help="create the store if it does not exist")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_integer(0, 65535), default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument(
        "--token",
        help="require 'Authorization: Bearer TOKEN' on every endpoint but /health (default: $DEDUP_TOKEN, else none)",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow a --host other than loopback without a token (anyone who can reach it can read and add articles)",
    )
    p.add_argument(
        "--max-body-mb",
        type=_number(high=4096, above=0),
        default=16.0,
        metavar="MB",
        help="largest request body, in (0, 4096] (default 16)",
    )
    p.add_argument("--max-batch", type=_integer(1), default=100, metavar="N", help="most articles per request (default 100)")
    p.add_argument(
        "--max-request-chars",
        type=_integer(1),
        default=ServiceLimits.max_request_chars,
        metavar="N",
        help="most characters (titles and texts together) one request may ask to embed; more is a 413, so one "
        f"large request cannot hold the others up for long (default {ServiceLimits.max_request_chars:,})",
    )
    p.add_argument(
        "--limit-concurrency",
        type=_integer(1),
        metavar="N",
        help="answer 503 (Retry-After) beyond N requests in flight; idle connections do not count; /health is "
        "never refused (default: no limit)",
    )
    p.add_argument(
        "--keep-alive",
        type=_integer(1, 3600),
        default=ServiceLimits.keep_alive_s,
        metavar="S",
        help=f"close a connection idle this many seconds between requests (default {ServiceLimits.keep_alive_s})",
    )
    p.add_argument(
        "--read-timeout",
        type=_number(high=3600, above=0),
        default=ServiceLimits.read_timeout_s,
        metavar="S",
        help="seconds a client has to send a request's head (from connecting, or its first byte), and again its "
        f"body; slower ones get a 408 and are closed (default {ServiceLimits.read_timeout_s:g})",
    )

    p = sub.add_parser(
        "stream",
        parents=[common],
        help="JSONL articles on stdin -> one JSON verdict per line on stdout, adding new ones",
        description="Read JSONL articles from stdin; for each, write one JSON verdict line to stdout "
        "({id, duplicate, matches, line, stored}) and store the article (check-and-add). A bad line is "
        "reported on stderr and skipped; the stream goes on. A verdict is written after its article is "
        "committed. Exit 0, or 2 if some lines were rejected.",
    )
    p.add_argument("--store", required=True, type=Path, metavar="DIR", help="store directory")
    p.add_argument("--create", action="store_true", help="create the store if it does not exist")
    p.add_argument("--no-add", action="store_true", help="only check: store nothing")
    p.add_argument(
        "--top", type=_integer(0), default=0, metavar="K", help="also list the K best candidates that are not duplicates"
    )

    p = sub.add_parser(
        "bench",
        parents=[common],
        help="benchmark the hot path: similarity search, check latency, clustering, embedding (quick: < 5 min)",
        description="Measure, in one run on this machine: each vector index (numpy brute force, FAISS flat, IVF, "
        "HNSW) at 10k and 100k vectors (build time, bytes/vector, p50/p99 single-query latency, batched queries/s, "
        "recall@1/@10 and range-search recall against exact search); check latency split into retrieval and "
        "verification; batch clustering time and memory for growing feeds; embedding throughput of the default "
        "path against plain sentence-transformers. Vectors: the development data's titles (--data) and the demo "
        "corpus, embedded, then grown with synthetic neighbours. The full run (1M vectors) is "
        "`python -m benchmarks.hotpath`.",
    )
    p.add_argument("--data", type=Path, default=Path("../shared/data"), help="development data folder (default ../shared/data)")
    p.add_argument("--demo", type=Path, default=Path("data"), help="demo corpus folder (default data)")
    p.add_argument("--parts", default="embed,search,check,cluster", help="comma-separated subset of embed,search,check,cluster")
    p.add_argument("--sizes", metavar="N,N", help="index sizes (default 10000,100000)")
    p.add_argument("--cluster-sizes", metavar="N,N", help="feed sizes for the clustering curve (default 2000,5000,10000)")
    p.add_argument("--out", type=Path, metavar="DIR", help="also write bench.json and bench.md into DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")

    p = sub.add_parser(
        "eval",
        parents=[common],
        help="measure detection quality on labelled JSONL, beside two baselines",
        description="Score the detector, TF-IDF char n-grams and article-embedding cosine on labelled JSONL "
        "(id, title, text, date, lang, story): B-cubed, ARI, pair P/R/F1 and PR curve, cross-language "
        "recall@1/@10, per language pair. Baseline thresholds are tuned on a tune part and reported on a "
        "held part. Prints a markdown table; --out writes eval_<data>.json and a PR-curve PNG.",
    )
    p.add_argument("inputs", nargs="+", metavar="DATA", help="labelled JSONL files")
    p.add_argument("--out", type=Path, metavar="DIR", help="write eval_<data>.json and eval_<data>_pr.png into DIR")
    p.add_argument("--json", action="store_true", help="print the JSON records instead of the table")
    p.add_argument("--cache", type=Path, metavar="DIR", help="embedding cache (default ~/.cache/dedup/eval)")
    p.add_argument("--no-plot", action="store_true", help="with --out: skip the PNG (no matplotlib needed)")
    p.add_argument("--langs", metavar="L1,L2", help="evaluate only articles in these languages (comma-separated)")
    p.add_argument(
        "--held-days",
        type=_integer(0),
        default=4,
        metavar="N",
        help="dated titles-only data: hold the last N days aside (default 4)",
    )

    p = sub.add_parser("info", help="describe a store: model, size, index")
    p.add_argument("--store", required=True, type=Path, metavar="DIR", help="store directory")

    p = sub.add_parser("model", help="build the default model into the cache now (it is built on first use too)")
    p.add_argument("--force", action="store_true", help="rebuild even if present")
    return parser


def _store_or_archive(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--store", type=Path, metavar="DIR", help="store directory")
    where.add_argument(
        "--archive", type=Path, metavar="DIR", help="time-sharded archive directory: one store per month, plus undated"
    )


def _archive(args: argparse.Namespace, config: Config, articles: Sequence[Article], out: IO[str]) -> None:
    """``add`` and ``check`` on a time-sharded archive (``--archive``)."""
    from dedup.detect.archive import ArchiveDetector

    if args.command == "add":
        det = ArchiveDetector.open(args.archive, config, create=True, cache=not args.no_cache)
        report = det.add(articles, replace=args.replace, show_progress=_progress(args))
        summary = {
            "archive": str(args.archive),
            "added": len(report.added),
            "unchanged": len(report.unchanged),
            "replaced": len(report.replaced),
            "total": det.archive.count(),
            "shards": len(det.archive.keys),
        }
        print(
            json.dumps(summary)
            if args.json
            else f"added {summary['added']}, unchanged {summary['unchanged']}, replaced {summary['replaced']}; "
            f"archive {args.archive} holds {summary['total']} articles in {summary['shards']} shard(s)",
            file=out,
        )
        return
    if args.add:
        raise ConfigError("check --add is not available with --archive: check, then `dedup add --archive`")
    if args.search_days is not None and args.search_days < 0:
        raise ConfigError(f"--search-days must be >= 0, got {args.search_days}")
    det = ArchiveDetector.open(args.archive, config, read_only=True, cache=not args.no_cache, search_days=args.search_days)
    verdicts = det.check_many(articles, top=args.top, show_progress=_progress(args))
    for verdict, article in zip(verdicts, articles, strict=True):
        if args.json:
            out.write(json.dumps(verdict.to_dict(), ensure_ascii=False) + "\n")
        else:
            _print_verdict(verdict, article, out)
            print(f"  (searched shards: {', '.join(map(_shown, verdict.shards)) or 'none'})", file=out)


def _bench(args: argparse.Namespace, out: IO[str]) -> int:
    from dedup.evaluation.bench import BenchOptions, markdown, run, write

    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - {"embed", "search", "check", "cluster"})
    if unknown or not parts:
        raise ConfigError(f"--parts takes embed, search, check, cluster; got {args.parts!r}")
    if not args.demo.exists() and not args.data.exists():
        raise InputError("neither the development data nor the demo corpus was found", source=f"{args.data}, {args.demo}")
    options = BenchOptions.quick(args.data, args.demo)
    try:
        if args.sizes:
            options = replace(options, sizes=tuple(int(x) for x in args.sizes.split(",")))
        if args.cluster_sizes:
            options = replace(options, cluster_sizes=tuple(int(x) for x in args.cluster_sizes.split(",")))
    except ValueError:
        raise ConfigError(
            f"--sizes and --cluster-sizes take comma-separated integers, got {args.sizes!r}, {args.cluster_sizes!r}"
        ) from None
    if min(options.sizes + options.cluster_sizes) < 100:
        raise ConfigError("benchmark sizes must be at least 100")
    report = run(options, _config(args), parts=parts)
    if args.out:
        write(report, args.out, "bench")
    print(json.dumps(report, indent=1) if args.json else markdown(report), file=out)
    return EXIT_OK


def _config(args: argparse.Namespace) -> Config:
    changes = {
        "model": args.model,
        "threshold": args.threshold,
        "max_date_gap_days": args.max_date_gap,
        "candidates": args.candidates,
        "max_article_chars": args.max_chars,
        "backend": getattr(args, "backend", None),
        "index": getattr(args, "index", None),
        "recall_floor": getattr(args, "recall_floor", None),
        "window_days": getattr(args, "window_days", None),
    }
    return Config().with_(**{k: v for k, v in changes.items() if v is not None})


def _output_file(path: Path | None, flag: str) -> None:
    """Refuse, before any work, an output file that cannot be written: a folder, or in a missing folder."""
    if path is None:
        return
    if path.is_dir():
        raise InputError(f"{flag} {_shown(str(path))} is a folder: give a file name, e.g. {path / 'stories.jsonl'}")
    if not path.parent.is_dir():
        raise InputError(f"{flag} {_shown(str(path))}: the folder {_shown(str(path.parent))} does not exist (create it first)")


def _write_rows(path: Path, rows: Sequence[dict[str, object]]) -> None:
    try:
        with path.open("w", encoding="utf-8") as fh:
            write_jsonl(rows, fh)
    except OSError as exc:
        raise InputError(f"cannot write --out: {exc.strerror or exc}", source=str(path)) from None


def _read(args: argparse.Namespace, config: Config) -> list[Article]:
    result = read_articles(args.inputs, max_chars=config.max_article_chars, skip_invalid=args.skip_invalid)
    if result.skipped:
        print(f"dedup: skipped {len(result.skipped)} record(s); see warnings above", file=sys.stderr)
    if not result.articles:
        raise InputError("no articles to process", source=", ".join(map(str, args.inputs)))
    return list(result.articles)


def _progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def _print_verdict(verdict: Verdict, article: Article, out: IO[str]) -> None:
    head = "DUPLICATE" if verdict.is_duplicate else "NEW"
    meta = ", ".join(_shown(x) for x in (article.lang, str(article.date) if article.date else None) if x)
    print(f"{_shown(verdict.id)} [{meta}]: {head}", file=out)
    for m in verdict.matches:
        ev = m.evidence
        label = "duplicate of" if m.is_duplicate else "near miss:"
        print(f"  {label} {_shown(m.id)} (score {m.score:.3f}) {m.title[:70]!r}", file=out)
        gap = "unknown" if ev.date_gap_days is None else f"{ev.date_gap_days} days"
        langs = "->".join(_shown(x) if x else "?" for x in ev.lang_pair)
        print(
            f"    languages {langs}, date gap {gap}, article cosine {ev.article_similarity:.3f}, "
            f"aligned passages {len(ev.aligned)} ({ev.aligned_fraction:.0%} of the shorter)",
            file=out,
        )
        if ev.shared_names or ev.shared_numbers:
            print(
                f"    shared names: {', '.join(map(_shown, ev.shared_names[:8])) or '-'}; "
                f"numbers: {', '.join(map(_shown, ev.shared_numbers[:8])) or '-'}",
                file=out,
            )
        for pair in ev.aligned[:3]:
            print(f"    aligned ({pair.similarity:.2f}): {pair.a_text[:60]!r} <-> {pair.b_text[:60]!r}", file=out)
    if verdict.candidates_truncated:
        print("  (retrieval stopped at its limit of candidates; raise --candidates to see more)", file=out)


def _print_clusters(result: ClusterResult, out: IO[str]) -> None:
    multi = [s for s in result.stories if s.size > 1]
    print(f"{len(result.labels)} articles -> {len(result.stories)} stories ({len(multi)} with several articles)", file=out)
    for story in sorted(result.stories, key=lambda s: (-s.size, s.id)):
        dates = (
            ""
            if story.first_date is None
            else (f" {story.first_date}" if story.first_date == story.last_date else f" {story.first_date}..{story.last_date}")
        )
        langs = ",".join(map(_shown, story.langs)) or "?"
        print(f"{_shown(story.id)}: {story.size} article(s) [{langs}]{dates}", file=out)
        for article_id, title in zip(story.article_ids, story.titles, strict=True):
            print(f"  {_shown(article_id)}  {_shown(title[:90])}", file=out)


def _cluster_rows(result: ClusterResult, articles: dict[str, Article]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for story in result.stories:
        for article_id in story.article_ids:
            a = articles.get(article_id)
            rows.append(
                {
                    "id": article_id,
                    "story": story.id,
                    "stored": a is None,
                    "lang": a.lang if a else None,
                    "date": str(a.date) if a and a.date else None,
                    "title": a.title if a else None,
                }
            )
    return rows


def _write_report(
    path: Path, det: Detector, items: Sequence[EmbeddedArticle], result: ClusterResult, inputs: Sequence[str]
) -> None:
    from dedup.browse.report import build_report, report_data
    from dedup.browse.stories import StoryBook

    embedded = {i.id: i for i in items}
    for article_id in result.labels:
        if article_id not in embedded:  # a stored article that joined the clustering
            embedded[article_id] = det.stored(article_id)
    book = StoryBook(result, {k: v.article for k, v in embedded.items()})
    cfg = det.config
    settings = {
        "model": cfg.model,
        "threshold": cfg.threshold,
        "cluster_threshold": cfg.cluster_threshold,
        "cluster_linkage": cfg.cluster_linkage,
        "max_date_gap_days": cfg.max_date_gap_days,
    }
    title = f"dedup report: {', '.join(map(str, inputs))[:120]}"
    data = report_data(book, embedded, det.compare, title=title, settings=settings)
    page = build_report(data, result.stories)
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write the report: {exc.strerror or exc}", source=str(path)) from None
    logging.getLogger(__name__).info("wrote %s (%d stories, %.0f kB)", path, len(result.stories), len(page.encode()) / 1024)


def _run(args: argparse.Namespace) -> int:
    out = sys.stdout
    if args.command == "model":
        from dedup.embedding.models import materialize_default_model

        path = materialize_default_model(force=args.force)
        print(f"default model ready at {path}", file=out)
        return EXIT_OK
    if args.command == "bench":
        return _bench(args, out)
    if args.command == "info":
        from dedup.search.store import Store

        store = Store.open(args.store)
        print(
            json.dumps(
                {
                    "store": str(args.store),
                    "articles": len(store),
                    "model": store.model,
                    "dim": store.dim,
                    "index": store.index_kind,
                    "index_reason": store.index_plan.describe(),
                    "index_plan": store.index_plan.to_dict(),
                },
                indent=1,
            ),
            file=out,
        )
        return EXIT_OK

    config = _config(args)
    if args.command == "serve":
        return _serve(args, config)
    if args.command == "stream":
        return _stream(args, config)
    if args.command == "eval":
        return _eval(args, config, out)
    if args.command == "cluster":
        _output_file(args.out, "--out")
        _output_file(args.html, "--html")
    if args.command == "cluster" and (args.engine == "ray" or args.ray_address):
        return _cluster_on_ray(args, config, out)
    articles = _read(args, config)
    started = time.perf_counter()
    if getattr(args, "archive", None) is not None:
        _archive(args, config, articles, out)
    elif args.command == "add":
        det = Detector.open(args.store, config, create=True, cache=not args.no_cache)
        report = det.add(articles, replace=args.replace, show_progress=_progress(args))
        summary = {
            "store": str(args.store),
            "added": len(report.added),
            "unchanged": len(report.unchanged),
            "replaced": len(report.replaced),
            "total": len(det.store),
        }
        print(
            json.dumps(summary)
            if args.json
            else f"added {summary['added']}, unchanged {summary['unchanged']}, replaced {summary['replaced']}; "
            f"store {args.store} holds {summary['total']} articles",
            file=out,
        )
    elif args.command == "check":
        det = Detector.open(args.store, config, cache=not args.no_cache)
        verdicts = det.check_many(articles, top=args.top, add=args.add, show_progress=_progress(args))
        for verdict, article in zip(verdicts, articles, strict=True):
            if args.json:
                out.write(json.dumps(verdict.to_dict(), ensure_ascii=False) + "\n")
            else:
                _print_verdict(verdict, article, out)
    else:
        cache = not args.no_cache
        det = Detector.open(args.store, config, cache=cache) if args.store else Detector.in_memory(config, cache=cache)
        items = det.embed(articles, show_progress=_progress(args))
        result = det.cluster_embedded(items, with_store=args.store is not None)
        rows = _cluster_rows(result, {a.id: a for a in articles})
        if args.html:
            _write_report(args.html, det, items, result, args.inputs)
        if args.out:
            _write_rows(args.out, rows)
        if args.json:
            write_jsonl(rows, out)
        else:
            _print_clusters(result, out)
    logging.getLogger(__name__).info("%s took %.1f s", args.command, time.perf_counter() - started)
    return EXIT_OK


def _cluster_on_ray(args: argparse.Namespace, config: Config, out: IO[str]) -> int:
    from dedup.clustering.ray_engine import cluster_on_ray

    if args.engine == "local":
        raise ConfigError("--ray-address runs on Ray; drop --engine local or the address")
    for flag, value in (("--store", args.store), ("--html", args.html)):
        if value is not None:
            raise ConfigError(f"{flag} works with the local engine only; drop it or --engine ray")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    run = cluster_on_ray(
        args.inputs,
        config,
        address=args.ray_address,
        workers=args.workers,
        cache=not args.no_cache,
        skip_invalid=args.skip_invalid,
    )
    rows = _cluster_rows(run.result, {a.id: a for a in run.articles})
    if args.out:
        _write_rows(args.out, rows)
    if args.json:
        write_jsonl(rows, out)
    else:
        _print_clusters(run.result, out)
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in run.seconds.items())
    logging.getLogger(__name__).info(
        "ray: %d articles, %d partitions, %d node(s), %g CPUs: %s", len(run.articles), run.windows, run.nodes, run.cpus, stages
    )
    return EXIT_OK


def _serve(args: argparse.Namespace, config: Config) -> int:
    try:
        from dedup.serve.http import create_app, is_loopback, listen, serve
    except ImportError as exc:
        raise OptionalDependencyError(exc.name or "fastapi", "dedup serve", "serve") from None
    from dedup.serve.shared import SharedDetector

    log = logging.getLogger(__name__)
    token = args.token or os.environ.get("DEDUP_TOKEN") or None
    if token is None and not is_loopback(args.host) and not args.insecure:
        raise ConfigError(
            f"--host {_shown(args.host)} is reachable from other machines and no token is set: anyone could read and "
            "add articles. Set --token (or $DEDUP_TOKEN), listen on 127.0.0.1, or pass --insecure to accept that"
        )
    limits = ServiceLimits(
        max_body_bytes=max(1, int(args.max_body_mb * 1024 * 1024)),
        max_batch=args.max_batch,
        max_request_chars=args.max_request_chars,
        max_in_flight=args.limit_concurrency,
        keep_alive_s=args.keep_alive,
        read_timeout_s=args.read_timeout,
    )
    sock = listen(args.host, args.port)  # fail fast on a busy port, before loading the model
    service = SharedDetector.open(args.store, config, create=args.create)
    app = create_app(service, token=token, limits=limits)
    host, port = sock.getsockname()[:2]
    if token is None and not is_loopback(args.host):
        log.warning("listening on %s without a token: anyone who can reach it can add articles (set --token)", host)
    log.info(
        "serving %s (%d articles) on http://%s:%d; story browser at /, docs at /docs, token %s",
        args.store,
        len(service),
        host,
        port,
        "required" if token else "not required",
    )
    stopped = serve(app, sock, limits=limits)
    return EXIT_INTERRUPTED if stopped else EXIT_OK


def _stream(args: argparse.Namespace, config: Config) -> int:
    from dedup.serve.shared import SharedDetector
    from dedup.serve.stream import run_stream

    service = SharedDetector.open(args.store, config, create=args.create)

    def report(exc: InputError) -> None:
        print(f"dedup: {_one_line(str(exc))}; line skipped", file=sys.stderr, flush=True)

    result = run_stream(
        service,
        sys.stdin.buffer,
        sys.stdout,
        on_error=report,
        add=not args.no_add,
        top=args.top,
        max_chars=config.max_article_chars,
    )
    logging.getLogger(__name__).info(
        "stream: %d line(s), %d checked (%d duplicate), %d added, %d rejected; store holds %d articles",
        result.lines,
        result.checked,
        result.duplicates,
        result.added,
        result.rejected,
        len(service),
    )
    return EXIT_INPUT if result.rejected else EXIT_OK


def _eval(args: argparse.Namespace, config: Config, out: IO[str]) -> int:
    from dedup.evaluation import harness

    cache = None if args.no_cache else (args.cache or harness.default_cache_dir())
    records = []
    for path in args.inputs:
        started = time.perf_counter()
        langs = args.langs.split(",") if args.langs else None
        record = harness.evaluate(Path(path), config=config, cache=cache, held_days=args.held_days, langs=langs)
        records.append(record)
        if args.out:
            written = harness.write_record(record, args.out, plot=not args.no_plot)
            logging.getLogger(__name__).info("wrote %s", written)
        logging.getLogger(__name__).info("eval %s took %.1f s", path, time.perf_counter() - started)
    if args.json:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        print(harness.markdown_table(records), file=out)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dedup`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
        format="dedup: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("sentence_transformers", "transformers", "httpx", "huggingface_hub", "faiss", "ray"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not _progress(args):
        # Model-loading bars of transformers / huggingface_hub; read when they are first imported.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        return _run(args)
    except (InputError, ConfigError) as exc:
        return _fail("error", exc, EXIT_INPUT)
    except StoreError as exc:
        return _fail("store error", exc, EXIT_STORE)
    except OptionalDependencyError as exc:
        return _fail("missing package", exc, EXIT_MODEL)
    except ModelError as exc:
        return _fail("model error", exc, EXIT_MODEL)
    except EngineError as exc:
        return _fail("ray error", exc, EXIT_INTERNAL)
    except DedupError as exc:
        return _fail("error", exc, EXIT_INTERNAL)
    except KeyboardInterrupt:
        print("dedup: interrupted; stores keep their previous state", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader of our output went away (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # a bug: one line naming it, the traceback only on request
        if os.environ.get("DEDUP_DEBUG"):
            traceback.print_exc()
        hint = "" if os.environ.get("DEDUP_DEBUG") else " (set DEDUP_DEBUG=1 to see the traceback)"
        print(
            f"dedup: internal error: {type(exc).__name__}: {_one_line(str(exc))[:500]}; "
            f"this is a bug in dedup, please report it{hint}",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _fail(kind: str, exc: Exception, code: int) -> int:
    print(f"dedup: {kind}: {_one_line(str(exc))}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
