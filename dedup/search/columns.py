"""The articles a store holds, by insertion position: ids, records, article and passage vectors.

:class:`Columns` is what :class:`~dedup.search.store.Store` reads from: one
:class:`~dedup.search.parts.Part` per segment, in order. Only the id table is in memory;
records and vectors are read from the parts (the segment files, read on demand) when asked for.
Positions are insertion order, the same as the vector index's; merging consecutive
segments (compaction) keeps them.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dedup.errors import DuplicateIdError, IdConflictError, StoreCorruptError, StoreMismatchError
from dedup.search.parts import Part, Payload, concat_payloads
from dedup.types import Article, EmbeddedArticle

__all__ = ["Columns"]


class Columns:
    """Articles by position, over the parts of a generation."""

    def __init__(self, dim: int) -> None:
        self._dim = dim
        self._parts: list[Part] = []
        self._starts: list[int] = []  # the first position of each part
        self._ids: list[str] = []
        self._positions: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._positions

    @property
    def ids(self) -> list[str]:
        """Ids in insertion order."""
        return list(self._ids)

    @property
    def parts(self) -> list[Part]:
        """The parts, in order."""
        return list(self._parts)

    def position(self, article_id: str) -> int:
        """Insertion position of an id (raises KeyError)."""
        return self._positions[article_id]

    def get(self, article_id: str) -> int | None:
        """Insertion position of an id, or None."""
        return self._positions.get(article_id)

    def append(self, part: Part) -> None:
        """Append a part's articles.

        Raises:
            StoreCorruptError: An id is stored twice.

        """
        self._starts.append(len(self._ids))
        self._parts.append(part)
        for article_id in part.ids:
            if article_id in self._positions:
                raise StoreCorruptError(f"id {article_id!r} is stored twice")
            self._positions[article_id] = len(self._ids)
            self._ids.append(article_id)

    def replace_parts(self, ranges: Sequence[tuple[int, int]], merged: Sequence[Part | None]) -> None:
        """Put ``merged[i]`` in place of the parts ``ranges[i]`` (None: keep that one part); positions do not change."""
        parts = [self._parts[start] if part is None else part for (start, _), part in zip(ranges, merged, strict=True)]
        self._parts = parts
        self._starts = np.cumsum([0] + [len(p) for p in parts[:-1]]).tolist() if parts else []

    def _locate(self, position: int) -> tuple[Part, int]:
        if not 0 <= position < len(self._ids):
            raise IndexError(f"position {position} out of range")
        i = bisect.bisect_right(self._starts, position) - 1
        return self._parts[i], position - self._starts[i]

    def record(self, position: int) -> dict[str, Any]:
        """The ``articles.jsonl`` record at ``position`` (its segment checked on first read)."""
        part, row = self._locate(position)
        return part.record(row)

    def days(self, position: int) -> tuple[int, int] | None:
        """The first and last day (ordinals) the date at ``position`` can denote, from memory; None: undated or unknown."""
        part, row = self._locate(position)
        return part.days(row)

    def vectors(self, start: int = 0, stop: int | None = None) -> NDArray[np.float32]:
        """Article vectors of positions ``[start, stop)``, as one array."""
        stop = len(self) if stop is None else stop
        blocks = []
        for part, first in zip(self._parts, self._starts, strict=True):
            lo, hi = max(start, first), min(stop, first + len(part))
            if lo < hi:
                blocks.append(part.vectors(lo - first, hi - first))
        return np.vstack(blocks) if blocks else np.zeros((0, self._dim), dtype=np.float32)

    def embedded(self, position: int) -> EmbeddedArticle:
        """The article at ``position`` with its passages and vectors."""
        part, row = self._locate(position)
        record = part.record(row)
        return EmbeddedArticle(
            Article.from_record(record["article"]),
            tuple(record["passages"]),
            part.passages(row),
            np.array(part.vectors(row, row + 1)[0]),
        )

    def payload(self, start: int, stop: int) -> Payload:
        """The content of parts ``[start, stop)`` as one segment holds it."""
        return concat_payloads([p.payload() for p in self._parts[start:stop]])

    def sort_batch(
        self, items: Sequence[EmbeddedArticle], *, replace: bool
    ) -> tuple[list[EmbeddedArticle], list[str], list[str]]:
        """What an add of ``items`` does: the items to write, the ids unchanged, the ids replaced.

        Raises:
            DuplicateIdError: An id appears twice in ``items``.
            IdConflictError: An id is stored with other content and not ``replace``.
            StoreMismatchError: A vector has the wrong dimension.

        """
        added: list[EmbeddedArticle] = []
        unchanged: list[str] = []
        replaced: list[str] = []
        batch_ids: set[str] = set()
        for item in items:
            if not item.passages:  # empty after cleaning: never stored, never matched
                continue
            if item.vector.shape != (self._dim,):
                raise StoreMismatchError(
                    f"article {item.id!r} has a vector of shape {item.vector.shape}, store dim is {self._dim}"
                )
            if item.id in batch_ids:
                raise DuplicateIdError(f"id {item.id!r} appears twice in one add")
            batch_ids.add(item.id)
            position = self._positions.get(item.id)
            if position is None:
                added.append(item)
            elif self.record(position)["content_hash"] == item.article.content_hash:
                unchanged.append(item.id)
            elif replace:
                replaced.append(item.id)
                added.append(item)
            else:
                raise IdConflictError(
                    f"id {item.id!r} is already stored with different content; use replace=True (--replace) to overwrite"
                )
        return added, unchanged, replaced
