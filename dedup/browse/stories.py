"""Stories for people to browse: a clustering with its articles, filtered, paged, and linked.

A :class:`StoryBook` is one clustering (:meth:`Detector.cluster_embedded`) together with
the articles it grouped. It answers the questions of the story browser and of the static
report: which stories fall in a date range or a language, newest first, a page at a time;
which story holds an article; and which verified pairs hold a story together.

The links of a story are a maximum spanning tree of its verified pairs (the edges of the
clustering that reached the decision threshold): the strongest evidence that connects
every member, at most ``size - 1`` pairs, however large the story. Average linkage only
starts a merge from a pair at or above ``Config.cluster_threshold`` (0.7), above the
decision threshold (0.5), so every member of a story is reached by its links.

Nothing here embeds, verifies or reads files.

Examples:
    >>> from dedup.types import Story
    >>> s = Story("story-0001", ("a", "b", "c"), ("en", "fr"), None, None, ("A", "B", "C"))
    >>> story_links(s, [("a", "b", 0.9), ("b", "c", 0.8), ("a", "c", 0.6), ("a", "x", 0.99)])
    (('a', 'b', 0.9), ('b', 'c', 0.8))

"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from dedup.clustering.linkage import find_root
from dedup.errors import ConfigError
from dedup.types import Article, ClusterResult, PartialDate, Story

__all__ = ["Link", "StoryBook", "StoryFilter", "StoryPage", "newest_first", "story_links"]

#: A verified pair of article ids and its score.
Link = tuple[str, str, float]


@dataclass(frozen=True)
class StoryFilter:
    """Which stories to list.

    Attributes:
        date_from: Keep stories whose dates reach this date or later (undated stories are
            left out when a date bound is set).
        date_to: Keep stories whose dates start on or before this date.
        lang: Keep stories with at least one article in this language.
        min_size: Keep stories with at least this many articles.

    Raises:
        ConfigError: ``date_from`` is after ``date_to``, or ``min_size`` < 1.

    """

    date_from: PartialDate | None = None
    date_to: PartialDate | None = None
    lang: str | None = None
    min_size: int = 1

    def __post_init__(self) -> None:
        if self.date_from is not None and self.date_to is not None and self.date_from.bounds()[0] > self.date_to.bounds()[1]:
            raise ConfigError(f"date_from must not be after date_to, got {self.date_from} > {self.date_to}")
        if self.min_size < 1:
            raise ConfigError(f"min_size must be at least 1, got {self.min_size}")

    def admits(self, story: Story) -> bool:
        """Whether ``story`` passes every set condition."""
        if story.size < self.min_size:
            return False
        if self.lang is not None and self.lang not in story.langs:
            return False
        if self.date_from is None and self.date_to is None:
            return True
        if story.first_date is None or story.last_date is None:
            return False
        first, last = story.first_date.bounds()[0], story.last_date.bounds()[1]
        if self.date_from is not None and last < self.date_from.bounds()[0]:
            return False
        return not (self.date_to is not None and first > self.date_to.bounds()[1])


@dataclass(frozen=True)
class StoryPage:
    """One page of a filtered story list.

    Attributes:
        stories: The stories of this page, newest first.
        total: How many stories pass the filter (on every page).
        offset: Position of the first story of this page in the filtered list.
        limit: Most stories per page.

    """

    stories: tuple[Story, ...]
    total: int
    offset: int
    limit: int


def newest_first(stories: Iterable[Story]) -> list[Story]:
    """Stories by their latest date, newest first; then larger first; undated stories last."""

    def key(story: Story) -> tuple[bool, int, int, str]:
        last = story.last_date.bounds()[1].toordinal() if story.last_date else 0
        return (story.last_date is None, -last, -story.size, story.id)

    return sorted(stories, key=key)


def story_links(story: Story, edges: Iterable[Link]) -> tuple[Link, ...]:
    """The strongest verified pairs that connect the members: a maximum spanning forest.

    Args:
        story: The story.
        edges: Verified pairs of the clustering (pairs leaving the story are ignored).

    Returns:
        At most ``story.size - 1`` links, strongest first.

    """
    index = {m: i for i, m in enumerate(dict.fromkeys(story.article_ids))}
    parent = list(range(len(index)))
    links: list[Link] = []
    inside = [e for e in edges if e[0] in index and e[1] in index and e[0] != e[1]]
    for a, b, score in sorted(inside, key=lambda e: (-e[2], e[0], e[1])):
        ra, rb = find_root(parent, index[a]), find_root(parent, index[b])
        if ra != rb:
            parent[rb] = ra
            links.append((a, b, score))
    return tuple(links)


@dataclass(frozen=True)
class StoryBook:
    """A clustering and the articles it grouped, ready to browse.

    Attributes:
        result: The clustering.
        articles: Every clustered article by id.
        generation: The store commit clustered (None for a batch that is not a store).
        seconds: How long the clustering took.

    """

    result: ClusterResult
    articles: Mapping[str, Article]
    generation: int | None = None
    seconds: float = 0.0
    _by_id: dict[str, Story] = field(init=False, repr=False, compare=False)
    _ordered: tuple[Story, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {s.id: s for s in self.result.stories})
        object.__setattr__(self, "_ordered", tuple(newest_first(self.result.stories)))

    @property
    def stories(self) -> tuple[Story, ...]:
        """Every story, newest first."""
        return self._ordered

    @property
    def langs(self) -> tuple[str, ...]:
        """Every language among the articles, sorted."""
        return tuple(sorted({lang for s in self._ordered for lang in s.langs}))

    def story(self, story_id: str) -> Story:
        """The story with this id (raises KeyError)."""
        return self._by_id[story_id]

    def story_of(self, article_id: str) -> Story:
        """The story that holds this article (raises KeyError)."""
        return self._by_id[self.result.labels[article_id]]

    def links(self, story: Story) -> tuple[Link, ...]:
        """The verified pairs that hold ``story`` together (see :func:`story_links`)."""
        return story_links(story, self.result.edges)

    def members(self, story: Story) -> list[Article]:
        """The story's articles, in the order of ``story.article_ids``."""
        return [self.articles[i] for i in story.article_ids]

    def page(self, where: StoryFilter | None = None, *, offset: int = 0, limit: int = 20) -> StoryPage:
        """The stories that pass ``where``, newest first, ``limit`` from ``offset``.

        Raises:
            ConfigError: ``offset`` < 0 or ``limit`` < 1.

        """
        if offset < 0:
            raise ConfigError(f"offset must be >= 0, got {offset}")
        if limit < 1:
            raise ConfigError(f"limit must be >= 1, got {limit}")
        where = where or StoryFilter()
        kept: Sequence[Story] = [s for s in self._ordered if where.admits(s)]
        return StoryPage(tuple(kept[offset : offset + limit]), len(kept), offset, limit)
