"""The time-sharded archive: routing, the window rule, read-only replicas, parallel building, crashes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import string
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dedup.cli import EXIT_INPUT, EXIT_OK, EXIT_STORE, main
from dedup.config import Config
from dedup.detect.archive import ArchiveDetector
from dedup.detect.detector import Detector
from dedup.embedding.embed import embed_articles
from dedup.errors import ConfigError, StoreCorruptError, StoreError, StoreMismatchError, StoreNotFoundError
from dedup.io import read_articles
from dedup.search.archive import Archive
from dedup.search.build import build_shards
from dedup.search.routing import UNDATED, shard_key, shards_to_search
from dedup.search.store import Store
from dedup.types import Article, EmbeddedArticle, PartialDate

from .conftest import ROOT, TRUE_PAIR, HashEncoder
from .test_store import MANIFEST_DAMAGE, damage_manifest, run_first_adds


def _words(rng: np.random.Generator, n: int) -> list[str]:
    return ["".join(rng.choice(list(string.ascii_lowercase), size=int(rng.integers(4, 9)))) for _ in range(n)]


def _story(rng: np.random.Generator) -> tuple[str, str]:
    """A title and a body of random words: two stories share almost no trigrams."""
    title = " ".join(w.capitalize() for w in _words(rng, 6))
    body = "\n\n".join(" ".join(_words(rng, 14)) + f" {int(rng.integers(10, 9999))}." for _ in range(3))
    return title, body


def _article(article_id: str, date: str | None, story: tuple[str, str]) -> Article:
    return Article(id=article_id, title=story[0], text=story[1], date=PartialDate.parse(date) if date else None, lang="en")


def _archive(path: Path, enc: HashEncoder, articles: list[Article]) -> ArchiveDetector:
    det = ArchiveDetector(Archive.create(path, enc.name, enc.dim), enc, Config())
    det.add(articles)
    return det


def _tree(path: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``path`` with its size and modification time."""
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.rglob("*")) if p.is_file()}


