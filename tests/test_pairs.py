"""The labelled-pairs reader and its tune/held split (tiny hand-made files only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dedup.errors import InputError
from dedup.evaluation.pairs import (
    LabelledPair,
    components,
    held_out_component,
    is_pairs_file,
    pair_articles,
    read_pairs,
    split_pairs,
)


def _pair(id1: str, id2: str, **kw: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id1": id1,
        "id2": id2,
        "text1": f"text of {id1}",
        "text2": f"text of {id2}",
        "lang1": "en",
        "lang2": "de",
        "overall": 1.0,
        "label": 1,
        "scores": {"Entities": 1.0, "Overall": 1.0},
    }
    record.update(kw)
    return record


def _write(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records))
    return path


def test_reads_fields_in_order(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "p.jsonl",
        [
            _pair("a", "b", lang1="EN", overall=1.25, pair_id="a_b"),
            "",
            _pair("c", 7, overall=2.5, label=None, lang2=None, text2="Привет, 北京"),
        ],
    )
    pairs = read_pairs(path)
    assert [(p.id1, p.id2) for p in pairs] == [("a", "b"), ("c", "7")]
    first, second = pairs
    assert (first.lang1, first.lang2, first.overall, first.label, first.pair_id) == ("en", "de", 1.25, 1, "a_b")
    assert first.lang_pair == "de-en"
    assert (second.label, second.lang2, second.text2, second.pair_id) == (None, "", "Привет, 北京", "c_7")
    assert second.lang_pair == "?-en"
    assert is_pairs_file(path)


def test_hard_negative_given_or_derived_from_entities(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "p.jsonl",
        [
            _pair("a", "b", label=0, overall=3.5, scores={"Entities": 2.0}),  # derived: hard
            _pair("c", "d", label=0, overall=3.5, scores={"Entities": 3.0}),  # derived: not hard
            _pair("e", "f", label=1, scores={"Entities": 1.0}),  # a positive is never hard
            _pair("g", "h", label=0, overall=4.0, scores={"Entities": 4.0}, hard_negative=True),  # given wins
        ],
    )
    assert [p.hard_negative for p in read_pairs(path)] == [True, False, False, True]


@pytest.mark.parametrize(
    ("record", "needle"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "JSON object"),
        (_pair("a", "b", label=2), "'label' must be 0, 1 or null, got 2"),
        (_pair("a", "b", label=True), "'label' must be 0, 1 or null, got True"),
        (_pair("a", "b", overall="high"), "'overall' must be a finite number or null, got 'high'"),
        (_pair("a", "b", text1=""), "'text1' must be a non-empty string, got ''"),
        (_pair("", "b"), "'id1' must be a non-empty string"),
        (_pair("a", "a"), "id1 = id2 = 'a'"),
        (_pair("a", "b", lang1=3), "'lang1' must be a language code or null, got 3"),
        (_pair("a", "b", scores=[1]), "'scores' must be an object"),
        (_pair("a", "b", hard_negative="yes"), "'hard_negative' must be true, false or null, got 'yes'"),
    ],
)
def test_bad_line_names_file_line_and_value(tmp_path: Path, record: Any, needle: str) -> None:
    path = _write(tmp_path / "bad.jsonl", [_pair("x", "y"), record])
    with pytest.raises(InputError) as caught:
        read_pairs(path)
    assert caught.value.line == 2
    assert str(path) in str(caught.value)
    assert needle in str(caught.value)


def test_same_pair_twice_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.jsonl", [_pair("a", "b"), _pair("b", "a", text1="text of b", text2="text of a")])
    with pytest.raises(InputError, match="already given on line 1"):
        read_pairs(path)


def test_not_utf8_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"id1": "\xff"}\n')
    with pytest.raises(InputError, match="not UTF-8"):
        read_pairs(path)


def test_articles_once_first_text_wins(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.jsonl", [_pair("a", "b"), _pair("b", "c", text1="another crawl of b", lang2="fr")])
    articles = pair_articles(read_pairs(path))
    assert [(a.id, a.text, a.lang) for a in articles] == [
        ("a", "text of a", "en"),
        ("b", "text of b", "de"),
        ("c", "text of c", "fr"),
    ]


def test_missing_languages_are_detected_for_the_articles(tmp_path: Path) -> None:
    record = _pair("a", "b", lang1=None, lang2=None, text1="Le président reçoit le chancelier allemand à l'Élysée", text2="   x")
    (pair,) = read_pairs(_write(tmp_path / "p.jsonl", [record]))
    assert (pair.lang1, pair.lang2, pair.lang_pair) == ("", "", "?-?")
    articles = pair_articles([pair])
    assert articles[0].lang == "fr"
    assert [a.lang for a in pair_articles([pair], detect_lang=False)] == [None, None]


def test_components_follow_the_edges() -> None:
    roots = components([("a", "b"), ("c", "d"), ("b", "c"), ("e", "f")])
    assert roots[0] == roots[1] == roots[2] != roots[3]


def _labelled(id1: str, id2: str) -> LabelledPair:
    return LabelledPair(id1, id2, "x", "y", "en", "en", 1.0, 1)


def test_split_keeps_components_whole_and_is_deterministic() -> None:
    # 40 components: chains of three articles, plus a star.
    pairs = [p for k in range(40) for p in (_labelled(f"{k}a", f"{k}b"), _labelled(f"{k}b", f"{k}c"))]
    pairs += [_labelled("hub", f"spoke{k}") for k in range(5)]
    tune, held = split_pairs(pairs)
    assert len(tune) + len(held) == len(pairs)
    ids_tune = {i for p in tune for i in (p.id1, p.id2)}
    ids_held = {i for p in held for i in (p.id1, p.id2)}
    assert not ids_tune & ids_held
    assert tune and held  # 41 components: both sides get some
    assert split_pairs(pairs) == (tune, held)
    # Every chain is on one side, decided by its representative.
    roots = dict(zip([(p.id1, p.id2) for p in pairs], components((p.id1, p.id2) for p in pairs), strict=True))
    assert all(held_out_component(roots[(p.id1, p.id2)]) for p in held)
    assert not any(held_out_component(roots[(p.id1, p.id2)]) for p in tune)


def test_articles_file_is_not_a_pairs_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.jsonl", [{"id": "1", "title": "t", "text": "", "story": "s"}])
    assert not is_pairs_file(path)
