from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dedup.detect.detector
from dedup.cli import EXIT_INPUT, EXIT_OK, main
from dedup.clustering.linkage import average_linkage
from dedup.io import as_article

from .conftest import HashEncoder


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


# ------------------------------------------- issue 17: the clustering decision from the command line
_DEAL = [
    "Vietnam and Laos signed a trade agreement in Hanoi on Sunday.",
    "The deal cuts tariffs on rice, coffee and timber by 20 percent over five years.",
]
_CRITICS = ["Critics in Vientiane said farmers would lose out.", "Opposition groups called for a vote.", "Markets rose."]
#: A chain, scored by the shipped verifier with the fake encoder: a~2 high (v8: 0.92), 2~c low (they share only
#: the critics' passages; v8: 0.010), a~c lower still (v8: 0.002). The test reads the scores, not these figures.
CHAIN = [
    {
        "id": "a",
        "title": "Vietnam and Laos sign trade deal",
        "date": "2025-01-12",
        "lang": "en",
        "feed": "wire",
        "story": "label-1",
        "text": "\n\n".join(
            [
                *_DEAL,
                "Prime Minister Pham Minh Chinh called the agreement a milestone for the region.",
                "Officials said exports between the two countries reached 1.6 billion dollars last year.",
            ]
        ),
    },
    {"id": 2, "title": "Vietnam, Laos trade deal", "date": "2025-01-12", "lang": "en", "text": "\n\n".join(_DEAL + _CRITICS)},
    {
        "id": "c",
        "title": "Farmers protest in Vientiane",
        "date": "2025-01-13",
        "lang": "en",
        "extra": {"desk": "asia"},
        "text": "\n\n".join([*_CRITICS, "Rice farmers in the north marched on Monday."]),
    },
]


def _chain_file(tmp_path: Path) -> Path:
    path = tmp_path / "chain.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in CHAIN), encoding="utf-8")
    return path


def _stories(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[list[str]]:
    assert main(["cluster", "-q", "--no-cache", "--json", *argv]) == EXIT_OK
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    groups: dict[str, list[str]] = {}
    for row in rows:
        groups.setdefault(row["__story__"], []).append(row["id"])
    return sorted(sorted(g) for g in groups.values())


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dedup.detect.detector, "load_encoder", lambda model, **kwargs: HashEncoder())


@pytest.mark.usefixtures("fake_model")
def test_cluster_threshold_and_linkage_flags_change_the_stories(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    feed = str(_chain_file(tmp_path))
    det = dedup.detect.detector.Detector.in_memory(encoder=HashEncoder())
    items = dict(zip(("a", "2", "c"), det.embed([as_article(r) for r in CHAIN]), strict=True))
    a2, c2, ac = (det.compare(items[x], items[y]).score for x, y in (("a", "2"), ("2", "c"), ("a", "c")))
    assert a2 > 0.7 and 0.3 > c2 > ac, (a2, c2, ac)  # the chain the flags act on
    low = f"{(c2 + ac) / 2:.6f}"  # links 2~c, not a~c
    assert _stories([feed, "--threshold", "0.99"], capsys) == [["2"], ["a"], ["c"]]  # no pair is linked
    assert _stories([feed, "--threshold", "0.5"], capsys) == [["2", "a"], ["c"]]  # only a~2 links
    assert _stories([feed, "--threshold", low, "--linkage", "0"], capsys) == [["2", "a", "c"]]  # single linkage: a~2~c
    assert _stories([feed, "--threshold", low, "--linkage", "0.3"], capsys) == [["2", "a"], ["c"]]  # c's average < 0.3
    assert _stories([feed], capsys) == [["2", "a"], ["c"]]  # the defaults: 0.7 to link, 0.3 average
    with pytest.raises(SystemExit) as stop:
        main(["cluster", "-q", feed, "--linkage", "1.5"])
    assert stop.value.code == EXIT_INPUT and "--linkage: must be in [0, 1], got 1.5" in capsys.readouterr().err


@pytest.mark.usefixtures("fake_model")
def test_cluster_rows_keep_the_input_fields_and_put_the_story_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    feed = _chain_file(tmp_path)
    out = tmp_path / "stories.jsonl"
    assert main(["cluster", "-q", "--no-cache", str(feed), "--out", str(out), "--linkage", "0.7", "--threshold", "0.5"]) == 0
    rows = {r["id"]: r for r in map(json.loads, out.read_text("utf-8").splitlines())}
    assert set(rows) == {"a", "2", "c"}  # the integer id 2 is the id "2"
    a = rows["a"]
    assert (a["feed"], a["story"], a["title"], a["date"]) == ("wire", "label-1", CHAIN[0]["title"], "2025-01-12")
    assert a["text"] == CHAIN[0]["text"] and rows["c"]["desk"] == "asia"  # an `extra` object's fields, flattened
    assert a["__story__"] == rows["2"]["__story__"] != rows["c"]["__story__"]  # the input's own `story` is untouched
    assert a["__stored__"] is False and list(a)[:3] == ["id", "__story__", "__stored__"]
    assert "replaced" not in caplog.text
    capsys.readouterr()

    clash = tmp_path / "clash.jsonl"
    clash.write_text(json.dumps({"id": "x", "title": "Hanoi talks", "__story__": "mine"}) + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert main(["cluster", "-q", "--no-cache", "--json", str(clash)]) == EXIT_OK
    (row,) = map(json.loads, capsys.readouterr().out.splitlines())
    assert row["__story__"] == "story-0001" and "'__story__' is replaced" in caplog.text


@pytest.mark.usefixtures("fake_model")
def test_cluster_rows_of_stored_articles_carry_their_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    feed = _chain_file(tmp_path)
    store = tmp_path / "s.store"
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps(CHAIN[0]) + "\n", encoding="utf-8")
    assert main(["add", "-q", "--no-cache", "--store", str(store), str(one)]) == EXIT_OK
    capsys.readouterr()
    rest = tmp_path / "rest.jsonl"
    rest.write_text("".join(json.dumps(r) + "\n" for r in CHAIN[1:]), encoding="utf-8")
    assert main(["cluster", "-q", "--no-cache", "--json", "--store", str(store), str(rest), "--threshold", "0.5"]) == 0
    rows = {r["id"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["a"]["__stored__"] is True and rows["a"]["feed"] == "wire" and rows["2"]["__stored__"] is False
    assert rows["a"]["__story__"] == rows["2"]["__story__"]
    assert feed.exists()
