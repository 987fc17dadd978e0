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

One record schema (:func:`parse_record`), for JSONL lines, the HTTP API
(:class:`dedup.serve.schemas.ArticleIn` calls it) and the Python API (:func:`as_article`):

* ``id`` (required): a non-empty string, or an integer, which
  becomes its decimal string (``7`` and ``"7"`` are the same id; ``true`` and ``7.0`` are refused);
* ``title``, ``text``, ``date`` (``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``, or an ISO datetime),
  ``lang``, ``source``, ``url``: each a string or null;
* any other field is kept, as given, in :attr:`Article.extra` and written back in outputs
  (``dedup cluster --out``, ``GET /article``). A field named ``extra`` holding an object
  is read as more such fields (the form :meth:`Article.to_record` writes); it may not
  repeat a top-level field or name a known one.

What is read comes back as written: JSONL lines end at ``\n`` (or ``\r\n``) only, so line
separators JSON leaves unescaped (U+0085, U+2028, U+2029) stay inside their strings; a
``.txt`` article keeps every character but its line endings (``\r\n`` and ``\r`` read
as ``\n``, as in any text file) and the whitespace around its title and body.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dedup.errors import DuplicateIdError, InputError
from dedup.langdetect import detect_language, detect_languages
from dedup.types import EARLIEST_DATE, KNOWN_FIELDS, LATEST_DATE, Article, PartialDate

