"""The embedding stage's two halves under one name: :mod:`dedup.embedding.encoders` and :mod:`dedup.embedding.articles`.

A re-export kept for the callers that import from here; new code imports from the two modules.
"""

from __future__ import annotations

from dedup.embedding.articles import article_passages, assemble, embed_articles, pool, resolve_centring
from dedup.embedding.encoders import USE_MODEL, Encoder, SentenceTransformerEncoder, USEEncoder, Vectors, load_encoder

__all__ = [
    "USE_MODEL",
    "Encoder",
    "SentenceTransformerEncoder",
    "USEEncoder",
    "Vectors",
    "article_passages",
    "assemble",
    "embed_articles",
    "load_encoder",
    "pool",
    "resolve_centring",
]
