"""The ``dedup`` command as a user runs it: exit codes, messages, machine output."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from dedup.cli import EXIT_INPUT, EXIT_INTERNAL, EXIT_MODEL, EXIT_OK, EXIT_STORE, main

from .conftest import ROOT, TRUE_PAIR


def test_help_lists_subcommands_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ("add", "check", "cluster", "exit codes", "3 store error"):
        assert word in out


def test_bad_input_exits_2_naming_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "feed.jsonl"
    bad.write_text('{"id": "a", "title": "x"}\n{"id": "b", "title": \n', "utf-8")
    assert main(["cluster", str(bad)]) == EXIT_INPUT
    assert f"{bad}:2: malformed JSON" in capsys.readouterr().err


def test_missing_store_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--store", str(tmp_path / "none"), str(ROOT / "data")]) == EXIT_STORE
    assert "no store at" in capsys.readouterr().err


def test_bad_threshold_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cluster", "--threshold", "2", str(ROOT / "data")]) == EXIT_INPUT
    assert "threshold must be in [0, 1], got 2.0" in capsys.readouterr().err


@pytest.mark.model
def test_cluster_demo_corpus_and_check_against_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "stories.jsonl"
    assert main(["cluster", "-q", str(ROOT / "data"), "--out", str(out_file)]) == EXIT_OK
    summary = capsys.readouterr().out
    assert "5 articles -> 4 stories" in summary
    rows = [json.loads(line) for line in out_file.read_text("utf-8").splitlines()]
    story = {r["id"]: r["__story__"] for r in rows}
    assert story[TRUE_PAIR[0]] == story[TRUE_PAIR[1]] and len(set(story.values())) == 4

    store = tmp_path / "s.store"
    data = sorted((ROOT / "data").glob("*.txt"))
    assert main(["add", "-q", "--store", str(store), *map(str, data[:4])]) == EXIT_OK
    assert "added 4" in capsys.readouterr().out
    assert main(["add", "-q", "--json", "--store", str(store), str(data[0])]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["unchanged"] == 1
    assert main(["check", "-q", "--json", "--top", "2", "--store", str(store), str(data[4])]) == EXIT_OK
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["id"] == TRUE_PAIR[1] and verdict["duplicate"] is True
    assert verdict["matches"][0]["id"] == TRUE_PAIR[0] and verdict["matches"][0]["duplicate"]
    assert len(verdict["matches"]) == 3 and verdict["matches"][0]["aligned"]
    assert main(["check", "-q", "--store", str(store), str(data[4])]) == EXIT_OK
    text = capsys.readouterr().out
    assert f"{TRUE_PAIR[1]} [en, 2025-01-12]: DUPLICATE" in text and f"duplicate of {TRUE_PAIR[0]}" in text


@pytest.mark.model
def test_stdin_and_installed_entry_point(tmp_path: Path) -> None:
    seed = next((ROOT / "data").glob("004_*.txt")).read_text("utf-8")
    line = json.dumps({"id": "x", "title": seed.split("\n", 1)[0], "text": seed.split("\n", 1)[1], "date": "2025-01-12"})
    proc = subprocess.run(
        [sys.executable, "-m", "dedup", "cluster", "--json", "-q", "-", str(ROOT / "data")],
        input=line + "\n",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {json.loads(r)["id"]: json.loads(r)["__story__"] for r in proc.stdout.splitlines()}
    assert rows["x"] == rows[TRUE_PAIR[1]] == rows[TRUE_PAIR[0]]


#: Flags a subcommand must not show (the issue: every flag appeared on every subcommand).
FOREIGN_FLAGS = {
    "add": ["--threshold", "--max-date-gap", "--candidates", "--top", "--out", "--html"],
    "check": ["--replace", "--out", "--html", "--engine"],
    "cluster": ["--index", "--recall-floor", "--archive", "--replace", "--top"],
    "serve": ["--skip-invalid", "--json", "--out", "--top"],
    "stream": ["--skip-invalid", "--host", "--html"],
    "bench": ["--threshold", "--skip-invalid", "--no-cache", "--index", "--out "],
    "eval": ["--index", "--skip-invalid", "--out "],
    "info": ["--model", "--threshold", "-q"],
    "model": ["--model", "--store", "--threshold"],
}


@pytest.mark.parametrize("command", sorted(FOREIGN_FLAGS))
def test_each_subcommand_shows_its_own_flags_and_exit_codes(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: dedup {command}")
    assert not [flag for flag in FOREIGN_FLAGS[command] if flag in text.replace("--out-dir", "")], text
    codes = text.split("exit codes:\n", 1)[1]
    assert "  0  " in codes and "  1  internal error" in codes and "  2  usage" in codes, codes
    assert ("  3  store error" in codes) == (command not in ("bench", "eval", "model")), codes
    if command != "info":
        assert "-q, --quiet" in text
    if command not in ("serve", "stream"):
        assert "--json" in text


def test_info_describes_an_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import dedup.detect.archive
    import dedup.detect.detector

    from .conftest import HashEncoder

    encoder = HashEncoder()
    monkeypatch.setattr(dedup.detect.detector, "load_encoder", lambda model, **kwargs: encoder)
    monkeypatch.setattr(dedup.detect.archive, "load_encoder", lambda model, **kwargs: encoder)
    rows = [("a", "2025-01-03"), ("b", "2025-01-20"), ("c", "2025-02-01"), ("d", None)]
    feed = _feed(
        tmp_path / "f.jsonl",
        *(json.dumps({"id": i, "title": f"Story {i}", "lang": "en", **({"date": d} if d else {})}) for i, d in rows),
    )
    archive = tmp_path / "a"
    assert main(["add", "-q", "--no-cache", "--archive", str(archive), str(feed)]) == EXIT_OK
    capsys.readouterr()
    assert main(["info", "--archive", str(archive)]) == EXIT_OK
    text = capsys.readouterr().out
    assert "4 articles in 3 shard(s), model test/hash-encoder (512 dimensions)" in text
    assert "  2025-01: 2 articles" in text and "  undated: 1 articles" in text
    assert main(["info", "--json", "--archive", str(archive)]) == EXIT_OK
    about = json.loads(capsys.readouterr().out)
    assert about == {
        "archive": str(archive),
        "articles": 4,
        "model": "test/hash-encoder",
        "dim": 512,
        "shards": {"2025-01": 2, "2025-02": 1, "undated": 1},
    }
    assert main(["info", "--store", str(archive)]) == EXIT_STORE  # an archive is not a store


def test_info_describes_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dedup.search.store import Store

    Store.create(tmp_path / "s", "test/model", 8)
    assert main(["info", "--store", str(tmp_path / "s")]) == EXIT_OK
    text = capsys.readouterr().out
    assert "0 articles, model test/model (8 dimensions)" in text and "index: flat (exact)" in text
    assert main(["info", "--json", "--store", str(tmp_path / "s")]) == EXIT_OK
    info = json.loads(capsys.readouterr().out)
    plan = info.pop("index_plan")
    reason = info.pop("index_reason")
    assert info == {"store": str(tmp_path / "s"), "articles": 0, "model": "test/model", "dim": 8, "index": "flat"}
    assert plan["kind"] == "flat" and plan["requested"] == "auto" and reason.startswith("flat (exact)")
    assert main(["info", "--store", str(tmp_path / "nothing")]) == EXIT_STORE


def test_unknown_model_offline_exits_4_and_says_what_to_do(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["cluster", "-q", "--model", "no-such-org/no-such-model", str(ROOT / "data")]) == EXIT_MODEL
    err = capsys.readouterr().err
    assert "no-such-org/no-such-model" in err and "model error" in err


def test_model_command_builds_the_default_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEDUP_CACHE_DIR", str(tmp_path))
    assert main(["model"]) == EXIT_OK
    assert str(tmp_path) in capsys.readouterr().out
    assert (tmp_path / "models").is_dir()


def test_serve_and_stream_are_listed_and_a_missing_fastapi_says_what_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "serve" in out and "stream" in out
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi now raises ImportError
    monkeypatch.delitem(sys.modules, "dedup.serve.http", raising=False)
    assert main(["serve", "--store", str(tmp_path / "s")]) == EXIT_MODEL
    err = capsys.readouterr().err
    assert "dedup serve needs the package 'fastapi'" in err and "pip install 'dedup[serve]'" in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--engine", "ray", "--html", "r.html"], "--html works with the local engine only"),
        (["--engine", "ray", "--store", "s"], "--store works with the local engine only"),
        (["--engine", "local", "--ray-address", "127.0.0.1:1"], "--ray-address runs on Ray"),
        (["--engine", "ray", "--workers", "0"], "--workers must be at least 1"),
        (["--window-days", "-1"], "window_days must be a non-negative integer"),
    ],
)
def test_cluster_engine_options_are_checked_before_any_work(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cluster", "-q", *flags, str(ROOT / "data")]) == EXIT_INPUT
    assert message in capsys.readouterr().err


def test_ray_engine_refuses_stdin(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ray")
    assert main(["cluster", "-q", "--engine", "ray", "-"]) == EXIT_INPUT
    assert "reads files, not stdin" in capsys.readouterr().err


# ------------------------------------------------- issue 14: nothing a client sends may break a store
@pytest.fixture
def hash_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI loads the fake encoder instead of a model."""
    from .conftest import HashEncoder

    encoder = HashEncoder()
    monkeypatch.setattr("dedup.detect.detector.load_encoder", lambda model, **kwargs: encoder)


