from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

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


# ------------------------------------------------- issue 14: dates in a range, arithmetic that never raises
@pytest.mark.parametrize(
    "bad",
    [
        "2025-01-01 garbage",
        "2025-01-01Tgarbage",
        "2025-01-01T25:99:00",
        "2025-01-01T08:30:00+25:00",
        "2025-01-01 08:30:00 trailing",
        "２０２５-01-01",  # fullwidth digits
        "٢٠٢٥-٠١-٠١",  # Arabic-Indic digits
        "2025-０1",
        "2025-01-01T０8:30",
    ],
)
def test_issue14_parse_refuses_trailing_junk_and_non_ascii_digits(bad: str) -> None:
    with pytest.raises(ValueError, match="not a date"):
        PartialDate.parse(bad)


@pytest.mark.parametrize(
    "good", ["2025-01-12T08:30", "2025-01-12 08:30:00", "2025-01-12T08:30:00.123456+02:00", "2025-01-12T23:59:59Z"]
)
def test_issue14_iso_datetimes_with_a_valid_time_keep_their_day(good: str) -> None:
    assert str(PartialDate.parse(good)) == "2025-01-12"


def test_issue14_bounds_of_the_last_month_and_year_python_knows() -> None:
    assert PartialDate(9999, 12).bounds() == (dt.date(9999, 12, 1), dt.date(9999, 12, 31))
    assert PartialDate(9999).bounds() == (dt.date(9999, 1, 1), dt.date(9999, 12, 31))
    assert PartialDate.parse("9999-12").gap_days(PartialDate(1)) == (dt.date(9999, 12, 1) - dt.date(1, 12, 31)).days
    assert PartialDate(1) < PartialDate(9999, 12) < PartialDate(9999, 12, 31) and not PartialDate(9999) < PartialDate(9999)


def test_issue14_the_input_range_is_defined_once() -> None:
    from dedup.types import EARLIEST_DATE, LATEST_DATE

    assert (str(EARLIEST_DATE), str(LATEST_DATE)) == ("1900-01-01", "2100-12-31")
    assert PartialDate(1900).in_range() and PartialDate(2100, 12).in_range()
    assert not PartialDate(1899, 12, 31).in_range() and not PartialDate(9999, 12).in_range()


ANY_DATES = st.builds(
    lambda d, precision: PartialDate(d.year, d.month if precision > 0 else None, d.day if precision > 1 else None),
    st.dates(),  # every day Python's date allows: 0001-01-01 to 9999-12-31
    st.integers(0, 2),
)


@settings(max_examples=100, deadline=None)
@given(ANY_DATES, ANY_DATES)
@example(PartialDate(9999, 12), PartialDate(1))
@example(PartialDate(1, 1, 1), PartialDate(9999, 12, 31))
def test_issue14_date_arithmetic_is_total(a: PartialDate, b: PartialDate) -> None:
    first, last = a.bounds()
    assert first <= last and a.gap_days(b) == b.gap_days(a) >= 0
    assert (a < b) or (b < a) or a.bounds() == b.bounds()
    assert PartialDate.parse(str(a)) == a  # what a store writes, it reads back, in the input range or not


def test_article_record_round_trips_and_keeps_an_out_of_range_date() -> None:
    import pickle

    article = Article(
        id="a1", title="T", text="x", date=PartialDate.parse("9999-12"), lang="en", source="s", url="u", extra={"n": 1}
    )
    record = article.to_record()
    assert list(record) == ["id", "title", "text", "date", "lang", "source", "url", "extra"]  # the store's format
    assert record["date"] == "9999-12" and record["extra"] == {"n": 1}
    back = Article.from_record(record)  # a stored date outside the input range still reads back
    assert back == article and dict(back.extra) == {"n": 1}
    assert Article.from_record({"id": "b", "title": None, "text": None, "date": None}) == Article(id="b")
    assert article.to_dict() == {**{k: v for k, v in record.items() if k != "extra"}, "n": 1}
    copy = pickle.loads(pickle.dumps(article))
    assert copy == article and dict(copy.extra) == {"n": 1}
