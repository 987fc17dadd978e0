"""Stories to browse: filters, newest first, paging, and the links that hold a story together."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dedup.browse.stories import StoryBook, StoryFilter, newest_first, story_links
from dedup.errors import ConfigError
from dedup.types import Article, ClusterResult, PartialDate, Story


def story(
    id_: str, ids: tuple[str, ...], langs: tuple[str, ...] = ("en",), first: str | None = None, last: str | None = None
) -> Story:
    return Story(
        id_,
        ids,
        langs,
        PartialDate.parse(first) if first else None,
        PartialDate.parse(last or first) if (last or first) else None,
        tuple(i.upper() for i in ids),
    )


OLD = story("s1", ("a",), ("fr",), "2024-07")
NEW = story("s2", ("b", "c"), ("en", "fr"), "2025-01-10", "2025-01-12")
UNDATED = story("s3", ("d",), ("vi",))
BIG_NEW = story("s4", ("e", "f", "g"), ("en",), "2025-01-12")


def test_newest_first_then_bigger_then_undated_last() -> None:
    assert [s.id for s in newest_first([UNDATED, OLD, NEW, BIG_NEW])] == ["s4", "s2", "s1", "s3"]


@pytest.mark.parametrize(
    ("where", "kept"),
    [
        (StoryFilter(), ["s1", "s2", "s3", "s4"]),
        (StoryFilter(lang="fr"), ["s1", "s2"]),
        (StoryFilter(min_size=2), ["s2", "s4"]),
        (StoryFilter(date_from=PartialDate.parse("2025-01-11")), ["s2", "s4"]),  # s2 reaches into the range
        (StoryFilter(date_to=PartialDate.parse("2025-01-10")), ["s1", "s2"]),  # s2 starts in it
        (StoryFilter(date_from=PartialDate.parse("2024"), date_to=PartialDate.parse("2024")), ["s1"]),
        (
            StoryFilter(date_from=PartialDate.parse("2024-07-31"), date_to=PartialDate.parse("2024-08")),
            ["s1"],
        ),  # a month overlaps
        (StoryFilter(date_from=PartialDate.parse("2024-08")), ["s2", "s4"]),  # undated stories leave with a date bound
    ],
)
def test_filters(where: StoryFilter, kept: list[str]) -> None:
    assert [s.id for s in (OLD, NEW, UNDATED, BIG_NEW) if where.admits(s)] == kept


def test_bad_filters_name_the_value() -> None:
    with pytest.raises(ConfigError, match="2025 > 2024"):
        StoryFilter(date_from=PartialDate.parse("2025"), date_to=PartialDate.parse("2024"))
    with pytest.raises(ConfigError, match="got 0"):
        StoryFilter(min_size=0)


def book() -> StoryBook:
    stories = (OLD, NEW, UNDATED, BIG_NEW)
    labels = {i: s.id for s in stories for i in s.article_ids}
    edges = (("b", "c", 0.9), ("e", "f", 0.95), ("f", "g", 0.8), ("e", "g", 0.7), ("a", "b", 0.6))
    articles = {i: Article(i, title=i.upper(), lang="en") for i in labels}
    return StoryBook(ClusterResult(stories, labels, edges), articles, generation=7)


def test_book_pages_finds_and_links() -> None:
    b = book()
    page = b.page(StoryFilter(), offset=1, limit=2)
    assert [s.id for s in page.stories] == ["s2", "s1"] and page.total == 4 and (page.offset, page.limit) == (1, 2)
    assert b.page(StoryFilter(lang="vi")).total == 1 and b.page(offset=10).stories == ()
    assert b.story_of("c") == NEW and b.story("s1") == OLD and b.langs == ("en", "fr", "vi")
    assert [a.id for a in b.members(BIG_NEW)] == ["e", "f", "g"]
    assert b.links(BIG_NEW) == (("e", "f", 0.95), ("f", "g", 0.8))  # the spanning tree: e-g (0.7) adds nothing
    assert b.links(OLD) == () and b.links(NEW) == (("b", "c", 0.9),)  # a-b leaves the story: not a link of either
    with pytest.raises(KeyError):
        b.story("s9")
    with pytest.raises(ConfigError, match="limit"):
        b.page(limit=0)
    with pytest.raises(ConfigError, match="offset"):
        b.page(offset=-1)


@given(
    st.integers(1, 8).flatmap(
        lambda n: st.tuples(
            st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.floats(0, 1)), max_size=30)
        )
    )
)
def test_links_are_a_maximum_spanning_forest(case: tuple[int, list[tuple[int, int, float]]]) -> None:
    n, raw = case
    ids = tuple(f"a{i}" for i in range(n))
    edges = [(f"a{i}", f"a{j}", s) for i, j, s in raw] + [("a0", "outside", 1.0)]
    links = story_links(story("s", ids), edges)
    # Components of the edge graph inside the story.
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for i, j, _ in raw:
        parent[find(i)] = find(j)
    components = len({find(i) for i in range(n)})
    assert len(links) == n - components  # connects every component, no cycle
    assert all(a in ids and b in ids for a, b, _ in links)
    assert [s for *_, s in links] == sorted((s for *_, s in links), reverse=True)
