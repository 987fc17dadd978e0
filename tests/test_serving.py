"""Concurrency: many threads and several processes on one store (and threads on an archive), no lost or doubled adds."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dedup import Detector
from dedup.detect.archive import ArchiveDetector
from dedup.errors import IdConflictError
from dedup.search.archive import Archive
from dedup.search.store import Store
from dedup.serve.shared import Metrics, ReadWriteLock, SharedDetector
from dedup.types import Article

from .conftest import ROOT, HashEncoder

STORY = "Ministers of Vietnam and Laos met in Hanoi on Sunday and signed three cooperation agreements on trade and security."


KINDS = ["store", "archive"]


def shared(path: Path, kind: str = "store") -> SharedDetector:
    if kind == "archive":
        return SharedDetector(ArchiveDetector.open(path, encoder=HashEncoder(), create=True))
    return SharedDetector(Detector.open(path, encoder=HashEncoder(), create=True))


def stored_ids(path: Path) -> list[str]:
    """The ids of the store or archive at ``path``, opened and verified (a doubled id would make a store raise)."""
    if (path / "archive.json").exists():
        archive = Archive.open(path, verify=True)
        return [i for key in archive.keys for i in archive.shard(key).ids]
    return Store.open(path, verify=True).ids


def unique(i: int, prefix: str = "u") -> Article:
    return Article(
        id=f"{prefix}{i}", title=f"Report {i} {prefix}", text=f"Unrelated item number {i * 7919} about {prefix}.", lang="en"
    )


def run_threads(n: int, target: object) -> list[object]:
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[k] = target(k)  # type: ignore[operator]
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("kind", KINDS)
def test_threads_adding_the_same_article_leave_one_copy(tmp_path: Path, kind: str) -> None:
    service = shared(tmp_path / "s", kind)
    same = Article(id="same", title="Hanoi talks", text=STORY, lang="en")
    reports = run_threads(8, lambda k: service.add([same, unique(k)]))
    added = [r.added for r in reports]  # type: ignore[attr-defined]
    assert sum("same" in a for a in added) == 1  # exactly one worker stored it...
    assert sum("same" in r.unchanged for r in reports) == 7  # type: ignore[attr-defined]  # ...the others were told so
    assert sorted(stored_ids(tmp_path / "s")) == sorted(["same", *(f"u{k}" for k in range(8))])


@pytest.mark.parametrize("kind", KINDS)
def test_simultaneous_check_and_add_of_one_story_is_linearisable(tmp_path: Path, kind: str) -> None:
    service = shared(tmp_path / "s", kind)
    results = run_threads(
        6, lambda k: service.check_and_add([Article(id=f"copy{k}", title="Hanoi talks", text=STORY, lang="en")])
    )
    verdicts = [r.verdicts[0] for r in results]  # type: ignore[attr-defined]
    # Serialised: the first to commit is new, each later one duplicates every earlier one.
    assert sorted(len(v.duplicates) for v in verdicts) == [0, 1, 2, 3, 4, 5]
    assert len(stored_ids(tmp_path / "s")) == 6


@pytest.mark.parametrize("kind", KINDS)
def test_readers_never_see_half_a_commit(tmp_path: Path, kind: str) -> None:
    service = shared(tmp_path / "s", kind)  # undated articles: one shard of an archive, one commit per batch
    service.add([unique(i, "seed") for i in range(5)])
    stop = threading.Event()
    seen_sizes: list[int] = []
    problems: list[str] = []

    def reader() -> None:
        probe = Article(id="probe", title="Report 3 seed", text="Unrelated item number 23757 about seed.", lang="en")
        while not stop.is_set():
            verdict = service.check([probe], top=3)[0]
            size = len(service)
            seen_sizes.append(size)
            for m in verdict.matches:
                if service.get(m.id).id != m.id:
                    problems.append(m.id)

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for batch in range(10):
            service.add([unique(i, f"b{batch}-") for i in range(4)])
    finally:
        stop.set()
        for t in readers:
            t.join(timeout=60)
    assert not problems
    assert seen_sizes and all((s - 5) % 4 == 0 for s in seen_sizes)  # whole batches only
    assert len(stored_ids(tmp_path / "s")) == 45


@pytest.mark.parametrize("kind", KINDS)
def test_conflicting_content_is_refused_whatever_the_order(tmp_path: Path, kind: str) -> None:
    service = shared(tmp_path / "s", kind)
    versions = [Article(id="x", title=f"Version {k}", text=f"Text {k}", lang="en") for k in range(4)]

    def attempt(k: int) -> str:
        try:
            service.add([versions[k]])
            return "stored"
        except IdConflictError:
            return "refused"

    outcomes = run_threads(4, attempt)
    assert sorted(outcomes) == ["refused", "refused", "refused", "stored"]  # type: ignore[type-var]
    assert len(stored_ids(tmp_path / "s")) == 1


WORKER = r"""
import json, sys, time
from pathlib import Path
from dedup import Detector
from dedup.detect.archive import ArchiveDetector
from dedup.serve.shared import SharedDetector
from dedup.types import Article
from tests.conftest import HashEncoder

