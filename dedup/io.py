r"""Reading articles from JSONL, seed-format ``.txt`` files, folders and stdin; writing JSONL.

Error policy, case by case (each case is tested):

* malformed JSON line, a line that is not an object, a missing id, a field of the wrong
  type: **fail** with :class:`InputError` naming file, line and value. Nothing is read
  further, nothing is written, so nothing is lost. Use ``skip_invalid=True`` (CLI
  ``--skip-invalid``) to skip such lines with a warning instead.
* a file that is not UTF-8: **fail**, naming file, line and byte offset.
* a date that does not parse, or lies outside 1900-01-01 to 2100-12-31
  (:data:`~dedup.types.EARLIEST_DATE`, :data:`~dedup.types.LATEST_DATE`): **fail** (or skip
  with ``skip_invalid``), naming the value.
* a JSON integer longer than Python converts (``sys.get_int_max_str_digits()``, 4300 digits
  by default): **fail** (or skip), like malformed JSON.
* an article over ``max_chars`` characters: **fail** (or skip), naming its size and the
  setting that raises the limit. It is never silently truncated.
* an empty article (no title and no text): **skipped with a warning**: it cannot be a
  duplicate of anything, and one empty record should not stop a feed.
* the same id twice with the same content: the repeat is **skipped with a warning**;
  with different content: **fail** with :class:`DuplicateIdError` naming both lines.

Skipped records are returned in :attr:`ReadResult.skipped`, so callers can report them.

What is read comes back as written: JSONL lines end at ``\n`` (or ``\r\n``) only, so line
separators JSON leaves unescaped (U+0085, U+2028, U+2029) stay inside their strings; a
``.txt`` article keeps every character but its line endings (``\r\n`` and ``\r`` read
as ``\n``, as in any text file) and the whitespace around its title and body.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dedup.errors import DuplicateIdError, InputError
from dedup.types import EARLIEST_DATE, LATEST_DATE, Article, PartialDate

__all__ = [
    "STDIN",
    "ReadResult",
    "Skipped",
    "detect_language",
    "expand_inputs",
    "parse_jsonl_line",
    "parse_record",
    "read_articles",
    "write_jsonl",
]

logger = logging.getLogger(__name__)

JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
TEXT_SUFFIXES = frozenset({".txt"})
KNOWN_FIELDS = ("id", "title", "text", "date", "lang", "source", "url")
STDIN = "-"

_SEED_HEADER = re.compile(r"^\s*date\s+(\S+)\s*(.*)$")


@dataclass(frozen=True)
class Skipped:
    """A record that was read but not kept, and why."""

    source: str
    line: int
    id: str | None
    reason: str


@dataclass(frozen=True)
class ReadResult:
    """Articles read, in input order, and the records skipped on the way."""

    articles: tuple[Article, ...]
    skipped: tuple[Skipped, ...]


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of ``text`` by py3langid (ships its own model), or None if blank.

    Examples:
        >>> detect_language("Le ministre a reçu la délégation laotienne à Hanoï.")
        'fr'

    """
    sample = text.strip()[:2000]
    if not sample:
        return None
    import py3langid

    lang, _score = py3langid.classify(sample)
    return str(lang)


