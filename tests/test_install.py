"""The lighter install: heavy engines imported only when used, OpenVINO an extra, the fp32 weights dropped and brought back."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dedup.embedding import default_model
from dedup.embedding.backends.openvino import OpenVINOEncoder
from dedup.embedding.default_model import drop_weights, ensure_weights, materialize_default_model, weight_sizes
from dedup.embedding.encoders import _load_encoder, load_encoder
from dedup.errors import ModelError, OptionalDependencyError

from .conftest import ROOT

HEAVY = ("onnxruntime", "faiss", "tokenizers", "py3langid", "torch", "sentence_transformers", "openvino", "fastapi")


def test_importing_dedup_and_the_cli_help_load_no_engine() -> None:
    code = (
        "import sys\nimport dedup\nfrom dedup import Detector, Article\nfrom dedup.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print('LOADED:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "LOADED:", out.stdout


def test_backend_openvino_without_the_package_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed: importing it raises ImportError
    assert "pip install 'dedup[openvino]'" in (OpenVINOEncoder.supported(tmp_path) or "")
    with pytest.raises(OptionalDependencyError, match=r"pip install 'dedup\[openvino\]'"):
        OpenVINOEncoder(tmp_path, "some/model")
    _load_encoder.cache_clear()
    try:
        with pytest.raises(ModelError, match=r"dedup\[openvino\]"):
            load_encoder(str(tmp_path), backend="openvino")
    finally:
        _load_encoder.cache_clear()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_fp32_weights_are_dropped_and_rebuilt_identical_on_demand(tmp_path: Path) -> None:
    folder = materialize_default_model(tmp_path)
    weights = folder / "model.safetensors"
    before, size = sha(weights), weights.stat().st_size
    sizes = weight_sizes(folder)
    assert sizes == {"model.safetensors": size}

    assert drop_weights(folder) is True
    assert not weights.exists()
    assert weight_sizes(folder) == sizes  # converted models' build stamps stay valid
    assert drop_weights(folder) is False  # nothing left to drop
    # The int8 backend asks without weights: the folder is complete as it is, nothing rebuilt.
    assert materialize_default_model(tmp_path, weights=False) == folder and not weights.exists()

    # Another backend asks: the weights come back, byte for byte, and the record goes.
    assert materialize_default_model(tmp_path) == folder
    assert sha(weights) == before and weight_sizes(folder) == sizes
    assert not (folder / "dropped_weights.json").exists()
    ensure_weights(folder)  # nothing to do now
    assert sha(weights) == before


def test_drop_weights_never_touches_another_model(tmp_path: Path) -> None:
    (tmp_path / "modules.json").write_text(json.dumps([]), "utf-8")
    (tmp_path / "model.safetensors").write_bytes(b"x" * 10)
    assert drop_weights(tmp_path) is False  # no default-model marker: not ours to delete
    assert (tmp_path / "model.safetensors").read_bytes() == b"x" * 10


def fake_default_folder(root: Path) -> Path:
    """A folder that looks like a complete default model (marker, modules, weights) without building one."""
    marker = {"format_version": default_model._FORMAT_VERSION}
    (root / "dedup_model.json").write_text(json.dumps(marker), "utf-8")
    (root / "modules.json").write_text(json.dumps([]), "utf-8")
    (root / "model.safetensors").write_bytes(b"w" * 100)
    return root


def test_weights_are_not_dropped_while_another_process_loads_them(tmp_path: Path) -> None:
    folder = fake_default_folder(tmp_path)
    holder = (
        "import sys\nfrom pathlib import Path\nfrom dedup.embedding.default_model import weights_in_use\n"
        f"with weights_in_use(Path({str(folder)!r})):\n    print('held', flush=True)\n    sys.stdin.readline()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "held"  # the other process is loading the weights now
        assert drop_weights(folder) is False
        assert (folder / "model.safetensors").read_bytes() == b"w" * 100 and weight_sizes(folder) == {"model.safetensors": 100}
        child.stdin.write("done\n")
        child.stdin.flush()
        assert child.wait(timeout=60) == 0
    finally:
        child.kill()
    assert drop_weights(folder) is True  # loaded and released: now they go
    assert not (folder / "model.safetensors").exists() and weight_sizes(folder) == {"model.safetensors": 100}


def test_loaders_share_the_weights_and_another_model_gets_no_lock_file(tmp_path: Path) -> None:
    (tmp_path / "default").mkdir()
    folder = fake_default_folder(tmp_path / "default")
    with default_model.weights_in_use(folder), default_model.weights_in_use(folder):  # readers do not exclude each other
        assert (folder / "model.safetensors").is_file()
    other = tmp_path / "other"
    other.mkdir()
    with default_model.weights_in_use(other):  # a user's model folder: nothing written into it
        pass
    assert list(other.iterdir()) == []
