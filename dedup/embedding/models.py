"""Finding and loading embedding models: the default alias, a local folder or a hub name.

:func:`resolve_model` turns a configured name into what sentence-transformers loads (the
default model is built on first use, :mod:`dedup.embedding.default_model`), and
:func:`load_sentence_transformer` loads it, from the local Hugging Face cache before the
hub, with errors that say what to do.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from dedup.config import DEFAULT_MODEL
from dedup.embedding.default_model import ensure_weights, materialize_default_model, weights_in_use
from dedup.errors import ModelError, OptionalDependencyError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["DEFAULT_MODEL", "load_sentence_transformer", "resolve_model"]

logger = logging.getLogger(__name__)


def resolve_model(name: str, cache_dir: Path | None = None, *, weights: bool = True) -> str:
    """Turn a configured model name into something sentence-transformers loads.

    Args:
        name: :data:`DEFAULT_MODEL`, a local directory, or a Hugging Face hub name.
        cache_dir: The cache root for the default model.
        weights: Whether the caller needs the default model's float32 weights (they are
            dropped once its int8 model is built, and brought back when asked for).

    Returns:
        The default model's folder (built if needed) for :data:`DEFAULT_MODEL`,
        the path itself for an existing local directory, else ``name`` unchanged.

    Raises:
        OptionalDependencyError: The default model's source packages are missing.
        ModelError: The default model cannot be built.

    """
    if name == DEFAULT_MODEL:
        return str(materialize_default_model(cache_dir, weights=weights))
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
            with weights_in_use(Path(path)):  # the default model's: not dropped by another process while they load
                ensure_weights(Path(path))
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
