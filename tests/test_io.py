from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from dedup.errors import DuplicateIdError, InputError
from dedup.io import read_articles
from dedup.types import DatePrecision


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