def _feed(path: Path, *lines: str) -> Path:
    path.write_text("".join(f"{x}\n" for x in lines), "utf-8")
    return path


def test_issue14_cli_add_keeps_raw_line_separators(tmp_path: Path, capsys: pytest.CaptureFixture[str], hash_model: None) -> None:
    text = "Heavy rain\u2028flooded Porto\u2029overnight\x85and more."
    feed = _feed(
        tmp_path / "f.jsonl",
        json.dumps({"id": "a", "title": "Floods\u2028in Porto", "text": text, "lang": "en"}, ensure_ascii=False),
    )
    store = tmp_path / "s"
    assert main(["add", "-q", "--no-cache", "--store", str(store), str(feed)]) == EXIT_OK
    assert "Traceback" not in capsys.readouterr().err
    assert main(["info", "--json", "--store", str(store)]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["articles"] == 1
    from dedup.search.store import Store

    stored = Store.open(store).get("a")
    assert (stored.title, stored.text) == ("Floods\u2028in Porto", text)


def test_issue14_cli_far_date_exits_2_naming_file_line_and_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hash_model: None
) -> None:
    feed = _feed(
        tmp_path / "f.jsonl", '{"id": "a", "title": "ok", "lang": "en"}', '{"id": "b", "title": "far", "date": "9999-12"}'
    )
    for command in ("add", "check", "cluster"):
        store = [] if command == "cluster" else ["--store", str(tmp_path / "s")]
        assert main([command, "-q", "--no-cache", *store, str(feed)]) == EXIT_INPUT
        err = capsys.readouterr().err
        assert f"{feed}:2: article 'b': 'date' '9999-12' is outside 1900-01-01 to 2100-12-31" in err and "Traceback" not in err


