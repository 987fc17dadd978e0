"""Calendar dates that may be known only to the month or the year (:class:`PartialDate`)."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = ["EARLIEST_DATE", "LATEST_DATE", "DatePrecision", "PartialDate"]

#: The range of dates the readers and the service accept (:func:`dedup.io.parse_record`).
#: News is dated within it; a date outside it is a typo or a placeholder (``9999-12``).
#: Stored dates are not checked against it: :class:`PartialDate` itself takes any date
#: Python's calendar holds (years 1 to 9999), and all its arithmetic works on all of them.
EARLIEST_DATE: Final = dt.date(1900, 1, 1)
LATEST_DATE: Final = dt.date(2100, 12, 31)

# ASCII digits only: \d would also take fullwidth or Arabic-Indic digits, which int() reads.
_DATE_RE = re.compile(r"([0-9]{4})(?:-([0-9]{1,2})(?:-([0-9]{1,2}))?)?")
# The time of an ISO datetime after its day: hh:mm[:ss[.fraction]], then Z or an hh:mm offset.
_TIME_RE = re.compile(r"[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]{1,6})?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?")


class DatePrecision(StrEnum):
    """How much of a date is known."""

    YEAR = "year"
    MONTH = "month"
    DAY = "day"


@dataclass(frozen=True)
class PartialDate:
    """A calendar date that may be known only to the month or the year.

    A partial date is never completed with an invented day: ``2025-01`` stays a month.
    Gaps between partial dates are the smallest gap the two periods allow.

    Examples:
        >>> d = PartialDate.parse("2025-01")
        >>> d.precision, str(d)
        (<DatePrecision.MONTH: 'month'>, '2025-01')
        >>> d.gap_days(PartialDate.parse("2025-01-12"))
        0
        >>> PartialDate.parse("2025-01-12").gap_days(PartialDate.parse("2025-01-20"))
        8

    """

    year: int
    month: int | None = None
    day: int | None = None

    def __post_init__(self) -> None:
        if self.day is not None and self.month is None:
            raise ValueError("a date with a day must have a month")
        # Validates the calendar (raises ValueError on 2025-02-30, month 13, ...).
        dt.date(self.year, self.month or 1, self.day or 1)

    @classmethod
    def parse(cls, value: str) -> PartialDate:
        """Parse ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` (an ISO datetime keeps its date part).

        Digits are ASCII. A datetime's time must be a valid ISO time (``T08:30``,
        `` 08:30:00.5+02:00``, ``T23:59:59Z``); nothing may follow it. Any year from 1 to
        9999 parses: the input range (:data:`EARLIEST_DATE` to :data:`LATEST_DATE`) is
        checked by the readers, not here, so dates already stored always read back.

        Raises:
            ValueError: If ``value`` is not such a date.

        """
        text = value.strip()
        time = ""
        if len(text) > 10 and text[10] in "T ":
            text, time = text[:10], text[10:]
        m = _DATE_RE.fullmatch(text)
        if m is None or (time and not _valid_time(text, time)):
            raise ValueError(f"not a date of the form YYYY, YYYY-MM or YYYY-MM-DD: {value!r}")
        year, month, day = m.groups()
        try:
            return cls(int(year), int(month) if month else None, int(day) if day else None)
        except ValueError as exc:
            raise ValueError(f"not a valid calendar date: {value!r} ({exc})") from None

    def in_range(self) -> bool:
        """Whether every day this date can denote lies in the input range.

        The range is :data:`EARLIEST_DATE` to :data:`LATEST_DATE`.
        """
        first, last = self.bounds()
        return first >= EARLIEST_DATE and last <= LATEST_DATE

    @property
    def precision(self) -> DatePrecision:
        """The finest known unit."""
        if self.day is not None:
            return DatePrecision.DAY
        if self.month is not None:
            return DatePrecision.MONTH
        return DatePrecision.YEAR

    def bounds(self) -> tuple[dt.date, dt.date]:
        """First and last calendar day this date can denote."""
        if self.day is not None and self.month is not None:
            d = dt.date(self.year, self.month, self.day)
            return d, d
        if self.month is not None:  # the month's own last day: no step into the next month (9999-12 has none)
            last = calendar.monthrange(self.year, self.month)[1]
            return dt.date(self.year, self.month, 1), dt.date(self.year, self.month, last)
        return dt.date(self.year, 1, 1), dt.date(self.year, 12, 31)

    def __lt__(self, other: PartialDate) -> bool:
        """Order by the first day, then the last day, of each period."""
        return self.bounds() < other.bounds()

    def gap_days(self, other: PartialDate) -> int:
        """Smallest number of days between the two periods (0 when they overlap)."""
        a0, a1 = self.bounds()
        b0, b1 = other.bounds()
        if a1 < b0:
            return (b0 - a1).days
        if b1 < a0:
            return (a0 - b1).days
        return 0

    def __str__(self) -> str:
        if self.month is None:
            return f"{self.year:04d}"
        if self.day is None:
            return f"{self.year:04d}-{self.month:02d}"
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"


def _valid_time(day: str, time: str) -> bool:
    """Whether ``time`` (with its leading ``T`` or space) is a valid ISO time of ``day``."""
    if _TIME_RE.fullmatch(time) is None:
        return False
    try:
        dt.datetime.fromisoformat(day + time.replace("Z", "+00:00").replace(",", "."))
    except ValueError:  # hour 25, minute 99, offset +25:00, ...
        return False
    return True
