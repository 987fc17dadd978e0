"""``dedup stream``: JSONL articles in, one JSON verdict per line out, for pipelines.

Each input line is one article (the JSONL format of :mod:`dedup.io`). For each good line,
one line goes to the output: the verdict (``Verdict.to_dict()``) with the input ``line``
number and ``stored`` (``"added"``, ``"unchanged"``, or null with ``add=False``). With
``add``, the article is checked and stored under the writer lock (check-and-add, as the
HTTP service does), and its verdict is written only after the store has committed it: a
verdict that says ``added`` is on disk. A line that cannot be used (malformed JSON,
invalid UTF-8, wrong types, an empty or over-long article, an id already stored with other
content) is reported through ``on_error`` and skipped; the stream goes on. Store and model
errors stop it.

Examples:
    The command does this (loads the default model, so not run as a doctest)::

        checker = SharedDetector.open("news.store", create=True)
        report = run_stream(checker, sys.stdin.buffer, sys.stdout, on_error=print_to_stderr)

"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Protocol

from dedup.errors import InputError
from dedup.io import parse_jsonl_line
from dedup.serve.shared import CheckAddResult, check_batch
from dedup.types import Article, Verdict

__all__ = ["StreamReport", "run_stream"]


class Checker(Protocol):
    """What the stream needs: :class:`dedup.serve.shared.SharedDetector` provides it."""

    def check(self, articles: Sequence[Article], *, top: int = 0) -> list[Verdict]:
        """Check articles, storing nothing."""
        ...

    def check_and_add(self, articles: Sequence[Article], *, top: int = 0) -> CheckAddResult:
        """Check articles, then store them."""
        ...


@dataclass(frozen=True)
class StreamReport:
    """What a stream did.

    Attributes:
        lines: Input lines read (blank ones included).
        checked: Articles checked (one verdict written for each).
        duplicates: Of those, how many were duplicates.
        added: Articles newly stored.
        rejected: Lines reported and skipped.

    """

    lines: int
    checked: int
    duplicates: int
    added: int
    rejected: int


def run_stream(
    checker: Checker,
    source: IO[bytes],
    out: IO[str],
    *,
    on_error: Callable[[InputError], None],
    add: bool = True,
    top: int = 0,
    max_chars: int = 1_000_000,
    name: str = "<stdin>",
) -> StreamReport:
    """Check (and with ``add``, store) each JSONL article of ``source``; one verdict line each.

    Args:
        checker: Usually a :class:`dedup.serve.shared.SharedDetector` over a store.
        source: Bytes, one JSON object per line (read line by line, so a live pipe works).
        out: Where verdict lines go; flushed after each line.
        on_error: Called with the error of each rejected line (it names ``name`` and the line).
        add: Store each article after its check.
        top: Near misses to list per verdict.
        max_chars: Longest accepted article, in characters (title + text).
        name: The source's name in error messages.

    Returns:
        Counts of lines, verdicts, duplicates, additions and rejections.

    Raises:
        StoreError: The store cannot be read or written (the stream stops).
        ModelError: The model fails (the stream stops).

    """
    max_line_bytes = 8 * max_chars + 65536  # a JSON line of max_chars characters, every one escaped
    lines = checked = duplicates = added = rejected = 0
    while True:
        raw = source.readline(max_line_bytes + 1)
        if not raw:
            break
        lines += 1
        if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
            while (rest := source.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
            rejected += 1
            on_error(InputError(f"line longer than {max_line_bytes:,} bytes (skipped)", source=name, line=lines))
            continue
        try:
            article = _parse(raw, name, lines, max_chars)
            if article is None:
                continue
            if add:
                result = checker.check_and_add([article], top=top)
                verdict, stored = result.verdicts[0], "added" if result.report.added else "unchanged"
                added += len(result.report.added)
            else:
                verdict, stored = checker.check([article], top=top)[0], None
        except InputError as exc:
            rejected += 1
            on_error(exc if exc.line is not None else InputError(exc.reason, source=name, line=lines))
            continue
        checked += 1
        duplicates += verdict.is_duplicate
        out.write(json.dumps({**verdict.to_dict(), "line": lines, "stored": stored}, ensure_ascii=False) + "\n")
        out.flush()
    return StreamReport(lines, checked, duplicates, added, rejected)


def _parse(raw: bytes, name: str, number: int, max_chars: int) -> Article | None:
    try:
        text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"not valid UTF-8: byte {raw[exc.start : exc.start + 1]!r} at offset {exc.start} of the line",
            source=name,
            line=number,
        ) from None
    if not text.strip():
        return None
    article = parse_jsonl_line(text.rstrip("\r\n"), name, number, max_chars=max_chars)
    check_batch([article])
    return article
