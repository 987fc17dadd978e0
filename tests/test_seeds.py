"""The mission's claims on the seed articles, with the real default model (no fake encoder).

000 (fr) and 004 (en) report the same meeting of 12 January 2025; 001, 002 and 003 are
other meetings of the same actors. Whole-article cosine ranks a hard negative above the
true pair; the verifier must not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dedup.config import Config
from dedup.detect.detector import Detector
from dedup.embedding.embed import Encoder, embed_articles, load_encoder
from dedup.io import read_articles
from dedup.types import Article

from .conftest import SEEDS

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def real_encoder() -> Encoder:
    return load_encoder(Config().model)


@pytest.fixture(scope="module")
def seeds() -> dict[str, Article]:
    return {a.id[:3]: a for a in read_articles([SEEDS]).articles}


def test_whole_article_cosine_alone_fails_on_the_seeds(real_encoder: Encoder, seeds: dict[str, Article]) -> None:
    raw = embed_articles(list(seeds.values()), real_encoder, centring=None)
    items = {k: e for k, e in zip(seeds, raw, strict=True)}
    true_pair = float(items["000"].vector @ items["004"].vector)
    hardest = max(float(items["000"].vector @ items[k].vector) for k in ("001", "002", "003"))
    assert hardest > true_pair  # the reason verification exists


def test_language_centring_ranks_the_true_pair_first(real_encoder: Encoder, seeds: dict[str, Article]) -> None:
    det = Detector.in_memory(encoder=real_encoder)
    assert det.centring is not None  # the default model ships its language means
    items = {k: e for k, e in zip(seeds, det.embed(list(seeds.values())), strict=True)}
    true_pair = float(items["000"].vector @ items["004"].vector)
    for query, others in (("000", ("001", "002", "003")), ("004", ("001", "002", "003"))):
        hardest = max(float(items[query].vector @ items[k].vector) for k in others)
        assert true_pair > hardest + 0.01, (query, true_pair, hardest)
    assert det.store.model.endswith(f"+{det.centring.tag}")


def test_cluster_puts_000_and_004_together_and_the_others_apart(real_encoder: Encoder, seeds: dict[str, Article]) -> None:
    result = Detector.in_memory(encoder=real_encoder).cluster(list(seeds.values()))
    labels = {k: result.labels[a.id] for k, a in seeds.items()}
    assert labels["000"] == labels["004"]
    assert len({labels[k] for k in ("000", "001", "002", "003")}) == 4


def test_check_004_against_000_to_003_is_a_duplicate_of_000(
    tmp_path: Path, real_encoder: Encoder, seeds: dict[str, Article]
) -> None:
    det = Detector.open(tmp_path / "s", encoder=real_encoder, create=True)
    det.add([seeds[k] for k in ("000", "001", "002", "003")])
    verdict = det.check(seeds["004"], top=3)
    assert verdict.is_duplicate and [m.id for m in verdict.duplicates] == [seeds["000"].id]
    match = verdict.duplicates[0]
    assert match.evidence.lang_pair == ("en", "fr") and match.evidence.date_gap_days == 0
    assert len(match.evidence.aligned) >= 8  # paragraph-by-paragraph translation
    assert all(m.score < 0.5 * match.score for m in verdict.matches[1:])  # near misses far below


def test_check_001_against_the_others_is_new(tmp_path: Path, real_encoder: Encoder, seeds: dict[str, Article]) -> None:
    det = Detector.open(tmp_path / "s", encoder=real_encoder, create=True)
    det.add([seeds[k] for k in ("000", "002", "003", "004")])
    verdict = det.check(seeds["001"], top=4)
    assert not verdict.is_duplicate and len(verdict.matches) == 4


def test_002_without_a_date_is_still_kept_apart_by_passages(real_encoder: Encoder, seeds: dict[str, Article]) -> None:
    # 002 has no date, so only passage evidence can separate it from 000/004.
    det = Detector.in_memory(encoder=real_encoder)
    det.add([seeds["000"], seeds["004"]])
    verdict = det.check(seeds["002"], top=2)
    assert not verdict.is_duplicate
    assert all(m.evidence.date_gap_days is None for m in verdict.matches)


def test_real_model_vectors_are_unit_and_deterministic(real_encoder: Encoder) -> None:
    texts = ["Le ministre a reçu la délégation.", "The minister received the delegation."]
    a, b = real_encoder.encode(texts), real_encoder.encode(texts[::-1])
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(a, b[::-1], atol=1e-5)
    assert real_encoder.dim == 384


def test_an_exact_repeat_whose_text_is_its_title_is_a_duplicate_with_the_real_model(real_encoder: Encoder) -> None:
    # The reported case: NEW at score 0.0007 with article cosine 1.000 and no aligned passage.
    det = Detector.in_memory(encoder=real_encoder)
    record = {"title": "Storm hits the coast of Brittany", "text": "Storm hits the coast of Brittany."}
    det.add([Article(id="first", **record)])
    verdict = det.check(Article(id="again", **record))
    assert verdict.is_duplicate and verdict.matches[0].score == 1.0 and verdict.matches[0].evidence.identical