def parse_record(
    record: dict[str, Any], *, source: str, line: int | None, detect_lang: bool = True, max_chars: int = 1_000_000
) -> Article:
    """Turn one JSON object into an :class:`Article`, validating every known field.

    Raises:
        InputError: Naming ``source`` and ``line`` and the offending value.

    """
    if "id" not in record or record["id"] is None or record["id"] == "":
        raise InputError("record has no 'id'", source=source, line=line)
    raw_id = record["id"]
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        raise InputError(f"'id' must be a string or integer, got {_short(raw_id)}", source=source, line=line)
    try:
        article_id = str(raw_id)
    except ValueError:  # an int longer than Python converts to text
        raise InputError(
            f"'id' is an integer with more than {sys.get_int_max_str_digits()} digits; send it as a string",
            source=source,
            line=line,
        ) from None
    values: dict[str, str | None] = {}
    for name in ("title", "text", "date", "lang", "source", "url"):
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            raise InputError(
                f"article {article_id!r}: {name!r} must be a string or null, got {type(value).__name__} {_short(value)}",
                source=source,
                line=line,
            )
        values[name] = value
    title = (values["title"] or "").strip()
    text = values["text"] or ""
    size = len(title) + len(text)
    if size > max_chars:
        raise InputError(
            f"article {article_id!r} has {size:,} characters, over the limit of {max_chars:,} "
            "(raise it with --max-chars or Config.max_article_chars)",
            source=source,
            line=line,
        )
    date: PartialDate | None = None
    if values["date"] not in (None, ""):
        try:
            date = PartialDate.parse(values["date"] or "")
        except ValueError as exc:
            raise InputError(f"article {article_id!r}: bad 'date': {exc}", source=source, line=line) from None
        if not date.in_range():
            raise InputError(
                f"article {article_id!r}: 'date' {_short(values['date'])} is outside {EARLIEST_DATE} to {LATEST_DATE}",
                source=source,
                line=line,
            )
    lang = (values["lang"] or "").strip().lower() or None
    if lang is None and detect_lang:
        lang = detect_language(f"{title}\n{text}")
    extra = {k: v for k, v in record.items() if k not in KNOWN_FIELDS}
    try:  # JSON escapes can make unpaired surrogates, which no UTF-8 file or response can hold
        json.dumps(record, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        raise InputError(
            f"article {article_id!r}: text holds an unpaired surrogate {bad!r}, which is not valid Unicode",
            source=source,
            line=line,
        ) from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"article {article_id!r}: a field cannot be written as JSON ({exc})", source=source, line=line) from None
    return Article(
        id=article_id,
        title=title,
        text=text,
        date=date,
        lang=lang,
        source=values["source"],
        url=values["url"],
        extra=extra,
    )


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start : exc.start + 4]
        raise InputError(
            f"not valid UTF-8: byte {bad[:1]!r} at offset {exc.start} (convert the file to UTF-8, "
            "e.g. `iconv -f latin1 -t utf-8`)",
            source=source,
            line=line,
        ) from None


def _jsonl_lines(text: str) -> list[str]:
    r"""JSONL lines: split at ``\n`` only (str.splitlines() would also split inside strings, at U+2028, ...)."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def _text_lines(text: str) -> list[str]:
    r"""A text file's lines: ``\n``, ``\r\n`` and ``\r`` end a line, no other character does."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def parse_jsonl_line(raw: str, source: str, number: int, *, detect_lang: bool = True, max_chars: int = 1_000_000) -> Article:
    """Parse one JSONL line into an :class:`Article` (see :func:`parse_record`).

    Raises:
        InputError: Malformed or too deeply nested JSON, an integer too long to convert, not
            an object, or an invalid record; the message names ``source`` and ``number``.

    """
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON ({exc.msg} at column {exc.colno}): {_short(raw)}", source=source, line=number) from None
    except RecursionError:
        raise InputError("JSON nested too deeply", source=source, line=number) from None
    except ValueError:  # not a JSONDecodeError: an integer over Python's int-to-text limit
        raise InputError(
            f"JSON integer with more than {sys.get_int_max_str_digits()} digits (send such numbers as strings): {_short(raw)}",
            source=source,
            line=number,
        ) from None
    if not isinstance(record, dict):
        raise InputError(f"expected a JSON object, got {type(record).__name__}: {_short(raw)}", source=source, line=number)
    return parse_record(record, source=source, line=number, detect_lang=detect_lang, max_chars=max_chars)


def _read_seed_text(lines: Sequence[str], source: str, article_id: str, *, detect_lang: bool, max_chars: int) -> Article:
    first_index = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first_index is None:
        return Article(id=article_id)
    first = lines[first_index]
    date: str | None = None
    title = first.strip()
    m = _SEED_HEADER.match(first)
    if m is not None:
        date, title = m.group(1), m.group(2).strip()
    body = "\n".join(lines[first_index + 1 :]).strip()
    record = {"id": article_id, "title": title, "text": body, "date": date}
    return parse_record(record, source=source, line=first_index + 1, detect_lang=detect_lang, max_chars=max_chars)


def expand_inputs(paths: Iterable[str | Path]) -> list[str | Path]:
    """Files to read, in order: folders become their sorted ``.txt`` and ``.jsonl`` files."""
    out: list[str | Path] = []
    for path in paths:
        if str(path) == STDIN:
            out.append(STDIN)
            continue
        p = Path(path)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in JSONL_SUFFIXES | TEXT_SUFFIXES)
            if not found:
                raise InputError(f"folder has no .txt or .jsonl files: {p}", source=str(p))
            out.extend(found)
        elif p.is_file():
            out.append(p)
        elif p.exists():
            raise InputError("not a regular file or folder", source=str(p))
        else:
            raise InputError("no such file or folder", source=str(p))
    return out


