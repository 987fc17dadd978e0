"""The evaluation harness end to end on a tiny synthetic labelled feed (fake encoder, no ../shared)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from dedup import cli
from dedup.errors import InputError
from dedup.evaluation import harness
from dedup.evaluation.baselines import cluster_by_matrix
from dedup.evaluation.data import held_out_story, read_labelled, split_parts
from dedup.evaluation.report import markdown_table, threshold_advice, threshold_table, write_record
from dedup.evaluation.results import SYSTEMS
from dedup.types import Article, PartialDate

STORIES = {
    "quake": ["Strong earthquake hits the coast of Peru, dozens injured", "Earthquake hits Peru coast: dozens injured"],
    "vote": ["Parliament votes the new budget law after long debate", "New budget law voted by parliament after debate"],
    "storm": ["Storm closes airports across northern Europe", "Airports across northern Europe closed by storm"],
    "match": ["Local team wins the cup final on penalties", "Cup final won on penalties by the local team"],
    "alone": ["Museum opens a new wing for modern art"],
}


def _write(path: Path, copies: int = 3) -> Path:
    rows = []
    for c in range(copies):
        for story, titles in STORIES.items():
            for k, title in enumerate(titles):
                rows.append(
                    {
                        "id": f"{story}-{c}-{k}",
                        "title": f"{title} ({c})",
                        "text": "",
                        "date": f"2021-07-{10 + c:02d}",
                        "lang": "en" if k == 0 else "fr",
                        "story": f"{story}-{c}",
                    }
                )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_split_by_date_for_dated_titles(tmp_path):
    articles, stories = read_labelled(_write(tmp_path / "feed.jsonl"))
    split = split_parts(articles, stories, held_days=1)
    # dates 07-10, 07-11, 07-12: the last day is held
    assert {str(articles[i].date) for i in split.held} == {"2021-07-12"}
    assert len(split.tune) + len(split.held) == len(articles)
    assert "2021-07-12" in split.rule


def test_split_by_story_hash_and_none():
    arts = [Article(id=str(i), title="t", text="body", date=PartialDate.parse("2021-07-01")) for i in range(12)]
    stories = [f"s{i}" for i in range(12)]
    split = split_parts(arts, stories)
    assert split.rule.startswith("by story")
    assert all(held_out_story(stories[i]) for i in split.held)
    assert not any(held_out_story(stories[i]) for i in split.tune)
    assert split_parts(arts[:3], stories[:3]).held == ()


def test_feed_shorter_than_held_days_splits_by_story(tmp_path):
    articles, stories = read_labelled(_write(tmp_path / "feed.jsonl"))
    split = split_parts(articles, stories, held_days=4)
    assert split.tune
    assert split.rule.startswith("by story")


def test_missing_story_is_an_input_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "a", "title": "x", "lang": "en"}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="no 'story'"):
        read_labelled(path)


def test_evaluate_caches_and_reports_every_system(tmp_path, encoder):
    data = _write(tmp_path / "feed.jsonl")
    record = harness.evaluate(data, encoder=encoder, cache=tmp_path / "cache", held_days=1)
    calls = encoder.calls
    assert set(record["systems"]) == set(SYSTEMS)
    for system in SYSTEMS:
        for part in ("tune", "held"):
            rep = record["systems"][system][part]
            assert 0.0 <= rep["clustering"]["bcubed"]["f1"] <= 1.0
            assert rep["pairs"]["positives"] == (8 if part == "tune" else 4)
            assert 0.0 <= rep["pairs"]["ceiling"] <= 1.0
            assert set(rep["retrieval"]["by_pair"]) == {"en->fr", "fr->en"}
    # the second run embeds nothing: everything comes from the cache
    again = harness.evaluate(data, encoder=encoder, cache=tmp_path / "cache", held_days=1)
    assert encoder.calls == calls
    assert again["systems"]["dedup"]["held"] == record["systems"]["dedup"]["held"]
    table = markdown_table([record])
    assert table.count("| feed |") == 6
    thresholds = threshold_table([record], thresholds=(0.5, 0.9))
    assert thresholds.count("| feed |") == 2 and "t=0.9" in thresholds
    assert record["systems"]["dedup"]["held"]["calibration"]["brier"] >= 0.0
    out = write_record(record, tmp_path / "results")
    assert out.name == "eval_feed.json"
    assert (tmp_path / "results" / "eval_feed_pr.png").stat().st_size > 1000


def test_cli_eval_prints_the_table(tmp_path, encoder, monkeypatch, capsys):
    data = _write(tmp_path / "feed.jsonl")
    monkeypatch.setattr("dedup.embedding.embed.load_encoder", lambda model, cache_dir=None: encoder)
    code = cli.main(
        [
            *("eval", str(data), "--cache", str(tmp_path / "c"), "--out-dir", str(tmp_path / "r")),
            *("--no-plot", "-q", "--held-days", "1"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "| feed | held" in out and "t=0.5: P / R" in out  # the threshold table is printed
    assert re.search(r"- feed: `--threshold \d\.\d\d` \(best F1 \d\.\d{3} on the tune part", out), out  # and what to pick
    assert (tmp_path / "r" / "eval_feed.json").is_file()
    assert not (tmp_path / "r" / "eval_feed_pr.png").exists()


def _matrix(n: int, scores: dict[tuple[int, int], float], rest: float) -> np.ndarray:
    sims = np.full((n, n), rest, dtype=np.float32)
    np.fill_diagonal(sims, 1.0)
    for (i, j), v in scores.items():
        sims[i, j] = sims[j, i] = v
    return sims


def test_matrix_linkage_merges_by_the_exact_mean_worked_by_hand():
    # 0~1 (0.95) and 2~3 (0.90) merge first; then 1~2 (0.85) proposes {0,1}+{2,3}, whose
    # mean over the four cross pairs is (0.3 + 0.3 + 0.85 + 0.3) / 4 = 0.4375.
    sims = _matrix(4, {(0, 1): 0.95, (2, 3): 0.90, (1, 2): 0.85}, rest=0.3)
    pairs = [(0, 1), (2, 3), (1, 2)]
    assert cluster_by_matrix(4, pairs, sims, 0.5) == [0, 0, 1, 1]  # 0.4375 < 0.5: two stories
    assert cluster_by_matrix(4, pairs, sims, 0.43) == [0, 0, 0, 0]  # 0.4375 >= 0.43: one
    # A chain: 0~1 and 1~2 are candidates, 0~2 is not, yet its matrix score counts in the mean.
    chain = _matrix(3, {(0, 1): 0.9, (1, 2): 0.9}, rest=0.0)
    assert cluster_by_matrix(3, [(0, 1), (1, 2)], chain, 0.5) == [0, 0, 1]  # (0.9 + 0.0) / 2 = 0.45
    chain[0, 2] = chain[2, 0] = 0.2
    assert cluster_by_matrix(3, [(0, 1), (1, 2)], chain, 0.5) == [0, 0, 0]  # (0.9 + 0.2) / 2 = 0.55
    # Below the threshold no pair starts a merge.
    assert cluster_by_matrix(4, pairs, sims, 0.96) == [0, 1, 2, 3]


def _partition(labels: list[int] | np.ndarray) -> set[frozenset[int]]:
    groups: dict[int, set[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(int(label), set()).add(i)
    return {frozenset(g) for g in groups.values()}


def test_matrix_linkage_agrees_with_scipy_average_linkage_on_separated_stories():
    hierarchy = pytest.importorskip("scipy.cluster.hierarchy")
    from scipy.spatial.distance import squareform

    rng = np.random.default_rng(0)
    for _ in range(20):
        n = 14
        truth = rng.integers(0, 4, n)
        same = truth[:, None] == truth[None, :]
        sims = np.where(same, rng.uniform(0.7, 1.0, (n, n)), rng.uniform(0.0, 0.35, (n, n))).astype(np.float32)
        sims = np.triu(sims, 1) + np.triu(sims, 1).T + np.eye(n, dtype=np.float32)
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        for t in (0.4, 0.5, 0.6):
            tree = hierarchy.linkage(squareform(1.0 - sims, checks=False), method="average")
            expected = hierarchy.fcluster(tree, t=1.0 - t, criterion="distance")
            assert _partition(cluster_by_matrix(n, pairs, sims, t)) == _partition(expected) == _partition(truth)


# ------------------------------------------------------------------ labelled pairs
def _write_pairs(path: Path) -> Path:
    rows = []
    for k, (story, titles) in enumerate(STORIES.items()):
        other = list(STORIES.values())[(k + 1) % len(STORIES)][0]
        for c in range(4):
            a, b = f"{story}-{c}-a", f"{story}-{c}-b"
            same = titles[-1] + f" report {c}"
            rows.append(
                {
                    "id1": a,
                    "id2": b,
                    "text1": titles[0] + f" report {c}",
                    "text2": same,
                    "lang1": "en",
                    "lang2": "fr",
                    "overall": 1.0,
                    "label": 1,
                    "scores": {"Entities": 1.0},
                }
            )
            rows.append(
                {
                    "id1": a,
                    "id2": f"{story}-{c}-x",
                    "text1": titles[0] + f" report {c}",
                    "text2": other + f" other {c}",
                    "lang1": "en",
                    "lang2": "en",
                    "overall": 4.0,
                    "label": 0,
                    "scores": {"Entities": 2.0 if c % 2 else 4.0},
                }
            )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_pairs_evaluation_end_to_end(tmp_path, encoder):
    from dedup.evaluation.pair_eval import evaluate_pairs
    from dedup.evaluation.report import pairs_lang_table, pairs_table
    from dedup.evaluation.results import PAIR_SYSTEMS

    data = _write_pairs(tmp_path / "pairs.jsonl")
    record = evaluate_pairs(data, encoder=encoder, cache=tmp_path / "cache")
    calls = encoder.calls
    split = record["split"]
    assert split["tune"]["pairs"] + split["held"]["pairs"] == 40
    assert split["tune"]["pairs"] and split["held"]["pairs"]
    assert set(record["systems"]) == set(PAIR_SYSTEMS)
    for part in ("tune", "held"):
        for system in PAIR_SYSTEMS:
            rep = record["systems"][system][part]
            assert rep["all"]["pairs"] == split[part]["pairs"]
            assert set(rep["by_lang_pair"]) <= {"en-fr", "en-en"}
            assert (rep["all"]["ece"] is not None) == (system == "dedup")
        # Same words against another story's words: TF-IDF ranks every true pair first.
        assert record["systems"]["tfidf"][part]["all"]["auc"] == 1.0
    # Every distinct article was embedded once; a second run embeds nothing.
    again = evaluate_pairs(data, encoder=encoder, cache=tmp_path / "cache")
    assert encoder.calls == calls
    assert again["systems"] == record["systems"]
    table = pairs_table([record])
    assert table.count("| pairs |") == 8
    assert "| en-fr (" in pairs_lang_table(record)
    only_en = evaluate_pairs(data, encoder=encoder, cache=tmp_path / "cache", langs=["en"])
    assert only_en["split"]["tune"]["positives"] + only_en["split"]["held"]["positives"] == 0
    with pytest.raises(InputError, match="no pair with both languages"):
        evaluate_pairs(data, encoder=encoder, cache=tmp_path / "cache", langs=["de"])


def test_cli_eval_reads_pairs_by_their_fields(tmp_path, encoder, monkeypatch, capsys):
    data = _write_pairs(tmp_path / "pairs.jsonl")
    monkeypatch.setattr("dedup.embedding.embed.load_encoder", lambda model, cache_dir=None: encoder)
    code = cli.main(["eval", str(data), "--cache", str(tmp_path / "c"), "--out-dir", str(tmp_path / "r"), "-q"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| pairs | held (" in out and "hard AUC" in out and "| held: languages" in out
    record = json.loads((tmp_path / "r" / "eval_pairs.json").read_text(encoding="utf-8"))
    assert record["benchmark"] == "eval_pairs"
    assert not (tmp_path / "r" / "eval_pairs_pr.png").exists()


def test_threshold_advice_picks_the_best_f1_point_of_the_tune_part() -> None:
    curve = {"threshold": [0.2, 0.4, 0.6, 0.8], "precision": [0.5, 0.8, 0.9, 1.0], "recall": [1.0, 0.9, 0.6, 0.1]}
    stories = {"benchmark": "eval", "dataset": "feed", "systems": {"dedup": {"tune": {"pairs": {"pr_curve": curve}}}}}
    best = {"best_f1": 0.7, "best_threshold": 0.31}
    pairs = {"benchmark": "eval_pairs", "dataset": "sem", "systems": {"dedup": {"tune": {"all": best}}}}
    no_tune = {"benchmark": "eval", "dataset": "x", "systems": {"dedup": {}}}
    advice = threshold_advice([stories, pairs, no_tune]).splitlines()
    assert advice[1] == "- feed: `--threshold 0.40` (best F1 0.847 on the tune part, P 0.80 / R 0.90)"  # F1 at 0.4: 2*.8*.9/1.7
    assert advice[2] == "- sem: `--threshold 0.31` (best F1 0.700 on the tune part)"
    assert len(advice) == 3 and threshold_advice([no_tune]) == ""