def _digest(path: Path) -> dict[str, str]:
    """Every file under ``path`` (but the lock) with its SHA-256."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


# --------------------------------------------------------------------------- routing
def test_articles_go_to_the_month_of_their_first_day_or_undated(tmp_path: Path, encoder: HashEncoder) -> None:
    rng = np.random.default_rng(1)
    dates = {"jan31": "2025-01-31", "feb02": "2025-02-02", "month": "2025-02", "year": "2024", "none": None, "dec": "2024-12-05"}
    det = _archive(tmp_path / "a", encoder, [_article(i, d, _story(rng)) for i, d in dates.items()])
    archive = Archive.open(tmp_path / "a")
    assert archive.keys == ("2024-01", "2024-12", "2025-01", "2025-02", UNDATED)
    shard_ids = {key: archive.shard(key).ids for key in archive.keys}
    assert shard_ids == {
        "2024-01": ["year"],
        "2024-12": ["dec"],
        "2025-01": ["jan31"],
        "2025-02": ["feb02", "month"],
        UNDATED: ["none"],
    }
    assert archive.count() == 6 == det.archive.count()
    manifest = json.loads((tmp_path / "a" / "archive.json").read_text("utf-8"))
    assert manifest["granularity"] == "month" and manifest["model"] == encoder.name and manifest["dim"] == encoder.dim


def test_window_rule() -> None:
    keys = ["2023-06", "2024-01", "2024-12", "2025-01", "2025-02", "2025-03", UNDATED]
    day = PartialDate.parse
    assert shards_to_search(keys, day("2025-02-02"), 7) == ("2025-01", "2025-02", UNDATED)
    assert shards_to_search(keys, day("2025-02-15"), 7) == ("2025-01", "2025-02", UNDATED)  # January: year-only dates
    assert shards_to_search(keys, day("2025-02-15"), 0) == ("2025-01", "2025-02", UNDATED)
    assert shards_to_search(keys, day("2025-03-20"), 30) == ("2025-01", "2025-02", "2025-03", UNDATED)
    assert shards_to_search(keys, day("2025-01-03"), 7) == ("2024-01", "2024-12", "2025-01", UNDATED)
    assert shards_to_search(keys, day("2025-02"), 7) == ("2025-01", "2025-02", "2025-03", UNDATED)  # a month: its bounds
    assert shards_to_search(keys, None, 7) == tuple(sorted(keys))  # undated: everything
    assert shard_key(day("2025-02")) == "2025-02" and shard_key(day("2025")) == "2025-01"


# --------------------------------------------------------------------------- checking
def _boundary_archive(path: Path, encoder: HashEncoder) -> tuple[dict[str, tuple[str, str]], ArchiveDetector]:
    rng = np.random.default_rng(2)
    stories = {name: _story(rng) for name in ("boundary", "old", "march", "undated", "year")}
    _archive(
        path,
        encoder,
        [
            _article("jan31", "2025-01-31", stories["boundary"]),
            _article("old", "2023-06-10", stories["old"]),
            _article("mar", "2025-03-20", stories["march"]),
            _article("nodate", None, stories["undated"]),
            _article("y2024", "2024", stories["year"]),
        ],
    )
    return stories, ArchiveDetector(Archive.open(path, read_only=True), encoder, Config())


def test_check_opens_only_the_window_and_finds_a_duplicate_across_the_month_boundary(
    tmp_path: Path, encoder: HashEncoder
) -> None:
    stories, det = _boundary_archive(tmp_path / "a", encoder)
    assert det.archive.keys == ("2023-06", "2024-01", "2025-01", "2025-03", UNDATED)
    assert det.archive.opened == ()  # opening reads no shard
    verdict = det.check(_article("feb02", "2025-02-02", stories["boundary"]))
    assert verdict.shards == ("2025-01", UNDATED)  # no 2025-02 shard exists; 2023-06, 2025-03 are outside
    assert det.archive.opened == ("2025-01", UNDATED)
    assert verdict.is_duplicate and [m.id for m in verdict.duplicates] == ["jan31"]
    assert verdict.duplicates[0].evidence.date_gap_days == 2
    assert verdict.to_dict()["shards"] == ["2025-01", UNDATED]
    # The same article a month later: the January shard (searched all year for year-only dates) holds none, and
    # the March shard's dates (the 20th) lie outside the window (Feb 22 - Mar 8): both are skipped.
    late = det.check(_article("late", "2025-03-01", stories["boundary"]), top=3)
    assert late.shards == (UNDATED,) and not late.is_duplicate
    assert "jan31" not in {m.id for m in late.matches}
    # Outside the window nothing is searched: the old story is not found even though it is stored.
    old = det.check(_article("old2", "2025-03-22", stories["old"]), top=5)
    assert "old" not in {m.id for m in old.matches} and "2023-06" not in det.archive.opened
    # A wider window reaches it (and the verifier then rules on the date gap).
    wide = ArchiveDetector(det.archive, encoder, Config(), search_days=700)
    assert "old" in {m.id for m in wide.check(_article("old3", "2025-03-22", stories["old"]), top=5).matches}
    # A year-only article lives in its January shard and is found from any day of that year.
    assert det.check(_article("y", "2024-09-30", stories["year"])).duplicates[0].id == "y2024"


def test_an_undated_article_searches_every_shard(tmp_path: Path, encoder: HashEncoder) -> None:
    stories, det = _boundary_archive(tmp_path / "a", encoder)
    verdict = det.check(_article("q", None, stories["old"]))
    assert verdict.shards == det.archive.keys == det.archive.opened
    assert [m.id for m in verdict.duplicates] == ["old"]
    dated = det.check(_article("q2", "2025-03-25", stories["undated"]))  # dated query, undated stored article
    assert [m.id for m in dated.duplicates] == ["nodate"] and UNDATED in dated.shards


def test_archive_and_single_store_give_the_same_duplicates(tmp_path: Path, encoder: HashEncoder) -> None:
    """Stored copies of 40 stories over three months (day, month and year dates), queries near them."""
    rng = np.random.default_rng(3)
    start = dt.date(2025, 1, 20).toordinal()
    stored: list[Article] = []
    queries: list[Article] = []
    for s in range(40):
        story = _story(rng)
        base = start + int(rng.integers(0, 50))
        for c in range(int(rng.integers(1, 4))):
            day = dt.date.fromordinal(base + c * 3)
            kind = rng.random()
            date = None if kind > 0.92 else str(day)[: 10 if kind < 0.7 else 7 if kind < 0.85 else 4]
            stored.append(_article(f"s{s}c{c}", date, story))
        queries.append(_article(f"q{s}", str(dt.date.fromordinal(base + 5)), story))
    det = _archive(tmp_path / "a", encoder, stored)
    single = Detector(Store.in_memory(encoder.name, encoder.dim), encoder, Config())
    single.add(stored)
    archive_verdicts = det.check_many(queries)
    single_verdicts = single.check_many(queries)
    dates = {a.id: a.date for a in stored}
    crossed = narrow = 0
    for q, a, b in zip(queries, archive_verdicts, single_verdicts, strict=True):
        assert a.is_duplicate == b.is_duplicate, a.id
        # The same duplicates with the same scores (equal scores may come in either order).
        assert sorted((m.id, m.score) for m in a.duplicates) == sorted((m.id, m.score) for m in b.duplicates), a.id
        assert a.candidates_truncated == b.candidates_truncated
        narrow += len(a.shards) < len(det.archive.keys)
        crossed += any(shard_key(dates[m.id]) not in (shard_key(q.date), UNDATED) for m in a.duplicates)
    assert {len(str(d)) for d in dates.values()} == {4, 7, 10}  # year, month and day dates (and None: "None")
    assert sum(v.is_duplicate for v in archive_verdicts) >= 30
    assert crossed >= 5  # duplicates found in another month's shard
    assert narrow >= 10  # ... while other shards were left out


@pytest.mark.model
def test_archive_check_matches_a_single_store_with_the_real_model(tmp_path: Path) -> None:
    articles = {a.id: a for a in read_articles([ROOT / "data"]).articles}
    single = Detector.in_memory()
    items = single.embed(list(articles.values()))
    by_id = {i.id: i for i in items}
    for query_id in TRUE_PAIR:
        rest = [i for i in items if i.id != query_id]
        store = Detector(Store.in_memory(single.store.model, single.store.dim), single.encoder, single.config)
        store.store.add(rest)
        archive = Archive.create(tmp_path / query_id, single.store.model, single.store.dim)
        archive.add(rest)
        det = ArchiveDetector(Archive.open(tmp_path / query_id, read_only=True), single.encoder, single.config)
        a = det.check_embedded([by_id[query_id]], top=5)[0]
        b = store.check_embedded([by_id[query_id]], top=5)[0]
        # The other events lie in 2023-01 and 2024-07: outside the window, not searched.
        assert a.shards == ("2025-01", UNDATED) and det.archive.opened == a.shards
        other = TRUE_PAIR[1] if query_id == TRUE_PAIR[0] else TRUE_PAIR[0]
        assert a.is_duplicate and [m.id for m in a.duplicates] == [other]
        assert [(m.id, m.score) for m in a.duplicates] == [(m.id, m.score) for m in b.duplicates]
        searched = {i for k in a.shards for i in det.archive.shard(k).ids}
        assert [(m.id, m.score) for m in a.matches] == [(m.id, m.score) for m in b.matches if m.id in searched]


# --------------------------------------------------------------------------- errors and read-only
def test_errors_name_the_archive_or_the_shard(tmp_path: Path, encoder: HashEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_model(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the model was loaded before the archive was checked")

    monkeypatch.setattr("dedup.detect.archive.load_encoder", no_model)
    with pytest.raises(StoreNotFoundError, match=r"no archive at .*none"):
        ArchiveDetector.open(tmp_path / "none")
    Store.create(tmp_path / "store", encoder.name, encoder.dim)
    with pytest.raises(StoreNotFoundError, match="single store: use --store"):
        Archive.open(tmp_path / "store")
    stories, _ = _boundary_archive(tmp_path / "a", encoder)
    with pytest.raises(StoreMismatchError, match="built with model 'test/hash-encoder', not 'other/model'"):
        Archive.open(tmp_path / "a", model="other/model")
    with pytest.raises(StoreMismatchError, match="built with model 'test/hash-encoder'"):
        ArchiveDetector(Archive.open(tmp_path / "a"), HashEncoder(name="other/model"), Config())
    with pytest.raises(ConfigError, match="search_days"):
        ArchiveDetector(Archive.open(tmp_path / "a"), encoder, Config(), search_days=-1)
    # Damage one shard: checks that do not need it still work; one that does names it.
    vectors = next((tmp_path / "a" / "2025-03").glob("seg-*/vectors.npy"))
    vectors.write_bytes(vectors.read_bytes()[:-8])
    det = ArchiveDetector(Archive.open(tmp_path / "a", read_only=True), encoder, Config())
    assert det.check(_article("o", "2023-06-12", stories["old"])).duplicates[0].id == "old"  # 2023-06: not 2025-03
    with pytest.raises(StoreCorruptError, match=r"archive shard .*2025-03 is damaged: .*vectors\.npy"):
        det.check(_article("m", "2025-03-21", stories["march"]))
    (tmp_path / "a" / "2023-06" / "manifest.json").write_text("{", "utf-8")
    with pytest.raises(StoreCorruptError, match=r"archive shard .*2023-06 is damaged"):
        Archive.open(tmp_path / "a").count()
    (tmp_path / "a" / "archive.json").write_text("{", "utf-8")
    with pytest.raises(StoreCorruptError, match=r"archive\.json is not valid JSON"):
        Archive.open(tmp_path / "a")


def test_read_only_opening_never_writes_or_locks(tmp_path: Path, encoder: HashEncoder) -> None:
    stories, det = _boundary_archive(tmp_path / "a", encoder)
    for lock in (tmp_path / "a").rglob(".lock"):
        lock.unlink()  # so a lock taken by the reader would show
    before = _tree(tmp_path / "a")
    det.check(_article("q", None, stories["old"]))  # opens every shard
    det.refresh()
    assert _tree(tmp_path / "a") == before
    with pytest.raises(StoreError, match="read-only"):
        det.add([_article("new", "2025-03-21", stories["march"])])
    assert _tree(tmp_path / "a") == before


def test_refresh_sees_new_shards_and_commits(tmp_path: Path, encoder: HashEncoder) -> None:
    rng = np.random.default_rng(4)
    writer = _archive(tmp_path / "a", encoder, [_article("a1", "2025-01-05", _story(rng))])
    reader = ArchiveDetector(Archive.open(tmp_path / "a", read_only=True), encoder, Config())
    story = _story(rng)
    assert not reader.check(_article("q", "2025-01-06", story)).is_duplicate
    writer.add([_article("a2", "2025-01-07", story), _article("b1", "2025-02-01", _story(rng))])
    assert not reader.check(_article("q", "2025-01-06", story)).is_duplicate  # its snapshot
    assert reader.refresh() and reader.archive.keys == ("2025-01", "2025-02")
    assert [m.id for m in reader.check(_article("q", "2025-01-06", story)).duplicates] == ["a2"]
    assert not reader.refresh()
    report = writer.add([_article("a2", "2025-01-07", story)])
    assert report.unchanged == ("a2",) and not report.added


# --------------------------------------------------------------------------- parallel building
def _embedded_feed(encoder: HashEncoder) -> list[EmbeddedArticle]:
    rng = np.random.default_rng(5)
    months = ["2024-11-03", "2024-12-24", "2025-01-15", "2025-01-31", "2025-02-10", None]
    articles = [_article(f"p{i}", months[i % len(months)], _story(rng)) for i in range(36)]
    return embed_articles(articles, encoder)


def _shard_contents(path: Path) -> dict[str, Any]:
    archive = Archive.open(path)
    out = {}
    for key in archive.keys:
        store = archive.shard(key)
        items = [store.embedded(p) for p in range(len(store))]
        out[key] = (
            [i.article for i in items],
            [i.passages for i in items],
            np.vstack([i.passage_vectors for i in items]).tobytes(),
            np.vstack([i.vector for i in items]).tobytes(),
            store.search(np.vstack([i.vector for i in items]), 3).positions.tolist(),
        )
    return out


@pytest.mark.slow
def test_parallel_build_gives_the_same_shards_as_a_serial_build(tmp_path: Path, encoder: HashEncoder) -> None:
    items = _embedded_feed(encoder)
    for name in ("serial", "pool", "threads"):
        Archive.create(tmp_path / name, encoder.name, encoder.dim)
    serial = build_shards(tmp_path / "serial", items, workers=1)
    pool = build_shards(tmp_path / "pool", items, workers=2)  # a spawn process pool
    with ThreadPoolExecutor(2) as executor:
        threads = build_shards(tmp_path / "threads", items, executor=executor)
    assert set(serial) == {"2024-11", "2024-12", "2025-01", "2025-02", UNDATED}
    assert serial == pool == threads
    assert sum(len(r.added) for r in pool.values()) == 36
    contents = _shard_contents(tmp_path / "serial")
    assert _shard_contents(tmp_path / "pool") == contents == _shard_contents(tmp_path / "threads")
    assert [a.id for a in contents["2025-01"][0]] == [f"p{i}" for i in range(36) if i % 6 in (2, 3)]
    # Extending: only the touched shard is rewritten.
    before = _digest(tmp_path / "pool")
    extra = embed_articles([_article("late", "2025-02-11", _story(np.random.default_rng(9)))], encoder)
    assert build_shards(tmp_path / "pool", extra, workers=2)["2025-02"].added == ("late",)
    after = _digest(tmp_path / "pool")
    changed = {name.split("/")[0] for name in set(before) ^ set(after) | {n for n in before if before[n] != after.get(n)}}
    assert changed == {"2025-02"}


@pytest.mark.slow
def test_shards_build_on_ray_as_in_a_local_pool(tmp_path: Path, encoder: HashEncoder) -> None:
    ray = pytest.importorskip("ray")
    from dedup.search.build import ray_mapper

    items = _embedded_feed(encoder)
    for name in ("serial", "ray"):
        Archive.create(tmp_path / name, encoder.name, encoder.dim)
    serial = build_shards(tmp_path / "serial", items, workers=1)
    started = ray.is_initialized()
    if not started:
        ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    try:
        pool = ray_mapper(2)
        assert build_shards(tmp_path / "ray", items, executor=pool) == serial
    finally:
        if not started:
            ray.shutdown()
    assert _shard_contents(tmp_path / "ray") == _shard_contents(tmp_path / "serial")


# --------------------------------------------------------------------------- several processes
CURRENT = "2025-03"
BATCH = 5
BATCHES = 8


def _live(i: int, article_id: str | None = None) -> Article:
    rng = np.random.default_rng(1000 + i)
    return _article(article_id or f"live{i}", f"{CURRENT}-{1 + i % 28:02d}", _story(rng))


def _writer(path: str, ready: Any) -> None:
    det = ArchiveDetector(Archive.open(path), HashEncoder(), Config())
    ready.wait(timeout=20)  # every reader is serving
    for b in range(BATCHES):
        det.add([_live(b * BATCH + j) for j in range(BATCH)])
        time.sleep(0.1)


def _reader(path: str, number: int, ready: Any, stop: Any, results: Any) -> None:
    """A replica: open read-only, answer checks, refresh; report what it saw."""
    errors: list[str] = []
    checks = seen = 0
    states: set[int] = set()
    try:
        encoder = HashEncoder()
        det = ArchiveDetector(Archive.open(path, read_only=True), encoder, Config())
        ready.wait(timeout=20)
        while True:
            finished = stop.is_set()
            det.refresh()
            count = len(det.archive.shard(CURRENT)) if CURRENT in det.archive.keys else 0
            if count % BATCH:
                errors.append(f"saw {count} articles: part of a batch")
            if count < seen:
                errors.append(f"went back from {seen} to {count}")
            seen = max(seen, count)
            states.add(count)
            if count:
                newest = count - 1
                verdict = det.check(_live(newest, f"query-{number}-{checks}"))
                if f"live{newest}" not in {m.id for m in verdict.duplicates}:
                    errors.append(f"live{newest} not found after refresh")
                if CURRENT not in verdict.shards or "2024-06" in verdict.shards:
                    errors.append(f"searched {verdict.shards}")
                checks += 1
            if finished:
                break
    except Exception as exc:  # reported to the test, which fails on it
        errors.append(f"{type(exc).__name__}: {exc}")
    results.put((number, seen, checks, len(states), errors))


@pytest.mark.slow
def test_readers_in_other_processes_see_a_writers_commits_after_refresh(
    tmp_path: Path, encoder: HashEncoder, figures: list[str]
) -> None:
    path = tmp_path / "a"
    rng = np.random.default_rng(6)
    _archive(path, encoder, [_article("old", "2024-06-01", _story(rng)), _article("feb", "2025-02-27", _story(rng))])
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    ready = ctx.Barrier(4)
    results = ctx.Queue()
    readers = [ctx.Process(target=_reader, args=(str(path), n, ready, stop, results)) for n in range(3)]
    for r in readers:
        r.start()
    writer = ctx.Process(target=_writer, args=(str(path), ready))
    writer.start()
    writer.join(timeout=30)
    assert writer.exitcode == 0
    stop.set()
    reports = sorted(results.get(timeout=30) for _ in readers)
    for r in readers:
        r.join(timeout=10)
        assert r.exitcode == 0
    for number, seen, checks, states, errors in reports:
        assert errors == [], f"reader {number}: {errors[:5]}"
        assert seen == BATCH * BATCHES, f"reader {number} saw {seen} articles at the end"
        assert states >= 3, f"reader {number} saw only {states} states: it did not serve while the writer wrote"
        assert checks >= BATCHES
    figures.append(
        "archive: 3 read-only replicas (spawned processes) beside one writer of "
        f"{BATCHES} batches: checks answered {[r[2] for r in reports]}, commits seen {[r[3] for r in reports]}, 0 errors"
    )
    assert len(Archive.open(path, verify=True).shard(CURRENT)) == BATCH * BATCHES


# --------------------------------------------------------------------------- crashes
def _die_at(path: Path, items: list[Article], kill_at: int, phase: str, encoder: HashEncoder) -> None:
    """In a forked child: add ``items`` and SIGKILL this process at file-system call ``kill_at`` (never returns)."""
    from dedup import _fs

    calls = 0

    def wrap(owner: object, name: str) -> None:
        real = getattr(owner, name)

        def wrapped(*args: object, **kwargs: object) -> object:
            nonlocal calls
            calls += 1
            if calls == kill_at and phase == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            result = real(*args, **kwargs)
            if calls == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        setattr(owner, name, wrapped)

    try:
        det = ArchiveDetector(Archive.open(path), encoder, Config())
        items_embedded = det.embed(items)
        for owner, name in [(_fs, "write_synced"), (_fs, "fsync_dir"), (os, "replace"), (os, "rename")]:
            wrap(owner, name)
        det.archive.add(items_embedded)
        os._exit(0)
    except BaseException:
        os._exit(70)


def _wait_child(pid: int, what: str, timeout: float = 60) -> int:
    """The wait status of child ``pid``; kills it and fails the test when it has not ended within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"crash trial {what}: the child did not end within {timeout:.0f} s")
        time.sleep(0.002)
    return done[1]


