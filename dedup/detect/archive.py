"""Checking and adding articles against a time-sharded :class:`~dedup.search.archive.Archive`.

Retrieval searches only the shards in an article's window (see :mod:`dedup.search.routing`):
the months within ``search_days`` (``Config.max_date_gap_days`` by default) of its date,
the January shards of the years that window touches, and ``undated``; an undated article
searches every shard. A window narrower than ``max_date_gap_days`` can miss duplicates the
verifier would accept. Embedding and verification are :class:`~dedup.detect.detector.Detector`'s.

Writers of one archive, in any process (``dedup add --archive``, ``check --add``, ``serve``
and ``stream``), take the archive's writer lock (:data:`WRITER_LOCK` in the archive folder,
:meth:`ArchiveDetector.writing`) and move to the latest commits of every shard before they
check and store: a check-and-add of an article sees every article committed before it,
whichever shard and process committed it. Readers take no lock; a read-only detector
(``read_only=True``) never writes. Shard commits stay atomic per shard (see
:mod:`dedup.search.archive`).

Reading stored articles (:meth:`ArchiveDetector.stored`, :meth:`~ArchiveDetector.get`) by id
looks through the shards, newest month first, then ``undated``: the archive keeps no global
id table, and an id re-added with a date in another month is found in its newest shard.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

from dedup import _fs
from dedup.config import Config
from dedup.detect.common import add_report, embedding_cache, space_of, verdict
from dedup.detect.detector import Detector
from dedup.embedding.cache import EmbeddingCache
from dedup.embedding.embed import Encoder, load_encoder
from dedup.errors import ConfigError, IdConflictError, StoreCorruptError, StoreError, StoreMismatchError
from dedup.progress import track
from dedup.search.archive import ARCHIVE_MANIFEST, Archive
from dedup.search.manifest import MANIFEST
from dedup.search.manifest import read_manifest as read_store_manifest
from dedup.search.routing import UNDATED, is_shard_name, shard_key
from dedup.search.store import Store
from dedup.types import AddReport, Article, ClusterResult, EmbeddedArticle, Match, Record, Story, Verdict
from dedup.verify import Verifier

__all__ = ["WRITER_LOCK", "ArchiveDetector"]

#: The archive's writer lock file, in the archive folder: held by every writer while it checks and stores.
WRITER_LOCK = ".writer.lock"

#: The archive folders this thread holds the writer lock of (the lock is re-entrant within a thread).
_held = threading.local()

#: A cheap fingerprint of an archive on disk: each shard and its manifest's inode, mtime and size.
State = tuple[tuple[str, int, int, int], ...]

Candidates = list[tuple[float, EmbeddedArticle]]


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
    def verify_counts(self) -> Counter[str]:
        """Candidates met by checks, and how many were fully verified (see :meth:`Detector.verify_candidates`)."""
        return self._detector.verify_counts

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

    def check_many(
        self, articles: Sequence[Record], *, top: int = 0, add: bool = False, show_progress: bool = False
    ) -> list[Verdict]:
        """Check several articles; with ``add``, each is stored after its check (see :meth:`check_embedded`)."""
        items = self.embed(articles, show_progress=show_progress)
        if not add:
            return self.check_embedded(items, top=top)
        with self.writing():
            self._refuse_conflicts(items)
            return self.check_embedded(items, top=top, add=True)

    def check_embedded(self, items: Sequence[EmbeddedArticle], *, top: int = 0, add: bool = False) -> list[Verdict]:
        """Check embedded articles against the shards in their windows, in order.

        Args:
            items: Embedded query articles.
            top: Also list the ``top`` best candidates that are not duplicates (near misses).
            add: Store every article after its check, at the end (one atomic commit per touched
                shard); later items are checked against earlier ones too, within the same
                window. Call it inside :meth:`writing` so that no other writer commits between
                the checks and the add.

        Returns:
            One :class:`Verdict` per item; ``Verdict.shards`` names the shards searched.

        Raises:
            StoreError: With ``add``, when the archive was opened read-only.

        """
        if top < 0:
            raise ValueError(f"top must be >= 0, got {top}")
        if add and self.archive.read_only:
            raise StoreError(f"archive {self.archive.path} was opened read-only")
        pending = Store.in_memory(self.archive.model, self.archive.dim) if add else None
        verdicts: list[Verdict] = []
        bar = track("checking", len(items), "article")  # retrieval and verification
        for item in items:
            shards, retrieved, cut = self._retrieve(item, pending, prune=top == 0)
            matches, truncated = self._detector.verify_candidates(item, retrieved, cut=cut, prune=top == 0)
            verdicts.append(verdict(item.id, matches, truncated, top=top, shards=shards))
            if pending is not None and item.id not in pending and not self.holds(item.article):
                pending.add([item])
            bar.update()
        bar.close()
        if add:
            self.archive.add(list(items))
        return verdicts

    def _retrieve(self, item: EmbeddedArticle, pending: Store | None, *, prune: bool) -> tuple[tuple[str, ...], Candidates, bool]:
        """The shards searched, the candidates (archive and ``pending`` merged, most similar first) and the cut.

        With ``prune`` and nothing pending, candidates dated beyond ``max_date_gap_days`` (no
        duplicates) are left out before their vectors are read, and counted as pruned.
        """
        config = self.config
        k, floor = config.candidates, config.min_candidate_similarity
        gap = config.max_date_gap_days if prune and (pending is None or not len(pending)) else None
        found = self.archive.search(item, k, search_days=self.search_days, min_similarity=floor, max_gap_days=gap)
        if found.far:
            self._detector.verify_counts.update(candidates=found.far)
        if pending is None or not len(pending):
            return found.shards, list(found.candidates), found.cut
        earlier = [pending.embedded(p) for p in range(len(pending))]
        shards = self.archive.shards_for(item.article.date, self.search_days, pending=earlier)
        window = set(shards)
        hits = pending.search(item.vector[None, :], k)
        more = [
            (float(sim), earlier[int(p)])
            for p, sim in zip(hits.positions[0], hits.similarities[0], strict=True)
            if p >= 0 and sim >= floor and shard_key(earlier[int(p)].article.date) in window
        ]
        merged = sorted([*found.candidates, *more], key=lambda hit: -hit[0])
        cut = found.cut or bool(hits.truncated[0]) or len(merged) > k
        return shards, merged[:k], cut

    # ------------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the archive's writer lock (:data:`WRITER_LOCK`); re-entrant within a thread. See :meth:`writing`.

        Raises:
            StoreError: The archive was opened read-only, or another writer holds the lock
                for more than 600 s.

        """
        if self.archive.read_only:
            raise StoreError(f"archive {self.archive.path} was opened read-only")
        held: set[str] = _held.__dict__.setdefault("paths", set())
        key = str(self.archive.path.resolve())
        if key in held:
            yield
            return
        with _fs.hold_lock(self.archive.path / WRITER_LOCK, timeout=600):
            held.add(key)
            try:
                yield
            finally:
                held.discard(key)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the archive's writer lock, on the latest commit of every shard, for several steps (check, then add).

        Re-entrant within a thread. Every writer of the archive takes it (:meth:`add`,
        :meth:`check_many` with ``add``, the service), so what is checked inside the block
        is what the add commits onto.

        Raises:
            StoreError: As :meth:`lock`.

        """
        with self.lock():
            self.archive.refresh()
            yield

    def add(self, articles: Sequence[Record], *, replace: bool = False, show_progress: bool = False) -> AddReport:
        """Embed and store articles (or records), one atomic commit per touched shard (see :meth:`Archive.add`).

        Articles their shard already holds with the same content are not embedded again.
        The embedding happens before the writer lock is taken; the add, under it.

        Raises:
            IdConflictError: An article's shard holds its id with other content and not
                ``replace`` (nothing is stored then).

        """
        given = self._detector.as_articles(articles)
        new = [a for a in given if replace or not self.holds(a)]
        items = self.embed(new, show_progress=show_progress)
        return add_report(self.add_embedded(items, replace=replace), given, new)

    def add_embedded(self, items: Sequence[EmbeddedArticle], *, replace: bool = False) -> AddReport:
        """Store embedded articles under the writer lock; a conflicting id refuses the whole batch before any commit.

        Raises:
            IdConflictError: As :meth:`add`.

        """
        with self.writing():
            if not replace:
                self._refuse_conflicts(items)
            return self.archive.add(items, replace=replace)

    def _refuse_conflicts(self, items: Sequence[EmbeddedArticle]) -> None:
        for item in items:
            stored = self.stored_version(item.article)
            if stored is not None and stored.content_hash != item.article.content_hash:
                raise IdConflictError(
                    f"id {item.id!r} is already stored with different content in archive shard "
                    f"{shard_key(item.article.date)}; to overwrite it, add it with replace"
                )

    def refresh(self) -> bool:
        """See :meth:`Archive.refresh`."""
        return self.archive.refresh()

    # ------------------------------------------------------------------------ reading
    def stored_version(self, article: Article) -> Article | None:
        """The article stored under ``article``'s id in ``article``'s shard (where an add of it goes), or None."""
        key = shard_key(article.date)
        if key not in self.archive.keys:
            return None
        store = self.archive.shard(key)
        return store.get(article.id) if article.id in store else None

    def holds(self, article: Article) -> bool:
        """Whether the article's shard already stores this id with the same content."""
        stored = self.stored_version(article)
        return stored is not None and stored.content_hash == article.content_hash

    def _newest_first(self) -> list[str]:
        keys = self.archive.keys
        return [k for k in reversed(keys) if k != UNDATED] + [k for k in keys if k == UNDATED]

    def stored(self, article_id: str) -> EmbeddedArticle:
        """The stored article with this id, with its passages and vectors, from the newest shard holding it.

        Opens shards (newest month first, then ``undated``) until one holds the id.

        Raises:
            KeyError: No shard holds it.

        """
        for key in self._newest_first():
            store = self.archive.shard(key)
            if article_id in store:
                return store.embedded(store.position(article_id))
        raise KeyError(article_id)

    def get(self, article_id: str) -> Article:
        """The stored article with this id (see :meth:`stored`; raises KeyError)."""
        return self.stored(article_id).article

    def stored_items(self) -> list[EmbeddedArticle]:
        """Every stored article with its passages and vectors, shard by shard (opens every shard)."""
        out: list[EmbeddedArticle] = []
        for key in self.archive.keys:
            store = self.archive.shard(key)
            out += [store.embedded(p) for p in range(len(store))]
        return out

    def neighbours(self, article_id: str, *, top: int = 10) -> Verdict:
        """A stored article checked against the rest of the archive (its window): duplicates and ``top`` nearest others.

        Raises:
            KeyError: When no shard holds this id.

        """
        return self.check_embedded([self.stored(article_id)], top=top)[0]

    def story(self, article_id: str) -> Story:
        """The story of a stored article among its nearest archived articles in its window (see :meth:`Detector.story`).

        Raises:
            KeyError: When no shard holds this id.

        """
        item = self.stored(article_id)
        config = self.config
        found = self.archive.search(
            item, config.candidates, search_days=self.search_days, min_similarity=config.min_candidate_similarity
        )
        near = [c for _, c in found.candidates if c.id != article_id]
        result = self._detector.cluster_embedded([item, *near])
        label = result.labels[article_id]
        return next(s for s in result.stories if s.id == label)

    def cluster_embedded(self, items: Sequence[EmbeddedArticle], *, with_store: bool = False) -> ClusterResult:
        """Group embedded articles into stories (as :meth:`Detector.cluster_embedded`); ``with_store``: all archived ones join."""
        all_items = list(items)
        if with_store:
            given = {i.id for i in items}
            all_items += [s for s in self.stored_items() if s.id not in given]
        return self._detector.cluster_embedded(all_items)

    def compare(self, a: EmbeddedArticle, b: EmbeddedArticle) -> Match:
        """Verify one pair: ``a`` as the query, ``b`` as the candidate."""
        return self._detector.compare(a, b)

    def count(self) -> int:
        """Articles in all shards (see :meth:`Archive.count`)."""
        return self.archive.count()

    def generation(self) -> int:
        """The sum of the shards' commit numbers: it grows with every commit to any shard.

        Opened shards give the commit this object holds; the others, their manifest's.

        Raises:
            StoreCorruptError: A shard manifest cannot be read; the message names the shard.

        """
        total = 0
        opened = set(self.archive.opened)
        for key in self.archive.keys:
            if key in opened:
                total += self.archive.shard(key).generation
                continue
            try:
                total += int(read_store_manifest(self.archive.path / key)["generation"])
            except StoreCorruptError as exc:
                raise StoreCorruptError(f"archive shard {self.archive.path / key} is damaged: {exc}") from None
        return total

    def state(self) -> State:
        """A fingerprint of the shards on disk (one ``stat`` per shard): it changes when any process commits.

        Raises:
            StoreError: The archive folder cannot be listed.

        """
        root = self.archive.path
        try:
            names = sorted(e.name for e in os.scandir(root) if is_shard_name(e.name))
        except OSError as exc:
            raise StoreError(f"cannot list the shards of archive {root}: {exc.strerror or exc}") from None
        out = []
        prefix = str(root)
        for name in names:
            try:
                st = os.stat(f"{prefix}/{name}/{MANIFEST}")  # a str, not a Path: this runs before every request
            except OSError:
                continue  # a shard being created: it exists once its manifest does
            out.append((name, st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(out)
