"""Crash safety: kill -9 a writer in the middle of adds; the store must open whole.

Each trial starts a process that adds batches of articles in a loop, kills it with
SIGKILL after a different delay, then opens the store with checksum verification and
checks that every batch is stored entirely or not at all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from dedup.store import Store

from .conftest import ROOT

WRITER = r"""
import sys
import numpy as np
from dedup.embed import EmbeddedArticle
from dedup.store import Store
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
        time.sleep(1.5 + float(rng.uniform(0.0, 1.0)))  # imports take ~1 s; then adds run back to back
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        committed_before_kill.append(len(out.split()))
        live = {"manifest.json", ".lock", *(s["name"] for s in json.loads((path / "manifest.json").read_text())["segments"])}
        live.add(json.loads((path / "manifest.json").read_text())["index"]["file"])
        interrupted_writes += any(entry.name not in live for entry in path.iterdir())
        store = Store.open(path, verify=True)  # sizes and SHA-256 of every file
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
