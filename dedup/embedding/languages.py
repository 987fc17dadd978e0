"""Which languages a model was trained on, and the warning for articles outside them.

A model that never saw an article's language embeds it poorly: its vectors, hence its
verdicts, are unreliable. :func:`uncovered` names such articles for the models we know.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from dedup.embedding.encoders import USE_MODEL
from dedup.embedding.naming import parse_space
from dedup.langdetect import XLMR_LANGUAGES
from dedup.types import Article

__all__ = ["MODEL_LANGUAGES", "XLMR_LANGUAGES", "uncovered", "warn_uncovered"]

logger = logging.getLogger(__name__)

#: Languages (ISO 639-1) each known model was trained on, by model name (without the
#: backend and prompt suffixes of an encoder's name); models not listed are taken to cover
#: the input.
MODEL_LANGUAGES: dict[str, frozenset[str]] = {
    USE_MODEL: frozenset(["ar", "zh", "en", "fr", "de", "it", "ja", "ko", "nl", "pl", "pt", "es", "th", "tr", "ru"]),
    "dedup/multilingual-e5-small-q4": XLMR_LANGUAGES,
    "intfloat/multilingual-e5-small": XLMR_LANGUAGES,
    "intfloat/multilingual-e5-base": XLMR_LANGUAGES,
    "intfloat/multilingual-e5-large": XLMR_LANGUAGES,
}

#: Codes that name a covered language otherwise (old or macro-language codes).
_LANGUAGE_ALIASES = {"iw": "he", "in": "id", "ji": "yi", "nb": "no", "nn": "no", "fil": "tl", "zh-tw": "zh", "zh-cn": "zh"}


def uncovered(encoder_name: str, articles: Sequence[Article]) -> list[Article]:
    """The articles whose (known) language the model behind ``encoder_name`` was not trained on."""
    covered = MODEL_LANGUAGES.get(parse_space(encoder_name).model)
    if covered is None:
        return []
    out = []
    for article in articles:
        if not article.lang:
            continue
        code = article.lang.lower()
        code = _LANGUAGE_ALIASES.get(code, code.split("-")[0].split("_")[0])
        if code not in covered:
            out.append(article)
    return out


def warn_uncovered(encoder_name: str, articles: Sequence[Article]) -> None:
    """Log a warning naming the articles in languages the model behind ``encoder_name`` does not cover."""
    outside = uncovered(encoder_name, articles)
    if not outside:
        return
    langs = sorted({a.lang or "" for a in outside})
    advice = (
        "use the default model, which covers about 100 languages"
        if encoder_name == USE_MODEL
        else "only their shared names, numbers and dates keep their worth as evidence"
    )
    logger.warning(
        "model %s does not cover %s: %d article(s) (e.g. %s) will embed poorly; %s",
        encoder_name,
        ", ".join(langs),
        len(outside),
        outside[0].id,
        advice,
    )
