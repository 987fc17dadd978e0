"""Hostile inputs through every door: the CLI (add, check, cluster), ``stream`` and the HTTP API.

The same generated JSONL lines (:mod:`tests.hostile`) go through each door. What must hold
for every one of them: no traceback and no "internal error" from the CLI (exit 0 or 2 only),
no exception out of :func:`run_stream`, no HTTP 500 (every error a JSON ``{error, detail,
errors}``). Each test runs all its examples (no stop at the first failure), then lists every
failure, grouped by message, so one run shows all the open findings at once. The counts are
printed in the "reliability figures" summary.
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dedup.detect.detector
from dedup import Config, Detector
from dedup.cli import main
from dedup.errors import InputError
from dedup.serve.http import ServiceLimits, create_app
from dedup.serve.shared import SharedDetector
from dedup.serve.stream import run_stream

from . import hostile
from .conftest import HashEncoder

SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "suppress_health_check": list(HealthCheck),
    "database": None,
}
CLI_RUNS, STREAM_FEEDS, STREAM_CLI_RUNS, HTTP_REQUESTS = 200, 150, 30, 300
SEED = b'{"id": "seed", "title": "Hanoi talks", "text": "Ministers met in Hanoi on Sunday."}\n'

# door -> [inputs tried, runs, tracebacks or internal errors, HTTP 500s]
TALLY: dict[str, list[int]] = {}


def _figure(figures: list[str], door: str, inputs: int, runs: int, crashes: int, errors_500: int = 0) -> None:
    TALLY[door] = [inputs, runs, crashes, errors_500]
    total = [sum(v[i] for v in TALLY.values()) for i in range(4)]
    doors = ", ".join(f"{k} {v[0]} in {v[1]} runs" for k, v in TALLY.items())
    line = f"hostile-input fuzz: {total[0]} inputs ({doors}); {total[2]} tracebacks/internal errors, {total[3]} HTTP 500s"
    figures[:] = [f for f in figures if not f.startswith("hostile-input fuzz:")] + [line]


def _grouped(failures: list[tuple[str, str]]) -> str:
    """Failures grouped by their message with numbers and quoted values blanked, most frequent first."""
    groups: Counter[str] = Counter()
    example: dict[str, str] = {}
    for message, case in failures:
        key = re.sub(r"\d+", "N", message)[:200]
        groups[key] += 1
        example.setdefault(key, case)
    return "\n".join(f"{n} x {key}\n    e.g. {example[key][:300]}" for key, n in groups.most_common())


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = HashEncoder(dim=64)
    monkeypatch.setattr(dedup.detect.detector, "load_encoder", lambda model, **kwargs: encoder)


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> tuple[int, str, str]:
    """Exit code, stdout, and stderr with the log records (a record carrying an exception counts as a traceback)."""
    caplog.clear()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    logged = "\n".join(r.getMessage() + ("\nTraceback" if r.exc_info else "") for r in caplog.records)
    return code, captured.out, f"{captured.err}\n{logged}"


def _cli_failure(code: int, output: str) -> str | None:
    if "Traceback" in output:
        return "traceback: " + output[output.index("Traceback") :][-300:]
    if "internal error" in output:
        return next(line for line in output.splitlines() if "internal error" in line)
    if code not in (0, 2):
        return f"exit {code}: {output.strip()[-300:]}"
    return None


@pytest.mark.usefixtures("fake_model")
def test_hostile_jsonl_through_the_cli_gives_exit_0_or_2_never_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, figures: list[str]
) -> None:
    store = tmp_path / "s.store"
    (tmp_path / "seed.jsonl").write_bytes(SEED)
    assert _run_cli(["add", "-q", "--store", str(store), str(tmp_path / "seed.jsonl")], capsys, caplog)[0] == 0
    failures: list[tuple[str, str]] = []
    count = Counter[str]()

    @settings(max_examples=CLI_RUNS, **SETTINGS)
    @given(
        batch=st.lists(hostile.lines, min_size=1, max_size=4),
        command=st.sampled_from(["add", "check", "check --json", "check --top 2", "cluster", "cluster --json"]),
        skip=st.booleans(),
    )
    def one(batch: list[bytes], command: str, skip: bool) -> None:
        path = tmp_path / "feed.jsonl"
        path.write_bytes(hostile.feed(batch))
        name, *flags = command.split()
        where = [] if name == "cluster" else ["--store", str(store)]
        argv = [name, "-q", *flags, *where, *(["--skip-invalid"] if skip else []), str(path)]
        code, out, err = _run_cli(argv, capsys, caplog)
        count["runs"] += 1
        count["lines"] += len(batch)
        failure = _cli_failure(code, out + err)
        if failure is not None:
            failures.append((failure, f"{command}: {batch!r}"))

    one()
    _figure(figures, "cli", count["lines"], count["runs"], len(failures))
    assert count["runs"] >= CLI_RUNS * 0.9, count
    assert not failures, f"{len(failures)} of {count['runs']} CLI runs crashed:\n{_grouped(failures)}"


def test_hostile_jsonl_through_run_stream_never_raises(tmp_path: Path, figures: list[str]) -> None:
    service = SharedDetector.open(tmp_path / "s", Config(max_article_chars=5000), encoder=HashEncoder(dim=64), create=True)
    failures: list[tuple[str, str]] = []
    count = Counter[str]()

    @settings(max_examples=STREAM_FEEDS, **SETTINGS)
    @given(batch=st.lists(hostile.lines, min_size=1, max_size=6), add=st.booleans())
    def one(batch: list[bytes], add: bool) -> None:
        out = io.StringIO()
        errors: list[InputError] = []
        count["runs"] += 1
        count["lines"] += len(batch)
        try:
            report = run_stream(service, io.BytesIO(hostile.feed(batch)), out, on_error=errors.append, add=add, max_chars=5000)
        except Exception as exc:
            failures.append((f"{type(exc).__name__}: {exc}", repr(batch)))
            return
        verdicts = [json.loads(x) for x in out.getvalue().split("\n") if x]  # JSONL: split on \n only
        if report.checked != len(verdicts) or report.rejected != len(errors) or report.lines != len(batch):
            failures.append((f"miscounted: {report} for {len(verdicts)} verdicts, {len(errors)} errors", repr(batch)))

    one()
    _figure(figures, "stream", count["lines"], count["runs"], len(failures))
    assert count["runs"] >= STREAM_FEEDS * 0.9, count
    assert not failures, f"{len(failures)} of {count['runs']} feeds crashed run_stream:\n{_grouped(failures)}"


@pytest.mark.usefixtures("fake_model")
def test_hostile_jsonl_through_the_stream_command_gives_exit_0_or_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    figures: list[str],
) -> None:
    store = tmp_path / "s"
    failures: list[tuple[str, str]] = []
    count = Counter[str]()

    @settings(max_examples=STREAM_CLI_RUNS, **SETTINGS)
    @given(batch=st.lists(hostile.lines, min_size=1, max_size=6))
    def one(batch: list[bytes]) -> None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(hostile.feed(batch)), encoding="utf-8"))
        code, out, err = _run_cli(["stream", "--store", str(store), "--create"], capsys, caplog)
        count["runs"] += 1
        count["lines"] += len(batch)
        failure = _cli_failure(code, out + err)
        if failure is not None:
            failures.append((failure, repr(batch)))
        for line in out.split("\n"):  # stdout: one JSON verdict per line, nothing else
            if line:
                json.loads(line)

    one()
    _figure(figures, "stream command", count["lines"], count["runs"], len(failures))
    assert not failures, f"{len(failures)} of {count['runs']} stream runs crashed:\n{_grouped(failures)}"


query_values = st.one_of(
    hostile.odd_text,
    st.sampled_from([*hostile.BAD_DATES, "9" * 5000, "-1", "nan", "1e999", "0", "story-0001", "seed", "%00", "\x00"]),
)
GET_ROUTES: dict[str, Callable[[str, str], tuple[str, dict[str, str]]]] = {
    "/stories": lambda a, b: ("/stories", {"date_from": a, "date_to": b, "lang": a[:16], "min_size": b, "offset": a}),
    "/story": lambda a, b: ("/story", {"id": a}),
    "/article": lambda a, b: ("/article", {"id": a}),
    "/neighbours": lambda a, b: ("/neighbours", {"id": a, "top": b}),
    "/evidence": lambda a, b: ("/evidence", {"a": a, "b": b}),
    "/stories/{id}": lambda a, b: ("/stories/" + quote(a.encode("utf-8", "surrogatepass"), safe=""), {}),
}


def test_hostile_jsonl_and_query_params_through_http_never_500(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, figures: list[str]
) -> None:
    detector = Detector.open(tmp_path / "s", Config(max_article_chars=5000), encoder=HashEncoder(dim=64), create=True)
    client = TestClient(
        create_app(SharedDetector(detector), limits=ServiceLimits(max_body_bytes=256 * 1024, max_batch=5, max_top=5)),
        raise_server_exceptions=False,
    )
    seeded = client.post("/add", content=b'{"articles": [' + SEED.strip() + b"]}", headers={"Content-Type": "application/json"})
    assert seeded.status_code == 200, seeded.text
    failures: list[tuple[str, str]] = []
    statuses = Counter[int]()
    count = Counter[str]()

    def look(response: object, case: str) -> None:
        status = response.status_code  # type: ignore[attr-defined]
        statuses[status] += 1
        count["requests"] += 1
        try:
            body = response.json()  # type: ignore[attr-defined]
        except ValueError:
            failures.append((f"{status}: not JSON", case))
            return
        if status >= 500:  # the server logged the exception: name it
            logged = [r.exc_info[1] for r in caplog.records if r.exc_info and r.exc_info[1] is not None]
            cause = f"{type(logged[-1]).__name__}: {logged[-1]}" if logged else body.get("detail")
            failures.append((f"{status}: {cause}", case))
        elif status >= 400 and not (set(body) == {"error", "detail", "errors"} and body["detail"]):
            failures.append((f"{status}: not an error body: {body}", case))
        caplog.clear()

    @settings(max_examples=HTTP_REQUESTS, **SETTINGS)
    @given(
        batch=st.lists(hostile.lines, min_size=1, max_size=4),
        path=st.sampled_from(["/check", "/add", "/check-and-add", "/cluster", *GET_ROUTES]),
        option=st.sampled_from([None, None, "top", "explain", "with_store", "replace"]),
        value=st.one_of(st.sampled_from([b"1", b"true", b"0"]), hostile.raw_values),
        a=query_values,
        b=query_values,
    )
    def one(batch: list[bytes], path: str, option: str | None, value: bytes, a: str, b: str) -> None:
        if path in GET_ROUTES:
            url, params = GET_ROUTES[path](a, b)
            look(client.get(url, params=params), f"GET {url} {params!r}")
            return
        more = b"" if option is None else b', "' + option.encode() + b'": ' + value
        body = b'{"articles": [' + b", ".join(batch) + b"]" + more + b"}"
        count["lines"] += len(batch)
        look(client.post(path, content=body, headers={"Content-Type": "application/json"}), f"POST {path} {body[:300]!r}")

    one()
    by_status = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
    errors_500 = sum(n for s, n in statuses.items() if s >= 500)
    _figure(figures, "http", count["requests"], count["requests"], 0, errors_500)
    figures.append(f"hostile-input fuzz, http statuses: {by_status}")
    assert count["requests"] >= HTTP_REQUESTS * 0.9, count
    assert statuses[200] > 10 and statuses[422] > 10, statuses  # the fuzz reaches the endpoints, not only the gate
    assert not failures, f"{len(failures)} of {count['requests']} requests failed:\n{_grouped(failures)}"
