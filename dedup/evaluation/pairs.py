"""Labelled pairs of articles: the reader, the tune/held split, the articles behind them.

A pairs file is JSONL with one pair per line, as SemEval-2022 Task 8 distributes them::

    {"pair_id": "...", "id1": "...", "id2": "...", "text1": "...", "text2": "...",
     "lang1": "en", "lang2": "de", "overall": 1.25, "label": 1, "hard_negative": false,
     "scores": {"Entities": 1.0, "Overall": 1.25, ...}}

``overall`` is the raters' mean "same story?" score, from 1 (same) to 4 (different);
``label`` is 1 (same story), 0 (different) or null (in between: unlabelled). A *hard
negative* is a labelled negative whose raters found the same people and places
(``scores.Entities`` <= 2): another story about the same entities. ``hard_negative`` is
read when given, derived from ``scores`` otherwise.

The split (:func:`split_pairs`) holds aside whole connected components of the article graph
(articles are nodes, pairs are edges), so no article is on both sides.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dedup.errors import InputError
from dedup.langdetect import detect_languages
from dedup.types import Article

__all__ = [
    "PAIR_FIELDS",
    "LabelledPair",
    "components",
    "held_out_component",
    "is_pairs_file",
    "pair_articles",
    "read_pairs",
    "split_pairs",
]

logger = logging.getLogger(__name__)

#: The fields that make a JSONL record a labelled pair (rather than a labelled article).
PAIR_FIELDS = frozenset({"id1", "id2", "text1", "text2"})

_Fail = Callable[[str], InputError]

#: ``scores.Entities`` at or below this (1 = same entities, 4 = different) makes a negative hard.
HARD_ENTITIES = 2.0


@dataclass(frozen=True)
class LabelledPair:
    """Two articles and how people rated them.

    Attributes:
        id1: First article's id.
        id2: Second article's id.
        text1: First article's title and body, run together.
        text2: Second article's title and body.
        lang1: First article's language (ISO 639-1; "" when not given).
        lang2: Second article's language.
        overall: Mean "same story?" rating, 1 (same) .. 4 (different); None when not given.
        label: 1 same story, 0 different story, None unlabelled.
        hard_negative: A negative about the same people and places (``Entities`` <= 2).
        pair_id: The pair's own id (default ``"<id1>_<id2>"``).
        scores: The raters' other dimensions (``Entities``, ``Geography``, ...), as given.

    """

    id1: str
    id2: str
    text1: str
    text2: str
    lang1: str
    lang2: str
    overall: float | None
    label: int | None
    hard_negative: bool = False
    pair_id: str = ""
    scores: Mapping[str, float] = field(default_factory=dict, compare=False, hash=False)

    @property
    def lang_pair(self) -> str:
        """The two languages, sorted and joined (``"de-en"``; ``"?"`` for an unknown one)."""
        return "-".join(sorted((self.lang1 or "?", self.lang2 or "?")))


def is_pairs_file(path: Path) -> bool:
    """Whether the first non-blank line of a JSONL file is a labelled pair (has ``id1, id2, text1, text2``)."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    return False
                return isinstance(record, dict) and record.keys() >= PAIR_FIELDS
    return False


def read_pairs(path: str | Path) -> list[LabelledPair]:
    """Read a JSONL file of labelled pairs, in file order.

    Raises:
        InputError: Naming the file, the line and the bad value: invalid JSON, a missing or
            empty id or text, a label other than 0/1/null, an ``overall`` that is not a finite
            number, or the same pair of ids twice. An id given two different texts is logged (the
            first text is the article's: see :func:`pair_articles`).

    """
    path = Path(path)
    source = str(path)
    pairs: list[LabelledPair] = []
    texts: dict[str, tuple[str, int]] = {}
    seen: dict[tuple[str, str], int] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 at byte {exc.start}", source=source) from exc
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", source=source) from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON ({exc.msg}): {line[:80]!r}", source=source, line=number) from exc
        if not isinstance(record, dict):
            raise InputError(f"a pair must be a JSON object, got {line[:80]!r}", source=source, line=number)
        pair = _parse(record, source, number)
        key = (min(pair.id1, pair.id2), max(pair.id1, pair.id2))
        if key in seen:
            raise InputError(f"pair {pair.id1!r}, {pair.id2!r} already given on line {seen[key]}", source=source, line=number)
        seen[key] = number
        for article_id, text in ((pair.id1, pair.text1), (pair.id2, pair.text2)):
            first = texts.setdefault(article_id, (text, number))
            if first[0] != text:
                # Crawls disagree now and then (SemEval has one such article); the first text is the one evaluated.
                logger.warning(
                    "%s:%d: article %r has another text than on line %d; the first is used", source, number, article_id, first[1]
                )
        pairs.append(pair)
    return pairs


