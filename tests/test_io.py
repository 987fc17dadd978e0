from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dedup.errors import DuplicateIdError, InputError
from dedup.io import parse_record, read_articles
from dedup.types import Article, DatePrecision


def _jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows), "utf-8")
    return path


def test_seed_folder_reads_ids_titles_and_partial_dates(seed_dir: Path) -> None:
    arts = {a.id[:3]: a for a in read_articles([seed_dir]).articles}
    assert sorted(arts) == ["000", "001", "002", "003", "004"]
    assert str(arts["000"].date) == "2025-01" and arts["000"].date is not None
    assert arts["000"].date.precision is DatePrecision.MONTH  # no invented day
    assert arts["004"].date is not None and arts["004"].date.precision is DatePrecision.DAY
    assert arts["002"].date is None  # 002 has no date line: its first line is the title
    assert arts["002"].title == "Les ministères vietnamien et lao de la Sécurité publique renforcent leur coopération"
    assert arts["000"].title.startswith("Le dirigeant Tô Lâm reçoit")
    assert arts["000"].id == "000_57c5f2451950a71c"
    assert {a.lang for a in arts.values()} == {"fr", "en"} and arts["004"].lang == "en"  # detected
    assert "Photo : VNA/CVN" in arts["000"].text  # original text untouched


def test_single_txt_file(seed_dir: Path) -> None:
    path = next(seed_dir.glob("004_*.txt"))
    (art,) = read_articles([path]).articles
    assert art.id == path.stem and str(art.date) == "2025-01-12"


def test_jsonl_keeps_unknown_fields_and_given_lang(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "a.jsonl",
        [
            {
                "id": "a",
                "title": "T",
                "text": "body",
                "date": "2024-03",
                "lang": "EN",
                "source": "s",
                "url": "u",
                "story": "x",
                "n": 3,
            },
            {"id": 7, "title": "Only a title"},
        ],
    )
    a, b = read_articles([path], detect_lang=False).articles
    assert a.lang == "en" and a.extra == {"story": "x", "n": 3} and a.to_dict()["story"] == "x"
    assert a.date is not None and a.date.precision is DatePrecision.MONTH
    assert b.id == "7" and b.text == "" and b.lang is None


def test_stdin_jsonl_and_stdin_text() -> None:
    data = b'{"id": "x", "title": "Hello", "lang": "en"}\n'
    (art,) = read_articles(["-"], stdin=io.BytesIO(data)).articles
    assert art.id == "x"
    (art,) = read_articles(["-"], stdin=io.BytesIO(b" date 2025-01-12 Title here\nBody text.")).articles
    assert art.id == "stdin" and art.title == "Title here" and str(art.date) == "2025-01-12"


def test_malformed_jsonl_line_names_file_line_and_value(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "bad.jsonl", [{"id": "a", "title": "ok"}, '{"id": "b", "title": oops}'])
    with pytest.raises(InputError) as err:
        read_articles([path])
    assert err.value.source == str(path) and err.value.line == 2
    assert "oops" in str(err.value) and f"{path}:2" in str(err.value)
    result = read_articles([path], skip_invalid=True)
    assert [a.id for a in result.articles] == ["a"] and result.skipped[0].line == 2


def test_wrong_field_type_is_named(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "t.jsonl", [{"id": "a", "title": ["not", "a", "string"]}])
    with pytest.raises(InputError, match=r"t.jsonl:1: article 'a': 'title' must be a string"):
        read_articles([path])


def test_non_utf8_file_names_line_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"id": "a", "title": "ok"}\n{"id": "b", "title": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"latin1.jsonl:2: not valid UTF-8: byte b'\\xe9' at offset 52"):
        read_articles([path])


def test_empty_article_is_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _jsonl(tmp_path / "e.jsonl", [{"id": "a", "title": "  ", "text": ""}, {"id": "b", "title": "x"}])
    result = read_articles([path], detect_lang=False)
    assert [a.id for a in result.articles] == ["b"]
    assert result.skipped[0].id == "a" and "empty" in result.skipped[0].reason
    assert "e.jsonl:1" in caplog.text


