"""Which archive shard an article goes to, and which shards a check searches.

An article goes to the shard of the month holding the *first* day of its date's
:meth:`~dedup.types.PartialDate.bounds`: ``2025-01-12`` and ``2025-01`` go to
``2025-01``, the year-only ``2025`` goes to ``2025-01`` too; articles without a date go to
``undated``. Only folders named ``YYYY-MM`` (a real month) or ``undated`` are shards.

The window rule of a check: an article dated ``[first, last]`` (its date's bounds) is
checked against the shards whose month overlaps ``[first - window, last + window]``,
plus the January shard of each year that interval touches (where year-only dates live),
plus ``undated``. An undated article is checked against every shard: the verifier never
rules out a pair for an unknown date, so any shard may hold its duplicate.

A shard's manifest records the days its articles' dates can fall on (``dates``, see
:func:`widen_dates`); the archive skips a monthly shard whose recorded days miss the
window (:func:`dates_meet`), so the January shard is searched from June only when it
holds a year-only date.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from dedup.types import EmbeddedArticle, PartialDate

__all__ = [
    "UNDATED",
    "beyond_gap",
    "dates_meet",
    "group_by_shard",
    "is_shard_name",
    "search_window",
    "shard_key",
    "shard_key_of_day",
    "shards_to_search",
    "widen_dates",
]

UNDATED = "undated"
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def is_shard_name(name: str) -> bool:
    """Whether a folder of this name can be a shard: ``YYYY-MM`` (a real month) or ``undated``."""
    return name == UNDATED or _MONTH.match(name) is not None


def shard_key(date: PartialDate | None) -> str:
    """The shard of an article with this date: the month of the date's first day, or ``undated``.

    Examples:
        >>> shard_key(PartialDate.parse("2025-01-31")), shard_key(PartialDate.parse("2024")), shard_key(None)
        ('2025-01', '2024-01', 'undated')

    """
    if date is None:
        return UNDATED
    first = date.bounds()[0]
    return f"{first.year:04d}-{first.month:02d}"


def _shift(day: dt.date, days: int) -> dt.date:
    try:
        return day + dt.timedelta(days=days)
    except OverflowError:
        return dt.date.max if days > 0 else dt.date.min


def shards_to_search(keys: Iterable[str], date: PartialDate | None, search_days: int) -> tuple[str, ...]:
    """The shards among ``keys`` a check of an article with this date searches, in order.

    Dated: the months overlapping ``[first - search_days, last + search_days]``, the
    January shard of every year that interval touches (a year-only date such as ``2024``
    is stored in its first day's shard, ``2024-01``, and may lie within the window of any
    day of that year), and ``undated``. Undated: every shard. So every stored article whose
    date can lie within ``search_days`` of the query's is in a searched shard.

    Examples:
        >>> keys = ["2024-12", "2025-01", "2025-02", "2025-03", "2025-04", "undated"]
        >>> shards_to_search(keys, PartialDate.parse("2025-02-02"), 7)
        ('2025-01', '2025-02', 'undated')
        >>> shards_to_search(keys, PartialDate.parse("2025-03-15"), 7)
        ('2025-01', '2025-03', 'undated')
        >>> shards_to_search(keys, None, 7)
        ('2024-12', '2025-01', '2025-02', '2025-03', '2025-04', 'undated')

    """
    ordered = sorted(set(keys))  # "undated" sorts after every "YYYY-MM"
    if date is None:
        return tuple(ordered)
    start, end = search_window(date, search_days)
    low, high = shard_key_of_day(start), shard_key_of_day(end)
    years = range(start.year, end.year + 1)

    def searched(key: str) -> bool:
        return key == UNDATED or low <= key <= high or (key.endswith("-01") and int(key[:4]) in years)

    return tuple(k for k in ordered if searched(k))


def shard_key_of_day(day: dt.date) -> str:
    """The shard key (``YYYY-MM``) of a calendar day."""
    return f"{day.year:04d}-{day.month:02d}"


def group_by_shard(items: Iterable[EmbeddedArticle]) -> dict[str, list[EmbeddedArticle]]:
    """Embedded articles by shard key (see :func:`shard_key`), in input order within a shard."""
    groups: dict[str, list[EmbeddedArticle]] = {}
    for item in items:
        groups.setdefault(shard_key(item.article.date), []).append(item)
    return groups


def search_window(date: PartialDate, search_days: int) -> tuple[dt.date, dt.date]:
    """The days a stored article's date must reach for a check of ``date`` to search it: its bounds widened by ``search_days``."""
    first, last = date.bounds()
    return _shift(first, -search_days), _shift(last, search_days)


def widen_dates(dates: list[str] | None, added: Iterable[PartialDate | None]) -> list[str] | None:
    """A store's ``dates`` record after adding articles with dates ``added``.

    The record is ``[first, last]`` (ISO days) covering every day a stored article's date
    can denote, ``[]`` when no stored article is dated, or None when unknown (a store
    written before the record existed): unknown stays unknown.

    Examples:
        >>> widen_dates([], [PartialDate.parse("2025-03-02"), None])
        ['2025-03-02', '2025-03-02']
        >>> widen_dates(['2025-01-05', '2025-01-09'], [PartialDate.parse("2025")])
        ['2025-01-01', '2025-12-31']
        >>> widen_dates(None, [PartialDate.parse("2025-03-02")]) is None
        True

    """
    if dates is None:
        return None
    bounds = [date.bounds() for date in added if date is not None]
    if not bounds:
        return list(dates)
    first = min(b[0] for b in bounds).isoformat()
    last = max(b[1] for b in bounds).isoformat()
    if dates:
        first, last = min(first, dates[0]), max(last, dates[1])
    return [first, last]


def dates_meet(dates: list[str] | None, start: dt.date, end: dt.date) -> bool:
    """Whether a store whose ``dates`` record is this may hold an article dated within ``[start, end]``.

    Examples:
        >>> day = dt.date.fromisoformat
        >>> dates_meet(['2025-01-01', '2025-01-31'], day('2025-06-10'), day('2025-06-24'))
        False
        >>> dates_meet(['2025-01-01', '2025-12-31'], day('2025-06-10'), day('2025-06-24'))
        True
        >>> dates_meet(None, day('2025-06-10'), day('2025-06-24')), dates_meet([], day('2025-06-10'), day('2025-06-24'))
        (True, False)

    """
    if dates is None:
        return True
    if not dates:
        return False
    return dates[0] <= end.isoformat() and dates[1] >= start.isoformat()


def beyond_gap(date: PartialDate, days: tuple[int, int] | None, gap: int) -> bool:
    """Whether a stored article whose date spans the ordinal ``days`` lies more than ``gap`` days from ``date``.

    As :meth:`PartialDate.gap_days` (the verifier scores such a pair 0); never when ``days``
    is None (undated, or not kept by the segment: :meth:`dedup.search.store.Store.days`).

    Examples:
        >>> day = dt.date(2025, 3, 28).toordinal()
        >>> beyond_gap(PartialDate.parse("2025-03-04"), (day, day), 7), beyond_gap(PartialDate.parse("2025-03"), (day, day), 7)
        (True, False)

    """
    if days is None:
        return False
    first, last = (d.toordinal() for d in date.bounds())
    return max(days[0] - last, first - days[1]) > gap