def _parse(record: Mapping[str, Any], source: str, line: int) -> LabelledPair:
    def fail(reason: str) -> InputError:
        return InputError(reason, source=source, line=line)

    ids = [_text(record, key, fail) for key in ("id1", "id2")]
    if ids[0] == ids[1]:
        raise fail(f"a pair needs two articles, got id1 = id2 = {ids[0]!r}")
    texts = [_text(record, key, fail, allow_int=False) for key in ("text1", "text2")]
    langs = [_lang(record, key, fail) for key in ("lang1", "lang2")]
    overall = _number(record.get("overall"), "overall", fail)
    label = record.get("label")
    if label is not None and (isinstance(label, bool) or label not in (0, 1)):
        raise fail(f"'label' must be 0, 1 or null, got {label!r}")
    raw_scores = record.get("scores") or {}
    if not isinstance(raw_scores, dict):
        raise fail(f"'scores' must be an object, got {raw_scores!r}")
    scores: dict[str, float] = {}
    for key, value in raw_scores.items():
        number = _number(value, f"scores.{key}", fail)
        if number is not None:
            scores[str(key)] = number
    hard = record.get("hard_negative")
    if hard is None:
        entities = scores.get("Entities")
        hard = label == 0 and entities is not None and entities <= HARD_ENTITIES
    elif not isinstance(hard, bool):
        raise fail(f"'hard_negative' must be true, false or null, got {hard!r}")
    pair_id = record.get("pair_id")
    return LabelledPair(
        id1=ids[0],
        id2=ids[1],
        text1=texts[0],
        text2=texts[1],
        lang1=langs[0],
        lang2=langs[1],
        overall=overall,
        label=None if label is None else int(label),
        hard_negative=bool(hard),
        pair_id=str(pair_id) if pair_id not in (None, "") else f"{ids[0]}_{ids[1]}",
        scores=scores,
    )


def _text(record: Mapping[str, Any], key: str, fail: _Fail, *, allow_int: bool = True) -> str:
    value = record.get(key)
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise fail(f"'{key}' must be a non-empty string, got {value!r}")
    return value


def _lang(record: Mapping[str, Any], key: str, fail: _Fail) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise fail(f"'{key}' must be a language code or null, got {value!r}")
    return value.strip().lower()


def _number(value: object, key: str, fail: _Fail) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise fail(f"'{key}' must be a finite number or null, got {value!r}")
    return float(value)


def components(edges: Iterable[tuple[str, str]]) -> list[str]:
    """The representative of each edge's connected component, by union-find in edge order.

    Union merges the first end's root under the second's; the representative of a component
    therefore depends on the order of the edges (the file order), which is fixed.
    """
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    edge_list = list(edges)
    for a, b in edge_list:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
    return [find(a) for a, _ in edge_list]


def held_out_component(root: str) -> bool:
    """Components whose representative's sha256 is odd are held out."""
    return int(hashlib.sha256(root.encode("utf-8")).hexdigest(), 16) % 2 == 1


def split_pairs(pairs: Sequence[LabelledPair]) -> tuple[list[LabelledPair], list[LabelledPair]]:
    """Split pairs into (tune, held) by connected component of the article graph.

    Articles are nodes and pairs edges; a component is held when the sha256 of its
    representative (:func:`components`, in the given order) is odd. No article is in both
    parts, and the same file always splits the same way.

    Examples:
        >>> ps = [LabelledPair("a", "b", "x", "y", "en", "en", 1.0, 1), LabelledPair("b", "c", "x", "z", "en", "en", 4.0, 0)]
        >>> tune, held = split_pairs(ps)
        >>> len(tune) + len(held), len(tune) in (0, 2)
        (2, True)

    """
    roots = components((p.id1, p.id2) for p in pairs)
    tune: list[LabelledPair] = []
    held: list[LabelledPair] = []
    for pair, root in zip(pairs, roots, strict=True):
        (held if held_out_component(root) else tune).append(pair)
    return tune, held


def pair_articles(pairs: Sequence[LabelledPair], *, detect_lang: bool = True) -> list[Article]:
    """Every distinct article of the pairs, once, in order of first appearance (title empty, text as given).

    A language the file does not give is detected (:func:`dedup.langdetect.detect_languages`,
    over all the file's articles) unless ``detect_lang`` is false; the pairs keep ``""``.
    """
    out: dict[str, Article] = {}
    for p in pairs:
        for article_id, text, lang in ((p.id1, p.text1, p.lang1), (p.id2, p.text2, p.lang2)):
            if article_id not in out:
                out[article_id] = Article(id=article_id, text=text, lang=lang or None)
    articles = list(out.values())
    if detect_lang and any(a.lang is None for a in articles):
        langs = detect_languages([a.text for a in articles], known=[a.lang for a in articles])
        articles = [a if a.lang == lang else dataclasses.replace(a, lang=lang) for a, lang in zip(articles, langs, strict=True)]
    return articles