def test_duplicate_ids(tmp_path: Path) -> None:
    same = _jsonl(tmp_path / "same.jsonl", [{"id": "a", "title": "x"}, {"id": "a", "title": "x"}])
    result = read_articles([same], detect_lang=False)
    assert len(result.articles) == 1 and "same content" in result.skipped[0].reason
    diff = _jsonl(tmp_path / "diff.jsonl", [{"id": "a", "title": "x"}, {"id": "a", "title": "y"}])
    with pytest.raises(DuplicateIdError, match=r"diff.jsonl:2: id 'a' already used by .*diff.jsonl:1"):
        read_articles([diff], detect_lang=False)
    with pytest.raises(DuplicateIdError):  # never skipped, even with skip_invalid: it would lose data
        read_articles([diff], detect_lang=False, skip_invalid=True)


def test_huge_article_is_refused_not_truncated(tmp_path: Path) -> None:
    body = "Le ministre a parlé. " * 250_000  # ~5 MB
    path = _jsonl(tmp_path / "big.jsonl", [{"id": "big", "title": "t", "text": body}])
    with pytest.raises(InputError, match=r"big.jsonl:1: article 'big' has 5,250,001 characters, over the limit of 1,000,000"):
        read_articles([path], detect_lang=False)
    (art,) = read_articles([path], detect_lang=False, max_chars=6_000_000).articles
    assert len(art.text) == len(body)


def test_bad_date_is_named(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"id": "a", "title": "x", "date": "12/01/2025"}])
    with pytest.raises(InputError, match=r"d.jsonl:1: article 'a': bad 'date'.*'12/01/2025'"):
        read_articles([path])
    path = _jsonl(tmp_path / "d2.jsonl", [{"id": "a", "title": "x", "date": "2025-02-30"}])
    with pytest.raises(InputError, match="not a valid calendar date"):
        read_articles([path])


def test_missing_file_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_articles([tmp_path / "nope.jsonl"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no \.txt or \.jsonl"):
        read_articles([tmp_path / "empty"])


# ------------------------------------------------- issue 14: nothing a client sends may break a store
# Every line-separator class str.splitlines() knows; JSON escapes the ASCII ones, not \x85, U+2028, U+2029.
LINE_BREAKS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
# Any Unicode but surrogates (refused: no UTF-8 file can hold them), with the line breaks made frequent.
_chars = st.one_of(st.sampled_from(LINE_BREAKS), st.characters(exclude_categories=("Cs",)))
_texts = st.lists(_chars, max_size=40).map("".join)
_dates = st.one_of(
    st.none(),
    st.builds(
        lambda d, precision: d.isoformat()[:precision],
        st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31)),
        st.sampled_from([4, 7, 10]),
    ),
)
_records = st.lists(
    st.fixed_dictionaries({"id": _texts.filter(bool), "title": _texts, "text": _texts, "date": _dates, "extra_field": _texts}),
    max_size=6,
    unique_by=lambda r: r["id"],
)


def _expected(records: list[dict[str, Any]]) -> list[tuple[str, str, str, str | None, str]]:
    """What a reader must return: every non-empty record, the title stripped, all else exactly as written."""
    return [
        (r["id"], r["title"].strip(), r["text"], r["date"], r["extra_field"])
        for r in records
        if r["title"].strip() or r["text"].strip()
    ]


def _got(articles: Sequence[Article]) -> list[tuple[str, str, str, str | None, str]]:
    return [(a.id, a.title, a.text, str(a.date) if a.date else None, a.extra["extra_field"]) for a in articles]


def test_issue14_jsonl_keeps_raw_line_separators_inside_strings(tmp_path: Path) -> None:
    text = "one\u2028two\u2029three\x85four"
    path = _jsonl(tmp_path / "sep.jsonl", [{"id": "a\u2028b", "title": "T\u2029", "text": text}, {"id": "c", "title": "x"}])
    assert "\u2028" in path.read_text("utf-8")  # written raw, as ensure_ascii=False writers do
    a, c = read_articles([path], detect_lang=False).articles
    assert (a.id, a.title, a.text, c.id) == ("a\u2028b", "T", text, "c")


