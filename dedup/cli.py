"""The ``dedup`` command: parse arguments, call the :class:`~dedup.detector.Detector`, print.

Exit codes:
    0  success (for ``check``: whatever the verdicts)
    1  unexpected internal error (a bug: please report it)
    2  usage error or bad input (file, line and value are named)
    3  store error: missing, locked, damaged, or built with another model
    4  model error: the embedding model cannot be built or loaded
    130  interrupted (Ctrl-C); a store being written keeps its previous state
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from . import __version__
from .config import Config
from .detector import ClusterResult, Detector
from .errors import ConfigError, DedupError, InputError, ModelError, StoreError
from .io import read_articles, write_jsonl
from .types import Article, Verdict

__all__ = ["main"]

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT, EXIT_STORE, EXIT_MODEL, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130

EPILOG = """\
exit codes: 0 success, 1 internal error, 2 usage or input error, 3 store error,
            4 model error, 130 interrupted (a store keeps its previous state)

examples:
  dedup cluster data/                          cluster the demo corpus into stories
  dedup add --store news.store feed.jsonl      create/extend a store
  dedup check --store news.store new.txt       duplicate or new? with evidence
  dedup eval labelled.jsonl --out results/     quality beside baselines (needs `story`)
  cat feed.jsonl | dedup check --store news.store --json -   machine output
