from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dedup.embedding.articles import embed_articles
from dedup.io import read_articles
from dedup.text import clean_text, extract_names, extract_numbers, split_passages

from .conftest import SEEDS, HashEncoder


def _body(stem: str) -> str:
    path = next(SEEDS.glob(f"{stem}_*.txt"))
    return path.read_text("utf-8").split("\n", 1)[1]


def test_cleaning_removes_photo_credits_related_links_and_signoffs() -> None:
    raw = _body("000")
    cleaned = clean_text(raw)
    assert "Photo : VNA/CVN" in raw and "Photo" not in cleaned
    assert ">>" in raw and ">>" not in cleaned
    assert raw.rstrip().endswith("VNA/CVN") and "VNA/CVN" not in cleaned
    assert "Vilay Lakhamphong a sincèrement remercié le Vietnam" in cleaned
    assert cleaned.splitlines()[0].startswith("Le leader du PCV a affirmé")


def test_cleaning_cuts_the_trailing_see_more_block_of_002() -> None:
    raw = _body("002")
    cleaned = clean_text(raw)
    assert "Voir plus" in raw and "Voir plus" not in cleaned
    for unrelated in ("He Wei", "Guy Parmelin", "Phu Quoc", "Cao Bang"):
        assert unrelated in raw and unrelated not in cleaned
    assert cleaned.rstrip().endswith("entre les deux ministères.")  # "- VNA" sign-off gone too
    assert "To Lam et Vilay" in cleaned


def test_cleaning_only_removes_lines_and_is_deterministic() -> None:
    for path in sorted(SEEDS.glob("*.txt")):
        raw = path.read_text("utf-8")
        cleaned = clean_text(raw)
        assert len(cleaned) < len(raw), path.name  # every demo article carries some boilerplate
        assert all(line in raw for line in cleaned.splitlines()), path.name  # removes, never rewrites
        assert clean_text(cleaned) == cleaned, path.name  # nothing left to remove
        assert clean_text(path.read_text("utf-8")) == cleaned, path.name  # a fresh copy cleans the same


def test_embedding_leaves_the_article_text_as_given(encoder: HashEncoder) -> None:
    articles = list(read_articles([SEEDS]).articles)
    bodies = [(a.title, a.text) for a in read_articles([SEEDS]).articles]  # a second, independent read
    embedded = embed_articles(articles, encoder)
    assert [(e.article.title, e.article.text) for e in embedded] == bodies
    first = next(e for e in embedded if "Photo : VNA/CVN" in e.article.text)  # the credit stays in the article...
    assert not any("Photo : VNA/CVN" in p for p in first.passages)  # ...but is never embedded


def test_see_more_marker_at_the_top_does_not_cut_the_article() -> None:
    text = "Read more\nThe minister met his counterpart.\nThey signed a deal."
    assert "signed a deal" in clean_text(text)


def test_split_passages_covers_every_word() -> None:
    text = clean_text(_body("002"))
    passages = split_passages(text, max_chars=120)
    assert all(len(p) <= 120 for p in passages)
    assert " ".join(passages).split() == text.split()


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=2000), st.integers(20, 400))
def test_split_passages_never_drops_text(text: str, max_chars: int) -> None:
    passages = split_passages(text, max_chars=max_chars)
    assert all(0 < len(p) <= max_chars for p in passages)
    assert "".join("".join(passages).split()) == "".join("".join(line.strip() for line in text.splitlines()).split())


def test_numbers_are_normalised_and_survive_translation() -> None:
    fr = extract_numbers("Le 12 janvier 2025, 1 500 policiers; le XIe Congrès; 3,5 %")
    en = extract_numbers("On 12 January 2025, 1,500 police; the 11th Congress; 3.5%")
    assert {"12", "2025"} <= fr & en
    assert "3.5" in fr and "3.5" in en
    assert "1500" in en and "11" in en


def test_names_fold_accents_and_skip_sentence_starts() -> None:
    vi = extract_names("Le dirigeant Tô Lâm a reçu Vilay Lakhamphong à Hà Nội.")
    en = extract_names("Party chief To Lam received Vilay Lakhamphong in Ha Noi.")
    assert {"lam", "vilay", "lakhamphong", "noi"} <= vi & en
    assert "le" not in vi and "party" not in en
