"""Language detection on headlines: covered languages only, and "unknown" when unsure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dedup.io import read_articles
from dedup.langdetect import (
    COVERED_LANGUAGES,
    MIN_PROBABILITY,
    detect_language,
    detect_languages,
    feed_prior,
    guess_language,
)


@pytest.mark.parametrize("title", ["Macron visits Berlin", "Trump says no deal", "Macron meets Scholz in Berlin"])
def test_english_headlines_are_english_or_unknown(title: str) -> None:
    # Unrestricted py3langid says oc, pcm and de for these.
    assert detect_language(title) in ("en", None)
    guess = guess_language(title)
    assert guess is not None and guess.best in COVERED_LANGUAGES


def test_a_clear_english_headline_is_english() -> None:
    assert detect_language("Trump says no deal") == "en"


@pytest.mark.parametrize(
    ("title", "lang"),
    [
        ("Le président reçoit le chancelier allemand à l'Élysée", "fr"),
        ("Путин встретился с премьер-министром Японии", "ru"),
        ("习近平会见越南国家主席", "zh"),
    ],
)
def test_short_titles_in_other_scripts_and_languages(title: str, lang: str) -> None:
    assert detect_language(title) == lang


def test_title_and_text_together_decide_what_the_title_alone_cannot() -> None:
    title = "Macron meets Scholz in Berlin"
    body = "The French president and the German chancellor discussed energy prices and the war in Ukraine."
    assert detect_language(f"{title}\n{body}") == "en"


def test_low_probability_falls_back_to_unknown() -> None:
    guess = guess_language("Macron visits Berlin")
    assert guess is not None
    # Some candidate is always best; under the floor it is not decided.
    assert guess.probability < MIN_PROBABILITY and guess.lang is None
    assert detect_language("Macron visits Berlin", min_probability=0.0) == guess.best
    assert detect_language("   ") is None and guess_language("") is None
    assert detect_language("12 345 678") is None  # digits only: nothing to tell


def test_candidates_restrict_the_answer() -> None:
    assert detect_language("Trump says no deal", candidates=["fr", "de"], min_probability=0.0) in ("fr", "de")
    with pytest.raises(ValueError, match="known to py3langid"):
        detect_language("Trump says no deal", candidates=["xx"])


def test_long_text_in_an_uncovered_language_is_still_named() -> None:
    # Yoruba is not among the covered languages; a long text that is plainly Yoruba keeps its
    # name, so the coverage warning fires instead of a wrong covered language being claimed.
    text = (
        "Ààrẹ orílẹ̀-èdè Nàìjíríà ti ṣe ìpàdé pẹ̀lú àwọn gómìnà ìpínlẹ̀ ní ìlú Àbújá lónìí. "
        "Wọ́n jíròrò nípa ààbò, ètò ẹ̀kọ́ àti ọ̀rọ̀ ajé orílẹ̀-èdè náà, wọ́n sì fẹnukò lórí "
        "àwọn ìgbésẹ̀ tuntun tí ìjọba yóò gbé láti mú ìdàgbàsókè bá àwọn ará ìlú."
    )
    assert "yo" not in COVERED_LANGUAGES
    assert detect_language(text) == "yo"


def test_reader_detects_a_missing_language_from_title_and_text(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    records = [
        {"id": "1", "title": "Trump says no deal", "text": ""},
        {"id": "2", "title": "Macron visits Berlin", "text": ""},
        {"id": "3", "title": "Macron visits Berlin", "text": "", "lang": "EN"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    langs = [a.lang for a in read_articles([path]).articles]
    assert langs == ["en", None, "en"]


ENGLISH_FEED = [
    "Biles withdraws from the team final",
    "Swimmer wins gold in the relay",
    "Rain delays the tennis tournament again",
    "Japan beats Mexico in extra time",
] * 5


def test_the_feed_settles_unsure_headlines_and_leaves_confident_ones() -> None:
    feed = [*ENGLISH_FEED, "Macron meets Scholz in Berlin", "Le président reçoit le chancelier allemand à l'Élysée"]
    langs = detect_languages(feed)
    assert detect_language(feed[-2]) is None  # alone: unsure
    assert langs[-2] == "en"  # among English headlines: English
    assert langs[-1] == "fr"  # a confident French title in an English feed stays French
    assert set(langs[:-1]) == {"en"}


def test_known_languages_are_kept_and_weigh_in_the_prior() -> None:
    # Only German is known in this feed; the unsure headline follows it, the known ones stay.
    known = ["de"] * 20 + [None]
    texts = ["x"] * 20 + ["Macron meets Scholz in Berlin"]
    langs = detect_languages(texts, known=known)
    assert langs[:20] == ["de"] * 20 and langs[-1] == "de"
    prior = feed_prior(known)
    assert prior["de"] == pytest.approx(21 / (20 + len(COVERED_LANGUAGES)))
    with pytest.raises(ValueError, match="known languages"):
        detect_languages(["a", "b"], known=[None])


def test_reader_settles_a_headline_by_the_rest_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    rows = [{"id": str(k), "title": t, "text": ""} for k, t in enumerate(ENGLISH_FEED)]
    rows.append({"id": "scholz", "title": "Macron meets Scholz in Berlin", "text": ""})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    articles = read_articles([path]).articles
    assert articles[-1].lang == "en"
    assert read_articles([path], detect_lang=False).articles[-1].lang is None