path, name, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
service = SharedDetector(Detector.open(path, encoder=HashEncoder()))
story = sys.argv[4]
(go.parent / f"ready-{name}").touch()  # imported and opened: the test starts both at once
deadline = time.monotonic() + 120
while not go.exists():  # polling with a deadline
    if time.monotonic() > deadline:
        sys.exit("the test never said go")
    time.sleep(0.001)
out = []
for round in range(15):
    same = Article(id=f"same-{round}", title="Hanoi talks", text=f"{story} Round {round}.", lang="en")
    mine = Article(id=f"{name}-{round}", title=f"Item {round} by {name}", text=f"Unrelated {name} {round * 31}.", lang="en")
    report = service.add([same, mine])
    copy = Article(id=f"ca-{name}-{round}", title="Hanoi talks", text=f"{story} Round {round}.", lang="en")
    result = service.check_and_add([copy])
    out.append({"added": list(report.added), "dup": result.verdicts[0].is_duplicate})
print(json.dumps(out))
"""


def test_two_processes_adding_the_same_articles_leave_one_copy_each(tmp_path: Path) -> None:
    Store.create(tmp_path / "s", HashEncoder().name, HashEncoder().dim)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path / "s"), name, str(go), STORY], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for name in ("p1", "p2")
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{name}").exists() for name in ("p1", "p2")):  # polling with a deadline
        assert all(proc.poll() is None for proc in procs), "a worker died before opening the store"
        assert time.monotonic() < deadline, "the workers did not open the store in time"
        time.sleep(0.01)
    go.touch()  # both have imported and opened the store: they add at the same moment
    outputs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0
        outputs.append(json.loads(out))
    store = Store.open(tmp_path / "s", verify=True)
    ids = store.ids
    assert len(ids) == len(set(ids))
    expected = {f"same-{r}" for r in range(15)} | {f"{p}-{r}" for p in ("p1", "p2") for r in range(15)}
    expected |= {f"ca-{p}-{r}" for p in ("p1", "p2") for r in range(15)}
    assert set(ids) == expected
    # Each shared article was stored by exactly one of the two processes.
    for r in range(15):
        assert sum(f"same-{r}" in o[r]["added"] for o in outputs) == 1
    # Every check-and-add found the shared article of its round (stored before it, by either process).
    assert all(o[r]["dup"] for o in outputs for r in range(15))


def test_read_write_lock_excludes_writers() -> None:
    lock = ReadWriteLock()
    inside: list[str] = []
    overlaps: list[tuple[str, ...]] = []
    guard = threading.Lock()

    def enter(kind: str) -> None:
        ctx = lock.write() if kind == "w" else lock.read()
        with ctx:
            with guard:
                inside.append(kind)
                if "w" in inside and len(inside) > 1:
                    overlaps.append(tuple(inside))
            time.sleep(0.002)
            with guard:
                inside.remove(kind)

    run_threads(12, lambda k: [enter("w" if (k + i) % 3 == 0 else "r") for i in range(20)])
    assert not overlaps


def test_metrics_percentiles() -> None:
    metrics = Metrics(window=100)
    for ms in range(1, 201):
        metrics.observe("GET /x", ms / 1000)
    stats = metrics.latency("GET /x")
    assert stats is not None and stats.count == 200
    assert stats.p50_ms == pytest.approx(151, abs=1) and stats.p99_ms == pytest.approx(200, abs=1)  # the last 100 only
    assert metrics.latency("GET /y") is None
