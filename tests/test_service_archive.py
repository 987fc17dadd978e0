"""``dedup serve --archive``: the service over a time-sharded archive, in process and as real processes.

The routes, auth and limits are the store's (``tests/test_service.py`` runs its endpoint, auth
and limit tests on both); here what is particular to an archive: windows across month
boundaries, a check-and-add whose batch spans shards, the story browser's reads by id, read-only
replicas (in process and as several ``serve --read-only`` processes beside one writer),
linearisable check-and-add across threads and writer processes, and kill -9 of the writer.
Every wait polls with a deadline; servers are real processes on 127.0.0.1 with the fake encoder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from dedup import Detector
from dedup.detect.archive import ArchiveDetector
from dedup.errors import StoreError
from dedup.search.archive import Archive
from dedup.serve.http import create_app
from dedup.serve.shared import ReadOnlyError, SharedDetector
from dedup.types import Article, PartialDate, Verdict

from .conftest import ROOT, HashEncoder
from .servers import served_url, wait_for_health

TOKEN = "archive-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HANOI = "Ministers of Vietnam and Laos met in Hanoi on Sunday and signed three cooperation agreements."
PARIS = "The Louvre museum in Paris closed for a day after a strike by its staff over working conditions."
BERLIN = "A Kenyan runner set a new course record at the Berlin marathon this morning, in cool weather."


def art(id_: str, title: str, text: str, **more: object) -> dict[str, object]:
    return {"id": id_, "title": title, "text": text, "lang": "en", **more}


def unrelated(id_: str, n: int, date: str | None = None) -> dict[str, object]:
    more = {"date": date} if date else {}
    return art(id_, f"Report {n} on {id_}", f"Body of report number {n * 7919} about item {id_}.", **more)


def service(path: Path, *, read_only: bool = False) -> SharedDetector:
    return SharedDetector(ArchiveDetector.open(path, encoder=HashEncoder(), create=not read_only, read_only=read_only))


def client_of(shared: SharedDetector) -> TestClient:
    return TestClient(create_app(shared, token=TOKEN), raise_server_exceptions=False)


def archive_ids(path: Path) -> list[str]:
    """Every stored id, shard by shard, each shard opened and verified."""
    archive = Archive.open(path, verify=True)
    return [i for key in archive.keys for i in archive.shard(key).ids]


# ------------------------------------------------------------------------------ in process
def test_archive_service_checks_across_months_adds_across_shards_and_browses_stories(tmp_path: Path) -> None:
    client = client_of(service(tmp_path / "a"))
    seed = [
        art("h1", "Hanoi talks", HANOI, date="2025-01-30"),
        art("p1", "Louvre strike", PARIS, date="2024-06-01"),
        art("u1", "Berlin marathon", BERLIN),
    ]
    r = client.post("/add", headers=AUTH, json={"articles": seed})
    assert r.status_code == 200 and r.json()["added"] == ["h1", "p1", "u1"] and r.json()["total"] == 3
    assert Archive.open(tmp_path / "a").keys == ("2024-06", "2025-01", "undated")
    generation = client.get("/health").json()["generation"]

    # A check across the month boundary searches January (and undated), not June 2024.
    verdict = client.post("/check", headers=AUTH, json={"articles": [art("q", "Hanoi talks", HANOI, date="2025-02-02")]})
    body = verdict.json()["verdicts"][0]
    assert body["duplicate"] is True and body["matches"][0]["id"] == "h1"
    assert body["shards"] == ["2025-01", "undated"]

    # A check-and-add whose batch opens a new shard: h3 is checked against h2, added just before it in February.
    batch = [art("h2", "Hanoi talks", HANOI, date="2025-02-02"), art("h3", "Hanoi talks", HANOI + " Later.", date="2025-02-03")]
    body = client.post("/check-and-add", headers=AUTH, json={"articles": batch}).json()
    assert body["added"] == ["h2", "h3"] and body["total"] == 5
    assert [m["id"] for m in body["verdicts"][1]["matches"] if m["duplicate"]] == ["h2", "h1"]
    assert "2025-02" in body["verdicts"][1]["shards"]
    assert Archive.open(tmp_path / "a").keys == ("2024-06", "2025-01", "2025-02", "undated")
    health = client.get("/health").json()
    assert health["articles"] == 5 and health["generation"] > generation

    # The story browser's reads by id look through the shards.
    assert client.get("/article", headers=AUTH, params={"id": "p1"}).json()["text"] == PARIS
    assert client.get("/article", headers=AUTH, params={"id": "nope"}).status_code == 404
    story = client.get("/story", headers=AUTH, params={"id": "h3"}).json()
    assert sorted(story["story"]["article_ids"]) == ["h1", "h2", "h3"]
    stories = client.get("/stories", headers=AUTH).json()
    assert stories["articles"] == 5 and stories["total"] == 3 and stories["generation"] == health["generation"]
    assert sorted(stories["stories"][0]["article_ids"]) == ["h1", "h2", "h3"]  # newest first
    assert [s["article_ids"] for s in stories["stories"][1:]] == [["p1"], ["u1"]]
    one = client.get(f"/stories/{stories['stories'][0]['id']}", headers=AUTH).json()
    assert len(one["story"]["links"]) == 2
    near = client.get("/neighbours", headers=AUTH, params={"id": "h1", "top": 2}).json()
    assert {m["id"] for m in near["verdict"]["matches"] if m["duplicate"]} == {"h2", "h3"}
    pair = client.get("/evidence", headers=AUTH, params={"a": "h1", "b": "h3"}).json()
    assert pair["match"]["duplicate"] is True and pair["match"]["aligned"]
    posted = {"articles": [art("x", "Hanoi talks", HANOI, date="2025-01-31")], "with_store": True}
    labels = client.post("/cluster", headers=AUTH, json=posted)
    assert labels.json()["labels"]["x"] == labels.json()["labels"]["h1"] != labels.json()["labels"]["p1"]

    # A new commit: the story list is clustered again, with the new article.
    client.post("/add", headers=AUTH, json={"articles": [art("h4", "Hanoi talks", HANOI, date="2025-01-31")]})
    again = client.get("/stories", headers=AUTH).json()
    assert again["generation"] > stories["generation"] and sorted(again["stories"][0]["article_ids"]) == ["h1", "h2", "h3", "h4"]


def test_a_batch_check_and_add_gives_the_verdicts_of_one_by_one_check_and_adds(tmp_path: Path) -> None:
    # Across months, out of each other's windows, undated, year-only: a batch sees its earlier
    # articles exactly where a later check would find them once stored.
    dates = ["2025-01-30", "2025-02-02", "2025-06-10", None, "2025-01-31", "2024", "2024-01-03"]
    batch = [
        Article(id=f"a{k}", title="Hanoi talks", text=f"{HANOI} {k % 2}", date=PartialDate.parse(d) if d else None, lang="en")
        for k, d in enumerate(dates)
    ]
    together = service(tmp_path / "together").check_and_add(batch).verdicts
    one = service(tmp_path / "apart")
    apart = [one.check_and_add([a]).verdicts[0] for a in batch]

    def seen(v: Verdict) -> tuple[object, ...]:
        matches = sorted((m.id, m.is_duplicate, round(m.score, 6)) for m in v.matches)  # equal scores in any order
        return (v.id, v.is_duplicate, v.shards, matches)

    assert [seen(v) for v in together] == [seen(v) for v in apart]
    assert [v.is_duplicate for v in together] == [False, True, False, True, True, True, True]
    assert "a0" not in {m.id for m in together[2].matches}  # June is out of January's window
    assert sorted(archive_ids(tmp_path / "together")) == sorted(archive_ids(tmp_path / "apart"))


def test_a_conflicting_id_refuses_the_whole_batch_before_any_shard_commits(tmp_path: Path) -> None:
    client = client_of(service(tmp_path / "a"))
    client.post("/add", headers=AUTH, json={"articles": [art("x", "Hanoi talks", HANOI, date="2025-03-01")]})
    batch = [unrelated("first", 1, "2025-01-05"), art("x", "Other", PARIS, date="2025-03-01")]
    for path in ("/add", "/check-and-add"):
        r = client.post(path, headers=AUTH, json={"articles": batch})
        assert r.status_code == 409 and "'x'" in r.json()["detail"] and "replace" in r.json()["detail"], r.text
    assert archive_ids(tmp_path / "a") == ["x"]  # January was not committed either
    r = client.post("/add", headers=AUTH, json={"articles": batch, "replace": True})
    assert r.json()["added"] == ["first"] and r.json()["replaced"] == ["x"]


@pytest.mark.parametrize("kind", ["store", "archive"])
def test_a_read_only_replica_refuses_writes_with_403_and_sees_the_writers_commits(tmp_path: Path, kind: str) -> None:
    path = tmp_path / kind
    if kind == "archive":
        writer = service(path)
        replica = service(path, read_only=True)
    else:
        writer = SharedDetector(Detector.open(path, encoder=HashEncoder(), create=True))
        replica = SharedDetector(Detector.open(path, encoder=HashEncoder()), read_only=True)
    writing, reading = client_of(writer), client_of(replica)
    health = (writing.get("/health").json(), reading.get("/health").json())
    assert [(h["kind"], h["read_only"]) for h in health] == [(kind, False), (kind, True)]  # a balancer routes writes by it
    assert writing.post("/add", headers=AUTH, json={"articles": [art("h1", "Hanoi talks", HANOI, date="2025-01-12")]}).is_success
    for route in ("/add", "/check-and-add"):
        r = reading.post(route, headers=AUTH, json={"articles": [art("h9", "Hanoi", HANOI)]})
        assert r.status_code == 403 and r.json()["error"] == "read_only" and "writer" in r.json()["detail"], r.text
        assert reading.post(route, json={}).status_code == 401  # the token is still checked first
    with pytest.raises(ReadOnlyError):
        replica.add([Article(id="h9", title="Hanoi", text=HANOI)])
    query = {"articles": [art("q", "Hanoi talks", HANOI, date="2025-01-13")]}
    assert reading.post("/check", headers=AUTH, json=query).json()["verdicts"][0]["duplicate"] is True
    first = reading.get("/stories", headers=AUTH).json()
    # The writer commits; the replica picks it up before its next request (no restart, no lock).
    writing.post("/add", headers=AUTH, json={"articles": [art("h2", "Hanoi talks", HANOI + " Two.", date="2025-01-14")]})
    assert reading.get("/health").json()["articles"] == 2
    duplicates = reading.post("/check", headers=AUTH, json=query).json()["verdicts"][0]["matches"]
    assert {m["id"] for m in duplicates if m["duplicate"]} == {"h1", "h2"}
    second = reading.get("/stories", headers=AUTH).json()
    assert second["generation"] > first["generation"] and sorted(second["stories"][0]["article_ids"]) == ["h1", "h2"]


def test_a_read_only_archive_takes_no_lock_and_writes_nothing(tmp_path: Path) -> None:
    client_of(service(tmp_path / "a")).post("/add", headers=AUTH, json={"articles": [unrelated("a", 1, "2025-01-05")]})
    before = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in (tmp_path / "a").rglob("*"))
    reading = client_of(service(tmp_path / "a", read_only=True))
    assert reading.post("/check", headers=AUTH, json={"articles": [unrelated("b", 2, "2025-01-06")]}).is_success
    assert reading.get("/stories", headers=AUTH).is_success and reading.get("/health").json()["articles"] == 1
    after = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in (tmp_path / "a").rglob("*"))
    assert after == before
    with pytest.raises(StoreError, match="read-only"):
        ArchiveDetector.open(tmp_path / "a", encoder=HashEncoder(), read_only=True).add([Article(id="c", title="t", text="x")])


def test_a_damaged_shard_is_503_naming_no_server_path(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    client = client_of(service(tmp_path / "a"))
    client.post("/add", headers=AUTH, json={"articles": [unrelated("a", 1, "2025-01-05"), unrelated("u", 2)]})
    (tmp_path / "a" / "2025-01" / "manifest.json").write_text("{broken")
    check = client.post("/check", headers=AUTH, json={"articles": [unrelated("b", 3, "2025-01-06")]})
    for response in (check, client.get("/health")):
        assert response.status_code == 503 and response.json()["error"] == "unavailable", response.text
        assert "<store>/2025-01/manifest.json" in response.text and str(tmp_path) not in response.text
    assert str(tmp_path / "a" / "2025-01" / "manifest.json") in caplog.text


def test_threads_check_and_add_one_story_linearisably(tmp_path: Path) -> None:
    shared = service(tmp_path / "a")
    barrier = threading.Barrier(6)
    results: list[object] = [None] * 6

    def work(k: int) -> None:
        barrier.wait(timeout=30)
        copy = Article(id=f"copy{k}", title="Hanoi talks", text=HANOI, lang="en")
        results[k] = shared.check_and_add([copy]).verdicts[0]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    # Serialised: the first to commit is new, each later one duplicates every earlier one.
    assert sorted(len(v.duplicates) for v in results) == [0, 1, 2, 3, 4, 5]  # type: ignore[attr-defined]
    assert len(archive_ids(tmp_path / "a")) == 6


# ------------------------------------------------------------------------- real processes
def start(archive: Path, *flags: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_cli", "serve", "--archive", str(archive), "--port", "0", *flags],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "DEDUP_TOKEN": TOKEN},
    )
    try:
        return proc, served_url(proc, time.monotonic() + 90)
    except BaseException:
        proc.kill()
        proc.wait(timeout=30)
        raise


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes to stop at the end of the test, whatever happens."""
    procs: list[subprocess.Popen[str]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


def post(url: str, path: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{url}{path}", headers=AUTH, json=body, timeout=60)


def run_at_once(n: int, target: object) -> list[object]:
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            barrier.wait(timeout=60)
            results[k] = target(k)  # type: ignore[operator]
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    if errors:
        raise errors[0]
    return results


def test_check_and_add_is_linearisable_across_threads_and_two_writer_processes(
    tmp_path: Path, servers: list[subprocess.Popen[str]], figures: list[str]
) -> None:
    archive = tmp_path / "a"
    first, url1 = start(archive, "--create")
    servers.append(first)
    second, url2 = start(archive)  # a second writer on the same archive: the archive's writer lock orders them
    servers.append(second)
    urls = [url1, url2]

    # The same new article posted by 8 clients at once, to either process: exactly one adds it, as new.
    same = art("same", "Hanoi talks", HANOI, date="2025-01-12")
    answers = run_at_once(8, lambda k: post(urls[k % 2], "/check-and-add", {"articles": [same]}).json())
    added = [a for a in answers if a["added"] == ["same"]]  # type: ignore[index]
    assert len(added) == 1 and added[0]["verdicts"][0]["duplicate"] is False  # type: ignore[index]
    assert sum(a["unchanged"] == ["same"] for a in answers) == 7  # type: ignore[index]

    # Copies of one story under new ids, from 8 clients at once: serialised, the k-th duplicates the k earlier ones.
    copies = run_at_once(
        8,
        lambda k: post(urls[k % 2], "/check-and-add", {"articles": [art(f"copy{k}", "Hanoi talks", HANOI, date="2025-01-13")]}),
    )
    counts = sorted(sum(m["duplicate"] for m in r.json()["verdicts"][0]["matches"]) for r in copies)  # type: ignore[attr-defined]
    assert counts == list(range(1, 9))  # each also duplicates "same"; exactly one copy is the first after it
    ids = archive_ids(archive)
    assert sorted(ids) == sorted(["same", *(f"copy{k}" for k in range(8))])
    figures.append(
        "archive check-and-add from 8 clients on 2 writer processes: 1 of 8 added the same article; copies serialised 1..8"
    )


def test_read_only_servers_beside_one_writer_see_its_adds(
    tmp_path: Path, servers: list[subprocess.Popen[str]], figures: list[str]
) -> None:
    archive = tmp_path / "a"
    writer, wurl = start(archive, "--create")
    servers.append(writer)
    readers = []
    for _ in range(2):
        proc, url = start(archive, "--read-only")
        servers.append(proc)
        readers.append(url)
    for url in readers:
        r = post(url, "/add", {"articles": [unrelated("no", 0)]})
        assert r.status_code == 403 and r.json()["error"] == "read_only"
    lags: list[float] = []
    rounds = 6
    for i in range(rounds):
        months = (f"2025-{1 + i % 3:02d}-10", f"2024-{1 + i % 3:02d}-11")
        batch = [unrelated(f"r{i}-a", i, months[0]), unrelated(f"r{i}-b", i + 100, months[1])]
        assert post(wurl, "/add", {"articles": batch}).json()["added"] == [f"r{i}-a", f"r{i}-b"]
        committed = time.monotonic()
        waiting = set(readers)
        while waiting:  # polling with a deadline: each reader serves the commit once it has picked it up
            for url in sorted(waiting):
                found = httpx.get(f"{url}/article", headers=AUTH, params={"id": f"r{i}-b"}, timeout=30)
                if found.status_code == 200:
                    lags.append(time.monotonic() - committed)
                    waiting.discard(url)
                else:
                    assert found.status_code == 404, found.text
            assert time.monotonic() < committed + 30, "a read-only server did not pick up the writer's commit"
            if waiting:
                time.sleep(0.02)
        for url in readers:
            check = post(url, "/check", {"articles": [{**batch[0], "id": "probe"}]}).json()["verdicts"][0]
            assert check["duplicate"] is True and check["matches"][0]["id"] == f"r{i}-a"
    for url in readers:
        assert httpx.get(f"{url}/health", timeout=30).json()["articles"] == 2 * rounds
        stories = httpx.get(f"{url}/stories", headers=AUTH, params={"limit": 100}, timeout=60).json()
        assert stories["articles"] == 2 * rounds and sum(s["size"] for s in stories["stories"]) == 2 * rounds
    lags.sort()
    figures.append(
        f"archive: 2 read-only `serve` processes beside one writer, {rounds} commits: a reader served each commit "
        f"{1000 * lags[len(lags) // 2]:.0f} ms (median) / {1000 * lags[-1]:.0f} ms (max) after the writer's answer"
    )


def test_kill_9_of_the_writer_mid_adds_leaves_the_archive_opening_and_consistent(
    tmp_path: Path, servers: list[subprocess.Popen[str]], figures: list[str]
) -> None:
    archive = tmp_path / "a"
    writer, wurl = start(archive, "--create")
    servers.append(writer)
    reader, rurl = start(archive, "--read-only")
    servers.append(reader)
    acked: list[list[str]] = []
    sent: list[list[str]] = []
    stop = threading.Event()

    def feed() -> None:
        n = 0
        with httpx.Client(headers=AUTH, timeout=60) as client:
            while not stop.is_set():
                batch = [unrelated(f"b{n}-{j}", n * 10 + j, f"2025-{1 + j % 2:02d}-{10 + j:02d}") for j in range(4)]
                sent.append([str(a["id"]) for a in batch])
                try:
                    r = client.post(f"{wurl}/add", json={"articles": batch})
                except httpx.TransportError:
                    return  # the writer died mid-request
                assert r.status_code == 200, r.text
                acked.append(list(r.json()["added"]))
                n += 1

    thread = threading.Thread(target=feed)
    thread.start()
    deadline = time.monotonic() + 120
    while len(acked) < 5:  # polling with a deadline: let some commits land, then kill mid-stream
        assert time.monotonic() < deadline and thread.is_alive(), "the writer took no adds"
        time.sleep(0.01)
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    stop.set()
    thread.join(timeout=120)

    ids = archive_ids(archive)  # opens, every shard verified
    assert len(ids) == len(set(ids))
    assert {i for batch in acked for i in batch} <= set(ids)  # every acknowledged add is on disk
    for batch in sent:  # per shard, a batch is whole or absent
        for month in (0, 1):
            part = {i for k, i in enumerate(batch) if k % 2 == month}
            assert part <= set(ids) or not part & set(ids), (batch, ids)
    # The replica goes on serving what was committed; a new writer takes the lock and adds.
    assert httpx.get(f"{rurl}/health", timeout=30).json()["articles"] == len(ids)
    again, aurl = start(archive)
    servers.append(again)
    assert post(aurl, "/add", {"articles": [unrelated("after", 999, "2025-01-20")]}).json()["added"] == ["after"]
    deadline = time.monotonic() + 30
    while httpx.get(f"{rurl}/health", timeout=30).json()["articles"] != len(ids) + 1:  # polling with a deadline
        assert time.monotonic() < deadline, "the replica did not pick up the new writer's commit"
        time.sleep(0.05)
    wait_for_health(aurl, time.monotonic() + 10)
    figures.append(
        f"archive writer kill -9 mid-adds: {len(acked)} batches acknowledged, {len(ids)} articles on disk, "
        f"every shard verified, 0 partial batches per shard; replica kept serving, a new writer took over"
    )
