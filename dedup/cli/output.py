"""What the ``dedup`` command prints: verdicts, stories, summaries; text for people, JSON for programs.

Text output never lets input forge lines: ids, titles and languages that hold control
characters, line separators or surrogates are printed quoted and escaped (:func:`shown`);
JSON output carries them as they are.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

from dedup.errors import InputError
from dedup.io import write_jsonl
from dedup.types import Article, ClusterResult, Verdict

__all__ = [
    "ROW_KEYS",
    "STORED_KEY",
    "STORY_KEY",
    "clashing_fields",
    "cluster_rows",
    "one_line",
    "print_clustering",
    "print_clusters",
    "print_summary",
    "print_verdict",
    "print_verdicts",
    "shown",
    "write_rows",
]


#: Where a ``cluster`` output row puts the story id. The row is the article's own record
#: (its known fields, then every other input field, such as a ``story`` label), so the story
#: goes under a key that no ordinary input uses; an input field of that name is replaced
#: in the output, with a warning (:func:`clashing_fields`).
STORY_KEY = "__story__"
#: Whether the row's article came from ``--store`` rather than from the inputs.
STORED_KEY = "__stored__"
ROW_KEYS = (STORY_KEY, STORED_KEY)


def shown(text: str) -> str:
    """``text`` as is when every character prints, else its quoted, escaped repr (no forged lines, no surrogates)."""
    return text if text.isprintable() else repr(text)


def one_line(text: str) -> str:
    """A message on one line: control characters, line separators and surrogates escaped."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def print_verdict(verdict: Verdict, article: Article, out: IO[str]) -> None:
    """One verdict for people: DUPLICATE or NEW, each match with its score and evidence."""
    head = "DUPLICATE" if verdict.is_duplicate else "NEW"
    meta = ", ".join(shown(x) for x in (article.lang, str(article.date) if article.date else None) if x)
    print(f"{shown(verdict.id)} [{meta}]: {head}", file=out)
    for m in verdict.matches:
        ev = m.evidence
        label = "duplicate of" if m.is_duplicate else "near miss:"
        print(f"  {label} {shown(m.id)} (score {m.score:.3f}) {m.title[:70]!r}", file=out)
        gap = "unknown" if ev.date_gap_days is None else f"{ev.date_gap_days} days"
        langs = "->".join(shown(x) if x else "?" for x in ev.lang_pair)
        print(
            f"    languages {langs}, date gap {gap}, article cosine {ev.article_similarity:.3f}, "
            f"aligned passages {len(ev.aligned)} ({ev.aligned_fraction:.0%} of the shorter)",
            file=out,
        )
        if ev.shared_names or ev.shared_numbers:
            print(
                f"    shared names: {', '.join(map(shown, ev.shared_names[:8])) or '-'}; "
                f"numbers: {', '.join(map(shown, ev.shared_numbers[:8])) or '-'}",
                file=out,
            )
        for pair in ev.aligned[:3]:
            print(f"    aligned ({pair.similarity:.2f}): {pair.a_text[:60]!r} <-> {pair.b_text[:60]!r}", file=out)
    if verdict.candidates_truncated:
        print("  (retrieval stopped at its limit of candidates; raise --candidates to see more)", file=out)


def print_clusters(result: ClusterResult, out: IO[str]) -> None:
    """A clustering for people: a summary line, then each story (largest first) with its members."""
    multi = [s for s in result.stories if s.size > 1]
    print(f"{len(result.labels)} articles -> {len(result.stories)} stories ({len(multi)} with several articles)", file=out)
    for story in sorted(result.stories, key=lambda s: (-s.size, s.id)):
        dates = (
            ""
            if story.first_date is None
            else (f" {story.first_date}" if story.first_date == story.last_date else f" {story.first_date}..{story.last_date}")
        )
        langs = ",".join(map(shown, story.langs)) or "?"
        print(f"{shown(story.id)}: {story.size} article(s) [{langs}]{dates}", file=out)
        for article_id, title in zip(story.article_ids, story.titles, strict=True):
            print(f"  {shown(article_id)}  {shown(title[:90])}", file=out)


def cluster_rows(
    result: ClusterResult, articles: Mapping[str, Article], stored: Callable[[str], Article] | None = None
) -> list[dict[str, object]]:
    """One JSON-ready row per article, story by story: its record with the story id.

    A row is ``{"id", "__story__", "__stored__", ...}`` followed by the article's fields as
    :meth:`Article.to_dict` writes them: the known ones (title, text, date, lang, source,
    url), then every other input field, as read. ``__stored__`` is true for an article of
    ``--store`` (``stored`` gives its record), false for one of the inputs.
    """
    rows: list[dict[str, object]] = []
    for story in result.stories:
        for article_id in story.article_ids:
            given = articles.get(article_id)
            article = given if given is not None or stored is None else stored(article_id)
            record = article.to_dict() if article is not None else {}
            row: dict[str, object] = {"id": article_id, STORY_KEY: story.id, STORED_KEY: given is None}
            row.update((k, v) for k, v in record.items() if k not in row)
            rows.append(row)
    return rows


def clashing_fields(articles: Iterable[Article]) -> list[str]:
    """The input fields that ``cluster`` output replaces (:data:`ROW_KEYS`), sorted; usually none."""
    return sorted({key for a in articles for key in ROW_KEYS if key in a.extra})


def write_rows(path: Path, rows: Sequence[dict[str, object]]) -> None:
    """Write rows as JSONL to ``path`` (``--out``); an unwritable file is an input error."""
    try:
        with path.open("w", encoding="utf-8") as fh:
            write_jsonl(rows, fh)
    except OSError as exc:
        raise InputError(f"cannot write --out: {exc.strerror or exc}", source=str(path)) from None


def print_verdicts(
    verdicts: Sequence[Verdict], articles: Sequence[Article], *, as_json: bool, out: IO[str], shards: bool = False
) -> None:
    """Verdicts in order: one JSON object per line, or text (with the archive shards searched, if ``shards``)."""
    for verdict, article in zip(verdicts, articles, strict=True):
        if as_json:
            out.write(json.dumps(verdict.to_dict(), ensure_ascii=False) + "\n")
            continue
        print_verdict(verdict, article, out)
        if shards:
            print(f"  (searched shards: {', '.join(map(shown, verdict.shards)) or 'none'})", file=out)


def print_summary(summary: Mapping[str, object], text: str, *, as_json: bool, out: IO[str]) -> None:
    """A command's summary: the JSON object, or ``text`` for people."""
    print(json.dumps(summary) if as_json else text, file=out)


def print_clustering(result: ClusterResult, rows: Sequence[dict[str, object]], *, as_json: bool, out: IO[str]) -> None:
    """A clustering on stdout: its JSONL rows, or the text summary."""
    if as_json:
        write_jsonl(rows, out)
    else:
        print_clusters(result, out)
