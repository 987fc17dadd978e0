"""The live-archive benchmark (``dedup bench --parts ingest``): its feed, its rows, its wiring.

Tiny sizes only: the figures themselves belong to the benchmark runs, not to unit tests.
These check that a run measures what its rows claim (counts, schema, sane magnitudes).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dedup.cli import main
from dedup.config import Config
from dedup.errors import ConfigError
from dedup.evaluation import bench, bench_ingest
from dedup.evaluation.bench_data import BenchOptions
from dedup.evaluation.bench_ingest import (
    MODEL,
    IngestOptions,
    _bulk_load,
    _faiss_threads,
    _probe_timed,
    available_bytes,
    ingest_benchmark,
    rss_bytes,
)
from dedup.evaluation.bench_report import markdown
from dedup.evaluation.ingest_feed import LIVE_DAYS, SyntheticFeed
from dedup.search.archive import Archive

SCHEMA = (
    "n",
    "add_p50_ms",
    "add_p99_ms",
    "check_p50_ms",
    "check_p99_ms",
    "open_ms",
    "rss_bytes_per_article",
    "disk_bytes_per_article",
)

OPTIONS = dict(sizes=(120, 240), adds=4, checks=6, batch=3, bulk_batch=100, months=2, dim=32, warmup=1)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("ingest") / "not" / "made" / "yet"  # --work may name a folder to create
    options = IngestOptions(**OPTIONS, work_dir=work)
    no_model = pytest.MonkeyPatch()
    no_model.setattr(bench, "load_encoder", _no_model)
    try:
        result = bench.run(BenchOptions(sizes=(999,)), parts=["ingest"], ingest_options=options)
    finally:
        no_model.undo()
    result["work_left"] = sorted(p.name for p in work.iterdir())
    return result


def _no_model(*args: object, **kwargs: object) -> None:
    raise AssertionError("the ingest part alone must not load a model")


# --------------------------------------------------------------------------- the feed
def test_feed_articles_are_deterministic_and_shaped_like_news() -> None:
    feed, again = SyntheticFeed(48, months=3, seed=5), SyntheticFeed(48, months=3, seed=5)
    for i in (0, 1, 977):
        a, b = feed.article(i), again.article(i)
        assert a.article == b.article and a.passages == b.passages
        np.testing.assert_array_equal(a.passage_vectors, b.passage_vectors)
        assert 3 <= len(a.passages) <= 60 and a.passage_vectors.shape == (len(a.passages), 48)
        assert all(20 <= len(p) <= 500 for p in a.passages[1:])
        np.testing.assert_allclose(np.linalg.norm(a.passage_vectors, axis=1), 1.0, rtol=1e-5)
        assert abs(float(np.linalg.norm(a.vector)) - 1.0) < 1e-5
    assert feed.article(1).passages != feed.article(2).passages


def test_clustered_feed_puts_a_story_together_within_its_topic_and_uniform_has_no_structure() -> None:
    clustered, uniform = SyntheticFeed(384, months=2, seed=3), SyntheticFeed(384, months=2, seed=3, vectors="uniform")
    span = clustered.span_days
    mates = [0, span, 2 * span]  # same day, same story (STORY_SIZE consecutive same-day articles)
    assert len({clustered.story_of(i) for i in mates}) == 1 and clustered.story_of(1) != clustered.story_of(0)
    for feed, story_low, other_high in ((clustered, 0.5, 0.45), (uniform, -0.2, 0.2)):
        vectors = np.vstack([feed.article(i).vector for i in range(400)])
        cos = vectors @ vectors.T
        same = [cos[a, b] for a in mates for b in mates if a < b]
        others = cos[0, 1:span]  # other stories (their topics mostly other too)
        assert min(same) > story_low and float(np.median(others)) < other_high
    vectors = np.vstack([clustered.article(i).vector for i in range(400)])
    assert float(np.median(vectors @ vectors.T)) > 0.1  # a shared direction, as centred news vectors keep
    with pytest.raises(ValueError, match="vectors"):
        SyntheticFeed(8, vectors="gaussian")


def test_feed_dates_cover_the_months_evenly_and_the_live_end_is_the_last_week() -> None:
    feed = SyntheticFeed(8, months=3, seed=0)
    days = [feed.day_of(i) for i in range(3000)]
    assert min(days) == feed.first_day and max(days) == feed.last_day
    assert {d.strftime("%Y-%m") for d in days} == {"2025-04", "2025-05", "2025-06"}
    per_day = np.bincount([(d - feed.first_day).days for d in days])
    assert per_day.max() - per_day.min() <= 1
    live = [i for i in range(3000) if feed.is_live(i)]
    assert live and all(feed.last_day - feed.day_of(i) < dt.timedelta(days=LIVE_DAYS) for i in live)
    batch = feed.live_batch(0, 10)
    assert {a.article.date.bounds()[0] for a in batch if a.article.date} <= {feed.live_day(k) for k in range(LIVE_DAYS)}
    assert not {a.id for a in batch} & {feed.article(i).id for i in range(10)}


def test_near_copy_keeps_the_texts_and_moves_the_vectors_a_little() -> None:
    feed = SyntheticFeed(64, months=2, seed=1)
    original, copy = feed.article(7), feed.near_copy(7, 0)
    assert copy.passages == original.passages and copy.id != original.id
    cosines = np.sum(copy.passage_vectors * original.passage_vectors, axis=1)
    assert 0.9 < float(cosines.min()) < 1.0
    assert abs(float(feed.fresh(0).vector @ original.vector)) < 0.6


# --------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    "bad",
    [
        dict(sizes=()),
        dict(sizes=(0,)),
        dict(adds=0),
        dict(batch=-1),
        dict(warmup=-1),
        dict(faiss_threads=-1),
        dict(vectors="gaussian"),
        dict(reuse=True),  # without a work folder
    ],
)
def test_options_refuse_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        IngestOptions(**bad)


def test_faiss_threads_are_set_for_the_block_then_restored() -> None:
    import faiss

    before = faiss.omp_get_max_threads()
    with _faiss_threads(1):
        assert faiss.omp_get_max_threads() == 1
    assert faiss.omp_get_max_threads() == before
    with _faiss_threads(0):
        assert faiss.omp_get_max_threads() == before


def test_rss_and_available_memory_are_read() -> None:
    assert rss_bytes() > 1_000_000
    free = available_bytes()
    assert free is None or free > 0


# --------------------------------------------------------------------------- a run
def test_rows_carry_the_schema_at_each_size(report: dict[str, Any]) -> None:
    rows = report["ingest"]
    assert [r["n"] for r in rows] == [120, 240]
    for row in rows:
        for key in SCHEMA:
            assert isinstance(row[key], (int, float)) and math.isfinite(row[key]), key
    assert "method" in report["ingest_setup"] and report["ingest_setup"]["options"]["sizes"] == [120, 240]


def test_rows_count_what_was_done(report: dict[str, Any]) -> None:
    added = (OPTIONS["warmup"] + OPTIONS["adds"]) * OPTIONS["batch"]
    first, second = report["ingest"]
    # Each size is reached before its timed adds; the row counts the archive after them.
    assert first["articles"] == 120 + added and second["articles"] == 240 + added
    assert first["adds"] == 4 and first["checks"] == 6 and first["batch"] == 3
    assert first["shards"] == second["shards"] == 2
    assert first["shards_opened"] == second["shards_opened"] == 2
    assert first["live_shard"] == "2025-06" and first["shards_searched_mean"] >= 1


def test_near_copies_are_found_and_new_articles_are_not(report: dict[str, Any]) -> None:
    for row in report["ingest"]:
        assert row["near_copies"] == 3 and row["near_copies_found"] == 3
        assert row["new_articles"] == 3 and row["new_articles_flagged"] == 0


def test_figures_are_sane(report: dict[str, Any]) -> None:
    for row in report["ingest"]:
        assert 0 < row["add_p50_ms"] <= row["add_p99_ms"]
        assert 0 < row["check_p50_ms"] <= row["check_p99_ms"]
        assert 0 < row["retrieval_p50_ms"] <= row["retrieval_p99_ms"]
        assert row["open_ms"] > 0 and row["open_all_shards_ms"] >= 0
        assert row["rss_bytes_per_article"] > 0
        # At least three passage vectors of 32 dimensions per article, even at 2 bytes a number.
        assert row["disk_bytes_per_article"] > 3 * 32 * 2


def test_the_run_cleans_up_and_reports_a_table(report: dict[str, Any]) -> None:
    assert report["work_left"] == []
    table = markdown(report)
    assert "add 10 p50 ms" in table and "| 240 |" in table


def test_cli_names_ingest_among_the_parts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--parts", "ingest,nope"]) == 2
    assert "ingest" in capsys.readouterr().err


def test_probe_stops_opening_shards_when_memory_runs_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    options = IngestOptions(sizes=(90,), months=3, dim=16, bulk_batch=50)
    feed = SyntheticFeed(options.dim, options.months, options.seed)
    Archive.create(tmp_path / "a", MODEL, options.dim)
    _bulk_load(tmp_path / "a", feed, range(90), options, Config())
    whole = _probe_timed(str(tmp_path / "a"), feed, 0, Config())
    assert whole["shards_opened"] == whole["shards"] == 3 and whole["articles_opened"] == whole["articles"] == 90
    monkeypatch.setattr(bench_ingest, "available_bytes", lambda: 0)
    short = _probe_timed(str(tmp_path / "a"), feed, 0, Config())
    # Only the shard the first (live) check needed was opened; the figure per article covers it alone.
    assert short["shards_opened"] == 1 and 0 < short["articles_opened"] < 90 and short["articles"] == 90


def test_reuse_keeps_the_archive_and_the_next_run_skips_the_bulk_load(tmp_path: Path) -> None:
    options = IngestOptions(**{**OPTIONS, "sizes": (200,)}, work_dir=tmp_path, reuse=True)
    added = (OPTIONS["warmup"] + OPTIONS["adds"]) * OPTIONS["batch"]  # type: ignore[operator]
    (first,) = ingest_benchmark(options)
    assert first["articles"] == 200 + added and first["bulk_load_s"] > 0
    (kept,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert Archive.open(kept / "archive").count() == 200 + added
    (again,) = ingest_benchmark(options)  # 215 articles held: within 10% of 200, measured again without a bulk load
    assert again["bulk_load_s"] == 0 and again["articles"] == 200 + 2 * added
    assert again["near_copies_found"] == again["near_copies"] and again["new_articles_flagged"] == 0
    assert ingest_benchmark(IngestOptions(**{**OPTIONS, "sizes": (60, 240)}, work_dir=tmp_path, reuse=True))[0]["n"] == 240
    # A folder that does not match its state is rebuilt, not trusted.
    (kept / "state.json").write_text('{"loaded": 5, "live_next": 0, "query_next": 0}', "utf-8")
    (rebuilt,) = ingest_benchmark(options)
    assert rebuilt["bulk_load_s"] > 0 and rebuilt["articles"] == 200 + added
