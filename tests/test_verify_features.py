"""The verifier's features, on hand-made multilingual examples (no model: vectors are chosen by hand)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dedup.config import Config
from dedup.embedding.articles import pool
from dedup.text import extract_numbers, name_key
from dedup.types import Article, EmbeddedArticle
from dedup.verify import compare
from dedup.verify_features import (
    FEATURES,
    VectorMap,
    date_marks,
    lead_vector,
    name_cover,
    pair_features,
    profile,
    soft_match,
)


def _item(article_id: str, passages: tuple[str, ...], vectors: np.ndarray, lang: str = "en") -> EmbeddedArticle:
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    return EmbeddedArticle(Article(article_id, "", " ".join(passages), lang=lang), passages, vectors, pool(passages, vectors))


def test_numbers_in_three_formats_and_three_scripts_are_one_number() -> None:
    texts = {
        "fr": "Les secours ont compté 1 234 victimes le 3 mai.",
        "de": "Die Helfer zählten 1.234 Opfer.",
        "en": "Rescuers counted 1,234 victims.",
        "zh": "救援人员统计了1234人遇难。",
        "ar": "أحصى المسعفون ١٢٣٤ ضحية.",
    }
    for lang, text in texts.items():
        assert "1234" in extract_numbers(text), lang
    assert "832" in extract_numbers("地震造成832人死亡")
    assert extract_numbers("3,5 % et 3.5 %") == {"3.5"}  # a decimal comma is a decimal point
    assert not extract_numbers("Airbus A320 and the 3rd flight")  # letters touching digits are not numbers


def test_names_match_across_scripts_and_inflections() -> None:
    assert name_key("Путин") == "putin" and name_key("Zełenski") == "zelenski"
    russian = profile(("Президент Украины Зеленский встретился с Путиным в Стамбуле.",))
    english = profile(("Ukraine's President Zelenskiy met Putin in Istanbul.",))
    assert name_cover(frozenset({"zelenskiy", "putin"}), russian) == 1.0  # stems: zelen-, putin-
    assert name_cover(russian.names - {"ukrainy"}, english) == pytest.approx(2 / 3)  # "stambule" is no "istanbul"
    assert name_cover(frozenset({"merkel"}), russian) == 0.0
    assert math.isnan(name_cover(frozenset(), russian))


def test_dates_are_read_in_several_languages() -> None:
    fr, ru, en = date_marks("Le 12 janvier 2025"), date_marks("12 января 2025 года"), date_marks("On January 12, 2025")
    assert fr == ru == en == {(1, 12), (2025,)}
    assert date_marks("2025年1月12日") == {(1, 12), (2025,)}
    assert date_marks("Le 13 janvier") != fr


def test_soft_match_takes_each_passage_best_match_both_ways() -> None:
    sims = np.array([[0.9, 0.2, 0.1], [0.3, 0.4, 0.2]], dtype=np.float32)
    soft, top = soft_match(sims)
    assert soft == pytest.approx(0.5 * ((0.9 + 0.4) / 2 + (0.9 + 0.4 + 0.2) / 3))
    assert top == pytest.approx(soft)  # no more than 3 passages a side: the top 3 are all of them


def test_the_lead_weighs_more_in_the_lead_vector() -> None:
    e = np.eye(6)
    # Both articles share their first passage only, or their last passage only.
    a = _item("a", ("Lead A.", "Two.", "Three.", "Four."), np.vstack([e[0], e[1], e[2], e[3]]))
    same_lead = _item("b", ("Lead B.", "Other.", "Other two.", "Other three."), np.vstack([e[0], e[4], e[5], e[1] + e[4]]))
    same_tail = _item("c", ("Lead C.", "Other.", "Other two.", "Four b."), np.vstack([e[4], e[5], e[1] + e[4], e[3]]))
    assert float(lead_vector(a) @ lead_vector(same_lead)) > float(lead_vector(a) @ lead_vector(same_tail))
    assert np.linalg.norm(lead_vector(a)) == pytest.approx(1.0, abs=1e-5)


def _pair(text_a: tuple[str, ...], text_b: tuple[str, ...]) -> np.ndarray:
    """Features of two articles whose passages align one to one (same vectors): the shapes agree."""
    vectors = np.eye(8)[: len(text_a)] + 0.1
    a, b = _item("a", text_a, vectors), _item("b", text_b, vectors.copy(), lang="de")
    return pair_features(compare(a, b, Config()), a, b)


def test_conflicting_names_and_numbers_in_aligned_passages_are_measured() -> None:
    get = FEATURES.index
    english = ("The mayor Anna Nowak opened the plant in Gdansk on Monday.", "It cost 120 million and supplies 40,000 homes.")
    german = (
        "Die Bürgermeisterin Anna Nowak eröffnete die Anlage in Gdansk.",
        "Sie kostete 120 Millionen und versorgt 40.000 Haushalte.",
    )
    template = (
        "The mayor Jorge Sharp signed the accord in Valparaiso on Monday.",
        "It covers 80 vessels and protects 3,000 jobs.",
    )
    same, other = _pair(english, german), _pair(english, template)
    # Other names in the same slots conflict ("Monday", on both sides, does not); German capitalises its
    # nouns ("Bürgermeisterin"), which opposite the English "Monday" reads as a weak conflict only.
    assert other[get("name_conflict")] == 0.75 and other[get("number_conflict")] == 1.0
    assert same[get("name_conflict")] < 0.3 and same[get("number_conflict")] == 0.0
    assert same[get("name_match")] > 0.5 > 0.25 == other[get("name_match")]  # only "Monday" is shared
    assert same[get("number_match")] == 1.0
    assert other[get("aligned_fraction")] == same[get("aligned_fraction")] == 1.0  # shapes alone cannot tell them apart
    assert same[get("same_language")] == 0.0


def test_a_script_without_capitals_gives_no_name_evidence_rather_than_a_conflict() -> None:
    get = FEATURES.index
    x = _pair(("President Xi Jinping visited Paris.", "Talks lasted two days."), ("习近平主席访问了巴黎。", "会谈持续了两天。"))
    assert math.isnan(x[get("name_match")]) and math.isnan(x[get("name_conflict")])


def test_the_mapped_similarity_is_the_cosine_of_the_mapped_article_vectors() -> None:
    rng = np.random.default_rng(7)
    a = _item("a", ("one", "two"), rng.standard_normal((2, 8)))
    b = _item("b", ("three", "four"), rng.standard_normal((2, 8)))
    at = FEATURES.index("mapped_similarity")
    evidence = compare(a, b, Config())
    assert math.isnan(pair_features(evidence, a, b)[at])  # no map: nothing to measure
    zero = VectorMap(("m",), np.zeros((8, 2)), np.zeros((8, 2)))
    assert pair_features(evidence, a, b, vector_map=zero)[at] == pytest.approx(float(a.vector @ b.vector), abs=1e-6)
    u, v = rng.standard_normal((8, 2)), rng.standard_normal((8, 2))
    moved_a, moved_b = a.vector + (a.vector @ v) @ u.T, b.vector + (b.vector @ v) @ u.T
    want = float(moved_a @ moved_b / np.linalg.norm(moved_a) / np.linalg.norm(moved_b))
    assert pair_features(evidence, a, b, vector_map=VectorMap(("m",), u, v))[at] == pytest.approx(want, abs=1e-6)
    # A map that sends the difference of the two vectors to nothing makes them one story.
    d = (a.vector - b.vector).astype(np.float64)
    d /= np.linalg.norm(d)
    collapse = VectorMap(("m",), -d[:, None], d[:, None])  # v -> v - (v.d) d
    assert pair_features(evidence, a, b, vector_map=collapse)[at] == pytest.approx(1.0, abs=1e-6)


def test_a_vector_map_names_its_models_and_checks_its_shape() -> None:
    m = VectorMap(("dedup/model",), np.zeros((4, 2)), np.zeros((4, 2)))
    assert m.dim == 4 and m.applies_to("dedup/model", 4)
    assert not m.applies_to("other/model", 4) and not m.applies_to("dedup/model", 8)
    assert np.allclose(m.apply(np.array([[3.0, 0, 0, 4.0]])), [[0.6, 0, 0, 0.8]])
    assert np.array_equal(m.apply(np.zeros((1, 4))), np.zeros((1, 4)))  # a zero vector stays zero, no NaN
    with pytest.raises(ValueError, match="one shape"):
        VectorMap(("m",), np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="finite"):
        VectorMap(("m",), np.full((4, 2), np.nan), np.zeros((4, 2)))
