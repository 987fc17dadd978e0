"""The synthetic news feed of the ingest benchmark: embedded articles without a model.

Article ``i`` is a pure function of ``(seed, i)``, so a benchmark can regenerate any stored
article (to ask for a near-copy of it) without keeping the feed in memory, and a fresh
process can rebuild the same queries.

Shapes are those of real news, measured once on the 123 English NTREX originals with
:func:`dedup.text.split_passages`: a median of 15 passages per article (10th percentile 7,
90th 27) and a median passage of 117 characters (90th percentile 209). Here the passage
count is log-normal around 15 (clipped to 3-60) and each passage's length log-normal
around 117 characters (clipped to 20-500); the texts are drawn from a fixed vocabulary
with capitalised names and numbers, so the verifier's name and number features have work
to do. The article vector is the normalised mean of the passage vectors, as the embedding
stage makes it.

Vectors (``vectors=``):

* ``"clustered"`` (the default): news is about topics, and about stories within a topic.
  Each article belongs to a story of :data:`STORY_SIZE` articles published the same day, each
  story to one of :data:`TOPICS` topics. An article's direction is the normalised sum of a
  direction shared by all articles, its topic's, its story's and its own, with the weights of
  :data:`CLUSTER_WEIGHTS`; each passage vector is that direction plus noise of norm
  :data:`PASSAGE_NOISE`. The weights were set to match what the default model
  (multilingual-e5-small, language-centred article vectors) gives a sample of real news
  (1,500 OG2021 titles and 400 NTREX articles; ``docs/speed.md`` shows both): the median
  cosine of two articles about 0.2, of an article and its 10th nearest neighbour about 0.5,
  and its nearest about 0.75.
* ``"uniform"``: every passage vector a random unit vector. They have no cluster structure
  at all (two articles' cosine is about 0 and so is the nearest neighbour's, 0.17), so an
  inverted file (IVF) finds no lists to skip: it is calibrated to a full scan. A worst case
  for the index, not news.

Dates: the ``n`` articles of the feed are spread evenly over ``months`` calendar months
ending with :data:`LAST_MONTH`, so an archive holds about ``n / months`` articles per
monthly shard. The "live" end of the feed (sustained adds and the checks) is the last week
of the span.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from numpy.typing import NDArray

from dedup.types import Article, EmbeddedArticle, PartialDate

__all__ = ["CLUSTER_WEIGHTS", "LAST_MONTH", "PASSAGE_NOISE", "STORY_SIZE", "TOPICS", "VECTOR_KINDS", "SyntheticFeed"]

#: The kinds of vector the feed can make (see the module docstring).
VECTOR_KINDS = ("clustered", "uniform")
#: Topics of the clustered feed.
TOPICS = 1000
#: Articles per story of the clustered feed (published the same day).
STORY_SIZE = 4
#: Ranges (low, high) of the weights of the shared, first topic, second topic, story and own
#: directions of a clustered article; each story draws its weights uniformly in them.
CLUSTER_WEIGHTS = ((0.45, 0.45), (0.2, 0.8), (0.0, 0.5), (0.55, 0.55), (0.15, 0.6))
_WEIGHTS_LOW, _WEIGHTS_HIGH = (np.array(bound, dtype=np.float64) for bound in zip(*CLUSTER_WEIGHTS, strict=True))
#: Norm of the noise added to the article's direction to make each passage vector (clustered).
PASSAGE_NOISE = 1.0

#: The last month of every feed's span (year, month): its final week is the live end.
LAST_MONTH = (2025, 6)
#: Days back from the end of the span that the live end (adds, checks) covers.
LIVE_DAYS = 7

_PASSAGES_MEDIAN, _PASSAGES_SIGMA, _PASSAGES_RANGE = 15.0, 0.5, (3, 60)
_CHARS_MEDIAN, _CHARS_SIGMA, _CHARS_RANGE = 117.0, 0.45, (20, 500)
_POOL_CHARS = 1 << 20
_LIVE_BASE = 1 << 36  # live (sustained-add) articles: indices that never meet the bulk feed's
_QUERY_BASE = 1 << 40  # query and fresh-article indices never meet the feed's


def _unit(rows: NDArray[np.float32]) -> NDArray[np.float32]:
    out: NDArray[np.float32] = (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)
    return out


def _text_pool(seed: int) -> str:
    """About a megabyte of word-like text: lowercase words, capitalised names, numbers, full stops."""
    rng = np.random.default_rng([seed, 7])
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = ["".join(rng.choice(letters, size=int(rng.integers(2, 11)))) for _ in range(3000)]
    names = [w.capitalize() for w in words[:400]]
    numbers = [str(int(x)) for x in rng.integers(1, 100_000, size=300)]
    vocabulary = np.array(words + names + numbers)
    weights = np.array([8.0] * len(words) + [1.0] * len(names) + [0.5] * len(numbers))
    chosen = rng.choice(vocabulary, size=_POOL_CHARS // 6, p=weights / weights.sum())
    sentences = [" ".join(chosen[i : i + 14]) + "." for i in range(0, len(chosen), 14)]
    return " ".join(sentences)


class SyntheticFeed:
    """Deterministic embedded articles spread over ``months`` months (see the module docstring).

    Args:
        dim: Vector dimension (the model's).
        months: Calendar months the feed's dates cover.
        seed: Everything drawn depends on it.
        vectors: ``"clustered"`` (topics, stories, articles) or ``"uniform"`` (random unit vectors).

    """

    def __init__(self, dim: int, months: int = 12, seed: int = 0, vectors: str = "clustered") -> None:
        if dim < 1 or months < 1:
            raise ValueError(f"dim and months must be positive, got {dim} and {months}")
        if vectors not in VECTOR_KINDS:
            raise ValueError(f"vectors must be one of {list(VECTOR_KINDS)}, got {vectors!r}")
        self.dim = dim
        self.months = months
        self.seed = seed
        self.vectors = vectors
        rng = np.random.default_rng([seed, 11])
        self._shared = _unit(rng.standard_normal(dim).astype(np.float32))
        self._topics = _unit(rng.standard_normal((TOPICS, dim)).astype(np.float32))
        year, month = LAST_MONTH
        after = dt.date(year + month // 12, month % 12 + 1, 1)
        self.last_day = after - dt.timedelta(days=1)
        first = year * 12 + (month - 1) - (months - 1)
        self.first_day = dt.date(first // 12, first % 12 + 1, 1)
        self.span_days = (self.last_day - self.first_day).days + 1
        self._pool = _text_pool(seed)

    # ------------------------------------------------------------------- dates
    def day_of(self, index: int) -> dt.date:
        """The date of feed article ``index``: consecutive indices land far apart, every day equally often."""
        return self.first_day + dt.timedelta(days=(index * 7919 + self.seed) % self.span_days)

    def live_day(self, k: int) -> dt.date:
        """The ``k``-th day of the live end, cycling over its :data:`LIVE_DAYS` days."""
        return self.last_day - dt.timedelta(days=k % LIVE_DAYS)

    def is_live(self, index: int) -> bool:
        """Whether feed article ``index`` is dated in the live end."""
        return (self.last_day - self.day_of(index)).days < LIVE_DAYS

    # ------------------------------------------------------------------ articles
    def article(self, index: int, *, day: dt.date | None = None, prefix: str = "a") -> EmbeddedArticle:
        """Feed article ``index`` (id ``f"{prefix}{index}"``), dated ``day`` or :meth:`day_of`."""
        rng = np.random.default_rng([self.seed, index])
        count = int(np.clip(round(_PASSAGES_MEDIAN * np.exp(_PASSAGES_SIGMA * rng.standard_normal())), *_PASSAGES_RANGE))
        lengths = np.clip(np.round(_CHARS_MEDIAN * np.exp(_CHARS_SIGMA * rng.standard_normal(count))), *_CHARS_RANGE)
        starts = rng.integers(0, len(self._pool) - _CHARS_RANGE[1], size=count)
        passages = tuple(self._pool[s : s + int(n)].strip() or "x" for s, n in zip(starts, lengths, strict=True))
        vectors = self._passage_vectors(index, rng, count)
        date = day or self.day_of(index)
        article = Article(
            id=f"{prefix}{index}",
            title=passages[0],
            text="\n\n".join(passages[1:]),
            date=PartialDate.parse(date.isoformat()),
            lang="en",
        )
        return EmbeddedArticle(article, passages, vectors, _unit(vectors.mean(axis=0)))

    def story_of(self, index: int) -> int:
        """The story of feed article ``index``: :data:`STORY_SIZE` articles of the same day share one.

        Article ``index`` falls on the same day as ``index + span_days`` (see :meth:`day_of`), so
        a story is ``STORY_SIZE`` such consecutive same-day articles.
        """
        span = self.span_days
        return (index // (span * STORY_SIZE)) * span + index % span

    def _passage_vectors(self, index: int, rng: np.random.Generator, count: int) -> NDArray[np.float32]:
        scale = np.float32(1 / np.sqrt(self.dim))  # a standard normal vector times this has a norm of about 1
        noise = rng.standard_normal((count, self.dim), dtype=np.float32)
        if self.vectors == "uniform":
            return _unit(noise)
        story_rng = np.random.default_rng([self.seed, 13, self.story_of(index)])
        first, second = story_rng.integers(TOPICS, size=2)
        w = story_rng.uniform(_WEIGHTS_LOW, _WEIGHTS_HIGH).astype(np.float32)
        direction = (
            w[0] * self._shared
            + w[1] * self._topics[first]
            + w[2] * self._topics[second]
            + (w[3] * scale) * story_rng.standard_normal(self.dim, dtype=np.float32)
            + (w[4] * scale) * rng.standard_normal(self.dim, dtype=np.float32)
        )
        direction /= np.linalg.norm(direction)
        return _unit(direction + (PASSAGE_NOISE * scale) * noise)

    def articles(self, indices: range | list[int]) -> list[EmbeddedArticle]:
        """Feed articles ``indices``, each on its own date."""
        return [self.article(i) for i in indices]

    def live_batch(self, start: int, size: int) -> list[EmbeddedArticle]:
        """``size`` new articles (feed indices from ``start``) dated in the live end: a sustained add."""
        return [self.article(_LIVE_BASE + start + k, day=self.live_day(start + k), prefix="live") for k in range(size)]

    def near_copy(self, index: int, query: int, noise: float = 0.05) -> EmbeddedArticle:
        """A republication of feed article ``index``: same texts, vectors moved by ``noise``, a day later."""
        original = self.article(index)
        rng = np.random.default_rng([self.seed, _QUERY_BASE + query])
        moved = original.passage_vectors + noise * rng.standard_normal(original.passage_vectors.shape).astype(np.float32)
        vectors = _unit(moved)
        day = min(self.day_of(index) + dt.timedelta(days=1), self.last_day)
        article = Article(
            id=f"query{query}",
            title=original.article.title,
            text=original.article.text,
            date=PartialDate.parse(day.isoformat()),
            lang="en",
        )
        return EmbeddedArticle(article, original.passages, vectors, _unit(vectors.mean(axis=0)))

    def fresh(self, query: int) -> EmbeddedArticle:
        """A new article of the live end that duplicates nothing stored."""
        return self.article(_QUERY_BASE + query, day=self.live_day(query), prefix="fresh")