@pytest.mark.slow
def test_a_crash_mid_write_leaves_every_shard_whole(tmp_path: Path, encoder: HashEncoder, figures: list[str]) -> None:
    rng = np.random.default_rng(7)
    base = tmp_path / "base"
    _archive(
        base,
        encoder,
        [_article(f"jan{i}", "2025-01-10", _story(rng)) for i in range(3)]
        + [_article(f"feb{i}", "2025-02-10", _story(rng)) for i in range(3)],
    )
    january = _digest(base / "2025-01")
    batch = [_article(f"feb-new{i}", "2025-02-12", _story(rng)) for i in range(2)]
    batch += [_article(f"mar-new{i}", "2025-03-01", _story(rng)) for i in range(2)]
    outcomes: Counter[tuple[str, str]] = Counter()
    for phase in ("before", "after"):
        kill_at = 1
        while True:
            trial = tmp_path / f"t-{phase}-{kill_at}"
            shutil.copytree(base, trial)
            pid = os.fork()
            if pid == 0:
                _die_at(trial, batch, kill_at, phase, encoder)
            status = _wait_child(pid, f"{phase} {kill_at}")
            archive = Archive.open(trial, verify=True)
            feb = archive.shard("2025-02").ids
            mar = archive.shard("2025-03").ids if "2025-03" in archive.keys else []
            assert feb in (["feb0", "feb1", "feb2"], ["feb0", "feb1", "feb2", "feb-new0", "feb-new1"]), feb
            assert mar in ([], ["mar-new0", "mar-new1"]), mar
            assert archive.shard("2025-01").ids == ["jan0", "jan1", "jan2"]
            assert _digest(trial / "2025-01") == january  # the untouched shard: byte for byte
            if os.WIFEXITED(status):
                assert os.WEXITSTATUS(status) == 0 and len(feb) == 5 and len(mar) == 2
                break
            assert os.WTERMSIG(status) == signal.SIGKILL
            outcomes[("feb new" if len(feb) == 5 else "feb old", "mar new" if mar else "mar none")] += 1
            # The next writer recovers, also in a shard whose creation was cut short.
            ArchiveDetector(Archive.open(trial), encoder, Config()).add(batch)
            again = Archive.open(trial, verify=True)
            assert len(again.shard("2025-02")) == 5 and again.shard("2025-03").ids == ["mar-new0", "mar-new1"]
            shutil.rmtree(trial)
            kill_at += 1
    # Kills landed before the first shard's commit, between the two shards, and after both.
    assert outcomes[("feb old", "mar none")] >= 3 and outcomes[("feb new", "mar none")] >= 3, outcomes
    assert outcomes[("feb old", "mar new")] == 0
    figures.append(f"archive kill -9 at every commit step of a two-shard add: {sum(outcomes.values())} trials, {dict(outcomes)}")


