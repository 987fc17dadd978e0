"""The facade that wires the pipeline: embed -> retrieve -> verify -> check / add / cluster.

Every method that takes articles takes :class:`~dedup.types.Article` objects or JSONL
records (dicts, read by :func:`dedup.io.parse_record`, so ``{"id": 7, "title": ...}`` works).

Examples:
    Typical use (loads the default model, so not run as a doctest)::

        det = Detector.open("newsroom.store", create=True)
        det.add(records)                       # persistent, atomic
        verdict = det.check({"id": "a1", "title": "..."})   # verdict.duplicate, verdict.matches (evidence)
        stories = det.cluster(feed).stories    # tuple[Story, ...]
        kept = Detector.in_memory().self_deduplicate(records).selected   # one record per story

"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from dedup.clustering.batch import cluster_embedded
from dedup.config import Config
from dedup.detect.common import add_report, embedding_cache, space_of, verdict
from dedup.embedding.articles import embed_feed
from dedup.embedding.cache import EmbeddingCache
from dedup.embedding.centring import centring_for
from dedup.embedding.encoders import Encoder, load_encoder
from dedup.errors import DuplicateIdError, InputError, StoreNotFoundError
from dedup.io import as_article
from dedup.progress import track
from dedup.search.manifest import MANIFEST, read_manifest
from dedup.search.routing import beyond_gap
from dedup.search.store import Store
from dedup.types import (
    AddReport,
    Article,
    ClusterResult,
    DeduplicationResult,
    Duplicate,
    EmbeddedArticle,
    Match,
    Record,
    Story,
    Verdict,
)
from dedup.verify import Verifier
from dedup.verify_bound import Pruner

__all__ = ["Detector"]

logger = logging.getLogger(__name__)


class Detector:
    """Checks, stores and clusters articles. Build with :meth:`open` or :meth:`in_memory`.

    Args:
        store: Where checked-against articles live.
        encoder: The embedding model; must match the store's model.
        config: Thresholds and settings.
        verifier: The pairwise decision model (default: the shipped parameters).
        cache: The embedding cache, or None for none (:meth:`open` and :meth:`in_memory`
            use the model's cache by default, as the ``dedup`` command does).

    """

    def __init__(
        self,
        store: Store,
        encoder: Encoder,
        config: Config,
        verifier: Verifier | None = None,
        *,
        cache: EmbeddingCache | None = None,
    ) -> None:
        self.store = store
        self.encoder = encoder
        self.config = config
        self.verifier = verifier or Verifier.default()
        self.cache = cache
        self.centring = centring_for(encoder.name, encoder.dim)
        self._pruner: Pruner | None = None
        #: Candidates met by checks, and how many of them were fully verified (the others pruned).
        self.verify_counts: Counter[str] = Counter()

    @classmethod
    def open(
        cls,
        path: str | Path,
        config: Config | None = None,
        *,
        encoder: Encoder | None = None,
        create: bool = False,
        verify: bool = True,
        cache: bool | EmbeddingCache = True,
    ) -> Detector:
        """Open the store at ``path`` (creating it when ``create`` and missing).

        ``cache``: ``True`` (the default, as the ``dedup`` command without ``--no-cache``)
        keeps passage vectors in the model's embedding cache under ``cache_root()``
        (``$DEDUP_CACHE_DIR``, else ``$XDG_CACHE_HOME/dedup``, else ``~/.cache/dedup``), so
        nothing is embedded twice; ``False`` uses none; or give an ``EmbeddingCache``.

        Raises:
            StoreNotFoundError: No store there and not ``create``.
            StoreMismatchError: The store was built with another model or dimension.

        """
        config = config or Config()
        root = Path(path)
        exists = (root / MANIFEST).is_file()
        if not exists and not create:
            raise StoreNotFoundError(f"no store at {root} (create one with `dedup add --store {root} ...`)")
        if exists:
            read_manifest(root)  # fail fast on a bad store before loading the model
        encoder = encoder or load_encoder(config.model, backend=config.backend)
        floor = config.recall_floor
        space = space_of(encoder)
        if exists:
            store = Store.open(root, model=space, dim=encoder.dim, verify=verify, index=config.index, recall_floor=floor)
        else:
            store = Store.open_or_create(root, space, encoder.dim, index=config.index or "auto", recall_floor=floor)
        return cls(store, encoder, config, cache=embedding_cache(cache, encoder))

    @classmethod
    def in_memory(
        cls, config: Config | None = None, *, encoder: Encoder | None = None, cache: bool | EmbeddingCache = True
    ) -> Detector:
        """A detector whose store lives in memory only (``cache`` as in :meth:`open`)."""
        config = config or Config()
        encoder = encoder or load_encoder(config.model, backend=config.backend)
        scratch = cls._scratch_store(space_of(encoder), encoder.dim, config)
        return cls(scratch, encoder, config, cache=embedding_cache(cache, encoder))

    @staticmethod
    def _scratch_store(model: str, dim: int, config: Config) -> Store:
        return Store.in_memory(model, dim, index=config.index or "auto", recall_floor=config.recall_floor)

    # -------------------------------------------------------------------- embedding
    def as_articles(self, records: Sequence[Record]) -> list[Article]:
        """``records`` as articles: :class:`Article` objects as they are, dicts read as JSONL records.

        Raises:
            InputError: A record is invalid, or neither an article nor a dict (naming ``records[i]``).

        """
        if isinstance(records, (Article, Mapping, str)):
            raise InputError(f"expected a list of articles or records, got one {type(records).__name__}: wrap it in a list")
        limit = self.config.max_article_chars
        return [as_article(r, position=i, max_chars=limit) for i, r in enumerate(records)]

    def embed(self, articles: Sequence[Record], *, show_progress: bool = False) -> list[EmbeddedArticle]:
        """Clean, split and embed articles (every passage, no truncation).

        With a model that does not cover an article's language (USE-multilingual knows 16,
        multilingual-e5 the 100 of XLM-R), a warning names the articles: their vectors, hence
        their verdicts, are unreliable.
        """
        return embed_feed(
            self.as_articles(articles),
            self.encoder,
            max_passage_chars=self.config.max_passage_chars,
            batch_size=self.config.batch_size,
            show_progress=show_progress,
            cache=self.cache,
            centring=self.centring,
        )

    # ------------------------------------------------------------------------ check
    def check(self, article: Record, *, top: int = 0) -> Verdict:
        """Is ``article`` (an :class:`Article` or a record) a duplicate of a stored one? See :meth:`check_embedded`."""
        return self.check_embedded(self.embed([article]), top=top)[0]

    def check_many(
        self, articles: Sequence[Record], *, top: int = 0, add: bool = False, show_progress: bool = False
    ) -> list[Verdict]:
        """Check several articles; with ``add``, each is stored after its check."""
        return self.check_embedded(self.embed(articles, show_progress=show_progress), top=top, add=add)

    def check_embedded(self, items: Sequence[EmbeddedArticle], *, top: int = 0, add: bool = False) -> list[Verdict]:
        """Check embedded articles against the store, in order.

        Args:
            items: Embedded query articles.
            top: Also list the ``top`` best candidates that are not duplicates (near misses).
            add: Store every article after its check, atomically at the end; later items
                are checked against earlier ones too.

        Returns:
            One :class:`Verdict` per item.

        """
        if top < 0:
            raise ValueError(f"top must be >= 0, got {top}")
        pending = self._scratch_store(self.store.model, self.store.dim, self.config) if add else None
        verdicts: list[Verdict] = []
        bar = track("checking", len(items), "article")  # retrieval and verification
        for item in items:
            matches, truncated = self._candidates(item, self.store, prune=top == 0)
            if pending is not None and len(pending):
                more, more_truncated = self._candidates(item, pending, prune=top == 0)
                matches = sorted(matches + more, key=lambda m: -m.score)
                truncated = truncated or more_truncated
            verdicts.append(verdict(item.id, matches, truncated, top=top))
            if pending is not None and item.id not in pending and item.id not in self.store:
                pending.add([item])
            bar.update()
        bar.close()
        if add:
            self.store.add(list(items))
        return verdicts

    def _candidates(self, item: EmbeddedArticle, store: Store, *, prune: bool) -> tuple[list[Match], bool]:
        if not len(store):
            return [], False
        own = store.position(item.id) if item.id in store else -1
        found = store.search(item.vector[None, :], self.config.candidates + (own >= 0))
        hits = [
            (float(sim), int(position))
            for position, sim in zip(found.positions[0], found.similarities[0], strict=True)
            if position >= 0 and sim >= self.config.min_candidate_similarity
        ]
        cut = bool(found.truncated[0])
        if prune and item.article.date is not None:  # dated beyond the gap: scored 0, left unread (days in memory)
            date, gap = item.article.date, self.config.max_date_gap_days
            near = {p: p == own or not beyond_gap(date, store.days(p), gap) for _, p in hits}
            others = [p for _, p in hits if p != own]
            cut = cut and (not others or near[others[-1]])  # a far least-similar candidate is no duplicate
            self.verify_counts.update(candidates=len(hits) - sum(near.values()))
            hits = [(sim, p) for sim, p in hits if near[p]]
        retrieved = [(sim, store.embedded(p)) for sim, p in hits]
        return self.verify_candidates(item, retrieved, cut=cut, prune=prune)

    def verify_candidates(
        self, item: EmbeddedArticle, retrieved: Sequence[tuple[float, EmbeddedArticle]], *, cut: bool, prune: bool = True
    ) -> tuple[list[Match], bool]:
        """Verify retrieved candidates against ``item``: the one verification path of every check.

        With ``prune``, candidates that provably cannot reach ``Config.threshold``
        (:class:`~dedup.verify_bound.Pruner`: dates too far apart, or a bound of the score
        from vectors, titles, lengths and dates alone below the threshold) are left out
        without the full verification: the duplicates found are the same, but the matches
        that are not duplicates are then incomplete. A check that lists near misses
        (``top`` > 0) verifies every candidate. :attr:`verify_counts` counts both.

        Args:
            item: The query article.
            retrieved: ``(article cosine, candidate)`` pairs, most similar first; the
                query's own id, when among them, is skipped.
            cut: Whether retrieval stopped at its limit, so more candidates may exist.
            prune: Leave out the candidates that cannot be duplicates.

        Returns:
            The matches sorted by score, and whether more duplicates may lie beyond the
            limit (``cut`` and the least similar candidate was still a duplicate).

        """
        matches: list[Match] = []
        last_is_duplicate = False
        if not item.passages:  # empty after cleaning: nothing to match
            return matches, False
        others = [other for _, other in retrieved if other.id != item.id]
        keep = self.pruner().must_verify(item, others, self.config) if prune else [True] * len(others)
        self.verify_counts.update(candidates=len(others), verified=int(sum(keep)))
        for other, verify in zip(others, keep, strict=True):
            last_is_duplicate = False  # a candidate left out is no duplicate
            if verify:
                match = self.verifier.decide(item, other, self.config)
                matches.append(match)
                last_is_duplicate = match.is_duplicate
        matches.sort(key=lambda m: -m.score)
        # More duplicates may lie beyond k only if the k-th (least similar) candidate was still one.
        return matches, cut and last_is_duplicate

    def pruner(self) -> Pruner:
        """The staged score bound of the verifier at ``Config.threshold`` (built once per verifier and threshold)."""
        if self._pruner is None or self._pruner.verifier is not self.verifier or self._pruner.threshold != self.config.threshold:
            self._pruner = Pruner(self.verifier, self.config.threshold)
        return self._pruner

    def compare(self, a: EmbeddedArticle, b: EmbeddedArticle) -> Match:
        """Verify one pair: ``a`` as the query, ``b`` as the candidate (the evidence of a story link)."""
        return self.verifier.decide(a, b, self.config)

    def neighbours(self, article_id: str, *, top: int = 10) -> Verdict:
        """A stored article checked against the rest of the store: its duplicates and ``top`` nearest others.

        Nothing is embedded: the stored passages and vectors are used.

        Raises:
            KeyError: When no stored article has this id.

        """
        return self.check_embedded([self.stored(article_id)], top=top)[0]

    # ---------------------------------------------------------------------- reading
    def stored(self, article_id: str) -> EmbeddedArticle:
        """A stored article with its passages and vectors (raises KeyError)."""
        return self.store.embedded(self.store.position(article_id))

    def stored_items(self) -> list[EmbeddedArticle]:
        """Every stored article with its passages and vectors, in insertion order.

        The vectors are views of rows that never change once written, so the list stays a
        consistent snapshot after later commits.
        """
        return [self.store.embedded(p) for p in range(len(self.store))]

    # -------------------------------------------------------------------------- add
    def add(self, articles: Sequence[Record], *, replace: bool = False, show_progress: bool = False) -> AddReport:
        """Embed and store articles (or records) atomically (see :meth:`Store.add`)."""
        given = self.as_articles(articles)
        # Articles already stored with the same content are not embedded again.
        new = [a for a in given if replace or a.id not in self.store or self._changed(a)]
        report = self.store.add(self.embed(new, show_progress=show_progress), replace=replace)
        return add_report(report, given, new)

    def _changed(self, article: Article) -> bool:
        return self.store.get(article.id).content_hash != article.content_hash

    # ---------------------------------------------------------------------- cluster
    def cluster(self, articles: Sequence[Record], *, with_store: bool = False, show_progress: bool = False) -> ClusterResult:
        """Group articles (or records) into stories; with ``with_store``, stored articles join in."""
        return self.cluster_embedded(self.embed(articles, show_progress=show_progress), with_store=with_store)

    def self_deduplicate(self, records: Sequence[Record], *, show_progress: bool = False) -> DeduplicationResult:
        """Deduplicate a batch against itself: one record per story, the others named as its duplicates.

        The records are clustered into stories (:meth:`cluster`, the store left out); each
        story keeps its first record in input order. A record that repeats an earlier id
        with the same content is a duplicate of it.

        Args:
            records: :class:`Article` objects or JSONL records (dicts).
            show_progress: Show a progress bar while embedding.

        Returns:
            ``selected`` (the records kept, as given), ``duplicates``, ``stories``.

        Raises:
            InputError: A record is invalid.
            DuplicateIdError: An id repeats with other content.

        Examples:
            Loads the default model, so not run as a doctest::

                result = Detector.in_memory().self_deduplicate(records)
                result.selected      # the deduplicated records
                result.duplicates    # Duplicate(id, story, kept) for each record left out

        """
        articles = self.as_articles(records)
        first: dict[str, int] = {}
        for i, article in enumerate(articles):
            j = first.setdefault(article.id, i)
            if articles[j].content_hash != article.content_hash:
                raise DuplicateIdError(
                    f"id {article.id!r} already used by records[{j}] with other content", source=f"records[{i}]"
                )
        clustering = self.cluster([articles[i] for i in sorted(first.values())], show_progress=show_progress)
        kept = {story.id: story.article_ids[0] for story in clustering.stories}
        selected: list[Record] = []
        duplicates: list[Duplicate] = []
        for i, (record, article) in enumerate(zip(records, articles, strict=True)):
            story = clustering.labels[article.id]
            if first[article.id] == i and kept[story] == article.id:
                selected.append(record)
            else:
                duplicates.append(Duplicate(record, article.id, story, kept[story]))
        return DeduplicationResult(tuple(selected), tuple(duplicates), clustering.stories, clustering)

    def cluster_embedded(self, items: Sequence[EmbeddedArticle], *, with_store: bool = False) -> ClusterResult:
        """Group embedded articles into stories by verified, average-linked pairs.

        A feed is clustered in time windows of ``Config.window_days`` (see
        :mod:`dedup.clustering.windows`); with ``with_store``, stored articles join in.
        """
        all_items = list(items)
        if with_store:
            given = {i.id for i in items}
            ids = self.store.ids  # a copy per access: taken once, not once per stored article
            all_items += [self.store.embedded(p) for p, stored_id in enumerate(ids) if stored_id not in given]
        return cluster_embedded(all_items, self.config, self.verifier)

    def story(self, article_id: str) -> Story:
        """The story of a stored article, among its stored neighbours.

        Stories are not stored; this clusters the article with its ``Config.candidates``
        nearest stored articles (average linkage over verified scores, as :meth:`cluster`)
        and returns the story that holds it. Nothing is embedded: stored vectors are used.

        Raises:
            KeyError: When no stored article has this id.

        """
        item = self.store.embedded(self.store.position(article_id))
        k = min(self.config.candidates + 1, len(self.store))
        found = self.store.search(item.vector[None, :], k)
        near = [
            self.store.embedded(int(p))
            for p, sim in zip(found.positions[0], found.similarities[0], strict=True)
            if p >= 0 and sim >= self.config.min_candidate_similarity
        ]
        result = self.cluster_embedded([item, *(n for n in near if n.id != article_id)])
        label = result.labels[article_id]
        return next(s for s in result.stories if s.id == label)
