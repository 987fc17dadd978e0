"""Checking and adding articles against a time-sharded :class:`~dedup.search.archive.Archive`.

Retrieval searches only the shards in an article's window (see :mod:`dedup.search.routing`):
the months within ``search_days`` (``Config.max_date_gap_days`` by default) of its date,
the January shards of the years that window touches, and ``undated``; an undated article
searches every shard. A window narrower than ``max_date_gap_days`` can miss duplicates the
verifier would accept. Embedding and verification are :class:`~dedup.detect.detector.Detector`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dedup.config import Config
from dedup.detect.common import add_report, embedding_cache, space_of, verdict
from dedup.detect.detector import Detector
from dedup.embedding.cache import EmbeddingCache
from dedup.embedding.embed import Encoder, load_encoder
from dedup.errors import ConfigError, StoreMismatchError
from dedup.search.archive import ARCHIVE_MANIFEST, Archive
from dedup.search.store import Store
from dedup.types import AddReport, EmbeddedArticle, Record, Verdict
from dedup.verify import Verifier

__all__ = ["ArchiveDetector"]


class ArchiveDetector:
    """Checks and adds articles against an :class:`Archive`, with :class:`Detector`'s verification.

    Retrieval searches only the shards in the article's window (see :mod:`dedup.search.routing`);
    the candidates are verified by :meth:`Detector.verify_candidates`, so a verdict is the
    one a single store holding those shards would give. Build with :meth:`open`.

    Args:
        archive: The archive.
        encoder: The embedding model; must match the archive's model.
        config: Thresholds and settings.
        verifier: The pairwise decision model (default: the shipped parameters).
        cache: An embedding cache, as for :class:`Detector`.
        search_days: Days either side of an article's date whose shards are searched;
            None: ``config.max_date_gap_days``.

    Raises:
        StoreMismatchError: The encoder's vectors are not the archive's.
        ConfigError: A negative ``search_days``.

    """

    def __init__(
        self,
        archive: Archive,
        encoder: Encoder,
        config: Config,
        verifier: Verifier | None = None,
        *,
        cache: EmbeddingCache | None = None,
        search_days: int | None = None,
    ) -> None:
        window = config.max_date_gap_days if search_days is None else search_days
        if not isinstance(window, int) or isinstance(window, bool) or window < 0:
            raise ConfigError(f"search_days must be a non-negative integer, got {window!r}")
        space = space_of(encoder)
        if space != archive.model or encoder.dim != archive.dim:
            raise StoreMismatchError(
                f"archive {archive.path} was built with model {archive.model!r} (dimension {archive.dim}), "
                f"not {space!r} (dimension {encoder.dim}); open it with that model"
            )
        self.archive = archive
        self.search_days = window
        # Embedding and verification are the detector's; its own (in-memory) store stays empty.
        self._detector = Detector(Store.in_memory(archive.model, archive.dim), encoder, config, verifier, cache=cache)

    @classmethod
    def open(
        cls,
        path: str | Path,
        config: Config | None = None,
        *,
        encoder: Encoder | None = None,
        create: bool = False,
        read_only: bool = False,
        verify: bool = True,
        cache: bool | EmbeddingCache = True,
        search_days: int | None = None,
    ) -> ArchiveDetector:
        """Open the archive at ``path`` (creating it when ``create`` and missing).

        The archive manifest is checked before the model loads, so a missing or foreign
        archive fails fast.

        Raises:
            StoreNotFoundError: No archive there and not ``create``.
            StoreMismatchError: The archive was built with another model or dimension.

        """
        config = config or Config()
        root = Path(path)
        exists = (root / ARCHIVE_MANIFEST).is_file()
        if exists or not create or read_only:
            Archive.read_manifest(root)
        encoder = encoder or load_encoder(config.model, backend=config.backend)
        space = space_of(encoder)
        if exists or read_only:
            archive = Archive.open(
                root, model=space, dim=encoder.dim, read_only=read_only, verify=verify, index=config.index,
                recall_floor=config.recall_floor,
            )  # fmt: skip
        else:  # several processes may create it at once: the first creates, the others open
            archive = Archive.open_or_create(root, space, encoder.dim, index=config.index, recall_floor=config.recall_floor)
        return cls(archive, encoder, config, cache=embedding_cache(cache, encoder), search_days=search_days)

    @property
    def config(self) -> Config:
        """Thresholds and settings."""
        return self._detector.config

    @property
    def encoder(self) -> Encoder:
        """The embedding model."""
        return self._detector.encoder

    def embed(self, articles: Sequence[Record], *, show_progress: bool = False) -> list[EmbeddedArticle]:
        """Clean, split and embed articles, as :meth:`Detector.embed`."""
        return self._detector.embed(articles, show_progress=show_progress)

    def check(self, article: Record, *, top: int = 0) -> Verdict:
        """Is ``article`` a duplicate of an archived one? See :meth:`check_embedded`."""
        return self.check_embedded(self.embed([article]), top=top)[0]

    def check_many(self, articles: Sequence[Record], *, top: int = 0, show_progress: bool = False) -> list[Verdict]:
        """Check several articles (each against the archive only, not against each other)."""
        return self.check_embedded(self.embed(articles, show_progress=show_progress), top=top)

    def check_embedded(self, items: Sequence[EmbeddedArticle], *, top: int = 0) -> list[Verdict]:
        """Check embedded articles against the shards in their windows.

        Args:
            items: Embedded query articles.
            top: Also list the ``top`` best candidates that are not duplicates (near misses).

        Returns:
            One :class:`Verdict` per item; ``Verdict.shards`` names the shards searched.

        """
        if top < 0:
            raise ValueError(f"top must be >= 0, got {top}")
        config = self.config
        verdicts: list[Verdict] = []
        for item in items:
            found = self.archive.search(
                item, config.candidates, search_days=self.search_days, min_similarity=config.min_candidate_similarity
            )
            matches, truncated = self._detector.verify_candidates(item, found.candidates, cut=found.cut)
            verdicts.append(verdict(item.id, matches, truncated, top=top, shards=found.shards))
        return verdicts

    def add(self, articles: Sequence[Record], *, replace: bool = False, show_progress: bool = False) -> AddReport:
        """Embed and store articles (or records), one atomic commit per touched shard (see :meth:`Archive.add`).

        Articles their shard already holds with the same content are not embedded again.
        """
        given = self._detector.as_articles(articles)
        new = [a for a in given if replace or not self.archive.holds(a)]
        report = self.archive.add(self.embed(new, show_progress=show_progress), replace=replace)
        return add_report(report, given, new)

    def refresh(self) -> bool:
        """See :meth:`Archive.refresh`."""
        return self.archive.refresh()