def test_issue14_cli_huge_integer_exits_2_or_is_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, hash_model: None
) -> None:
    feed = _feed(
        tmp_path / "f.jsonl", '{"id": "a", "title": "ok", "lang": "en"}', '{"id": "b", "title": "x", "n": 1' + "0" * 5000 + "}"
    )
    store = tmp_path / "s"
    assert main(["add", "-q", "--no-cache", "--store", str(store), str(feed)]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert f"{feed}:2: JSON integer with more than 4300 digits" in err and "Traceback" not in err
    assert main(["add", "--no-cache", "--skip-invalid", "--json", "--store", str(store), str(feed)]) == EXIT_OK
    captured = capsys.readouterr()
    assert json.loads(captured.out)["added"] == 1 and "Traceback" not in captured.err
    assert "skipped 1 record" in captured.err and f"{feed}:2: JSON integer with more than 4300 digits" in caplog.text


# ----------------------------------------------------------------- bad input: a clear error, never a traceback
@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI in process with the instant fake encoder (as tests/fake_cli.py does); serve never binds or runs."""
    import dedup.detect.detector
    import dedup.serve.http

    from .conftest import HashEncoder

    encoder = HashEncoder()
    monkeypatch.setattr(dedup.detect.detector, "load_encoder", lambda model, **kwargs: encoder)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the bad-input table must never reach listen() or serve()")

    monkeypatch.setattr(dedup.serve.http, "listen", refuse)
    monkeypatch.setattr(dedup.serve.http, "serve", refuse)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str], stdin: bytes = b"") -> tuple[int, str, str]:
    """Exit code, stdout, stderr of ``dedup ARGV`` in process (argparse's SystemExit is an exit code too)."""
    saved = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.stdin = saved
    captured = capsys.readouterr()
    return code, captured.out, captured.err


OK_LINE = b'{"id": "a", "title": "Hanoi talks", "text": "Ministers met in Hanoi on Sunday."}\n'


def row(name: str, argv: Callable[[Path], list[str]], code: int, words: list[str], marks: object = ()) -> object:
    return pytest.param(argv, code, words, id=name, marks=marks)


def _damaged(tmp: Path, damage: Callable[[Path], None]) -> Path:
    damage(tmp / "s")
    return tmp / "s"


def _manifest_of_wrong_shape(store: Path) -> None:
    manifest = json.loads((store / "manifest.json").read_text("utf-8"))
    manifest["segments"] = "not a list"
    (store / "manifest.json").write_text(json.dumps(manifest), "utf-8")


def _lock_as_folder(store: Path) -> None:
    (store / ".lock").unlink(missing_ok=True)
    (store / ".lock").mkdir()


def _file(tmp: Path, name: str, data: bytes) -> Path:
    (tmp / name).write_bytes(data)
    return tmp / name


def _jsonl(tmp: Path, data: bytes) -> str:
    (tmp / "in.jsonl").write_bytes(data)
    return str(tmp / "in.jsonl")


# Each row: its name, dedup's arguments (built in tmp_path), the exit code, words the message must hold.
BAD_INPUTS = [
    row("cluster --out in a missing folder", lambda t: ["cluster", _jsonl(t, OK_LINE), "--out", str(t / "no" / "x.jsonl")],
     2, ["--out", "does not exist"]),
    row("cluster --out a folder", lambda t: ["cluster", _jsonl(t, OK_LINE), "--out", str(t)], 2, ["--out", "is a folder"]),
    row("cluster --html in a missing folder", lambda t: ["cluster", _jsonl(t, OK_LINE), "--html", str(t / "no" / "r.html")],
     2, ["--html", "does not exist"]),
    row("check --top -1", lambda t: ["check", "--store", str(t / "s"), "--top", "-1", _jsonl(t, OK_LINE)], 2, ["--top", "-1"]),
    row("check --top huge", lambda t: ["check", "--store", str(t / "s"), "--top", "9" * 5000, _jsonl(t, OK_LINE)],
     2, ["--top", "integer"]),
    row("stream --top -1", lambda t: ["stream", "--store", str(t / "s"), "--top", "-1"], 2, ["--top", "-1"]),
    row("serve --max-body-mb nan", lambda t: ["serve", "--store", str(t / "s"), "--max-body-mb", "nan"],
     2, ["--max-body-mb", "'nan'"]),
    row("serve --max-body-mb inf", lambda t: ["serve", "--store", str(t / "s"), "--max-body-mb", "inf"],
     2, ["--max-body-mb", "'inf'"]),
    row("serve --max-body-mb 0", lambda t: ["serve", "--store", str(t / "s"), "--max-body-mb", "0"], 2, ["--max-body-mb"]),
    row("serve --max-body-mb -1", lambda t: ["serve", "--store", str(t / "s"), "--max-body-mb", "-1"], 2, ["--max-body-mb"]),
    row("serve --read-timeout nan", lambda t: ["serve", "--store", str(t / "s"), "--read-timeout", "nan"], 2, ["--read-timeout"]),
    row("serve --keep-alive 0", lambda t: ["serve", "--store", str(t / "s"), "--keep-alive", "0"], 2, ["--keep-alive"]),
    row("serve --limit-concurrency 0", lambda t: ["serve", "--store", str(t / "s"), "--limit-concurrency", "0"],
     2, ["--limit-concurrency"]),
    row("serve --max-request-chars x", lambda t: ["serve", "--store", str(t / "s"), "--max-request-chars", "x"],
     2, ["--max-request-chars", "'x'"]),
    row("serve --port 70000", lambda t: ["serve", "--store", str(t / "s"), "--port", "70000"], 2, ["70000"]),
    row("serve on a public address without a token", lambda t: ["serve", "--store", str(t / "s"), "--host", "0.0.0.0"],
     2, ["0.0.0.0", "--token", "--insecure"]),
    row("cluster --threshold nan", lambda t: ["cluster", "--threshold", "nan", _jsonl(t, OK_LINE)], 2, ["--threshold", "nan"]),
    row("cluster --threshold 2", lambda t: ["cluster", "--threshold", "2", _jsonl(t, OK_LINE)], 2, ["threshold", "2.0"]),
    row("add --recall-floor inf", lambda t: ["add", "--store", str(t / "s"), "--recall-floor", "inf", _jsonl(t, OK_LINE)],
     2, ["--recall-floor", "inf"]),
    row("cluster --max-chars 0", lambda t: ["cluster", "--max-chars", "0", _jsonl(t, OK_LINE)], 2, ["max_article_chars"]),
    row("eval --held-days -1", lambda t: ["eval", "--held-days", "-1", _jsonl(t, OK_LINE)], 2, ["--held-days"]),
    row("malformed JSONL", lambda t: ["cluster", _jsonl(t, b'{"id": "a", "title": \n')], 2, ["in.jsonl:1", "malformed JSON"]),
    row("JSONL not UTF-8", lambda t: ["cluster", _jsonl(t, b'{"id": "a", "title": "caf\xe9"}\n')], 2, ["in.jsonl:1", "UTF-8"]),
    row("missing input file", lambda t: ["cluster", str(t / "nothing.jsonl")], 2, ["nothing.jsonl"]),
    row("check on a missing store", lambda t: ["check", "--store", str(t / "none"), _jsonl(t, OK_LINE)], 3, ["no store at"]),
    row("info on a missing store", lambda t: ["info", "--store", str(t / "none")], 3, ["no store at"]),
    row("stream on a missing store", lambda t: ["stream", "--store", str(t / "none")],
     3, ["no store at", "dedup stream --store", "--create"]),
    row(
        "5,000-digit integer in a JSONL file",
        lambda t: ["cluster", _jsonl(t, b'{"id": "a", "title": "t", "n": ' + b"9" * 5000 + b"}\n")],
        2, ["in.jsonl:1"],
    ),
    row(
        "date 9999-12", lambda t: ["cluster", _jsonl(t, b'{"id": "a", "title": "t", "date": "9999-12"}\n')],
        2, ["in.jsonl:1", "9999-12"],
    ),
    row(
        "date with trailing junk",
        lambda t: ["cluster", _jsonl(t, b'{"id": "a", "title": "t", "date": "2025-01-01 garbage"}\n')],
        2, ["in.jsonl:1", "garbage"],
    ),
    row("a .csv input", lambda t: ["cluster", str(_file(t, "feed.csv", b"id,title\na,x\n"))], 2, ["'.csv'", ".jsonl", ".txt"]),
    row("an input without extension", lambda t: ["add", "--store", str(t / "s"), str(_file(t, "feed", OK_LINE))],
     2, ["no extension", ".jsonl"]),
    row("a .CSV input to check", lambda t: ["check", "--store", str(t / "s"), str(_file(t, "f.CSV", OK_LINE))], 2, [".csv"]),
    row("unknown flag of a subcommand", lambda t: ["cluster", "--bogus", _jsonl(t, OK_LINE)],
     2, ["usage: dedup cluster", "unrecognized arguments: --bogus"]),
    row("a flag of another subcommand", lambda t: ["add", "--store", str(t / "s"), "--threshold", "0.5", _jsonl(t, OK_LINE)],
     2, ["usage: dedup add", "--threshold"]),
    row("cluster --index (not a cluster flag)", lambda t: ["cluster", "--index", "flat", _jsonl(t, OK_LINE)],
     2, ["usage: dedup cluster", "--index"]),
    row("bench --out (now --out-dir)", lambda t: ["bench", "--out", str(t)], 2, ["usage: dedup bench", "--out-dir"]),
    row("eval --out (now --out-dir)", lambda t: ["eval", _jsonl(t, OK_LINE), "--out", str(t)], 2, ["dedup eval", "--out-dir"]),
    row("info without --store or --archive", lambda t: ["info"], 2, ["usage: dedup info", "--store", "--archive"]),
    row("info on a missing archive", lambda t: ["info", "--archive", str(t / "none")], 3, ["no archive at"]),
    row(
        "manifest of the wrong shape",
        lambda t: ["check", "--store", str(_damaged(t, _manifest_of_wrong_shape)), _jsonl(t, OK_LINE)],
        3, ["manifest"],
    ),
    row(
        ".lock is a folder",
        lambda t: ["add", "--store", str(_damaged(t, _lock_as_folder)), _jsonl(t, OK_LINE.replace(b'"a"', b'"b"'))],
        3, [".lock"],
    ),
]  # fmt: skip


@pytest.mark.usefixtures("fake_model")
@pytest.mark.parametrize(("argv", "code", "words"), BAD_INPUTS)
def test_bad_input_table_gives_exit_2_or_3_naming_the_value_and_never_a_traceback(
    argv: Callable[[Path], list[str]],
    code: int,
    words: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / "seed.jsonl").write_bytes(OK_LINE)
    assert run_cli(["add", "-q", "--store", str(tmp_path / "s"), str(tmp_path / "seed.jsonl")], capsys)[0] == EXIT_OK
    got, out, err = run_cli(argv(tmp_path), capsys)
    everything = out + err + caplog.text
    assert "Traceback" not in everything and "internal error" not in everything, everything
    assert got == code, f"exit {got}, expected {code}: {err}"
    assert all(word in err for word in words), (words, err)


@pytest.mark.usefixtures("fake_model")
def test_serve_on_a_missing_store_suggests_its_own_create(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dedup.serve.http

    monkeypatch.setattr(dedup.serve.http, "listen", lambda host, port: None)  # the store fails before any use
    code, _, err = run_cli(["serve", "--store", str(tmp_path / "none")], capsys)
    assert code == EXIT_STORE and f"`dedup serve --store {tmp_path / 'none'} --create`" in err, err


def test_text_output_escapes_ids_and_titles_so_no_line_can_be_forged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    forged = "x\nb [en]: DUPLICATE\n  duplicate of a (score 1.000)"
    rows = [
        {"id": "a", "title": "Hanoi talks", "text": "Ministers met in Hanoi on Sunday.", "lang": "en"},
        {
            "id": forged,
            "title": "Hanoi talks\u2028FAKE story-9999: 9 article(s)",
            "text": "Ministers met in Hanoi on Sunday.",
            "lang": "en",
        },
        {"id": "c\x1b[2J\u0085\r", "title": "Louvre strike", "text": "The Louvre closed for a day.", "lang": "en"},
    ]
    feed = tmp_path / "feed.jsonl"
    feed.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    code, out, _ = run_cli(["cluster", "-q", str(feed)], capsys)
    assert code == EXIT_OK
    lines = out.splitlines()  # splitlines: every line-break class counts here
    assert len(lines) == 1 + 2 + 3  # the summary, then 2 stories: a header and one line per article
    assert repr(forged) in out and repr("c\x1b[2J\u0085\r") in out and "\x1b" not in out
    assert not any(line.startswith(("b [en]", "FAKE", "  duplicate of")) for line in lines)

    assert run_cli(["add", "-q", "--store", str(tmp_path / "s"), str(feed)], capsys)[0] == EXIT_OK
    code, out, _ = run_cli(["check", "-q", "--top", "2", "--store", str(tmp_path / "s"), str(feed)], capsys)
    assert code == EXIT_OK
    heads = [line for line in out.splitlines() if not line.startswith(" ")]
    assert heads[1] == f"{forged!r} [en]: DUPLICATE"  # one line, the id quoted and escaped
    assert len(heads) == 3 and "\x1b" not in out and "\u0085" not in out
    code, out, _ = run_cli(["check", "-q", "--json", "--store", str(tmp_path / "s"), str(feed)], capsys)
    assert [json.loads(line)["id"] for line in out.split("\n") if line] == [r["id"] for r in rows]  # JSON: ids as they are


def test_an_unexpected_error_is_one_line_naming_it_without_traceback_unless_debugging(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dedup.cli.commands

    def broken(args: object) -> int:
        raise RuntimeError("something\nunexpected")

    monkeypatch.setattr(dedup.cli.commands, "run", broken)
    monkeypatch.delenv("DEDUP_DEBUG", raising=False)
    assert main(["info", "--store", "x"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "internal error: RuntimeError: something\\nunexpected" in err and "please report it" in err and "DEDUP_DEBUG=1" in err
    monkeypatch.setenv("DEDUP_DEBUG", "1")
    assert main(["info", "--store", "x"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback" in err and "internal error: RuntimeError" in err


@pytest.mark.usefixtures("fake_model")
def test_serve_on_a_public_address_needs_a_token_or_insecure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEDUP_TOKEN", raising=False)
    store = str(tmp_path / "s")
    for host in ("0.0.0.0", "::", "192.0.2.1", "example.org"):
        code, _, err = run_cli(["serve", "--store", store, "--create", "--host", host], capsys)
        assert code == EXIT_INPUT and f"--host {host} " in err and "--insecure" in err, err
    # With a token, or --insecure, or on loopback, the check passes (and the fake listen() is reached).
    for extra in (["--host", "0.0.0.0", "--token", "t"], ["--host", "0.0.0.0", "--insecure"], ["--host", "127.0.0.1"]):
        code, _, err = run_cli(["serve", "--store", store, "--create", *extra], capsys)
        assert code == EXIT_INTERNAL and "must never reach listen()" in err, (extra, err)


@pytest.fixture
def bench_without_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``dedup bench`` with the fake encoder, its cache in ``tmp_path``, run from the repository root."""
    import dedup.evaluation.bench

    from .conftest import HashEncoder

    encoder = HashEncoder(dim=64)
    monkeypatch.setattr(dedup.evaluation.bench, "load_encoder", lambda model, **kwargs: encoder)
    monkeypatch.setenv("DEDUP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(ROOT)


SMALL_BENCH = ["bench", "-q", "--parts", "cluster", "--sizes", "100", "--cluster-sizes", "100"]


@pytest.mark.usefixtures("bench_without_model")
def test_bench_without_data_measures_the_demo_corpus_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli([*SMALL_BENCH, "--json"], capsys)
    assert code == EXIT_OK, err
    data = json.loads(out)["data"]
    assert data["source"] == "demo corpus data (5 articles)"
    assert data["real_vectors"] == 5 and data["synthetic_vectors"] > 0
    code, out, err = run_cli(SMALL_BENCH, capsys)
    assert code == EXIT_OK, err
    assert "Vectors: 5 real article vectors from demo corpus data (5 articles), grown to 100 with synthetic vectors" in out


@pytest.mark.usefixtures("bench_without_model")
def test_bench_names_given_data_and_refuses_a_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli([*SMALL_BENCH, "--data", str(tmp_path / "none")], capsys)
    assert code == EXIT_INPUT and "--data" in err and "not a folder" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli([*SMALL_BENCH, "--data", str(empty)], capsys)
    assert code == EXIT_INPUT and "--data holds none of og2021_dev.jsonl, ntrex_dev.jsonl" in err
    dev = tmp_path / "dev"
    dev.mkdir()
    rows = [{"id": f"t{i}", "title": f"Storm number {i} closes the airport", "lang": "en"} for i in range(7)]
    (dev / "og2021_dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    code, out, err = run_cli([*SMALL_BENCH, "--json", "--data", str(dev)], capsys)
    assert code == EXIT_OK, err
    data = json.loads(out)["data"]
    assert data["source"] == f"{dev / 'og2021_dev.jsonl'} (7 titles); demo corpus data (5 articles)"
    assert data["real_vectors"] == 12


def test_eval_without_data_exits_2_naming_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["eval", "--out-dir", "results"], capsys)
    assert code == EXIT_INPUT
    assert "the following arguments are required: DATA" in err


def test_no_development_path_in_the_package() -> None:
    """The product never reads our development data: no default, docstring or message names it."""
    for path in (ROOT / "dedup").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            assert b"shared/data" not in path.read_bytes(), path