# --------------------------------------------------------------------------- command line
def test_cli_add_and_check_with_an_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    encoder = HashEncoder()
    monkeypatch.setattr("dedup.detect.archive.load_encoder", lambda model, **kwargs: encoder)
    data = sorted((ROOT / "data").glob("*.txt"))
    archive = tmp_path / "news.archive"
    assert main(["add", "-q", "--no-cache", "--archive", str(archive), *map(str, data[:4])]) == EXIT_OK
    assert "added 4, unchanged 0, replaced 0; archive" in capsys.readouterr().out
    assert Archive.open(archive).keys == ("2023-01", "2024-07", "2025-01", UNDATED)
    assert main(["add", "-q", "--no-cache", "--json", "--archive", str(archive), str(data[0])]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["unchanged"] == 1
    assert main(["check", "-q", "--no-cache", "--json", "--archive", str(archive), str(data[4])]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["shards"] == ["2025-01", UNDATED]
    args = ["check", "-q", "--no-cache", "--json", "--search-days", "800", "--archive", str(archive), str(data[4])]
    assert main(args) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["shards"] == ["2023-01", "2024-07", "2025-01", UNDATED]
    assert main(["check", "-q", "--no-cache", "--archive", str(archive), str(data[4])]) == EXIT_OK
    assert "searched shards: 2025-01, undated" in capsys.readouterr().out
    assert main(["check", "-q", "--no-cache", "--json", "--add", "--archive", str(archive), str(data[4])]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["id"] == data[4].stem and Archive.open(archive).count() == 5  # checked, then added
    assert main(["check", "-q", "--no-cache", "--search-days", "-1", "--archive", str(archive), str(data[4])]) == EXIT_INPUT
    assert "--search-days must be >= 0, got -1" in capsys.readouterr().err
    assert main(["add", "-q", "--no-cache", "--archive", str(tmp_path / "store"), str(data[4])]) == EXIT_OK
    assert Archive.open(tmp_path / "store").count() == 1
    Store.create(tmp_path / "single", encoder.name, encoder.dim)
    assert main(["add", "-q", "--no-cache", "--archive", str(tmp_path / "single"), str(data[4])]) == EXIT_STORE
    assert "it is a single store (use --store)" in capsys.readouterr().err
    # Errors: a missing archive, another model, a damaged shard (named), --store with --archive.
    assert main(["check", "-q", "--archive", str(tmp_path / "none"), str(data[4])]) == EXIT_STORE
    assert "no archive at" in capsys.readouterr().err
    monkeypatch.setattr("dedup.detect.archive.load_encoder", lambda model, **kwargs: HashEncoder(name="other/model"))
    assert main(["check", "-q", "--no-cache", "--archive", str(archive), str(data[4])]) == EXIT_STORE
    assert "built with model 'test/hash-encoder'" in capsys.readouterr().err
    monkeypatch.setattr("dedup.detect.archive.load_encoder", lambda model, **kwargs: encoder)
    index = archive / "2025-01" / json.loads((archive / "2025-01" / "manifest.json").read_text())["index"]["file"]
    index.write_bytes(b"x" + index.read_bytes()[1:])
    assert main(["check", "-q", "--no-cache", "--archive", str(archive), str(data[4])]) == EXIT_STORE
    assert f"archive shard {archive / '2025-01'} is damaged" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["check", "--store", str(tmp_path / "s"), "--archive", str(archive), str(data[4])])
    assert "not allowed with argument" in capsys.readouterr().err


# --------------------------------------------------------------------------- issue 14: dates at the calendar's ends
def test_issue14_an_archive_holding_a_date_past_the_input_range_still_opens_and_checks(
    tmp_path: Path, encoder: HashEncoder
) -> None:
    # Input validation refuses such dates now; an archive written before (or by a library caller) may hold them.
    rng = np.random.default_rng(14)
    story, other = _story(rng), _story(rng)
    far = [
        Article(id="far", title=story[0], text=story[1], date=PartialDate(9999, 12), lang="en"),
        Article(id="far-year", title=story[0], text=story[1], date=PartialDate(9999), lang="en"),
        Article(id="first", title=other[0], text=other[1], date=PartialDate(1, 1, 1), lang="en"),
    ]
    _archive(tmp_path / "a", encoder, [*far, _article("near", "2025-01-12", story)])
    det = ArchiveDetector.open(tmp_path / "a", encoder=encoder, read_only=True)
    assert det.archive.keys == ("0001-01", "2025-01", "9999-01", "9999-12")
    verdict = det.check(Article(id="q", title=story[0], text=story[1], date=PartialDate(9999, 12, 31), lang="en"))
    assert verdict.shards == ("9999-01", "9999-12") and {m.id for m in verdict.duplicates} == {"far", "far-year"}
    first = det.check(Article(id="q1", title=other[0], text=other[1], date=PartialDate(1, 1, 2), lang="en"))
    assert first.shards == ("0001-01",) and [m.id for m in first.duplicates] == ["first"]
    undated = det.check(_article("q2", None, story), top=5)
    assert {m.id for m in undated.duplicates} == {"far", "far-year", "near"}


def test_shards_record_their_dates_and_a_check_skips_those_outside_its_window(tmp_path: Path, encoder: HashEncoder) -> None:
    """The January shard is searched all year only while it holds a year-only date; older shards (no record) always are."""
    rng = np.random.default_rng(15)
    jan, june = _story(rng), _story(rng)
    _archive(tmp_path / "a", encoder, [_article("jan", "2025-01-10", jan), _article("jun", "2025-06-20", june)])
    manifest = json.loads((tmp_path / "a" / "2025-01" / "manifest.json").read_text("utf-8"))
    assert manifest["dates"] == ["2025-01-10", "2025-01-10"]
    reader = ArchiveDetector.open(tmp_path / "a", encoder=encoder, read_only=True)
    query = _article("q", "2025-06-21", june)
    assert reader.check(query).shards == ("2025-06",) and reader.archive.opened == ("2025-06",)
    # A writer adds a year-only article (it goes to 2025-01): after a refresh the reader searches January again.
    writer = ArchiveDetector.open(tmp_path / "a", encoder=encoder)
    writer.archive.add(embed_articles([_article("year", "2025", jan)], encoder))
    assert writer.archive.shard("2025-01").dates == ["2025-01-01", "2025-12-31"]
    assert reader.check(query).shards == ("2025-06",)  # not refreshed yet: what it read stays
    reader.archive.refresh()
    found = reader.check(_article("q2", "2025-06-21", jan))
    assert found.shards == ("2025-01", "2025-06") and "year" in {m.id for m in found.duplicates}
    # A shard written before dates were recorded (no field): searched, as before.
    file = tmp_path / "a" / "2025-01" / "manifest.json"
    current = json.loads(file.read_text("utf-8"))
    file.write_text(json.dumps({k: v for k, v in current.items() if k != "dates"}), "utf-8")
    assert Store.open(tmp_path / "a" / "2025-01").dates is None
    old = ArchiveDetector.open(tmp_path / "a", encoder=encoder, read_only=True)
    assert old.archive.shards_for(PartialDate.parse("2025-06-21"), 7) == ("2025-01", "2025-06")
    assert old.archive.shard("2025-01").dates is None  # opened: still unknown
    assert old.archive.shards_for(PartialDate.parse("2025-06-21"), 7) == ("2025-01", "2025-06")


@settings(max_examples=100, deadline=None)
@given(
    st.dates().map(lambda d: PartialDate(d.year, d.month, d.day)) | st.integers(1, 9999).map(PartialDate),
    st.integers(0, 4_000_000),
)
@example(PartialDate(9999, 12), 7)
@example(PartialDate(1), 400)
def test_issue14_shard_routing_never_raises(date: PartialDate, days: int) -> None:
    keys = [shard_key(date), "2025-01", UNDATED]
    assert shard_key(date) in shards_to_search(keys, date, days)


# --------------------------------------------------------------------------- issue 14: creation, manifests, locks
@pytest.mark.slow
def test_first_adds_at_once_on_a_new_archive_all_succeed(tmp_path: Path) -> None:
    """Issue 14 (2): several first `dedup add --archive` at once: one creates, the others open; nothing is lost."""
    assert run_first_adds(tmp_path, "archive") == []


ARCHIVE_DAMAGE: dict[str, tuple[str, Any]] = {
    "model-a-list": ("model", lambda m: m.update(model=["test/hash-encoder"])),
    "model-missing": ("model", lambda m: m.pop("model")),
    "model-empty": ("model", lambda m: m.update(model="")),
    "dim-zero": ("dim", lambda m: m.update(dim=0)),
    "dim-negative": ("dim", lambda m: m.update(dim=-512)),
    "dim-a-string": ("dim", lambda m: m.update(dim="512")),
    "dim-a-bool": ("dim", lambda m: m.update(dim=True)),
    "dim-a-float": ("dim", lambda m: m.update(dim=512.0)),
}


def _small_archive(tmp_path: Path, encoder: HashEncoder) -> tuple[Path, Path]:
    rng = np.random.default_rng(14)
    path = tmp_path / "a"
    _archive(path, encoder, [_article("jan", "2025-01-12", _story(rng)), _article("feb", "2025-02-03", _story(rng))])
    feed = tmp_path / "feed.jsonl"
    feed.write_text(json.dumps({"id": "q", "title": "A title", "text": "A body.", "date": "2025-01-13"}) + "\n", "utf-8")
    return path, feed


@pytest.mark.parametrize("kind", sorted(ARCHIVE_DAMAGE))
def test_an_archive_manifest_of_the_wrong_shape_is_reported_naming_the_field(
    tmp_path: Path, encoder: HashEncoder, kind: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 14 (3): archive.json of the wrong shape -> StoreCorruptError naming the file and field; CLI exit 3."""
    path, feed = _small_archive(tmp_path, encoder)
    field, change = ARCHIVE_DAMAGE[kind]
    manifest = json.loads((path / "archive.json").read_text("utf-8"))
    change(manifest)
    (path / "archive.json").write_text(json.dumps(manifest), "utf-8")
    with pytest.raises(StoreCorruptError) as exc:
        Archive.open(path)
    assert str(path / "archive.json") in str(exc.value) and f"field {field!r}" in str(exc.value)
    monkeypatch.setattr("dedup.detect.archive.load_encoder", lambda model, **kwargs: encoder)
    for args in (
        ["check", "-q", "--no-cache", "--archive", str(path), str(feed)],
        ["add", "-q", "--no-cache", "--archive", str(path), str(feed)],
    ):
        assert main(args) == EXIT_STORE
        err = capsys.readouterr().err
        assert f"field {field!r}" in err and "Traceback" not in err


@pytest.mark.parametrize("kind", sorted(MANIFEST_DAMAGE))
def test_a_shard_manifest_of_the_wrong_shape_names_the_shard_and_the_field(
    tmp_path: Path, encoder: HashEncoder, kind: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 14 (3): a shard's manifest of the wrong shape -> StoreCorruptError naming the shard and field; CLI exit 3."""
    path, feed = _small_archive(tmp_path, encoder)
    field = damage_manifest(path / "2025-01" / "manifest.json", kind)
    archive = Archive.open(path)
    for action in (lambda: archive.shard("2025-01"), archive.count):
        with pytest.raises(StoreCorruptError) as exc:
            action()
        assert f"archive shard {path / '2025-01'} is damaged" in str(exc.value) and f"field {field!r}" in str(exc.value)
    assert len(archive.shard("2025-02")) == 1  # the other shards still open
    monkeypatch.setattr("dedup.detect.archive.load_encoder", lambda model, **kwargs: encoder)
    assert main(["check", "-q", "--no-cache", "--archive", str(path), str(feed)]) == EXIT_STORE
    err = capsys.readouterr().err
    assert f"field {field!r}" in err and "Traceback" not in err


def test_only_folders_named_as_shards_are_shards(tmp_path: Path, encoder: HashEncoder) -> None:
    """Issue 14 (4): shard names are ``YYYY-MM`` (a real month) or ``undated``; nothing else is opened as a shard."""
    path, _ = _small_archive(tmp_path, encoder)
    for name in ("2025-13", "2025-00", "2025-1", "x2025-01", "undated.old", ".2025-01"):
        shutil.copytree(path / "2025-01", path / name)
    archive = Archive.open(path)
    assert archive.keys == ("2025-01", "2025-02")
    assert archive.count() == 2
    for key in ("2025-13", "../a/2025-01", str(path / "2025-01")):
        with pytest.raises(KeyError):
            archive.shard(key)


def test_a_lock_that_is_a_folder_is_a_clear_store_error_in_an_archive(
    tmp_path: Path, encoder: HashEncoder, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 14 (5): a shard's or the archive's ``.lock`` a folder -> StoreError naming it (CLI exit 3)."""
    path, feed = _small_archive(tmp_path, encoder)
    lock = path / "2025-01" / ".lock"
    lock.unlink()
    lock.mkdir()
    det = ArchiveDetector(Archive.open(path), encoder, Config())
    with pytest.raises(StoreError, match=f"cannot take the writer lock {lock}"):
        det.add([_article("new", "2025-01-20", _story(np.random.default_rng(1)))])
    monkeypatch.setattr("dedup.detect.archive.load_encoder", lambda model, **kwargs: encoder)
    assert main(["add", "-q", "--no-cache", "--archive", str(path), str(feed)]) == EXIT_STORE
    assert str(lock) in capsys.readouterr().err
    (tmp_path / "new" / ".lock").mkdir(parents=True)  # the archive's own lock, taken while it is created
    assert main(["add", "-q", "--no-cache", "--archive", str(tmp_path / "new"), str(feed)]) == EXIT_STORE
    assert str(tmp_path / "new" / ".lock") in capsys.readouterr().err


def test_an_archive_skips_articles_that_are_only_boilerplate_and_never_matches_them(tmp_path: Path, encoder: HashEncoder) -> None:
    det = ArchiveDetector(Archive.create(tmp_path / "a", encoder.name, encoder.dim), encoder, Config())
    rng = np.random.default_rng(14)
    credit = Article(id="credit", text="Photo: AFP", date=PartialDate.parse("2025-01-03"), lang="en")
    report = det.add([credit, _article("real", "2025-01-03", _story(rng))])
    assert report.skipped == ("credit",) and report.added == ("real",)
    verdict = det.check(Article(id="again", text="Photo: AFP", date=PartialDate.parse("2025-01-03"), lang="en"), top=3)
    assert not verdict.is_duplicate and verdict.matches == ()


def test_archive_compact_merges_each_shard_and_verify_checks_every_file(tmp_path: Path, encoder: HashEncoder) -> None:
    """Issue 17 (5): one-article adds into two months, then ``Archive.compact()`` leaves one segment per shard."""
    archive = Archive.create(tmp_path / "a", encoder.name, encoder.dim)
    articles = [
        Article(id=f"n{i}", title=f"Story {i} " + "w" * i, text=f"Body {i}.", date=PartialDate.parse(f"2025-0{1 + i % 2}-05"))
        for i in range(20)
    ]
    for item in embed_articles(articles, encoder):
        archive.add([item])
    segments = {key: len(json.loads((tmp_path / "a" / key / "manifest.json").read_text())["segments"]) for key in archive.keys}
    assert segments == {"2025-01": 3, "2025-02": 3}  # 10 = 0o12: one merged run of 8, then 2
    reports = archive.compact()
    assert {key: (r.segments_before, r.segments_after, r.articles) for key, r in reports.items()} == {
        "2025-01": (3, 1, 10),
        "2025-02": (3, 1, 10),
    }
    reader = Archive.open(tmp_path / "a", read_only=True)
    assert reader.count() == 20 and reader.verify()[0] == 2 * 7  # per shard: the index file and six segment files
    with pytest.raises(StoreError, match="read-only"):
        reader.compact()
