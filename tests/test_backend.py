"""The default embedding path (OpenVINO) gives the vectors of plain sentence-transformers, faster to load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dedup.cli import EXIT_OK, main
from dedup.config import Config
from dedup.embedding.articles import embed_articles
from dedup.embedding.backends.onnx import OnnxInt8Encoder, onnx_supported
from dedup.embedding.backends.openvino import OpenVINOEncoder, openvino_supported
from dedup.embedding.encoders import SentenceTransformerEncoder, load_encoder
from dedup.io import read_articles

from .conftest import SEEDS

pytestmark = pytest.mark.model


def test_openvino_backend_gives_the_same_vectors_as_torch() -> None:
    fast = load_encoder(Config().model, backend="openvino")
    plain = load_encoder(Config().model, backend="torch")
    assert isinstance(fast, OpenVINOEncoder) and isinstance(plain, SentenceTransformerEncoder)
    assert fast.name == plain.name and fast.dim == plain.dim  # stores built with either are interchangeable
    articles = list(read_articles([SEEDS]).articles)
    a, b = embed_articles(articles, fast), embed_articles(articles, plain)
    for x, y in zip(a, b, strict=True):
        cos = np.einsum("ij,ij->i", x.passage_vectors, y.passage_vectors)
        assert cos.min() > 0.9999, (x.id, cos.min())
    texts = ["query-like text, long " * 200, "é", "Tô Lâm tiếp Bộ trưởng Bộ Công an Lào"]  # truncation, tiny, Vietnamese
    np.testing.assert_allclose(fast.encode(texts), plain.encode(texts), atol=2e-3)


def test_default_backend_is_int8_deterministic_and_close_to_torch() -> None:
    fast = load_encoder(Config().model)
    plain = load_encoder(Config().model, backend="torch")
    assert isinstance(fast, OnnxInt8Encoder)
    assert fast.name == "dedup/multilingual-e5-small-q4:int8#query" != plain.name  # never mixed in one store
    articles = list(read_articles([SEEDS]).articles)
    a, b = embed_articles(articles, fast), embed_articles(articles, plain)
    cos = np.concatenate([np.einsum("ij,ij->i", x.passage_vectors, y.passage_vectors) for x, y in zip(a, b, strict=True)])
    assert cos.mean() > 0.99 and cos.min() > 0.97, (cos.mean(), cos.min())
    # A passage's vector does not depend on what it is embedded with, nor on the order.
    texts = [p for x in a for p in x.passages]
    together = fast.encode(texts)
    alone = np.vstack([fast.encode([t]) for t in texts[:6]])
    np.testing.assert_array_equal(together[:6], alone)
    np.testing.assert_array_equal(fast.encode(texts[::-1])[::-1], together)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, rtol=1e-5)
    built = Path(fast.folder) / "onnx-int8"
    assert (built / "model.onnx").is_file() and (built / "dedup_build.json").is_file()


def test_unsupported_folders_are_refused_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "modules.json").write_text(
        json.dumps([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}])
    )
    assert "Pooling" in (openvino_supported(tmp_path) or "")
    assert "Pooling" in (onnx_supported(tmp_path) or "")
    assert "not a local sentence-transformers folder" in (openvino_supported(tmp_path / "nothing") or "")


def test_bench_quick_run_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "--json", "--demo", str(SEEDS), "--sizes", "600,1500", "--cluster-sizes", "300"]
    assert main([*args, "--parts", "search,check,cluster"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    rows = {(r["index"], r["n"]) for r in report["search"]}
    assert rows == {(i, n) for i in ("numpy", "flat", "ivf", "hnsw") for n in (600, 1500)}
    for row in report["search"]:
        assert {"index", "n", "recall_at_10", "p50_ms", "qps"} <= set(row)
        assert row["recall_at_10"] >= 0.97, row
        if row["index"] in ("numpy", "flat"):
            assert row["recall_at_10"] == 1.0
    assert [r["n"] for r in report["check"]] == [600, 1500]
    assert report["cluster"][0]["n"] == 300 and report["cluster"][0]["seconds"] > 0
    assert report["data"]["real_vectors"] == 5
    assert report["data"]["source"] == f"demo corpus {SEEDS} (5 articles)"