def test_issue14_jsonl_splits_on_newline_and_crlf_only(tmp_path: Path) -> None:
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(b'{"id": "a", "title": "x\xe2\x80\xa8y"}\r\n{"id": "b", "title": "z"}\r\n\r\n')
    a, b = read_articles([path], detect_lang=False).articles
    assert (a.title, b.id) == ("x\u2028y", "b")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"id": "a", "title": "x"}\n{"id": "b", \xc2\x85"title": "y"}\n')  # \x85 is not JSON whitespace
    with pytest.raises(InputError, match=r"bad.jsonl:2: malformed JSON"):
        read_articles([bad], detect_lang=False)


def test_issue14_txt_body_keeps_its_characters(tmp_path: Path) -> None:
    body = "First\u2028line\x0cwith\x1cseparators\x85and\u2029more.\n\nSecond paragraph\x0b."
    path = tmp_path / "sep.txt"
    path.write_text(f"date 2025-01-12 Title\u2028here\n{body}\n", "utf-8")
    (art,) = read_articles([path], detect_lang=False).articles
    assert (art.id, art.title, art.text, str(art.date)) == ("sep", "Title\u2028here", body, "2025-01-12")
    crlf = tmp_path / "crlf.txt"  # a Windows text file: its line endings are line endings, as in any text file
    crlf.write_bytes(b"date 2025-01-12 Title\r\n\r\nOne\r\nTwo\rThree\xe2\x80\xa8.\r\n")
    (art,) = read_articles([crlf], detect_lang=False).articles
    assert (art.title, art.text) == ("Title", "One\nTwo\nThree\u2028.")


def test_issue14_stdin_keeps_line_separators() -> None:
    data = json.dumps({"id": "x", "title": "a\u2028b", "text": "c\x85d"}, ensure_ascii=False).encode() + b"\n"
    (art,) = read_articles(["-"], stdin=io.BytesIO(data), detect_lang=False).articles
    assert (art.title, art.text) == ("a\u2028b", "c\x85d")
    bom = b"\xef\xbb\xbf" + data  # a UTF-8 BOM does not turn JSONL into a seed-format article
    (art,) = read_articles(["-"], stdin=io.BytesIO(bom), detect_lang=False).articles
    assert (art.id, art.text) == ("x", "c\x85d")
    seed = "date 2025-01-12 Title\nBody\u2028with\x1eseparators.".encode()
    (art,) = read_articles(["-"], stdin=io.BytesIO(seed), detect_lang=False).articles
    assert (art.id, art.text) == ("stdin", "Body\u2028with\x1eseparators.")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=_records, ensure_ascii=st.booleans(), via_stdin=st.booleans())
def test_issue14_jsonl_round_trips_any_unicode(
    tmp_path: Path, records: list[dict[str, Any]], ensure_ascii: bool, via_stdin: bool
) -> None:
    data = "".join(json.dumps(r, ensure_ascii=ensure_ascii) + "\n" for r in records).encode("utf-8")
    if via_stdin:
        result = read_articles(["-"], stdin=io.BytesIO(data), detect_lang=False) if records else None
    else:
        path = tmp_path / "feed.jsonl"
        path.write_bytes(data)
        result = read_articles([path], detect_lang=False)
    if result is not None:
        assert _got(result.articles) == _expected(records)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=_texts.filter(lambda t: "\n" not in t and "\r" not in t), body=_texts, via_stdin=st.booleans())