def read_articles(
    paths: Iterable[str | Path],
    *,
    stdin: IO[bytes] | None = None,
    detect_lang: bool = True,
    max_chars: int = 1_000_000,
    skip_invalid: bool = False,
) -> ReadResult:
    """Read articles from files, folders and ``-`` (stdin), in order.

    ``.jsonl``/``.ndjson``/``.json`` files hold one JSON object per line; ``.txt`` files are
    in the seed format (first line `` date YYYY-MM[-DD] Title``, body after; without that
    line the first line is the title) and their stem is the id. Stdin holds JSONL, or one
    seed-format article (id ``stdin``) when its first character is not ``{``.

    Args:
        paths: Files, folders (their ``.txt`` and ``.jsonl`` files, sorted) or ``"-"``.
        stdin: Byte stream to read for ``"-"``; defaults to ``sys.stdin.buffer``.
        detect_lang: Detect missing languages with py3langid.
        max_chars: Longest accepted article (title + text), in characters.
        skip_invalid: Skip malformed records with a warning instead of failing.

    Returns:
        The articles and the skipped records (see the module docs for the policy).

    Raises:
        InputError: On the first invalid record (unless ``skip_invalid``), a file that is
            not UTF-8, or a missing file.
        DuplicateIdError: When one id comes twice with different content.

    """
    articles: list[Article] = []
    skipped: list[Skipped] = []
    seen: dict[str, tuple[Article, str, int]] = {}

    def keep(article: Article, source: str, line: int) -> None:
        if not article.title.strip() and not article.text.strip():
            reason = "empty article (no title and no text)"
            logger.warning("%s:%d: skipped %r: %s", source, line, article.id, reason)
            skipped.append(Skipped(source, line, article.id, reason))
            return
        previous = seen.get(article.id)
        if previous is not None:
            first, first_source, first_line = previous
            if first.content_hash == article.content_hash:
                reason = f"repeats id {article.id!r} of {first_source}:{first_line} with the same content"
                logger.warning("%s:%d: skipped: %s", source, line, reason)
                skipped.append(Skipped(source, line, article.id, reason))
                return
            raise DuplicateIdError(
                f"id {article.id!r} already used by {first_source}:{first_line} with different content",
                source=source,
                line=line,
            )
        seen[article.id] = (article, source, line)
        articles.append(article)

    for path in expand_inputs(paths):
        if path == STDIN:
            source = "<stdin>"
            data = (stdin if stdin is not None else sys.stdin.buffer).read()
            text = _decode(data, source)
            is_jsonl = text.lstrip(" \t\n\r\x0b\x0c")[:1] == "{"  # after the BOM, if any
            stem = "stdin"
        else:
            p = Path(path)
            source = str(p)
            try:
                data = p.read_bytes()
            except OSError as exc:
                raise InputError(f"cannot read file: {exc.strerror}", source=source) from None
            text = _decode(data, source)
            is_jsonl = p.suffix.lower() in JSONL_SUFFIXES
            stem = p.stem
        if not is_jsonl:
            try:
                seed = _read_seed_text(_text_lines(text), source, stem, detect_lang=detect_lang, max_chars=max_chars)
                keep(seed, source, 1)
            except DuplicateIdError:
                raise
            except InputError as exc:
                if not skip_invalid:
                    raise
                logger.warning("%s", exc)
                skipped.append(Skipped(source, exc.line or 1, stem, exc.reason))
            continue
        for number, raw in enumerate(_jsonl_lines(text), start=1):
            if not raw.strip():
                continue
            try:
                article = parse_jsonl_line(raw, source, number, detect_lang=detect_lang, max_chars=max_chars)
            except InputError as exc:
                if not skip_invalid:
                    raise
                logger.warning("%s", exc)
                skipped.append(Skipped(source, number, None, exc.reason))
                continue
            keep(article, source, number)
    return ReadResult(tuple(articles), tuple(skipped))


def write_jsonl(records: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    """Write one compact JSON object per line; returns the number written."""
    count = 0
    for record in records:
        stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count
