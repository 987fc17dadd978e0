"""The README's examples run in a fresh clone: every file a command names is in the repository."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [line.split(" # ")[0].strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _named_files(command: str) -> list[str]:
    """Words of ``command`` that name a file or folder of the repository (``data/...``, ``@data/...``)."""
    words = shlex.split(command.replace("|", " ").replace("<", " ").replace(">", " ").replace(";", " "))
    return [w.lstrip("@") for w in words if w.lstrip("@").startswith("data/")]


def test_readme_commands_name_only_files_a_fresh_clone_has() -> None:
    commands = _commands()
    assert len(commands) >= 10
    named = [(c, f) for c in commands for f in _named_files(c)]
    assert any(f.startswith("data/examples/") for _, f in named)
    missing = [(c, f) for c, f in named if not sorted(ROOT.glob(f.rstrip("/")))]
    assert not missing, missing
    # Inputs the commands read are never files a fresh clone lacks (they used to name feed.jsonl, batch.json).
    for command in commands:
        for word in shlex.split(command.replace("|", " ").replace("<", " < ").replace(";", " ")):
            if word.endswith((".jsonl", ".json", ".txt")) and not word.lstrip("@").startswith("data/"):
                assert re.search(rf"(--out|>) *{re.escape(word)}|{re.escape(word)}; echo", command), (command, word)


def test_readme_python_example_compiles() -> None:
    (block,) = re.findall(r"```python\n(.*?)```", README, re.S)
    compile(block, "README.md", "exec")
    assert "data/examples/feed.jsonl" in block and (ROOT / "data/examples/feed.jsonl").is_file()