def test_issue14_txt_round_trips_its_body(tmp_path: Path, title: str, body: str, via_stdin: bool) -> None:
    # A text file's line endings (\n, \r\n, \r) read as \n and the body's outer whitespace is
    # trimmed; every other character, line separators included, comes back as written.
    data = f"date 2025-01-12 {title}\n{body}".encode()
    if via_stdin:
        result = read_articles(["-"], stdin=io.BytesIO(data), detect_lang=False)
    else:
        path = tmp_path / "seed.txt"
        path.write_bytes(data)
        result = read_articles([path], detect_lang=False)
    expected_text = body.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not title.strip() and not expected_text:
        assert not result.articles  # empty: skipped with a warning
        return
    (art,) = result.articles
    assert (art.title, art.text, str(art.date)) == (title.strip(), expected_text, "2025-01-12")


@pytest.mark.parametrize("value", ["9999-12", "9999", "1899-12-31", "2101-01", "0001-01-01"])
def test_issue14_date_out_of_range_is_refused_naming_file_line_and_value(tmp_path: Path, value: str) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"id": "a", "title": "x"}, {"id": "b", "title": "y", "date": value}])
    with pytest.raises(InputError, match=rf"d.jsonl:2: article 'b': 'date' {value!r} is outside 1900-01-01 to 2100-12-31"):
        read_articles([path], detect_lang=False)
    result = read_articles([path], detect_lang=False, skip_invalid=True)
    assert [a.id for a in result.articles] == ["a"] and result.skipped[0].line == 2
    seed = tmp_path / "far.txt"
    seed.write_text(f"date {value} Title\nBody.", "utf-8")
    with pytest.raises(InputError, match=rf"far.txt:1: article 'far': 'date' {value!r} is outside"):
        read_articles([seed], detect_lang=False)


def test_issue14_dates_at_the_edges_of_the_range_are_accepted(tmp_path: Path) -> None:
    rows = [
        {"id": str(i), "title": "x", "date": d} for i, d in enumerate(["1900", "1900-01-01", "2100", "2100-12", "2100-12-31"])
    ]
    path = _jsonl(tmp_path / "d.jsonl", rows)
    assert [str(a.date) for a in read_articles([path], detect_lang=False).articles] == [r["date"] for r in rows]


@pytest.mark.parametrize(
    "line",
    [
        '{"id": "a", "title": "x", "n": 1' + "0" * 5000 + "}",  # over Python's int-conversion limit
        '{"id": 1' + "0" * 5000 + ', "title": "x"}',
        '{"id": "a", "title": "x", "n": -1' + "0" * 5000 + "}",
    ],
)
def test_issue14_huge_integer_is_an_input_error(tmp_path: Path, line: str) -> None:
    path = _jsonl(tmp_path / "big.jsonl", [{"id": "ok", "title": "fine"}, line, {"id": "c", "title": "z"}])
    with pytest.raises(InputError, match=r"big.jsonl:2: .*integer with more than 4300 digits"):
        read_articles([path], detect_lang=False)
    result = read_articles([path], detect_lang=False, skip_invalid=True)
    assert [a.id for a in result.articles] == ["ok", "c"] and result.skipped[0].line == 2


def test_issue14_big_but_convertible_integer_id_and_infinite_float_field(tmp_path: Path) -> None:
    big = 10**4000  # within the conversion limit: an id like any other
    path = _jsonl(tmp_path / "ok.jsonl", [{"id": big, "title": "x"}])
    (art,) = read_articles([path], detect_lang=False).articles
    assert art.id == str(big)
    inf = _jsonl(tmp_path / "inf.jsonl", ['{"id": "a", "title": "x", "n": 1e400}', '{"id": "b", "title": "x", "m": NaN}'])
    with pytest.raises(InputError, match=r"inf.jsonl:1: article 'a': a field cannot be written as JSON"):
        read_articles([inf], detect_lang=False)
    result = read_articles([inf], detect_lang=False, skip_invalid=True)
    assert not result.articles and [s.line for s in result.skipped] == [1, 2]


def test_issue14_record_with_an_unprintable_integer_id_is_an_input_error() -> None:
    # json.loads cannot make such an int, but a library caller can hand one to parse_record.
    with pytest.raises(InputError, match=r"api:3: 'id' is an integer with more than 4300 digits"):
        parse_record({"id": 10**5000, "title": "x"}, source="api", line=3, detect_lang=False)
