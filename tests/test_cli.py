"""The ``dedup`` command as a user runs it: exit codes, messages, machine output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dedup.cli import EXIT_INPUT, EXIT_MODEL, EXIT_OK, EXIT_STORE, main

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
    story = {r["id"]: r["story"] for r in rows}
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
        [sys.executable, "-m", "dedup.cli", "cluster", "--json", "-q", "-", str(ROOT / "data")],
        input=line + "\n",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {json.loads(r)["id"]: json.loads(r)["story"] for r in proc.stdout.splitlines()}
    assert rows["x"] == rows[TRUE_PAIR[1]] == rows[TRUE_PAIR[0]]


def test_info_describes_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dedup.store import Store

    Store.create(tmp_path / "s", "test/model", 8)
    assert main(["info", "--store", str(tmp_path / "s")]) == EXIT_OK
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
    monkeypatch.delitem(sys.modules, "dedup.service", raising=False)
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
    monkeypatch.setattr("dedup.detector.load_encoder", lambda model, **kwargs: encoder)


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
    assert main(["info", "--store", str(store)]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["articles"] == 1
    from dedup.store import Store

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
