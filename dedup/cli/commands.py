"""The ``dedup`` subcommands: one function each, called through :data:`COMMANDS`.

Each takes the parsed arguments, calls the stage that does the work (the
:class:`~dedup.detect.detector.Detector`, the archive, the service, the evaluation) and
prints through :mod:`dedup.cli.output`; it returns the exit code (see
:mod:`dedup.cli.parser`) or raises a :class:`~dedup.errors.DedupError` that
:func:`dedup.cli.main` turns into one.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from dedup.cli.maintain import COMMANDS as MAINTENANCE_COMMANDS
from dedup.cli.output import (
    clashing_fields,
    cluster_rows,
    one_line,
    print_clustering,
    print_summary,
    print_verdicts,
    shown,
    write_rows,
)
from dedup.cli.parser import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK
from dedup.config import Config
from dedup.detect.detector import Detector
from dedup.errors import ConfigError, InputError, OptionalDependencyError, StoreNotFoundError
from dedup.io import read_articles
from dedup.progress import configure as configure_progress
from dedup.progress import stage
from dedup.search.index import limit_threads
from dedup.serve.shared import ServiceLimits, SharedDetector
from dedup.types import Article, ClusterResult, EmbeddedArticle

__all__ = ["COMMANDS", "config_of", "progress", "run"]

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------ helpers
def config_of(args: argparse.Namespace) -> Config:
    """The :class:`Config` the flags ask for (defaults where a flag is not given)."""
    flags = {
        "model": "model",
        "threshold": "threshold",
        "max_date_gap_days": "max_date_gap",
        "candidates": "candidates",
        "max_article_chars": "max_chars",
        "backend": "backend",
        "index": "index",
        "recall_floor": "recall_floor",
        "window_days": "window_days",
        "cluster_linkage": "linkage",
    }
    changes = {field: getattr(args, flag, None) for field, flag in flags.items()}  # a subcommand has only its flags
    if getattr(args, "command", None) == "cluster" and args.threshold is not None:
        # On `cluster`, --threshold is the score a pair needs to link two stories (and to count as verified).
        changes["cluster_threshold"] = args.threshold
    return Config().with_(**{k: v for k, v in changes.items() if v is not None})


def progress(args: argparse.Namespace) -> bool:
    """Whether to report progress (bars on a terminal, lines elsewhere): not with ``--quiet``."""
    return not getattr(args, "quiet", False)


def _no_cache(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "no_cache", False))


def _read(args: argparse.Namespace, config: Config) -> list[Article]:
    result = read_articles(args.inputs, max_chars=config.max_article_chars, skip_invalid=args.skip_invalid)
    if result.skipped:
        print(f"dedup: skipped {len(result.skipped)} record(s); see warnings above", file=sys.stderr)
    if not result.articles:
        raise InputError("no articles to process", source=", ".join(map(str, args.inputs)))
    return list(result.articles)


def _output_file(path: Path | None, flag: str) -> None:
    """Refuse, before any work, an output file that cannot be written: a folder, or in a missing folder."""
    if path is None:
        return
    if path.is_dir():
        raise InputError(f"{flag} {shown(str(path))} is a folder: give a file name, e.g. {path / 'stories.jsonl'}")
    if not path.parent.is_dir():
        raise InputError(f"{flag} {shown(str(path))}: the folder {shown(str(path.parent))} does not exist (create it first)")


ArticlesCommand = Callable[[argparse.Namespace, Config, list[Article]], None]


def _on_articles(args: argparse.Namespace, config: Config, command: ArticlesCommand) -> int:
    """Read the articles of ``args.inputs``, run ``command`` on them, log the time it took."""
    articles = _read(args, config)
    started = time.perf_counter()
    command(args, config, articles)
    logger.info("%s took %.1f s", args.command, time.perf_counter() - started)
    return EXIT_OK


def _add_command(args: argparse.Namespace) -> int:
    return _on_articles(args, config_of(args), _add)


def _check_command(args: argparse.Namespace) -> int:
    return _on_articles(args, config_of(args), _check)


# ------------------------------------------------------------ add, check, cluster
def _add(args: argparse.Namespace, config: Config, articles: list[Article]) -> None:
    if args.archive is not None:
        _add_to_archive(args, config, articles)
        return
    det = Detector.open(args.store, config, create=True, cache=not _no_cache(args))
    report = det.add(articles, replace=args.replace, show_progress=progress(args))
    summary = {
        "store": str(args.store),
        "added": len(report.added),
        "unchanged": len(report.unchanged),
        "replaced": len(report.replaced),
        "total": len(det.store),
    }
    text = (
        f"added {summary['added']}, unchanged {summary['unchanged']}, replaced {summary['replaced']}; "
        f"store {args.store} holds {summary['total']} articles"
    )
    print_summary(summary, text, as_json=args.json, out=sys.stdout)


def _add_to_archive(args: argparse.Namespace, config: Config, articles: list[Article]) -> None:
    from dedup.detect.archive import ArchiveDetector

    det = ArchiveDetector.open(args.archive, config, create=True, cache=not _no_cache(args))
    report = det.add(articles, replace=args.replace, show_progress=progress(args))
    summary = {
        "archive": str(args.archive),
        "added": len(report.added),
        "unchanged": len(report.unchanged),
        "replaced": len(report.replaced),
        "total": det.archive.count(),
        "shards": len(det.archive.keys),
    }
    text = (
        f"added {summary['added']}, unchanged {summary['unchanged']}, replaced {summary['replaced']}; "
        f"archive {args.archive} holds {summary['total']} articles in {summary['shards']} shard(s)"
    )
    print_summary(summary, text, as_json=args.json, out=sys.stdout)


def _check(args: argparse.Namespace, config: Config, articles: list[Article]) -> None:
    if args.archive is not None:
        _check_in_archive(args, config, articles)
        return
    det = Detector.open(args.store, config, cache=not _no_cache(args))
    verdicts = det.check_many(articles, top=args.top, add=args.add, show_progress=progress(args))
    print_verdicts(verdicts, articles, as_json=args.json, out=sys.stdout)


def _check_in_archive(args: argparse.Namespace, config: Config, articles: list[Article]) -> None:
    from dedup.detect.archive import ArchiveDetector

    if args.search_days is not None and args.search_days < 0:
        raise ConfigError(f"--search-days must be >= 0, got {args.search_days}")
    det = ArchiveDetector.open(
        args.archive, config, read_only=not args.add, cache=not _no_cache(args), search_days=args.search_days
    )
    verdicts = det.check_many(articles, top=args.top, add=args.add, show_progress=progress(args))
    print_verdicts(verdicts, articles, as_json=args.json, out=sys.stdout, shards=True)


def _cluster_command(args: argparse.Namespace) -> int:
    config = config_of(args)
    _output_file(args.out, "--out")
    _output_file(args.html, "--html")
    if args.engine == "ray" or args.ray_address:
        return _cluster_on_ray(args, config)
    return _on_articles(args, config, _cluster)


def _warn_clashes(articles: Sequence[Article]) -> None:
    for key in clashing_fields(articles):
        logger.warning("the input field %r is replaced in the output rows by dedup's own (the story of each article)", key)


def _cluster(args: argparse.Namespace, config: Config, articles: list[Article]) -> None:
    cache = not _no_cache(args)
    det = Detector.open(args.store, config, cache=cache) if args.store else Detector.in_memory(config, cache=cache)
    _warn_clashes(articles)
    items = det.embed(articles, show_progress=progress(args))
    result = det.cluster_embedded(items, with_store=args.store is not None)
    rows = cluster_rows(result, {a.id: a for a in articles}, lambda article_id: det.stored(article_id).article)
    if args.html:
        _write_report(args.html, det, items, result, args.inputs)
    if args.out:
        write_rows(args.out, rows)
    print_clustering(result, rows, as_json=args.json, out=sys.stdout)


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
    logger.info("wrote %s (%d stories, %.0f kB)", path, len(result.stories), len(page.encode()) / 1024)


def _cluster_on_ray(args: argparse.Namespace, config: Config) -> int:
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
        cache=not _no_cache(args),
        skip_invalid=args.skip_invalid,
    )
    _warn_clashes(run.articles)
    rows = cluster_rows(run.result, {a.id: a for a in run.articles})
    if args.out:
        write_rows(args.out, rows)
    print_clustering(run.result, rows, as_json=args.json, out=sys.stdout)
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in run.seconds.items())
    logger.info(
        "ray: %d articles, %d partitions, %d node(s), %g CPUs: %s", len(run.articles), run.windows, run.nodes, run.cpus, stages
    )
    return EXIT_OK


# ----------------------------------------------------------------- serve, stream
def _serve(args: argparse.Namespace) -> int:
    try:
        from dedup.serve.http import create_app, is_loopback, listen, serve
    except ImportError as exc:
        raise OptionalDependencyError(exc.name or "fastapi", "dedup serve", "serve") from None

    config = config_of(args)
    token = args.token or os.environ.get("DEDUP_TOKEN") or None
    if token is None and not is_loopback(args.host) and not args.insecure:
        raise ConfigError(
            f"--host {shown(args.host)} is reachable from other machines and no token is set: anyone could read and "
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
    service = _open_service(args, config, "serve", read_only=args.read_only)
    app = create_app(service, token=token, limits=limits)
    host, port = sock.getsockname()[:2]
    if token is None and not is_loopback(args.host):
        logger.warning("listening on %s without a token: anyone who can reach it can add articles (set --token)", host)
    required = "required" if token else "not required"
    mode = ", read-only" if service.read_only else ""
    logger.info(
        "serving %s %s (%d articles%s) on http://%s:%d; story browser at /, docs at /docs, token %s",
        *(service.kind, service.path, len(service), mode, host, port, required),
    )
    stopped = serve(app, sock, limits=limits)
    return EXIT_INTERRUPTED if stopped else EXIT_OK


def _stream(args: argparse.Namespace) -> int:
    from dedup.serve.stream import run_stream

    config = config_of(args)
    service = _open_service(args, config, "stream", read_only=args.no_add)

    def report(exc: InputError) -> None:
        print(f"dedup: {one_line(str(exc))}; line skipped", file=sys.stderr, flush=True)

    result = run_stream(
        service,
        sys.stdin.buffer,
        sys.stdout,
        on_error=report,
        add=not args.no_add,
        top=args.top,
        max_chars=config.max_article_chars,
    )
    logger.info(
        "stream: %d line(s), %d checked (%d duplicate), %d added, %d rejected; %s holds %d articles",
        *(result.lines, result.checked, result.duplicates, result.added, result.rejected, service.kind, len(service)),
    )
    return EXIT_INPUT if result.rejected else EXIT_OK


def _open_service(args: argparse.Namespace, config: Config, command: str, *, read_only: bool) -> SharedDetector:
    """The store (``--store``) or archive (``--archive``) of ``serve`` and ``stream``, shared by threads.

    A missing one is a store error whose hint is the command's own ``--create``.
    """
    flag, where = ("--archive", args.archive) if args.archive is not None else ("--store", args.store)
    limit_threads()  # one FAISS thread per request ($DEDUP_FAISS_THREADS): steady single-query latency
    try:
        if args.archive is not None:
            service = SharedDetector.open_archive(
                args.archive, config, create=args.create, read_only=read_only, cache=not _no_cache(args)
            )
        else:
            service = SharedDetector.open(args.store, config, create=args.create, read_only=read_only, cache=not _no_cache(args))
    except StoreNotFoundError:
        if Path(where).exists():
            raise
        shown_where = shown(str(where))
        raise StoreNotFoundError(
            f"no {flag[2:]} at {shown_where} (create it with `dedup {command} {flag} {shown_where} --create`, "
            f"or fill one first with `dedup add {flag} {shown_where} ...`)"
        ) from None
    # Loading is reported; the requests that follow are each short and would only add noise.
    configure_progress(enabled=False)
    return service


# ------------------------------------------------------- bench, eval, info, model
def _bench(args: argparse.Namespace) -> int:
    from dedup.evaluation.bench import PARTS, run
    from dedup.evaluation.bench_data import BenchOptions
    from dedup.evaluation.bench_report import markdown, write

    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if sorted(set(parts) - set(PARTS)) or not parts:
        raise ConfigError(f"--parts takes {', '.join(PARTS)}; got {args.parts!r}")
    if args.data is not None and not args.data.is_dir():
        raise InputError(f"--data {shown(str(args.data))} is not a folder (give the folder that holds og2021_dev.jsonl)")
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
    report = run(options, config_of(args), parts=parts)
    if args.out_dir:
        write(report, args.out_dir, "bench")
    print(json.dumps(report, indent=1) if args.json else markdown(report), file=sys.stdout)
    return EXIT_OK


def _eval(args: argparse.Namespace) -> int:
    from dedup.evaluation.data import default_cache_dir
    from dedup.evaluation.harness import evaluate
    from dedup.evaluation.pair_eval import evaluate_pairs
    from dedup.evaluation.pairs import is_pairs_file
    from dedup.evaluation.report import (
        markdown_table,
        pairs_lang_table,
        pairs_table,
        threshold_advice,
        threshold_table,
        write_record,
    )

    config = config_of(args)
    cache = None if _no_cache(args) else (args.cache or default_cache_dir())
    langs = args.langs.split(",") if args.langs else None
    records = []
    for path in map(Path, args.inputs):
        started = time.perf_counter()
        if path.is_file() and is_pairs_file(path):  # labelled pairs (id1, id2, text1, text2, ...)
            record = evaluate_pairs(path, config=config, cache=cache, langs=langs)
        else:
            record = evaluate(path, config=config, cache=cache, held_days=args.held_days, langs=langs)
        records.append(record)
        if args.out_dir:
            logger.info("wrote %s", write_record(record, args.out_dir, plot=not args.no_plot))
        logger.info("eval %s took %.1f s", path, time.perf_counter() - started)
    if args.json:
        for record in records:
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        return EXIT_OK
    stories = [r for r in records if r["benchmark"] == "eval"]
    pairs = [r for r in records if r["benchmark"] == "eval_pairs"]
    tables = ([markdown_table(stories)] if stories else []) + ([pairs_table(pairs)] if pairs else [])
    tables += [pairs_lang_table(r, "held") for r in pairs]
    tables += [threshold_table(stories)] if stories else []
    tables += [advice] if (advice := threshold_advice(records)) else []
    print("\n\n".join(tables), file=sys.stdout)
    return EXIT_OK


def _info(args: argparse.Namespace) -> int:
    if args.archive is not None:
        return _info_archive(args)
    from dedup.search.store import Store

    store = Store.open(args.store)
    about = {
        "store": str(args.store),
        "articles": len(store),
        "model": store.model,
        "dim": store.dim,
        "index": store.index_kind,
        "index_reason": store.index_plan.describe(),
        "index_plan": store.index_plan.to_dict(),
    }
    text = (
        f"store {shown(str(args.store))}: {len(store)} articles, model {shown(store.model)} ({store.dim} dimensions)\n"
        f"index: {store.index_plan.describe()}"
    )
    print_summary(about, text, as_json=args.json, out=sys.stdout)
    return EXIT_OK


def _info_archive(args: argparse.Namespace) -> int:
    from dedup.search.archive import Archive
    from dedup.search.manifest import read_manifest

    archive = Archive.open(args.archive, read_only=True, verify=False)
    shards = {key: int(read_manifest(args.archive / key)["count"]) for key in archive.keys}
    about = {
        "archive": str(args.archive),
        "articles": sum(shards.values()),
        "model": archive.model,
        "dim": archive.dim,
        "shards": shards,
    }
    lines = [
        f"archive {shown(str(args.archive))}: {about['articles']} articles in {len(shards)} shard(s), "
        f"model {shown(archive.model)} ({archive.dim} dimensions)",
        *(f"  {key}: {count} articles" for key, count in shards.items()),
    ]
    print_summary(about, "\n".join(lines), as_json=args.json, out=sys.stdout)
    return EXIT_OK


def _model(args: argparse.Namespace) -> int:
    from dedup.embedding.default_model import materialize_default_model

    with stage("building the default model"):
        path = materialize_default_model(force=args.force)
    print_summary({"model": str(path)}, f"default model ready at {path}", as_json=args.json, out=sys.stdout)
    return EXIT_OK


#: Subcommand name -> the function that runs it and returns the exit code.
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "add": _add_command,
    "check": _check_command,
    "cluster": _cluster_command,
    "serve": _serve,
    "stream": _stream,
    "bench": _bench,
    "eval": _eval,
    "info": _info,
    "model": _model,
}
# --- store upkeep (issue 18): `compact` and `verify`, defined in dedup/cli/maintain.py
COMMANDS.update(MAINTENANCE_COMMANDS)
# --- end of store upkeep


def run(args: argparse.Namespace) -> int:
    """Run the subcommand ``args.command``; returns its exit code."""
    return COMMANDS[args.command](args)