__all__ = [
    "KNOWN_FIELDS",
    "STDIN",
    "ReadResult",
    "Skipped",
    "as_article",
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


def parse_record(
    record: Mapping[str, Any], *, source: str, line: int | None, detect_lang: bool = True, max_chars: int = 1_000_000
) -> Article:
    """Turn one JSON object into an :class:`Article`, validating every field (the one record schema, above).

    Raises:
        InputError: Naming ``source`` and ``line`` and the offending value.

    """
    record = dict(record)  # json.dumps (the writability check) takes only a dict
    article_id = _article_id(record, source, line)

    def fail(reason: str) -> InputError:
        return InputError(f"article {_short(article_id)}: {reason}", source=source, line=line)

    values = _text_fields(record, fail)
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
    date = _checked_date(values["date"], fail)
    lang = (values["lang"] or "").strip().lower() or None
    if lang is None and detect_lang:
        lang = detect_language(f"{title}\n{text}")
    _check_writable(record, fail)
    extra = _extra_fields(record, fail)
    fields = {**values, "id": article_id, "title": title, "text": text, "date": date, "lang": lang, "extra": extra}
    return Article.from_record(fields)


def _article_id(record: Mapping[str, Any], source: str, line: int | None) -> str:
    """The record's id as text: a non-empty string or an integer (not a bool)."""
    if "id" not in record or record["id"] is None or record["id"] == "":
        raise InputError("record has no 'id'", source=source, line=line)
    raw_id = record["id"]
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        raise InputError(f"'id' must be a string or integer, got {_short(raw_id)}", source=source, line=line)
    try:
        text = str(raw_id)
    except ValueError:  # an int longer than Python converts to text
        raise InputError(
            f"'id' is an integer with more than {sys.get_int_max_str_digits()} digits; send it as a string",
            source=source,
            line=line,
        ) from None
    return text


def _extra_fields(record: Mapping[str, Any], fail: Callable[[str], InputError]) -> dict[str, Any]:
    """The fields that are not known ones, with those of an ``extra`` object merged in."""
    extra = {k: v for k, v in record.items() if k not in KNOWN_FIELDS and k != "extra"}
    nested = record.get("extra")
    if nested is None:
        return extra
    if not isinstance(nested, dict):
        raise fail(f"'extra' must be an object holding more fields, got {_short(nested)}")
    for key, value in nested.items():
        if key in KNOWN_FIELDS or key == "extra":
            raise fail(f"extra may not hold the field {key!r}: give it at the top level of the article")
        if key in extra:
            raise fail(f"the field {key!r} is given twice: at the top level and in 'extra'")
        extra[key] = value
    return extra


def as_article(item: Article | Mapping[str, Any], *, position: int | None = None, max_chars: int = 1_000_000) -> Article:
    """``item`` as an :class:`Article`: an article as is, a mapping through :func:`parse_record`.

    Args:
        item: An :class:`Article`, or a record as a JSONL line holds it (``{"id": ..., "title": ...}``).
        position: Its place in the caller's list, named in errors (``records[3]``).
        max_chars: Longest accepted article (title + text), in characters.

    Raises:
        InputError: ``item`` is neither, or an invalid record (the message names the field).

    """
    if isinstance(item, Article):
        return item
    where = "record" if position is None else f"records[{position}]"
    if isinstance(item, Mapping):
        return parse_record(dict(item), source=where, line=None, max_chars=max_chars)
    hint = " (wrap a text as {'id': ..., 'text': text})" if isinstance(item, str) else ""
    raise InputError(f"expected an Article or a dict record, got {type(item).__name__} {_short(item)}{hint}", source=where)


def _text_fields(record: Mapping[str, Any], fail: Callable[[str], InputError]) -> dict[str, str | None]:
    """The known fields but ``id``: each a string or null."""
    values: dict[str, str | None] = {}
    for name in KNOWN_FIELDS[1:]:
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            raise fail(f"{name!r} must be a string or null, got {type(value).__name__} {_short(value)}")
        values[name] = value
    return values


def _checked_date(value: str | None, fail: Callable[[str], InputError]) -> str | None:
    """The date as given when it parses and lies in the input range; None when absent."""
    if value is None or value == "":
        return None
    try:
        date = PartialDate.parse(value)
    except ValueError as exc:
        raise fail(f"bad 'date': {exc}") from None
    if not date.in_range():
        raise fail(f"'date' {_short(value)} is outside {EARLIEST_DATE} to {LATEST_DATE}")
    return value


def _check_writable(record: Mapping[str, Any], fail: Callable[[str], InputError]) -> None:
    """Refuse what no UTF-8 JSON output can hold: unpaired surrogates (from JSON escapes), NaN, ..."""
    try:
        json.dumps(record, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        raise fail(f"text holds an unpaired surrogate {bad!r}, which is not valid Unicode") from None
    except ValueError as exc:  # json's "Out of range float values are not JSON compliant"
        raise fail(f"a field cannot be written as JSON: a number is not finite (NaN or Infinity) ({exc})") from None
    except TypeError as exc:
        raise fail(f"a field cannot be written as JSON ({exc})") from None


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
        detect_lang: Detect missing languages (:func:`dedup.langdetect.detect_language`), then
            weigh the unsure ones by the languages of the whole input (:func:`dedup.langdetect.detect_languages`).
        max_chars: Longest accepted article (title + text), in characters.
        skip_invalid: Skip malformed records with a warning instead of failing.

    Returns:
        The articles and the skipped records (see the module docs for the policy).

    Raises:
        InputError: On the first invalid record (unless ``skip_invalid``), a file that is
            not UTF-8, or a missing file.
        DuplicateIdError: When one id comes twice with different content.

    """
    keeper = _Keeper(skip_invalid)
    for path in expand_inputs(paths):
        found = _load_input(path, stdin)
        if found.is_jsonl:
            _read_jsonl(found, keeper, detect_lang=detect_lang, max_chars=max_chars)
        else:
            _read_seed(found, keeper, detect_lang=detect_lang, max_chars=max_chars)
    articles = _settle_languages(keeper.articles) if detect_lang else keeper.articles
    return ReadResult(tuple(articles), tuple(keeper.skipped))


def _settle_languages(articles: list[Article]) -> list[Article]:
    """Articles whose language detection was unsure, weighed again by the languages of the whole input."""
    if all(a.lang is not None for a in articles):
        return articles
    langs = detect_languages([f"{a.title}\n{a.text}" for a in articles], known=[a.lang for a in articles])
    return [a if a.lang == lang else dataclasses.replace(a, lang=lang) for a, lang in zip(articles, langs, strict=True)]


@dataclass(frozen=True)
class _Input:
    """One decoded input: its name in messages, its text, its format and the id a ``.txt`` article takes."""

    source: str
    text: str
    is_jsonl: bool
    stem: str


def _load_input(path: str | Path, stdin: IO[bytes] | None) -> _Input:
    """Read and decode a file, or stdin for ``-`` (JSONL when its first character is ``{``)."""
    if path == STDIN:
        source = "<stdin>"
        text = _decode((stdin if stdin is not None else sys.stdin.buffer).read(), source)
        return _Input(source, text, text.lstrip(" \t\n\r\x0b\x0c")[:1] == "{", "stdin")  # after the BOM, if any
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}", source=str(p)) from None
    return _Input(str(p), _decode(data, str(p)), p.suffix.lower() in JSONL_SUFFIXES, p.stem)


class _Keeper:
    """Collects what is read, applying the policy for empty articles, repeated ids and invalid records."""

    def __init__(self, skip_invalid: bool) -> None:
        self.skip_invalid = skip_invalid
        self.articles: list[Article] = []
        self.skipped: list[Skipped] = []
        self._seen: dict[str, tuple[Article, str, int]] = {}

    def keep(self, article: Article, source: str, line: int) -> None:
        """Keep ``article``; skip it when empty or an exact repeat of a kept one.

        Raises:
            DuplicateIdError: Its id was kept before with other content.

        """
        if not article.title.strip() and not article.text.strip():
            reason = "empty article (no title and no text)"
            logger.warning("%s:%d: skipped %r: %s", source, line, article.id, reason)
            self.skipped.append(Skipped(source, line, article.id, reason))
            return
        previous = self._seen.get(article.id)
        if previous is not None:
            first, first_source, first_line = previous
            if first.content_hash != article.content_hash:
                raise DuplicateIdError(
                    f"id {article.id!r} already used by {first_source}:{first_line} with different content",
                    source=source,
                    line=line,
                )
            reason = f"repeats id {article.id!r} of {first_source}:{first_line} with the same content"
            logger.warning("%s:%d: skipped: %s", source, line, reason)
            self.skipped.append(Skipped(source, line, article.id, reason))
            return
        self._seen[article.id] = (article, source, line)
        self.articles.append(article)

    def invalid(self, exc: InputError, source: str, line: int, article_id: str | None) -> None:
        """Skip an invalid record with a warning, or raise ``exc`` unless ``skip_invalid``."""
        if not self.skip_invalid:
            raise exc
        logger.warning("%s", exc)
        self.skipped.append(Skipped(source, line, article_id, exc.reason))


def _read_seed(found: _Input, keeper: _Keeper, *, detect_lang: bool, max_chars: int) -> None:
    """One seed-format ``.txt`` article, its id the file's stem."""
    try:
        article = _read_seed_text(_text_lines(found.text), found.source, found.stem, detect_lang=detect_lang, max_chars=max_chars)
    except DuplicateIdError:
        raise
    except InputError as exc:
        keeper.invalid(exc, found.source, exc.line or 1, found.stem)
        return
    keeper.keep(article, found.source, 1)


def _read_jsonl(found: _Input, keeper: _Keeper, *, detect_lang: bool, max_chars: int) -> None:
    """One article per non-blank JSONL line."""
    for number, raw in enumerate(_jsonl_lines(found.text), start=1):
        if not raw.strip():
            continue
        try:
            article = parse_jsonl_line(raw, found.source, number, detect_lang=detect_lang, max_chars=max_chars)
        except InputError as exc:
            keeper.invalid(exc, found.source, number, None)
            continue
        keeper.keep(article, found.source, number)


def write_jsonl(records: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    """Write one compact JSON object per line; returns the number written."""
    count = 0
    for record in records:
        stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count
