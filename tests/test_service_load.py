"""Load: N clients x M mixed requests against a real ``dedup serve`` on 127.0.0.1; nothing lost or doubled.

The server is a real process (uvicorn, the fake encoder); the clients are threads here. The
test is bounded: every request has a timeout, the whole run a deadline, and the server is
stopped at the end whatever happens. It only ever talks to 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from dedup.search.store import Store

from .conftest import ROOT
from .servers import served_url

CLIENTS, REQUESTS = 8, 40  # N clients, M requests each
DEADLINE_S = 180
TOKEN = "load-token"


def start_server(store: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fake_cli",
            "serve",
            "--store",
            str(store),
            "--create",
            "--port",
            "0",
            "--host",
            "127.0.0.1",
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "DEDUP_TOKEN": TOKEN},
    )
    return proc, served_url(proc, time.monotonic() + 60)


def article(id_: str, n: int) -> dict[str, object]:
    return {
        "id": id_,
        "title": f"Report {n} on item {id_}",
        "text": f"Body of the report, number {n * 7919}, on {id_}.",
        "lang": "en",
    }


@pytest.mark.slow
def test_concurrent_clients_lose_and_double_nothing(tmp_path: Path, figures: list[str]) -> None:
    proc, url = start_server(tmp_path / "s")
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    added: Counter[str] = Counter()  # id -> how many responses said "added"
    expected: set[str] = set()
    lock = threading.Lock()
    errors: list[str] = []
    started = time.monotonic()

    def client(k: int) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http:
            for i in range(REQUESTS):
                if time.monotonic() - started > DEADLINE_S:
                    errors.append(f"client {k} stopped at the deadline")
                    return
                kind = i % 4
                if kind == 0:
                    ids, path, body = [f"c{k}-{i}"], "/add", {"articles": [article(f"c{k}-{i}", i)]}
                elif kind == 1:
                    ids, path, body = [], "/check", {"articles": [article(f"q{k}-{i}", i)], "top": 2}
                elif kind == 2:
                    ids, path, body = [f"ca{k}-{i}"], "/check-and-add", {"articles": [article(f"ca{k}-{i}", i)]}
                else:  # every client adds the same article at about the same moment
                    ids, path, body = [f"shared-{i}"], "/add", {"articles": [article(f"shared-{i}", i)]}
                t0 = time.perf_counter()
                r = http.post(path, json=body)
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies.append(elapsed)
                    statuses[r.status_code] += 1
                    expected.update(ids)
                    if r.status_code == 200 and path != "/check":
                        added.update(r.json()["added"])
                    elif r.status_code != 200:
                        errors.append(f"{path}: {r.status_code} {r.text[:200]}")

    try:
        threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=DEADLINE_S + 60)
        wall = time.monotonic() - started
        health = httpx.get(f"{url}/health", timeout=10).json()
        metrics = httpx.get(f"{url}/metrics.json", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert not errors, errors[:5]
    assert statuses == {200: CLIENTS * REQUESTS}
    # Nothing lost: every article some response accepted is stored; nothing doubled: each id once.
    store = Store.open(tmp_path / "s", verify=True)  # refuses a store holding an id twice
    ids = store.ids
    assert len(ids) == len(set(ids)) == len(expected) == health["articles"]
    assert set(ids) == expected
    assert all(added[i] == 1 for i in expected), [i for i in expected if added[i] != 1][:5]  # one "added" per id
    assert metrics["counts"]["articles_added"] == len(expected)
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    rate = len(latencies) / wall
    figures.append(
        f"service load: {CLIENTS} clients x {REQUESTS} requests (add / check / check-and-add / same-article add), "
        f"{len(latencies)} requests in {wall:.1f} s = {rate:.0f} req/s, p50 {1000 * p50:.0f} ms, p99 {1000 * p99:.0f} ms; "
        f"{len(ids)} articles stored, 0 lost, 0 doubled"
    )
