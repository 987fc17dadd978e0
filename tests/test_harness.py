"""The evaluation harness end to end on a tiny synthetic labelled feed (fake encoder, no ../shared)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dedup import cli
from dedup.errors import InputError
from dedup.evaluation import harness
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
    articles, stories = harness.read_labelled(_write(tmp_path / "feed.jsonl"))
    split = harness.split_parts(articles, stories, held_days=1)
    # dates 07-10, 07-11, 07-12: the last day is held
    assert {str(articles[i].date) for i in split.held} == {"2021-07-12"}
    assert len(split.tune) + len(split.held) == len(articles)
    assert "2021-07-12" in split.rule


def test_split_by_story_hash_and_none():
    arts = [Article(id=str(i), title="t", text="body", date=PartialDate.parse("2021-07-01")) for i in range(12)]
    stories = [f"s{i}" for i in range(12)]
    split = harness.split_parts(arts, stories)
    assert split.rule.startswith("by story")
    assert all(harness.held_out_story(stories[i]) for i in split.held)
    assert not any(harness.held_out_story(stories[i]) for i in split.tune)
    assert harness.split_parts(arts[:3], stories[:3]).held == ()


def test_feed_shorter_than_held_days_splits_by_story(tmp_path):
    articles, stories = harness.read_labelled(_write(tmp_path / "feed.jsonl"))
    split = harness.split_parts(articles, stories, held_days=4)
    assert split.tune
    assert split.rule.startswith("by story")


def test_missing_story_is_an_input_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "a", "title": "x", "lang": "en"}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="no 'story'"):
        harness.read_labelled(path)


def test_evaluate_caches_and_reports_every_system(tmp_path, encoder):
    data = _write(tmp_path / "feed.jsonl")
    record = harness.evaluate(data, encoder=encoder, cache=tmp_path / "cache", held_days=1)
    calls = encoder.calls
    assert set(record["systems"]) == set(harness.SYSTEMS)
    for system in harness.SYSTEMS:
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
    table = harness.markdown_table([record])
    assert table.count("| feed |") == 6
    thresholds = harness.threshold_table([record], thresholds=(0.5, 0.9))
    assert thresholds.count("| feed |") == 2 and "t=0.9" in thresholds
    assert record["systems"]["dedup"]["held"]["calibration"]["brier"] >= 0.0
    out = harness.write_record(record, tmp_path / "results")
    assert out.name == "eval_feed.json"
    assert (tmp_path / "results" / "eval_feed_pr.png").stat().st_size > 1000


def test_cli_eval_prints_the_table(tmp_path, encoder, monkeypatch, capsys):
    data = _write(tmp_path / "feed.jsonl")
    monkeypatch.setattr("dedup.embedding.embed.load_encoder", lambda model, cache_dir=None: encoder)
    code = cli.main(
        ["eval", str(data), "--cache", str(tmp_path / "c"), "--out", str(tmp_path / "r"), "--no-plot", "-q", "--held-days", "1"]
    )
    assert code == 0
    assert "| feed | held" in capsys.readouterr().out
    assert (tmp_path / "r" / "eval_feed.json").is_file()
    assert not (tmp_path / "r" / "eval_feed_pr.png").exists()


def test_matrix_average_linkage_equals_the_detectors():
    from dedup.clustering.linkage import average_linkage

    rng = np.random.default_rng(0)
    for _ in range(20):
        n = 12
        x = rng.normal(size=(n, 4))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        sims = ((1 + x @ x.T) / 2).astype(np.float32)  # scores in [0, 1], as the verifier's
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < 0.5]
        for t in (0.2, 0.5, 0.8):
            table = {(i, j): float(sims[i, j]) for i in range(n) for j in range(n)}
            expected = average_linkage(
                n, [(i, j, table[i, j]) for i, j in pairs], lambda i, j, table=table: table[i, j], threshold=t, linkage=t
            )
            assert harness._cluster_by_matrix(n, pairs, sims, t) == expected
