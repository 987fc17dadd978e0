"""What :class:`~dedup.detect.detector.Detector` and :class:`~dedup.detect.archive.ArchiveDetector` share.

The vector space an encoder writes (its name with the centring, the name a store is
built with), the embedding cache option, how matches become a :class:`~dedup.types.Verdict`,
and how an add reports the articles it did not embed again.
"""

from __future__ import annotations

from collections.abc import Sequence

from dedup.embedding.cache import EmbeddingCache
from dedup.embedding.centring import centring_for
from dedup.embedding.embed import Encoder
from dedup.embedding.naming import vector_space
from dedup.types import AddReport, Article, Match, Verdict

__all__ = ["add_report", "embedding_cache", "space_of", "verdict"]


def space_of(encoder: Encoder) -> str:
    """The vector space ``encoder`` embeds into: the model name a store or archive built with it records."""
    return vector_space(encoder.name, centring_for(encoder.name, encoder.dim))


def embedding_cache(cache: bool | EmbeddingCache, encoder: Encoder) -> EmbeddingCache | None:
    """The embedding cache to use: the one given, the model's default one (``True``) or none."""
    if isinstance(cache, EmbeddingCache):
        return cache
    return EmbeddingCache.for_model(encoder.name, encoder.dim) if cache else None


def verdict(item_id: str, matches: Sequence[Match], truncated: bool, *, top: int, shards: tuple[str, ...] = ()) -> Verdict:
    """The verdict on ``item_id``: every duplicate, then the ``top`` best near misses (``matches`` sorted by score)."""
    duplicates = [m for m in matches if m.is_duplicate]
    near = [m for m in matches if not m.is_duplicate][:top]
    return Verdict(item_id, bool(duplicates), tuple(duplicates + near), truncated, shards)


def add_report(report: AddReport, articles: Sequence[Article], embedded: Sequence[Article]) -> AddReport:
    """``report`` of an add of ``embedded``, with the rest of ``articles`` (stored already, not embedded again) unchanged."""
    ids = {a.id for a in embedded}
    skipped = tuple(a.id for a in articles if a.id not in ids)
    return AddReport(report.added, report.unchanged + skipped, report.replaced, report.skipped)
