"""A Ray job survives losing a worker node mid-job, and still gives the local engine's stories.

A cluster of its own on 127.0.0.1 (see ``tests/raycluster.py``): a head that only
coordinates (0 CPUs) and two one-CPU worker nodes. A worker node that runs embedding tasks
is killed with SIGKILL, raylet and workers at once, while it embeds; the other one finishes.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from dedup.config import Config
from dedup.io import read_articles

from .raycluster import LocalRayCluster, connected_cluster, running
from .test_ray_engine import generated_feed, groups, local, write_jsonl

ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.ray, pytest.mark.model, pytest.mark.slow]


def test_a_worker_node_killed_mid_job_and_the_job_still_gives_the_same_stories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dedup.clustering.ray_engine import RayRun, cluster_on_ray
    from dedup.embedding.default_model import materialize_default_model

    # The worker nodes inherit a cache folder of their own: their embedding caches fill a file the
    # test can watch, so the kill waits for embedding to have made progress, not for a fixed time.
    # The default model is built once in the usual place and shared through a link.
    models = materialize_default_model().parent
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / models.name).symlink_to(models, target_is_directory=True)
    monkeypatch.setenv("DEDUP_CACHE_DIR", str(tmp_path / "cache"))

    feed = generated_feed(stories=300, per_story=4, seed=11)  # about a minute of embedding on two one-CPU nodes
    shards = [write_jsonl(tmp_path / f"feed-{k}.jsonl", feed[k::4]) for k in range(4)]
    config = Config(window_days=7)
    outcome: dict[str, Any] = {}

    def job() -> object:
        if outcome:  # asked again: what the run gave
            return outcome.get("error", "no error")
        try:
            outcome["run"] = cluster_on_ray(shards, config, address=cluster.address, cache=True)
        except BaseException as exc:  # reported by the assertions below
            outcome["error"] = exc
        return None

    with connected_cluster(tmp_path, workers=2, head_cpus=0) as cluster:
        killed_after = _kill_mid_job(cluster, cluster.nodes[1:], job, tmp_path / "cache")
    assert "error" not in outcome, f"the job failed after losing a worker: {outcome.get('error')!r}"
    run: RayRun = outcome["run"]
    assert run.nodes == 3
    expected = local(read_articles(shards).articles, config)
    assert groups(run.result) == groups(expected)
    assert run.result.labels == expected.labels
    print(f"ray worker killed mid-job: done {killed_after:.1f} s later, {len(run.articles)} articles, same stories")


def _cached_passages(cache_dir: Path) -> int:
    """Passages the workers' embedding caches hold so far (0 while the file is missing or being written)."""
    files = list(cache_dir.glob("embeddings/*.sqlite"))
    total = 0
    for file in files:
        try:
            with contextlib.closing(sqlite3.connect(f"file:{file}?mode=ro", uri=True, timeout=1)) as conn:
                total += int(conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
        except sqlite3.Error:
            return 0
    return total


def _kill_mid_job(cluster: LocalRayCluster, workers: Sequence[Any], job: Callable[[], object], cache_dir: Path) -> float:
    """Run ``job`` in a thread, kill the first worker node seen embedding once a few batches are embedded, wait.

    Returns the seconds from the kill to the end of the job.
    """
    thread = threading.Thread(target=job)
    thread.start()
    deadline = time.monotonic() + 120
    while not (busy := [w for w in workers if running(w.pid, "embed_batch")]):
        assert thread.is_alive(), f"the job ended before embedding started on a worker node: {job()!r}"
        assert time.monotonic() < deadline, "no embedding task started on a worker node in 120 s"
        time.sleep(0.2)
    # Let it embed a few batches (200 passages, a small part of the feed): polled, with a deadline.
    while _cached_passages(cache_dir) < 200:
        assert thread.is_alive(), f"the job ended before a few batches were embedded: {job()!r}"
        assert time.monotonic() < deadline + 120, "the workers embedded fewer than 200 passages in 2 minutes"
        time.sleep(0.2)
    assert thread.is_alive(), "the job finished before the worker could be killed; give it more work"
    busy = [w for w in workers if running(w.pid, "embed_batch")] or busy
    cluster.kill(busy[0])
    killed_at = time.monotonic()
    thread.join(timeout=600)
    assert not thread.is_alive(), "the job did not finish within 10 minutes of losing a worker"
    assert sum(1 for n in ray.nodes() if n.get("Alive")) == len(workers)  # the head and the survivor
    return time.monotonic() - killed_at
