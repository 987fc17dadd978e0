"""One frozen, validated configuration object. Every threshold lives here."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from dedup.errors import ConfigError

__all__ = ["BACKENDS", "DEFAULT_MODEL", "INDEX_KINDS", "Config"]

DEFAULT_MODEL = "dedup/multilingual-e5-small-q4"
"""Alias of the default model (built from PyPI packages, see :mod:`dedup.embedding.default_model`)."""

BACKENDS: tuple[str, ...] = ("auto", "onnx-int8", "openvino", "torch")
"""How a model can run (:func:`dedup.embedding.encoders.load_encoder`)."""

INDEX_KINDS: tuple[str, ...] = ("auto", "flat", "hnsw", "ivf")
"""Vector indexes a store can use (:mod:`dedup.search.index`); ``auto`` picks one by size."""


def _one_of(values: tuple[str, ...]) -> str:
    """``'a', 'b' or 'c'``: the allowed values, as an error message names them."""
    quoted = [repr(v) for v in values]
    return f"{', '.join(quoted[:-1])} or {quoted[-1]}"


@dataclass(frozen=True)
class Config:
    """Settings of a detector. Validated on construction; change with :meth:`with_`.

    Attributes:
        model: Embedding model: ``"dedup/multilingual-e5-small-q4"`` (the offline default,
            built from PyPI packages), any sentence-transformers model name or a local path.
        backend: How the model runs: ``"auto"`` (the default model: int8 on ONNX Runtime,
            measured in ``benchmarks/eval.py``; other local mean-pooled models: OpenVINO,
            fp32; everything else: torch), ``"onnx-int8"``, ``"openvino"`` or ``"torch"``
            (plain sentence-transformers).
        index: Vector index: ``"auto"`` (exact below 20,000 articles, then IVF tuned to
            ``recall_floor``), ``"flat"``, ``"hnsw"`` or ``"ivf"``. None keeps an existing
            store's choice and means ``"auto"`` for a new one.
        recall_floor: Recall@10 against exact search an approximate index must reach,
            measured on the store's own vectors.
        batch_size: Passages per encoder batch; None lets the backend choose (int8: one
            passage per request, OpenVINO 8, torch 32: the fastest measured on 2 cores,
            ``dedup bench --parts embed``).
        max_passage_chars: Paragraphs longer than this are split into several passages.
        max_article_chars: Articles longer than this are refused (clear error), never truncated.
        candidates: How many nearest stored articles retrieval proposes per query.
        min_candidate_similarity: Stored articles below this article cosine are not verified.
        threshold: Verifier score at or above which a pair is a duplicate.
        max_date_gap_days: Pairs whose dates are further apart are never the same story.
        align_min_similarity: Passage pairs below this cosine never count as aligned.
        align_min_margin: A mutual-best passage pair must beat the runner-ups by this much.
        cluster_threshold: Verifier score a pair needs to start a merge of two stories
            (chosen on the OG2021 tune part, see ``benchmarks/clusterers.py``).
        cluster_linkage: Average verifier score two stories need between them to merge.
        window_days: Batch clustering cuts the feed into calendar windows of this many
            days, each reaching ``max_date_gap_days`` into the next, clusters each on its
            own and merges them (``dedup/windows.py``); undated articles are clustered
            apart. 0 clusters the whole feed at once, undated articles included. A window
            is the unit of work the Ray engine spreads over machines.

    """

    model: str = DEFAULT_MODEL
    backend: str = "auto"
    index: str | None = None
    recall_floor: float = 0.99
    batch_size: int | None = None
    max_passage_chars: int = 500
    max_article_chars: int = 1_000_000
    candidates: int = 20
    min_candidate_similarity: float = 0.0
    threshold: float = 0.5
    max_date_gap_days: int = 7
    align_min_similarity: float = 0.5
    align_min_margin: float = 0.02
    cluster_threshold: float = 0.7
    cluster_linkage: float = 0.3
    window_days: int = 28

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"model must be a non-empty string, got {self.model!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be {_one_of(BACKENDS)}, got {self.backend!r}")
        if self.index is not None and self.index not in INDEX_KINDS:
            raise ConfigError(f"index must be {_one_of(INDEX_KINDS)}, got {self.index!r}")
        if not isinstance(self.recall_floor, (int, float)) or not 0.5 <= self.recall_floor <= 1.0:
            raise ConfigError(f"recall_floor must be in [0.5, 1], got {self.recall_floor!r}")
        for name in ("batch_size", "candidates", "max_passage_chars", "max_article_chars"):
            value = getattr(self, name)
            if name == "batch_size" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.max_passage_chars < 20:
            raise ConfigError(f"max_passage_chars must be at least 20, got {self.max_passage_chars}")
        for name in ("max_date_gap_days", "window_days"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("threshold", "cluster_threshold", "cluster_linkage"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value!r}")
        for name in ("min_candidate_similarity", "align_min_similarity"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not -1.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [-1, 1], got {value!r}")
        if not isinstance(self.align_min_margin, (int, float)) or not 0.0 <= self.align_min_margin <= 1.0:
            raise ConfigError(f"align_min_margin must be in [0, 1], got {self.align_min_margin!r}")

    def with_(self, **changes: object) -> Config:
        """A copy with some fields changed (validated again).

        Raises:
            ConfigError: On an unknown field or an invalid value.

        """
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; known: {sorted(known)}")
        return replace(self, **changes)  # type: ignore[arg-type]  # values are validated in __post_init__