"""


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--model", help=f"embedding model: the offline default {Config.model!r}, a sentence-transformers name or a local folder"
    )
    common.add_argument("--threshold", type=float, help=f"duplicate score threshold in [0, 1] (default {Config.threshold})")
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
        "--skip-invalid", action="store_true", help="skip malformed input records with a warning instead of failing"
    )
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info messages")

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
        parents=[common],
        help="embed articles and add them to a store (created if missing)",
        description="Embed articles and add them to a store, atomically. Re-adding the same id "
        "with the same content is a no-op; other content is an error unless --replace.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=inputs_help)
    p.add_argument("--store", required=True, type=Path, metavar="DIR", help="store directory")
    p.add_argument("--replace", action="store_true", help="replace stored articles whose id has new content")
    p.add_argument("--json", action="store_true", help="print a JSON summary")

    p = sub.add_parser(
        "check",
        parents=[common],
        help="is each article a duplicate of a stored one?",
        description="Print, for each article, DUPLICATE or NEW, with the matched stored articles, "
        "their scores and the evidence (language pair, date gap, aligned passages).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=inputs_help)
    p.add_argument("--store", required=True, type=Path, metavar="DIR", help="store directory")
    p.add_argument("--add", action="store_true", help="store each article after checking it")
    p.add_argument(
        "--top", type=int, default=0, metavar="K", help="also list the K best candidates that are not duplicates (near misses)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per article: {id, duplicate, matches}")

    p = sub.add_parser(
        "cluster",
        parents=[common],
        help="group articles into stories",
        description="Give every article a story id. Prints a readable summary; --out writes "
        "JSONL {id, story, ...}; --json prints that JSONL instead of the summary.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=inputs_help)
    p.add_argument("--store", type=Path, metavar="DIR", help="also cluster the articles of this store")
    p.add_argument("--out", type=Path, metavar="FILE", help="write JSONL {id, story, ...} to FILE")
    p.add_argument("--json", action="store_true", help="print JSONL to stdout instead of the summary")

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
    p.add_argument("--no-cache", action="store_true", help="embed again, keep nothing")
    p.add_argument("--no-plot", action="store_true", help="with --out: skip the PNG (no matplotlib needed)")
    p.add_argument("--langs", metavar="L1,L2", help="evaluate only articles in these languages (comma-separated)")
    p.add_argument(
        "--held-days", type=int, default=4, metavar="N", help="dated titles-only data: hold the last N days aside (default 4)"
    )

    p = sub.add_parser("info", help="describe a store: model, size, index")
    p.add_argument("--store", required=True, type=Path, metavar="DIR", help="store directory")

    p = sub.add_parser("model", help="build the default model into the cache now (it is built on first use too)")
    p.add_argument("--force", action="store_true", help="rebuild even if present")
    return parser


def _config(args: argparse.Namespace) -> Config:
    changes = {
        "model": args.model,
        "threshold": args.threshold,
        "max_date_gap_days": args.max_date_gap,
        "candidates": args.candidates,
        "max_article_chars": args.max_chars,
    }
    return Config().with_(**{k: v for k, v in changes.items() if v is not None})


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
    meta = ", ".join(x for x in (article.lang, str(article.date) if article.date else None) if x)
    print(f"{verdict.id} [{meta}]: {head}", file=out)
    for m in verdict.matches:
        ev = m.evidence
        label = "duplicate of" if m.is_duplicate else "near miss:"
        print(f"  {label} {m.id} (score {m.score:.3f}) {m.title[:70]!r}", file=out)
        gap = "unknown" if ev.date_gap_days is None else f"{ev.date_gap_days} days"
        langs = "->".join(x or "?" for x in ev.lang_pair)
        print(
            f"    languages {langs}, date gap {gap}, article cosine {ev.article_similarity:.3f}, "
            f"aligned passages {len(ev.aligned)} ({ev.aligned_fraction:.0%} of the shorter)",
            file=out,
        )
        if ev.shared_names or ev.shared_numbers:
            print(
                f"    shared names: {', '.join(ev.shared_names[:8]) or '-'}; numbers: {', '.join(ev.shared_numbers[:8]) or '-'}",
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
        print(f"{story.id}: {story.size} article(s) [{','.join(story.langs) or '?'}]{dates}", file=out)
        for article_id, title in zip(story.article_ids, story.titles, strict=True):
            print(f"  {article_id}  {title[:90]}", file=out)


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


def _run(args: argparse.Namespace) -> int:
    out = sys.stdout
    if args.command == "model":
        from .models import materialize_default_model

        path = materialize_default_model(force=args.force)
        print(f"default model ready at {path}", file=out)
        return EXIT_OK
    if args.command == "info":
        from .store import Store

        store = Store.open(args.store)
        print(
            json.dumps(
                {
                    "store": str(args.store),
                    "articles": len(store),
                    "model": store.model,
                    "dim": store.dim,
                    "index": store.index_kind,
                },
                indent=1,
            ),
            file=out,
        )
        return EXIT_OK

    config = _config(args)
    if args.command == "eval":
        return _eval(args, config, out)
    articles = _read(args, config)
    started = time.perf_counter()
    if args.command == "add":
        det = Detector.open(args.store, config, create=True)
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
        det = Detector.open(args.store, config)
        verdicts = det.check_many(articles, top=args.top, add=args.add, show_progress=_progress(args))
        for verdict, article in zip(verdicts, articles, strict=True):
            if args.json:
                out.write(json.dumps(verdict.to_dict(), ensure_ascii=False) + "\n")
            else:
                _print_verdict(verdict, article, out)
    else:
        det = Detector.open(args.store, config) if args.store else Detector.in_memory(config)
        result = det.cluster(articles, with_store=args.store is not None, show_progress=_progress(args))
        rows = _cluster_rows(result, {a.id: a for a in articles})
        if args.out:
            with args.out.open("w", encoding="utf-8") as fh:
                write_jsonl(rows, fh)
        if args.json:
            write_jsonl(rows, out)
        else:
            _print_clusters(result, out)
    logging.getLogger(__name__).info("%s took %.1f s", args.command, time.perf_counter() - started)
    return EXIT_OK


def _eval(args: argparse.Namespace, config: Config, out: IO[str]) -> int:
    from . import harness

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
    for noisy in ("sentence_transformers", "transformers", "httpx", "huggingface_hub", "faiss"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not _progress(args):
        # Model-loading bars of transformers / huggingface_hub; read when they are first imported.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        return _run(args)
    except (InputError, ConfigError) as exc:
        print(f"dedup: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except StoreError as exc:
        print(f"dedup: store error: {exc}", file=sys.stderr)
        return EXIT_STORE
    except ModelError as exc:
        print(f"dedup: model error: {exc}", file=sys.stderr)
        return EXIT_MODEL
    except DedupError as exc:
        print(f"dedup: error: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        print("dedup: interrupted; stores keep their previous state", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
