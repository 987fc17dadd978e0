"""Crash safety: kill -9 a writer in the middle of adds; the store must open whole.

Two kinds of trials. Random: a process adds batches in a loop and is SIGKILLed after a
different delay each time (slow: real processes). Deterministic: a forked child adds one
batch and SIGKILLs itself before, after or halfway through each file-system call of the
commit in turn (every write, fsync, rename, replace, clean-up), for a first add, an
append and a replace. After every kill the store opens with checksums verified, its index
agrees with its metadata, it holds the previous store or the whole batch (never part of
it), and the next writer cleans up and commits.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dedup.search.store import Store
from dedup.types import Article, EmbeddedArticle

from .conftest import ROOT

WRITER = r"""
import sys
import numpy as np
from dedup.types import EmbeddedArticle
from dedup.search.store import Store
from dedup.types import Article

store = Store.open(sys.argv[1])
rng = np.random.default_rng(int(sys.argv[2]))
batch = 0
while True:
    items = []
    for i in range(20):
        vectors = rng.standard_normal((3, 16)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        article = Article(id=f"{sys.argv[2]}-b{batch}-{i}", title=f"t{i}", text="x" * 2000)
        items.append(EmbeddedArticle(article, ("a", "b", "c"), vectors, vectors[0]))
    store.add(items)
    print(batch, flush=True)
    batch += 1
"""

TRIALS = 12


@pytest.mark.slow
def test_kill_9_mid_add_leaves_whole_batches_only(tmp_path: Path) -> None:
    path = tmp_path / "s"
    Store.create(path, "test/crash", 16)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = np.random.default_rng(7)
    committed_before_kill = []
    interrupted_writes = 0  # trials killed while uncommitted files were on disk
    for trial in range(TRIALS):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(trial)], stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the first batch is committed: adds now run back to back
        time.sleep(float(rng.uniform(0.0, 1.0)))  # so the kill lands at a random point of the loop
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        committed_before_kill.append(len((first + out).split()))
        manifest = json.loads((path / "manifest.json").read_text())
        # Named by this manifest, or retired by its commit (kept for readers until the next commit).
        live = {"manifest.json", ".lock", manifest["index"]["file"], *(s["name"] for s in manifest["segments"])}
        live.update(manifest.get("retired", []))
        interrupted_writes += any(entry.name not in live for entry in path.iterdir())
        store = Store.open(path, verify=True)
        store.verify()  # sizes and SHA-256 of every file
        per_batch = Counter(article_id.rsplit("-", 1)[0] for article_id in store.ids)
        assert set(per_batch.values()) <= {20}, f"trial {trial}: a partial batch is visible: {per_batch}"
        # Every batch the writer reported as committed is there.
        for batch in range(committed_before_kill[-1]):
            assert per_batch[f"{trial}-b{batch}"] == 20
        assert len(store.search(np.ones((1, 16), np.float32) / 4, 5).positions[0]) == min(5, len(store))
    # The kills landed at different points: some trials committed several batches.
    assert sum(committed_before_kill) > TRIALS
    assert interrupted_writes >= TRIALS // 3, f"only {interrupted_writes} kills landed mid-write"
    print(f"{TRIALS} kill -9 trials, {interrupted_writes} mid-write, batches committed per trial {committed_before_kill}")


# ---------------------------------------------------------------------------------------
# Kill -9 at every step of a commit, deterministically: a forked child adds one batch and
# SIGKILLs itself right before, right after, or halfway through the k-th file-system call
# the store makes (write, fsync, rename, replace, directory fsync, clean-up), for every k.


def _embedded(prefix: str, n: int, dim: int, seed: int) -> list[EmbeddedArticle]:
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        vectors = rng.standard_normal((2, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        mean = vectors.mean(axis=0)
        article = Article(id=f"{prefix}{i}", title=f"{prefix} title {i}", text=f"text {seed} {i}")
        items.append(EmbeddedArticle(article, ("p", "q"), vectors, mean / np.linalg.norm(mean)))
    return items


def _die_at(run: Callable[[], object], kill_at: int, phase: str) -> None:
    """In a forked child: ``run()`` and SIGKILL this process at file-system call ``kill_at`` (never returns)."""
    import shutil as shutil_mod
    import tempfile

    from dedup import _fs

    calls = 0

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def wrap(owner: object, name: str) -> None:
        real = getattr(owner, name)

        def wrapped(*args: object, **kwargs: object) -> object:
            nonlocal calls
            if phase == "partial" and name != "write_synced":
                return real(*args, **kwargs)
            calls += 1
            if calls == kill_at:
                if phase == "before":
                    die()
                if phase == "partial":
                    target, data = args
                    Path(str(target)).write_bytes(bytes(data)[: len(data) // 2])  # type: ignore[arg-type]
                    die()
                real(*args, **kwargs)
                die()
            return real(*args, **kwargs)

        setattr(owner, name, wrapped)

    try:
        for owner, name in [
            (_fs, "write_synced"),
            (_fs, "fsync_dir"),
            (os, "fsync"),
            (os, "rename"),
            (os, "replace"),
            (shutil_mod, "rmtree"),
            (Path, "unlink"),
            (tempfile, "mkdtemp"),
        ]:
            wrap(owner, name)
        run()
        os._exit(0)  # it finished before call kill_at: every step has been tried
    except BaseException:
        os._exit(70)


def _kill_at_every_step(
    tmp_path: Path, base: Path, run: Callable[[Path], object], outcome: Callable[[Path], str], label: str
) -> tuple[int, Counter[str], Path]:
    """Copy ``base`` and ``run`` on the copy in a child killed at each file-system step in turn.

    Returns the number of kills, the ``outcome`` of each, and the copy the uninterrupted run left.
    After each kill, the next writer recovers: it cleans up what the dead one left and commits.
    """
    outcomes: Counter[str] = Counter()
    trials = 0
    for phase in ("before", "after", "partial"):
        kill_at = 1
        while True:
            trial = tmp_path / f"t-{phase}-{kill_at}"
            shutil.copytree(base, trial)
            pid = os.fork()
            if pid == 0:
                _die_at(lambda: run(trial), kill_at, phase)  # noqa: B023  # the child runs it at once
            deadline = time.monotonic() + 60
            while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0):
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    pytest.fail(f"{label} {phase} {kill_at}: the child hung")
                time.sleep(0.002)
            status = done[1]
            if os.WIFEXITED(status):
                assert os.WEXITSTATUS(status) == 0, f"{label} {phase} {kill_at}: the child failed"
                assert outcome(trial) != "none"
                break
            assert os.WTERMSIG(status) == signal.SIGKILL
            trials += 1
            outcomes[outcome(trial)] += 1
            again = Store.open(trial)
            again.add(_embedded("later", 2, 8, seed=4))
            assert not [p.name for p in trial.iterdir() if p.name.startswith(".tmp")]
            assert len(Store.open(trial, verify=True)) == len(again)
            shutil.rmtree(trial)
            kill_at += 1
    return trials, outcomes, trial


def _outcome(path: Path, before: list[str], batch: list[EmbeddedArticle], replace: bool) -> str:
    store = Store.open(path, verify=True)  # sizes, shapes, counts, index size
    store.verify()  # SHA-256 of every file
    ids = store.ids
    batch_ids = [i.id for i in batch]
    whole = [i for i in before if i not in batch_ids] + batch_ids if replace else before + batch_ids
    assert ids in (before, whole), f"neither the previous store nor the whole batch: {ids}"
    # Index and metadata agree: every stored vector finds its own article first.
    for position in range(len(store)):
        found = store.search(store.embedded(position).vector[None, :], 1)
        assert int(found.positions[0][0]) == position
    if replace and ids == whole:
        assert store.get(batch_ids[0]).text == batch[0].article.text
    return "none" if ids == before else "whole"


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["first-add", "append", "fold", "replace"])
def test_kill_9_at_every_step_of_a_commit(
    tmp_path: Path, scenario: str, figures: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fold``: the add that makes the exactly searched tail exceed TAIL_MAX writes a new index file."""
    import dedup.search.store as store_mod

    monkeypatch.setattr(store_mod, "TAIL_MAX", 10 if scenario == "fold" else 10_000)
    dim = 8
    base = tmp_path / "base"
    store = Store.create(base, "test/crash", dim)
    if scenario != "first-add":
        store.add(_embedded("old", 6, dim, seed=1))
        store.add(_embedded("more", 3, dim, seed=2))
    before = store.ids
    index_file = json.loads((base / "manifest.json").read_text())["index"]["file"]
    batch = _embedded("old" if scenario == "replace" else "new", 4, dim, seed=3)
    replace = scenario == "replace"
    trials, outcomes, trial = _kill_at_every_step(
        tmp_path,
        base,
        lambda path: Store.open(path).add(batch, replace=replace),
        lambda path: _outcome(path, before, batch, replace),
        scenario,
    )
    if scenario in ("fold", "replace"):  # those commits write a new index file; an add to the tail does not
        assert json.loads((trial / "manifest.json").read_text())["index"]["file"] != index_file
    else:
        assert json.loads((trial / "manifest.json").read_text())["index"]["file"] == index_file
    # Kills landed both before the commit point (previous store) and after it (whole batch).
    assert outcomes["none"] >= 5 and outcomes["whole"] >= 2, outcomes
    figures.append(
        f"store kill -9 at every commit step ({scenario}): {trials} trials, {outcomes['none']} left the previous store, "
        f"{outcomes['whole']} the whole batch, 0 partial"
    )


def _segments(path: Path) -> list[int]:
    return [s["count"] for s in json.loads((path / "manifest.json").read_text())["segments"]]


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["auto", "explicit"])
def test_kill_9_at_every_step_of_a_compaction(tmp_path: Path, scenario: str, figures: list[str]) -> None:
    """``auto``: the add that makes 8 one-article segments merges them; ``explicit``: ``Store.compact()``."""
    dim = 8
    base = tmp_path / "base"
    store = Store.create(base, "test/crash", dim)
    for i in range(7 if scenario == "auto" else 10):
        store.add(_embedded(f"one{i}-", 1, dim, seed=10 + i))
    before, segments_before = store.ids, _segments(base)
    batch = _embedded("new", 4, dim, seed=3) if scenario == "auto" else []

    def outcome(path: Path) -> str:
        state = _outcome(path, before, batch, replace=False)
        counts = _segments(path)
        if scenario == "auto":  # the add commits, then the merge: either may be missing, never half of one
            assert (state, counts) in (("none", segments_before), ("whole", [*segments_before, 4]), ("whole", [11]))
            return "none" if state == "none" else ("merged" if counts == [11] else "whole")
        assert state == "none" and counts in (segments_before, [10])
        return "whole" if counts == [10] else "none"

    def run(path: Path) -> object:
        opened = Store.open(path)
        return opened.add(batch) if batch else opened.compact()

    trials, outcomes, trial = _kill_at_every_step(tmp_path, base, run, outcome, f"compaction ({scenario})")
    assert outcome(trial) == ("merged" if scenario == "auto" else "whole")
    assert outcomes["none"] >= 3 and outcomes["whole"] >= 2, outcomes
    figures.append(
        f"store kill -9 at every step of a compaction ({scenario}): {trials} trials, {outcomes['none']} left the "
        f"previous store, {outcomes['whole']} the add without its merge, {outcomes['merged']} the merge, 0 partial"
        if scenario == "auto"
        else f"store kill -9 at every step of a compaction ({scenario}): {trials} trials, {outcomes['none']} left the "
        f"previous segments, {outcomes['whole']} the compacted store, 0 partial"
    )
