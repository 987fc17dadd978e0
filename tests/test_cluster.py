from __future__ import annotations

import itertools
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.clustering.linkage import average_linkage


def _run(n: int, scores: dict[tuple[int, int], float], linkage: float = 0.5) -> list[int]:
    def score(i: int, j: int) -> float:
        return scores.get((min(i, j), max(i, j)), 0.0)

    return average_linkage(n, [(i, j, s) for (i, j), s in scores.items()], score, threshold=0.5, linkage=linkage)


def test_a_chain_does_not_weld_unrelated_stories() -> None:
    # 0-1-2-3-4 is a chain of strong neighbours, but 0 and 4 have nothing in common.
    chain = {(i, i + 1): 0.9 for i in range(4)}
    labels = _run(5, chain)
    assert labels[0] != labels[4]
    assert len(set(labels)) >= 3
    # Connected components would have made one story of all five.


def test_a_clique_becomes_one_story_and_outsiders_stay_apart() -> None:
    scores = {(i, j): 0.95 for i, j in itertools.combinations(range(4), 2)}
    scores[(3, 4)] = 0.9  # one strong link from outsider 4 to member 3
    labels = _run(6, scores)
    assert labels[:4] == [0, 0, 0, 0] and labels[4] == 1 and labels[5] == 2


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.data())
def test_every_item_gets_exactly_one_label_numbered_by_first_appearance(n: int, data: st.DataObject) -> None:
    pairs = list(itertools.combinations(range(n), 2))
    scores = {p: data.draw(st.floats(0, 1)) for p in data.draw(st.lists(st.sampled_from(pairs), unique=True))} if pairs else {}
    labels = _run(n, scores)
    assert len(labels) == n
    firsts = [labels.index(label) for label in sorted(set(labels))]
    assert firsts == sorted(firsts) and sorted(set(labels)) == list(range(len(set(labels))))
    # Merged items are linked on average at least at the linkage threshold.
    for label in set(labels):
        members = [i for i in range(n) if labels[i] == label]
        if len(members) == 2:
            assert scores.get((members[0], members[1]), 0.0) >= 0.5


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 10), st.data())
def test_nothing_merges_above_every_score(n: int, data: st.DataObject) -> None:
    pairs = list(itertools.combinations(range(n), 2))
    scores = {p: data.draw(st.floats(0, 0.99)) for p in pairs}
    assert _run(n, scores, linkage=1.0) == list(range(n))


def test_the_time_window_holds_for_whole_stories() -> None:
    # 0 (day 0) and 2 (day 100) are vetoed; 1 is undated and matches both strongly.
    # The average 0~{1,2} would be (1.0 + 0.0) / 2 = 0.5 >= linkage, but the window forbids it.
    scores = {(0, 1): 1.0, (1, 2): 0.95, (0, 2): 0.0}

    def score(i: int, j: int) -> float:
        return scores[min(i, j), max(i, j)]

    edges = [(i, j, s) for (i, j), s in scores.items()]
    labels = average_linkage(3, edges, score, threshold=0.5, linkage=0.3, days=[(0, 0), None, (100, 100)], max_gap_days=7)
    assert labels[0] != labels[2]
    assert labels[1] in (labels[0], labels[2])
    # without the window the same scores weld all three
    assert len(set(average_linkage(3, edges, score, threshold=0.5, linkage=0.3))) == 1


def test_month_dates_use_their_smallest_gap() -> None:
    # item 0 is "some day in a 31-day month" (days 0..30), item 1 is day 35: gap 5 <= 7, may merge
    labels = average_linkage(
        2, [(0, 1, 0.9)], lambda i, j: 0.9, threshold=0.5, linkage=0.3, days=[(0, 30), (35, 35)], max_gap_days=7
    )
    assert labels == [0, 0]


def test_a_given_cross_mean_replaces_the_sampled_one() -> None:
    # {0, 1} and {2, 3}: cross pair (0, 2) is strong, the other three are 0.4, so the exact
    # mean between the two is 0.525.
    scores = {(0, 1): 0.95, (2, 3): 0.95, (0, 2): 0.9, (0, 3): 0.4, (1, 2): 0.4, (1, 3): 0.4}

    def score(i: int, j: int) -> float:
        return scores[min(i, j), max(i, j)]

    def exact(a: Sequence[int], b: Sequence[int]) -> float:
        return sum(score(x, y) for x in a for y in b) / (len(a) * len(b))

    edges = [(i, j, s) for (i, j), s in scores.items()]
    assert average_linkage(4, edges, score, threshold=0.5, linkage=0.5, cross_mean=exact) == [0, 0, 0, 0]
    assert average_linkage(4, edges, score, threshold=0.5, linkage=0.6, cross_mean=exact) == [0, 0, 1, 1]
    # A sample of one cross pair (the first, (0, 2) at 0.9) accepts what the exact mean refuses.
    assert average_linkage(4, edges, score, threshold=0.5, linkage=0.6, max_pairs=1) == [0, 0, 0, 0]
