from __future__ import annotations

import pytest

from dedup.types import Article, DatePrecision, PartialDate


@pytest.mark.parametrize(
    ("text", "precision", "shown"),
    [
        ("2025", DatePrecision.YEAR, "2025"),
        ("2025-01", DatePrecision.MONTH, "2025-01"),
        ("2025-1-5", DatePrecision.DAY, "2025-01-05"),
        ("2025-01-12T08:30:00Z", DatePrecision.DAY, "2025-01-12"),
    ],
)
def test_partial_dates_keep_their_precision(text: str, precision: DatePrecision, shown: str) -> None:
    d = PartialDate.parse(text)
    assert d.precision is precision and str(d) == shown


def test_gap_is_the_smallest_the_periods_allow() -> None:
    month, day = PartialDate.parse("2025-01"), PartialDate.parse("2025-01-31")
    assert month.gap_days(day) == 0 == day.gap_days(month)
    assert PartialDate.parse("2025-02-01").gap_days(month) == 1
    assert PartialDate.parse("2023-01").gap_days(PartialDate.parse("2025-01-12")) > 700
    assert PartialDate.parse("2024").gap_days(PartialDate.parse("2024-12-31")) == 0


@pytest.mark.parametrize("bad", ["", "2025/01/02", "12-01-2025", "2025-13", "2025-02-30", "yesterday"])
def test_bad_dates_raise(bad: str) -> None:
    with pytest.raises(ValueError):
        PartialDate.parse(bad)


def test_article_is_frozen_and_hash_ignores_extra() -> None:
    a = Article(id="a", title="t", text="x", extra={"k": 1})
    with pytest.raises(AttributeError):
        a.title = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        a.extra["k"] = 2  # type: ignore[index]
    assert a.content_hash == Article(id="b", title="t", text="x").content_hash
    assert a.content_hash != Article(id="a", title="t", text="y").content_hash


def test_partial_dates_sort_by_period() -> None:
    dates = [PartialDate.parse(d) for d in ("2025-01-12", "2024", "2025-01", "2025-01-01")]
    assert [str(d) for d in sorted(dates)] == ["2024", "2025-01-01", "2025-01", "2025-01-12"]
