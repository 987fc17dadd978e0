"""Progress reports: lines without a terminal (counts, rate, an honest time left), silence with -q."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dedup import progress
from dedup.progress import ENV_INTERVAL, Tracker, duration, stage, track

from .conftest import ROOT

LINE = re.compile(r"^dedup: embedding (\d+)/(\d+) passages, [\d.e+]+/s(, eta \d+(s|m\d\ds))?$")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lines_every(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_INTERVAL, "2")


@pytest.mark.usefixtures("lines_every")
def test_a_line_every_interval_with_counts_rate_and_time_left() -> None:
    out, clock = io.StringIO(), Clock()
    progress.configure(enabled=True, stream=out)
    try:
        bar = Tracker("embedding", 10, "passage", weight=100.0, clock=clock)
        clock.now += 1
        bar.update(2, weight=10)  # 1 s < 2 s: no line yet
        assert out.getvalue() == ""
        clock.now += 1
        bar.update(2, weight=10)  # 2 s: 4 passages, 20 of 100 characters: 8 s left
        clock.now += 4
        bar.update(6, weight=80)  # done: no progress line at 100%, the closing line says it
        bar.close()
    finally:
        progress.configure(enabled=False)
    lines = out.getvalue().splitlines()
    assert lines == ["dedup: embedding 4/10 passages, 2/s, eta 8s", "dedup: embedding 10 passages in 6s, 1.7/s"], lines


def test_the_time_left_is_weighed_not_counted() -> None:
    """Short passages first: by count a quarter is done, by characters a tenth; the estimate follows the characters."""
    clock = Clock()
    bar = Tracker("embedding", 100, "passage", weight=1000.0, show=False, clock=clock)
    clock.now += 10
    bar.update(25, weight=100)
    assert bar.eta() == pytest.approx(90.0)  # counted, it would say 30 s


def test_the_time_left_fits_a_cost_per_unit_and_per_character() -> None:
    """Three steps of 10 passages each: 0.1 s a passage plus 0.01 s a character; the rest costs the same."""
    clock = Clock()
    bar = Tracker("embedding", 50, "passage", weight=2000.0, show=False, clock=clock)
    for seconds, chars in ((2.0, 100), (4.0, 300), (6.0, 500)):
        clock.now += seconds
        bar.update(10, weight=chars)
    assert bar.eta() == pytest.approx(20 * 0.1 + 1100 * 0.01)  # 13 s; by characters alone: 14.7 s
    clock.now += 30.0  # a slow step (a busy machine) counts too, as one step among four
    bar.update(10, weight=500)
    assert bar.eta() is not None and bar.eta() > 10 * 0.1 + 600 * 0.01


def test_silent_unless_enabled_or_asked() -> None:
    out = io.StringIO()
    progress.configure(enabled=False, stream=out)
    try:
        with track("embedding", 3, "passage") as bar:
            bar.update(3)
        with stage("loading model x"):
            pass
    finally:
        progress.configure(enabled=False)
    assert bar.done == 3 and out.getvalue() == ""


def test_a_stage_says_it_is_still_working(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_INTERVAL, "0.05")
    out = io.StringIO()
    progress.configure(enabled=False, stream=out)
    with stage("loading model x", show=True):  # asked for: shown even though progress is off
        deadline = time.monotonic() + 30
        while "..." not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)  # polling with a deadline
    text = out.getvalue()
    progress.configure(enabled=False)
    assert re.search(r"^dedup: loading model x \.\.\. \d+s$", text, re.M), text
    assert re.search(r"^dedup: loading model x: done in \d+s$", text, re.M), text


def test_stage_uses_the_configured_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_INTERVAL, "0.05")
    out = io.StringIO()
    progress.configure(enabled=True, stream=out)
    try:
        with stage("building"):
            deadline = time.monotonic() + 30
            while "..." not in out.getvalue() and time.monotonic() < deadline:
                time.sleep(0.01)  # polling with a deadline
    finally:
        progress.configure(enabled=False)
    assert "dedup: building ..." in out.getvalue()


@pytest.mark.parametrize(("raw", "expected"), [("", 5.0), ("0.5", 0.5), ("x", 5.0), ("-1", 5.0), ("nan", 5.0)])
def test_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch, raw: str, expected: float) -> None:
    monkeypatch.setenv(ENV_INTERVAL, raw)
    assert progress.interval() == expected


def test_duration() -> None:
    assert [duration(s) for s in (0, 59.4, 60, 3599, 3600, -3)] == ["0s", "59s", "1m00s", "59m59s", "1h00m", "0s"]


# ---------------------------------------------------------------- the command, piped
def _feed(path: Path, n: int) -> Path:
    rows = [
        {
            "id": f"a{k}",
            "title": f"Report {k} on harbour {k % 7} works",
            "text": f"Crews at harbour {k % 7} finished stage {k} of the works on day {k % 28 + 1}.",
            "lang": "en",
            "date": f"2025-01-{k % 28 + 1:02d}",
        }
        for k in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


def _dedup(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, ENV_INTERVAL: "0", "DEDUP_CACHE_DIR": str(tmp / "cache"), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "tests.fake_cli", *args],
        capture_output=True,  # stderr is a pipe, not a terminal
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
        check=False,
    )


def test_without_a_terminal_progress_lines_go_to_stderr_and_q_silences_them(tmp_path: Path) -> None:
    feed = _feed(tmp_path / "feed.jsonl", 300)  # 600 passages: embedded in chunks
    proc = _dedup(["add", "--no-cache", "--store", str(tmp_path / "s"), str(feed)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    embedding = [m for m in map(LINE.match, proc.stderr.splitlines()) if m]
    counts = [int(m[1]) for m in embedding]
    assert len(counts) >= 2 and counts == sorted(set(counts)) and counts[-1] < 600, proc.stderr
    assert {int(m[2]) for m in embedding} == {600}, proc.stderr
    assert all(m[3] for m in embedding), proc.stderr  # with the time left
    assert re.search(r"^dedup: embedding 600 passages in \d+s, [\d.e+]+/s$", proc.stderr, re.M), proc.stderr
    assert "\r" not in proc.stderr and "%|" not in proc.stderr  # lines, not bars

    proc = _dedup(["check", "--no-cache", "--store", str(tmp_path / "s"), "--json", str(feed)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^dedup: checking 150/300 articles, ", proc.stderr, re.M), proc.stderr
    assert len(proc.stdout.splitlines()) == 300  # stdout holds the results only

    proc = _dedup(["cluster", "--no-cache", "--window-days", "0", "--json", str(feed)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^dedup: verifying candidates of 299/300 articles, ", proc.stderr, re.M), proc.stderr

    proc = _dedup(["cluster", "--no-cache", "--window-days", "7", "--json", str(feed)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^dedup: clustering 1/\d+ windows, ", proc.stderr, re.M), proc.stderr

    for args in (["add", "-q", "--store", str(tmp_path / "q")], ["check", "-q", "--store", str(tmp_path / "s")]):
        proc = _dedup([*args, "--no-cache", str(feed)], tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == "", proc.stderr
