"""``dedup stream``: JSONL in, one verdict per line out, surviving bad lines and kill -9."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dedup import Config, Detector, read_articles
from dedup.errors import InputError
from dedup.search.archive import Archive
from dedup.search.store import Store
from dedup.serve.shared import SharedDetector
from dedup.serve.stream import run_stream

from .conftest import ROOT, SEEDS, TRUE_PAIR, HashEncoder

HANOI = "Ministers of Vietnam and Laos met in Hanoi on Sunday and signed three cooperation agreements."


def line(id_: str, title: str, text: str = HANOI, **more: object) -> str:
    return json.dumps({"id": id_, "title": title, "text": text, "lang": "en", **more})


def fake_stream(args: list[str], data: bytes, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tests.fake_cli", "stream", *args],
        input=data,
        capture_output=True,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


def test_bad_lines_are_reported_and_the_stream_goes_on(tmp_path: Path) -> None:
    feed = [
        line("a", "Hanoi talks"),
        "{not json",
        line("b", "Hanoi talks"),  # duplicate of a
        "",
        '{"id": "c", "title": 5}',
        '"just a string"',
        line("d", "", ""),
        line("e", "Louvre strike", "The Louvre museum in Paris closed for a day after a strike."),
        line("a", "Hanoi talks"),  # the same article again: unchanged
        line("a", "Changed", "Other text."),  # same id, other content: refused
    ]
    data = ("\n".join(feed) + "\n").encode() + b'{"id": "f", "title": "caf\xe9"}\n' + line("g", "Hanoi talks").encode()
    proc = fake_stream(["--store", str(tmp_path / "s"), "--create"], data)
    assert proc.returncode == 2, proc.stderr  # some lines were rejected
    out = [json.loads(x) for x in proc.stdout.decode().splitlines()]
    assert [(v["id"], v["line"], v["duplicate"], v["stored"]) for v in out] == [
        ("a", 1, False, "added"),
        ("b", 3, True, "added"),
        ("e", 8, False, "added"),
        ("a", 9, True, "unchanged"),  # duplicates b (a itself is never its own match)
        ("g", 12, True, "added"),  # the last line has no newline and is read all the same
    ]
    err = proc.stderr.decode()
    for number, words in {
        2: "malformed JSON",
        5: "'title' must be a string",
        6: "expected a JSON object",
        7: "empty",
        10: "different content",
        11: "UTF-8",
    }.items():
        assert f"<stdin>:{number}: " in err and words in err, (number, err)
    assert "6 rejected" in err
    assert sorted(Store.open(tmp_path / "s").ids) == ["a", "b", "e", "g"]


def test_no_add_only_checks_and_missing_store_exits_3(tmp_path: Path) -> None:
    proc = fake_stream(["--store", str(tmp_path / "s")], b"")
    assert proc.returncode == 3 and b"no store at" in proc.stderr
    fake_stream(["--store", str(tmp_path / "s"), "--create"], line("a", "Hanoi talks").encode())
    proc = fake_stream(["--store", str(tmp_path / "s"), "--no-add", "--top", "1"], (line("b", "Hanoi talks") + "\n").encode())
    assert proc.returncode == 0
    verdict = json.loads(proc.stdout)
    assert verdict["duplicate"] and verdict["stored"] is None and verdict["matches"][0]["id"] == "a"
    assert Store.open(tmp_path / "s").ids == ["a"]


def test_output_can_be_piped_and_a_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    feed = "".join(line(f"n{i}", f"Item {i}", f"Unrelated text {i * 37}.") + "\n" for i in range(30)).encode()
    cmd = f"{sys.executable} -m tests.fake_cli stream -q --store {tmp_path / 's'} --create | head -n 2"
    proc = subprocess.run(["bash", "-c", cmd], input=feed, capture_output=True, cwd=ROOT, timeout=120, check=False)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 2
    assert b"Traceback" not in proc.stderr


@pytest.mark.slow
def test_stream_on_an_archive_adds_to_month_shards_and_no_add_writes_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "a"
    proc = fake_stream(["--archive", str(archive)], b"")
    assert proc.returncode == 3 and b"no archive at" in proc.stderr
    feed = [line("a", "Hanoi talks", date="2025-01-30"), line("b", "Hanoi talks", date="2025-02-01")]
    feed.append(line("c", "Louvre", "Paris."))
    proc = fake_stream(["--archive", str(archive), "--create"], ("\n".join(feed) + "\n").encode())
    assert proc.returncode == 0, proc.stderr
    verdicts = [json.loads(x) for x in proc.stdout.decode().splitlines()]
    assert [v["stored"] for v in verdicts] == ["added"] * 3
    assert verdicts[1]["duplicate"] and verdicts[1]["matches"][0]["id"] == "a" and verdicts[1]["shards"] == ["2025-01"]
    assert Archive.open(archive).keys == ("2025-01", "2025-02", "undated")
    before = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in archive.rglob("*"))
    proc = fake_stream(["--archive", str(archive), "--no-add"], (line("d", "Hanoi talks", date="2025-01-31") + "\n").encode())
    assert proc.returncode == 0, proc.stderr
    verdict = json.loads(proc.stdout)
    assert verdict["stored"] is None and {m["id"] for m in verdict["matches"] if m["duplicate"]} == {"a", "b"}
    assert sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in archive.rglob("*")) == before  # no lock, no write


def stored_ids(path: Path, kind: str) -> list[str]:
    """Every stored id of a store, or of an archive shard by shard (each opened and verified)."""
    if kind == "store":
        return Store.open(path, verify=True).ids
    archive = Archive.open(path, verify=True)
    return [i for key in archive.keys for i in archive.shard(key).ids]


@pytest.mark.parametrize("kind", ["store", "archive"])
def test_kill_9_mid_stream_then_rerun_loses_and_doubles_nothing(tmp_path: Path, kind: str, figures: list[str]) -> None:
    n = 120
    dates = ("2025-01-30", "2025-02-01", None)  # an archive: three shards
    feed = "".join(
        line(f"n{i}", f"Item {i}", f"Unrelated text number {i * 37} here.", **({"date": d} if (d := dates[i % 3]) else {})) + "\n"
        for i in range(n)
    ).encode()
    where = [f"--{kind}", str(tmp_path / "s")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_cli", "stream", "-q", *where, "--create"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(feed)
    proc.stdin.flush()
    printed = [proc.stdout.readline() for _ in range(10)]  # let it get going
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    first_run = {json.loads(x)["id"] for x in printed}
    stored = set(stored_ids(tmp_path / "s", kind))
    assert first_run <= stored  # a printed verdict is committed
    rerun = fake_stream(["-q", *where], feed)
    assert rerun.returncode == 0, rerun.stderr
    verdicts = [json.loads(x) for x in rerun.stdout.decode().splitlines()]
    assert len(verdicts) == n
    assert {v["id"] for v in verdicts if v["stored"] == "unchanged"} == stored
    final = stored_ids(tmp_path / "s", kind)
    assert sorted(final) == sorted(f"n{i}" for i in range(n)) and len(final) == n
    figures.append(
        f"stream kill -9 ({kind}): killed after {len(stored)} of {n} articles committed; rerun stored the rest, none doubled"
    )


# Bad lines of every kind, in process (fast): never an exception, exactly one verdict per good line.
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_fields = st.fixed_dictionaries(
    {"id": st.one_of(st.text(max_size=12), st.integers(), st.none(), st.booleans())},
    optional={
        "title": st.one_of(st.text(max_size=60), st.integers(), st.none(), _json_values),
        "text": st.one_of(st.text(max_size=200), st.none(), st.lists(st.text(max_size=5))),
        "date": st.one_of(st.sampled_from(["2025-01-12", "2025-02-30", "12/01/2025", "2025", ""]), st.text(max_size=12)),
        "lang": st.one_of(st.sampled_from(["en", "fr", "", None]), st.integers()),
        "other": _json_values,
    },
)
_lines = st.one_of(
    _fields.map(lambda d: json.dumps(d).encode()),
    _json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=80),
    st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.just(b'{"id": "x", "title": "\\ud800 lone surrogate"}'),
    st.just(b'{"id": "big", "title": "' + b"x" * 5000 + b'"}'),
)
FUZZ_FEEDS = 60


@settings(
    max_examples=FUZZ_FEEDS,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(_lines, min_size=1, max_size=10))
def test_stream_fuzz_never_crashes(batch: list[bytes], figures: list[str]) -> None:
    service = SharedDetector(Detector.in_memory(Config(max_article_chars=2000), encoder=HashEncoder(dim=64)))
    data = b"\n".join(x.replace(b"\n", b" ") for x in batch) + b"\n"
    out = io.StringIO()
    errors: list[InputError] = []
    report = run_stream(service, io.BytesIO(data), out, on_error=errors.append, max_chars=2000)
    verdicts = [json.loads(x) for x in out.getvalue().splitlines()]
    assert report.checked == len(verdicts) and report.rejected == len(errors)
    assert report.checked + report.rejected <= report.lines == len(batch)
    assert all(e.line is not None and 1 <= e.line <= len(batch) for e in errors)
    assert len({v["line"] for v in verdicts} | {e.line for e in errors}) == report.checked + report.rejected
    _count(figures, "stream fuzz", len(batch))


_counted: dict[str, list[int]] = {}


def _count(figures: list[str], name: str, lines: int) -> None:
    entry = _counted.setdefault(name, [0, 0])
    entry[0] += 1
    entry[1] += lines
    text = f"{name}: {entry[0]} generated feeds, {entry[1]} lines, no crash"
    figures[:] = [f for f in figures if not f.startswith(f"{name}:")] + [text]


@pytest.mark.model
@pytest.mark.slow
def test_stream_with_the_real_model_finds_the_cross_language_pair(tmp_path: Path) -> None:
    rows = [json.dumps(a.to_dict(), ensure_ascii=False) for a in read_articles([SEEDS]).articles]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "dedup", "stream", "-q", "--store", str(tmp_path / "s"), "--create"],
        input="\n".join(rows) + "\n",
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    verdicts = {v["id"]: v for v in map(json.loads, proc.stdout.splitlines())}
    assert len(verdicts) == 5 and all(v["stored"] == "added" for v in verdicts.values())
    assert verdicts[TRUE_PAIR[1]]["duplicate"] and verdicts[TRUE_PAIR[1]]["matches"][0]["id"] == TRUE_PAIR[0]
    assert sum(v["duplicate"] for v in verdicts.values()) == 1  # the hard negatives stay apart


def test_damaged_store_is_refused_before_reading_a_line(tmp_path: Path) -> None:
    fake_stream(["-q", "--store", str(tmp_path / "s"), "--create"], (line("a", "Hanoi talks") + "\n").encode())
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    victim = tmp_path / "s" / manifest["segments"][-1]["name"] / "vectors.npy"
    victim.write_bytes(victim.read_bytes()[:-16])
    proc = fake_stream(["--store", str(tmp_path / "s")], (line("b", "Hanoi talks") + "\n").encode())
    assert proc.returncode == 3 and proc.stdout == b""
    assert b"truncated or altered" in proc.stderr and b"restore the store from a backup" in proc.stderr


def test_issue14_a_huge_integer_or_a_far_date_is_one_rejected_line() -> None:
    service = SharedDetector(Detector.in_memory(encoder=HashEncoder(dim=64)))
    raw_separators = {"id": "b", "title": "Louvre\u2028strike", "text": "The Louvre\u2029closed\x85for a day.", "lang": "en"}
    feed = [
        line("a", "Hanoi talks"),
        '{"id": "big", "title": "x", "n": 1' + "0" * 5000 + "}",
        line("far", "Hanoi talks", date="9999-12"),
        json.dumps(raw_separators, ensure_ascii=False),
    ]
    out = io.StringIO()
    errors: list[InputError] = []
    report = run_stream(service, io.BytesIO(("\n".join(feed) + "\n").encode()), out, on_error=errors.append)
    assert [json.loads(x)["id"] for x in out.getvalue().splitlines()] == ["a", "b"]
    assert [e.line for e in errors] == [2, 3] and report.rejected == 2
    assert "integer with more than 4300 digits" in str(errors[0]) and "'9999-12' is outside" in str(errors[1])
    assert service.detector.store.get("b").text == raw_separators["text"]
