"""Time windows of batch clustering: the partition holds every story whole; the merge is deterministic."""

from __future__ import annotations

import datetime as dt
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.clustering.windows import UNDATED, WindowPlan, merge_windows, partition
from dedup.config import Config
from dedup.detect.detector import Detector
from dedup.types import Article, PartialDate

from .conftest import HashEncoder

spans = st.tuples(st.integers(700_000, 700_400), st.sampled_from([0, 0, 0, 27, 30])).map(lambda t: (t[0], t[0] + t[1]))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(0, 14), st.lists(spans, min_size=1, max_size=12))
def test_a_story_within_the_date_gap_lies_whole_in_one_window(core: int, gap: int, members: list[tuple[int, int]]) -> None:
    # The clustering's rule for one story: latest first day - earliest last day <= gap.
    if max(f for f, _ in members) - min(last for _, last in members) > gap:
        members = [members[0]]
    plan = WindowPlan(core, gap)
    windows = partition(members, plan)
    assert any(len(m) == len(members) for m in windows.values())
    for i, span in enumerate(members):  # every article is in the core of at least one window
        assert any(plan.in_core(w, span) for w, m in windows.items() if i in m)


def test_undated_items_form_their_own_partition() -> None:
    windows = partition([(10, 10), None, (40, 40), None], WindowPlan(7, 2))
    assert windows[UNDATED] == [1, 3]
    assert all(1 not in m and 3 not in m for w, m in windows.items() if w != UNDATED)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), spans), min_size=1, max_size=30), st.integers(0, 2**32 - 1))
def test_merge_does_not_depend_on_the_order_windows_finish_in(days: list[tuple[int, int] | None], seed: int) -> None:
    plan = WindowPlan(5, 2)
    rng = random.Random(seed)
    results = [(w, m, [rng.randrange(3) for _ in m]) for w, m in partition(days, plan).items()]
    first = merge_windows(len(days), results, days, plan)
    rng.shuffle(results)
    assert merge_windows(len(days), results, days, plan) == first
    assert first[0] == 0 and max(first) < len(days)  # numbered by first appearance


def _article(i: str, text: str, date: str | None) -> Article:
    return Article(id=i, title=text[:40], text=text, lang="en", date=PartialDate.parse(date) if date else None)


STORIES = {
    "quake": "A strong earthquake of magnitude 6.1 struck the northern coast on Tuesday, damaging 400 houses in Lisbon.",
    "vote": "The parliament in Oslo voted 87 to 62 to approve the fisheries budget of 3.2 billion crowns after a long debate.",
    "final": "Brazil beat Spain 2-1 in the football final in Yokohama, with a late goal by Richarlison in the 89th minute.",
}


def _feed() -> list[Article]:
    start = dt.date(2025, 1, 20)
    out = []
    for k, (name, text) in enumerate(STORIES.items()):
        for d in range(3):  # each story told on three days, near and across 7-day window boundaries
            day = start + dt.timedelta(days=9 * k + 3 * d)
            out.append(_article(f"{name}-{d}", text + f" Report {d}.", day.isoformat()))
    out.append(_article("vote-month", STORIES["vote"], "2025-01"))  # a month-precise date spans windows
    return out


def test_windowed_clustering_keeps_stories_that_cross_window_boundaries(encoder: HashEncoder) -> None:
    feed = _feed()
    whole = Detector.in_memory(Config(window_days=0), encoder=encoder).cluster(feed)
    small = Detector.in_memory(Config(window_days=7), encoder=encoder).cluster(feed)
    groups = lambda r: sorted(sorted(s.article_ids) for s in r.stories)  # noqa: E731
    assert groups(small) == groups(whole)
    assert sorted(["quake-0", "quake-1", "quake-2"]) in groups(small)
    assert small.labels["vote-month"] == small.labels["vote-0"]
    # Stories are numbered by first appearance in the input, whatever the windows.
    assert [s.id for s in small.stories] == sorted(s.id for s in small.stories)
    assert small.labels[feed[0].id] == "story-0001"


def test_issue14_windows_reach_the_ends_of_the_calendar(encoder: HashEncoder) -> None:
    # Dates the input refuses (past 2100) may still sit in an old store: windowing must not fail on them.
    feed = [
        Article(id="last", title="Floods in Porto", text="Heavy rain flooded Porto.", date=PartialDate(9999, 12), lang="en"),
        Article(id="year", title="Floods in Porto", text="Heavy rain flooded Porto.", date=PartialDate(9999), lang="en"),
        Article(id="first", title="Floods in Porto", text="Heavy rain flooded Porto.", date=PartialDate(1, 1, 1), lang="en"),
    ]
    result = Detector.in_memory(Config(window_days=7), encoder=encoder).cluster(feed)
    assert result.labels["last"] == result.labels["year"] != result.labels["first"]
    spans = [(dt.date.min.toordinal(), dt.date.min.toordinal()), (dt.date.max.toordinal() - 30, dt.date.max.toordinal())]
    assert {m for members in partition(spans, WindowPlan(7, 7)).values() for m in members} == {0, 1}
