"""Time windows for batch clustering: overlapping partitions of a feed, and their merge.

News stories are local in time: two reports further apart than ``Config.max_date_gap_days``
never join one story. A long feed is therefore cut into windows that overlap, each window is
clustered on its own (in any order, on any machine), and the windows' stories are merged.
Integers in, integers out: this module knows nothing of articles or vectors.

The windows are fixed on the calendar, not on the feed: window ``w`` covers the days
``[w * core, w * core + core + overlap)`` (proleptic Gregorian ordinals), and its *core* is
the first ``core`` of them; consecutive cores tile the calendar. An article's date is a
span of days (a day, or a whole month for "2025-01"), and the article lies in every window
that span meets. A story lies wholly inside one window: the average linkage never lets a
story's latest first day come more than ``max_gap_days`` after its earliest last day
``m``, so with ``overlap >= max_gap_days`` every member meets the window whose core holds
``m``. No story is cut; windows only bound the work.

The merge is the union of the windows' verdicts: two articles share a final story when
some window put them in one cluster that holds at least one article of that window's core
(a cluster made only of margin articles is left to those articles' home window). A union
does not depend on the order windows finish in, so the merge is deterministic; final
stories are numbered by first appearance in the input, as in one-piece clustering.

Undated articles form one partition of their own, clustered together and never joined to
dated stories; see :data:`UNDATED`.

Examples:
    >>> plan = WindowPlan(core_days=7, overlap_days=2)
    >>> plan.windows((14, 14)), plan.windows((15, 15)), plan.windows((16, 16)), plan.windows((16, 30))
    ((1, 2), (1, 2), (2,), (2, 3, 4))

"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from dedup.clustering.linkage import find_root

__all__ = ["UNDATED", "WindowPlan", "merge_windows", "partition"]

#: The partition key of undated articles. They cannot be placed in time, so they are
#: clustered among themselves, once, over the whole feed. Joining them to dated stories
#: would mean putting them in every window, where one undated report could then bridge
#: stories of different months; give undated feeds their arrival date instead.
UNDATED: Final = -1


@dataclass(frozen=True)
class WindowPlan:
    """How a feed is cut in time.

    Attributes:
        core_days: Days each window owns (its core); consecutive cores tile the calendar.
        overlap_days: Days each window reaches past its core into the next one. At least
            ``Config.max_date_gap_days``, so a story of dated reports is never cut.

    """

    core_days: int
    overlap_days: int

    def __post_init__(self) -> None:
        if not isinstance(self.core_days, int) or self.core_days < 1:
            raise ValueError(f"core_days must be a positive whole number of days, got {self.core_days!r}")
        if not isinstance(self.overlap_days, int) or self.overlap_days < 0:
            raise ValueError(f"overlap_days must be a whole number of days >= 0, got {self.overlap_days!r}")

    def windows(self, span: tuple[int, int]) -> tuple[int, ...]:
        """Every window that the days ``span`` (first, last; ordinals) meet, oldest first."""
        first, last = span
        return tuple(range((first - self.core_days - self.overlap_days) // self.core_days + 1, last // self.core_days + 1))

    def in_core(self, window: int, span: tuple[int, int]) -> bool:
        """Whether the days ``span`` meet ``window``'s core."""
        return span[0] < (window + 1) * self.core_days and span[1] >= window * self.core_days


def partition(days: Sequence[tuple[int, int] | None], plan: WindowPlan) -> dict[int, list[int]]:
    """The members of every window (input positions, ascending), keyed by window number.

    ``days[i]`` is the first and last day (ordinals) item ``i``'s date can denote, or None
    when undated; the undated ones are under :data:`UNDATED`. Windows whose core holds no
    item are left out: the merge ignores clusters without a core member, so such a window
    could only repeat work (a one-day feed in one-day windows is one window, not eight).
    """
    out: dict[int, list[int]] = {}
    for i, day in enumerate(days):
        for window in (UNDATED,) if day is None else plan.windows(day):
            out.setdefault(window, []).append(i)
    return {
        w: members
        for w, members in sorted(out.items())
        if w == UNDATED or any(plan.in_core(w, span) for m in members if (span := days[m]) is not None)
    }


def merge_windows(
    n: int,
    results: Iterable[tuple[int, Sequence[int], Sequence[int]]],
    days: Sequence[tuple[int, int] | None],
    plan: WindowPlan,
) -> list[int]:
    """Merge the windows' clusterings into one label per item, numbered by first appearance.

    Args:
        n: Number of items.
        results: Per window: its number, its members (input positions) and one cluster
            label per member, in any order of windows.
        days: As for :func:`partition`.
        plan: The plan the windows were cut with.

    Examples:
        A story at days 6-7 crosses the core boundary of 7-day windows; window 0 sees all
        of it, window 1 only its day-7 part, and the union keeps it whole:

        >>> plan = WindowPlan(7, 2)
        >>> days = [(6, 6), (7, 7), (7, 7), (20, 20)]
        >>> merge_windows(4, [(1, [1, 2], [0, 0]), (0, [0, 1, 2], [0, 0, 0]), (2, [3], [0])], days, plan)
        [0, 0, 0, 1]

    """
    parent = list(range(n))

    def find(i: int) -> int:
        return find_root(parent, i)

    for window, members, labels in results:
        if len(members) != len(labels):
            raise ValueError(f"window {window}: {len(members)} members but {len(labels)} labels")
        clusters: dict[int, list[int]] = {}
        for member, label in zip(members, labels, strict=True):
            clusters.setdefault(label, []).append(member)
        for group in clusters.values():
            spans = [days[m] for m in group]
            if window != UNDATED and not any(s is not None and plan.in_core(window, s) for s in spans):
                continue  # only margin articles: their home window decides
            root = find(group[0])
            for other in group[1:]:
                parent[find(other)] = root
    first: dict[int, int] = {}
    return [first.setdefault(find(i), len(first)) for i in range(n)]
