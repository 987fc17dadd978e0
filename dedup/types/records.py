"""The input record: :class:`Article`, checked when built, with its unknown fields kept in ``extra``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from dedup.errors import InputError
from dedup.types.dates import PartialDate

__all__ = ["KNOWN_FIELDS", "Article", "short_repr"]

#: The fields an :class:`Article` reads from a record; any other field goes to ``Article.extra``.
KNOWN_FIELDS: Final = ("id", "title", "text", "date", "lang", "source", "url")


def _freeze(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


def short_repr(value: object, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters: what a short ``repr`` quotes of a long value."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


_OPTIONAL_TEXT: Final = ("lang", "source", "url")


@dataclass(frozen=True, repr=False)
class Article:
    """One news article as read from the input. ``text`` is kept exactly as given.

    Every field is checked when the article is built: an integer ``id`` becomes its decimal
    string (``7`` -> ``"7"``), a ``date`` string is parsed (``"2023-01"`` -> a month
    :class:`PartialDate`), ``None`` title or text read as empty; anything else of the wrong
    kind raises :class:`~dedup.errors.InputError` naming the field and the value.

    Attributes:
        id: Unique identifier within a feed or store (a non-empty string).
        title: Headline (may be empty).
        text: Body, untouched by cleaning (may be empty for title-only feeds).
        date: Publication date with its precision, or None when unknown.
        lang: ISO 639-1 code, given or detected; None when unknown.
        source: Outlet or feed name.
        url: Link to the original.
        extra: Unknown input fields, kept and written back unchanged.

    Examples:
        >>> Article(id="7", date="2023-01").date
        PartialDate(year=2023, month=1, day=None)
        >>> Article(id="7", date="2023-13")
        Traceback (most recent call last):
        ...
        dedup.errors.InputError: Article '7': bad date '2023-13': not a valid calendar date: '2023-13' (month must be in 1..12)

    """

    id: str
    title: str = ""
    text: str = ""
    date: PartialDate | None = None
    lang: str | None = None
    source: str | None = None
    url: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        raw_id: object = self.id
        if isinstance(raw_id, int) and not isinstance(raw_id, bool):
            try:
                setattr_(self, "id", str(raw_id))
            except ValueError:  # more digits than Python converts to text
                raise InputError("Article id is an integer too long to convert; give it as a string") from None
        elif not isinstance(raw_id, str) or not raw_id:
            raise InputError(f"Article id must be a non-empty string or an integer, got {short_repr(raw_id)}")
        for name in ("title", "text"):
            value: object = getattr(self, name)
            if value is None:
                setattr_(self, name, "")
            elif not isinstance(value, str):
                raise InputError(f"Article {self.id!r}: {name} must be a string, got {type(value).__name__} {short_repr(value)}")
        for name in _OPTIONAL_TEXT:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise InputError(f"Article {self.id!r}: {name} must be a string or None, got {short_repr(value)}")
        setattr_(self, "date", self._parsed_date())
        if not isinstance(self.extra, Mapping):
            raise InputError(f"Article {self.id!r}: extra must be a mapping, got {short_repr(self.extra)}")
        setattr_(self, "extra", _freeze(self.extra))

    def _parsed_date(self) -> PartialDate | None:
        value: object = self.date
        if value is None or isinstance(value, PartialDate):
            return value
        if isinstance(value, str):
            if not value.strip():
                return None
            try:
                return PartialDate.parse(value)
            except ValueError as exc:
                raise InputError(f"Article {self.id!r}: bad date {short_repr(value)}: {exc}") from None
        raise InputError(
            f"Article {self.id!r}: date must be a PartialDate, a YYYY[-MM[-DD]] string or None, got {short_repr(value)}"
        )

    def __repr__(self) -> str:
        date = f", date={self.date}" if self.date else ""
        lang = f", lang={self.lang!r}" if self.lang else ""
        return f"Article(id={short_repr(self.id)}, title={short_repr(self.title)}{date}{lang}, text={len(self.text)} chars)"

    def __reduce__(self) -> tuple[type[Article], tuple[Any, ...]]:
        # A read-only mapping does not pickle; rebuild through the constructor (which freezes it again).
        return (Article, (self.id, self.title, self.text, self.date, self.lang, self.source, self.url, dict(self.extra)))

    @property
    def content_hash(self) -> str:
        """SHA-256 of what decides identity: title, text, date and language."""
        payload = json.dumps(
            [self.title, self.text, str(self.date) if self.date else None, self.lang],
            ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def to_record(self) -> dict[str, Any]:
        """The article as plain data: the known fields, then ``extra`` as one nested object.

        This is the form the store writes (``article`` in a segment's ``articles.jsonl``);
        :meth:`from_record` reads it back.

        Examples:
            >>> a = Article(id="a1", title="Talks", date=PartialDate.parse("2025-01"), extra={"feed": "x"})
            >>> a.to_record()["extra"], Article.from_record(a.to_record()) == a
            ({'feed': 'x'}, True)

        """
        return {
            "id": self.id,
            "title": self.title,
            "text": self.text,
            "date": str(self.date) if self.date else None,
            "lang": self.lang,
            "source": self.source,
            "url": self.url,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Article:
        """The article :meth:`to_record` wrote (missing or null text fields read as empty).

        The date is parsed but not checked against the input range (:meth:`PartialDate.in_range`),
        so a date stored by any version reads back; the readers check the range of new input.

        Raises:
            KeyError: ``record`` has no ``id``.
            ValueError: ``record`` holds a date that does not parse.

        """
        date = record.get("date")
        return cls(
            id=record["id"],
            title=record.get("title") or "",
            text=record.get("text") or "",
            date=PartialDate.parse(date) if date else None,
            lang=record.get("lang"),
            source=record.get("source"),
            url=record.get("url"),
            extra=record.get("extra") or {},
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the known fields first, then the extra ones (flattened, as read)."""
        out = self.to_record()
        for key, value in out.pop("extra").items():
            out.setdefault(key, value)
        return out
