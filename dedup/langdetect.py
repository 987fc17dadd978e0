"""Language identification that holds on headlines.

py3langid (a naive Bayes model over byte n-grams, shipped in its package) knows 97
languages. Left free on a short headline it often picks a small neighbour of the true
language: "Macron visits Berlin" comes out Occitan, "Trump says no deal" Nigerian Pidgin.
A wrong language means the wrong centring mean and a false "model does not cover"
warning, so :func:`detect_language`:

* chooses only among the languages the embedding models cover (:data:`COVERED_LANGUAGES`,
  XLM-RoBERTa's, which include every language of the other known models);
* reads the title and the text together (the caller joins them; the first
  :data:`MAX_CHARS` characters are used);
* answers ``None`` (unknown: the global centring mean, no coverage warning) when the
  normalised probability of the best candidate is under :data:`MIN_PROBABILITY`;
* given a whole feed (:func:`detect_languages`), weighs the unsure articles by the feed's
  own languages: the languages decided with confidence (and those given) make a prior
  (add-one smoothed over the candidates), and an unsure article takes the language of
  highest posterior when that reaches :data:`MIN_PROBABILITY`. A headline such as "Macron
  meets Scholz in Berlin" (alone: German 0.25, Dutch 0.20, English 0.14) is English in an
  English feed, and stays unknown on its own. Confident articles are never changed, so a
  French report in an English feed stays French;
* still names a language outside the covered set when a long text is unmistakably in it
  (probability >= :data:`UNCOVERED_PROBABILITY` over the whole model, at least
  :data:`UNCOVERED_MIN_CHARS` characters), so the coverage warning fires for it.

Measured on the OG2021 dev titles (``python -m benchmarks.langid``): see ``docs/quality.md``.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "COVERED_LANGUAGES",
    "MAX_CHARS",
    "MIN_PROBABILITY",
    "UNCOVERED_MIN_CHARS",
    "UNCOVERED_PROBABILITY",
    "XLMR_LANGUAGES",
    "LanguageGuess",
    "detect_language",
    "detect_languages",
    "feed_prior",
    "guess_language",
]

#: XLM-RoBERTa's 100 pre-training languages (Conneau et al. 2020; romanised and second-script
#: variants folded into their language), as ISO 639-1 codes: what multilingual-e5 covers.
XLMR_LANGUAGES = frozenset(
    (  # noqa: SIM905 - one line of codes reads better than 93 lines of strings
        "af am ar as az be bg bn br bs ca cs cy da de el en eo es et eu fa fi fr fy ga gd gl gu ha he hi hr hu hy id "
        "is it ja jv ka kk km kn ko ku ky la lo lt lv mg mk ml mn mr ms my ne nl no om or pa pl ps pt ro ru sa sd si "
        "sk sl so sq sr su sv sw ta te th tl tr ug uk ur uz vi xh yi zh"
    ).split()
)

#: The candidates of detection: every language an embedding model we know covers.
COVERED_LANGUAGES = XLMR_LANGUAGES

#: Below this normalised probability of the best covered candidate, the language is unknown.
#: Chosen on the OG2021 dev titles (see ``benchmarks/langid.py`` and ``docs/quality.md``).
MIN_PROBABILITY = 0.5

#: Characters of the text that are read.
MAX_CHARS = 2000

#: A language outside the candidates is named only at or above this probability ...
UNCOVERED_PROBABILITY = 0.99
#: ... and on a text at least this long.
UNCOVERED_MIN_CHARS = 200


@dataclass(frozen=True)
class LanguageGuess:
    """What detection found.

    Attributes:
        lang: The language decided (ISO 639-1), or None when unsure.
        best: The most probable candidate, decided or not.
        probability: Its normalised probability among the candidates.

    """

    lang: str | None
    best: str
    probability: float


@functools.lru_cache(maxsize=8)
def _identifier(candidates: frozenset[str] | None) -> Any:  # noqa: ANN401 - py3langid has no types
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    if candidates is not None:
        known = sorted(candidates & set(identifier.labels))
        if not known:
            raise ValueError(f"none of the candidate languages {sorted(candidates)[:10]} is known to py3langid")
        identifier.set_languages(known)
    return identifier


def guess_language(
    text: str,
    *,
    candidates: Iterable[str] | None = COVERED_LANGUAGES,
    min_probability: float = MIN_PROBABILITY,
    prior: Mapping[str, float] | None = None,
) -> LanguageGuess | None:
    """The language of ``text`` among ``candidates``, with its probability; None for blank text.

    Args:
        text: Title and text (only the first :data:`MAX_CHARS` characters are read).
        candidates: ISO 639-1 codes to choose from (``None``: every language py3langid knows;
            codes it does not know are ignored).
        min_probability: Below this probability ``lang`` is None.
        prior: Weights of the candidates (e.g. :func:`feed_prior`); the probabilities are
            multiplied by them and normalised again. Candidates it lacks weigh its smallest weight.

    """
    sample = text.strip()[:MAX_CHARS]
    if not sample:
        return None
    pool = None if candidates is None else frozenset(candidates)
    if prior:
        floor = min(prior.values())
        ranked = [(lang, p * prior.get(lang, floor)) for lang, p in _identifier(pool).rank(sample)]
        total = sum(p for _, p in ranked) or 1.0
        best, probability = max(ranked, key=lambda lp: lp[1])
        probability /= total
    else:
        best, probability = _identifier(pool).classify(sample)
    lang = str(best) if probability >= min_probability else None
    if pool is not None and len(sample) >= UNCOVERED_MIN_CHARS:
        outside, p_outside = _identifier(None).classify(sample)
        if outside not in pool and p_outside >= UNCOVERED_PROBABILITY:
            return LanguageGuess(str(outside), str(outside), float(p_outside))
    return LanguageGuess(lang, str(best), float(probability))


def detect_language(
    text: str,
    *,
    candidates: Iterable[str] | None = COVERED_LANGUAGES,
    min_probability: float = MIN_PROBABILITY,
) -> str | None:
    """ISO 639-1 code of ``text``, or None when blank or unsure (see the module docstring).

    Examples:
        >>> detect_language("Le ministre a reçu la délégation laotienne à Hanoï.")
        'fr'
        >>> detect_language("Trump says no deal")
        'en'
        >>> detect_language("   ") is None
        True

    """
    guess = guess_language(text, candidates=candidates, min_probability=min_probability)
    return None if guess is None else guess.lang


def feed_prior(langs: Iterable[str | None], candidates: Iterable[str] = COVERED_LANGUAGES) -> dict[str, float]:
    """Share of each candidate language among ``langs`` (None and non-candidates ignored), add-one smoothed.

    Examples:
        >>> p = feed_prior(["en", "en", None, "fr"], candidates=["en", "fr", "de"])
        >>> {k: round(v, 3) for k, v in p.items()}
        {'de': 0.167, 'en': 0.5, 'fr': 0.333}

    """
    pool = sorted(set(candidates))
    counts = Counter(lang for lang in langs if lang in set(pool))
    total = sum(counts.values()) + len(pool)
    return {lang: (counts[lang] + 1) / total for lang in pool}


def detect_languages(
    texts: Sequence[str],
    *,
    known: Sequence[str | None] | None = None,
    candidates: Iterable[str] = COVERED_LANGUAGES,
    min_probability: float = MIN_PROBABILITY,
) -> list[str | None]:
    """The languages of a feed: each text alone, then the unsure ones weighed by the feed's languages.

    Args:
        texts: Title and text of each article.
        known: Languages already given (then that text is not detected; None: detect it).
        candidates: ISO 639-1 codes to choose from.
        min_probability: As :func:`detect_language`, for both passes.

    Returns:
        One language or None per text, in order.

    Examples:
        >>> feed = ["Biles withdraws from the final", "Swimmer wins gold in the relay"] * 10
        >>> feed.append("Macron meets Scholz in Berlin")
        >>> detect_language(feed[-1]) is None, detect_languages(feed)[-1]
        (True, 'en')

    """
    pool = frozenset(candidates)
    given = list(known) if known is not None else [None] * len(texts)
    if len(given) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(given)} known languages")
    out: list[str | None] = []
    unsure: list[int] = []
    for k, (text, lang) in enumerate(zip(texts, given, strict=True)):
        if lang is None:
            lang = detect_language(text, candidates=pool, min_probability=min_probability)
            if lang is None and text.strip():
                unsure.append(k)
        out.append(lang)
    if unsure:
        prior = feed_prior(out, pool)
        for k in unsure:
            guess = guess_language(texts[k], candidates=pool, min_probability=min_probability, prior=prior)
            out[k] = guess.lang if guess is not None else None
    return out
