"""The articles a store holds, by insertion position: ids, records, article and passage vectors.

:class:`Columns` is what :class:`~dedup.search.store.Store` reads from: a generation's
segments, appended in order, then the articles of later adds. Positions are insertion
order, the same as the vector index's; merging consecutive segments (compaction) keeps
them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dedup.errors import DuplicateIdError, IdConflictError, StoreCorruptError, StoreMismatchError
from dedup.search.segments import Rows
from dedup.types import Article, EmbeddedArticle

__all__ = ["Columns"]


class Columns:
    """Articles by position: their ``articles.jsonl`` records, article vectors and passage vectors."""

    def __init__(self, dim: int) -> None:
        self._dim = dim
        self._records: list[dict[str, Any]] = []
        self._positions: dict[str, int] = {}
        self._vectors = Rows(dim)
        self._passage_vectors = Rows(dim)
        self._passage_start: list[int] = []

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._positions

    @property
    def ids(self) -> list[str]:
        """Ids in insertion order."""
        return [r["id"] for r in self._records]

    def position(self, article_id: str) -> int:
        """Insertion position of an id (raises KeyError)."""
        return self._positions[article_id]

    def get(self, article_id: str) -> int | None:
        """Insertion position of an id, or None."""
        return self._positions.get(article_id)

    def record(self, position: int) -> dict[str, Any]:
        """The ``articles.jsonl`` record at ``position``."""
        return self._records[position]

    def vectors(self, start: int = 0, stop: int | None = None) -> NDArray[np.float32]:
        """Article vectors of positions ``[start, stop)``."""
        return self._vectors.rows[start:stop]

    def embedded(self, position: int) -> EmbeddedArticle:
        """The article at ``position`` with its passages and vectors."""
        record = self._records[position]
        start = self._passage_start[position]
        count = len(record["passages"])
        return EmbeddedArticle(
            Article.from_record(record["article"]),
            tuple(record["passages"]),
            np.asarray(self._passage_vectors.rows[start : start + count]),
            self._vectors.rows[position],
        )

    def append(self, records: Sequence[dict[str, Any]], vectors: NDArray[np.float32], passages: NDArray[np.float32]) -> None:
        """Append a segment's articles (``passage_offset`` of each record counts from the segment's first passage).

        Raises:
            StoreCorruptError: An id is stored twice.

        """
        offset = len(self._passage_vectors)
        for record in records:
            if record["id"] in self._positions:
                raise StoreCorruptError(f"id {record['id']!r} is stored twice")
            self._positions[record["id"]] = len(self._records)
            self._passage_start.append(offset + int(record["passage_offset"]))
            self._records.append(record)
        self._vectors.append(vectors)
        self._passage_vectors.append(passages)

    def payload(self, start: int, stop: int) -> tuple[list[dict[str, Any]], NDArray[np.float32], NDArray[np.float32]]:
        """Records, article vectors and passage vectors of positions ``[start, stop)``, as one segment holds them."""
        first = self._passage_start[start] if start < len(self) else len(self._passage_vectors)
        last = self._passage_start[stop] if stop < len(self) else len(self._passage_vectors)
        records = [{**self._records[p], "passage_offset": self._passage_start[p] - first} for p in range(start, stop)]
        return records, self._vectors.rows[start:stop], self._passage_vectors.rows[first:last]

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
            elif self._records[position]["content_hash"] == item.article.content_hash:
                unchanged.append(item.id)
            elif replace:
                replaced.append(item.id)
                added.append(item)
            else:
                raise IdConflictError(
                    f"id {item.id!r} is already stored with different content; use replace=True (--replace) to overwrite"
                )
        return added, unchanged, replaced
