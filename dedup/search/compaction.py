"""Which segments a compaction merges: size-tiered, automatic after adds, or all at once on request.

A store that receives small adds (``dedup stream`` commits one article at a time) would
pile up one segment per add. After every add, :func:`tiers` finds runs of
:data:`MERGE_FACTOR` consecutive segments of the same size class (class ``c`` holds
``MERGE_FACTOR**c`` to ``MERGE_FACTOR**(c+1) - 1`` articles) at the end of the store and
merges each into one segment of the next class, as a log-structured merge does: each
article is rewritten about ``log_8(n)`` times in all, and a store of ``n`` articles keeps
at most ``7`` segments per class. Segments are never merged past :data:`SEGMENT_MAX`
articles. :func:`pack` is the explicit compaction (``dedup compact``): every run of
consecutive segments merged into as few as fit under :data:`SEGMENT_MAX`.

Only consecutive segments are merged, so insertion positions (those of the vector index)
do not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["MERGE_FACTOR", "SEGMENT_MAX", "CompactReport", "pack", "tiers"]

MERGE_FACTOR = 8
SEGMENT_MAX = 50_000


@dataclass(frozen=True)
class CompactReport:
    """What a compaction did.

    Attributes:
        segments_before: Segments before it.
        segments_after: Segments after it.
        merged: Segments merged into new ones.
        folded: Articles moved from the exactly searched tail into the index file.
        articles: Articles in the store (unchanged by a compaction).

    """

    segments_before: int
    segments_after: int
    merged: int
    folded: int
    articles: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def _size_class(count: int) -> int:
    size, level = MERGE_FACTOR, 0
    while count >= size:
        size, level = size * MERGE_FACTOR, level + 1
    return level


def tiers(counts: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive segment ranges ``[start, stop)`` after size-tiered merging of segments of these ``counts``.

    Examples:
        >>> tiers([1] * 8)
        [(0, 8)]
        >>> tiers([100, 1, 1, 1])
        [(0, 1), (1, 2), (2, 3), (3, 4)]
        >>> tiers([8] * 7 + [1] * 8)
        [(0, 15)]

    """
    runs: list[tuple[int, int, int]] = []  # start, stop, articles
    for i, count in enumerate(counts):
        runs.append((i, i + 1, count))
        while len(runs) >= MERGE_FACTOR:
            tail = runs[-MERGE_FACTOR:]
            level = _size_class(tail[-1][2])
            total = sum(r[2] for r in tail)
            if any(_size_class(r[2]) != level for r in tail) or total > SEGMENT_MAX:
                break
            runs[-MERGE_FACTOR:] = [(tail[0][0], tail[-1][1], total)]
    return [(start, stop) for start, stop, _ in runs]


def pack(counts: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive segment ranges ``[start, stop)``, each as many segments as fit in :data:`SEGMENT_MAX` articles.

    Examples:
        >>> pack([3, 4, 5])
        [(0, 3)]
        >>> pack([SEGMENT_MAX, 1, 1])
        [(0, 1), (1, 3)]

    """
    ranges: list[tuple[int, int]] = []
    start, total = 0, 0
    for i, count in enumerate(counts):
        if i > start and total + count > SEGMENT_MAX:
            ranges.append((start, i))
            start, total = i, 0
        total += count
    if counts:
        ranges.append((start, len(counts)))
    return ranges
