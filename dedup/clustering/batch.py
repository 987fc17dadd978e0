"""Batch story clustering of embedded articles: per group, then over time windows.

:func:`cluster_group` is the whole job for one group of articles: candidate search in a
scratch index, verification of every candidate pair, average linkage. :func:`cluster_feed`
cuts a feed into time windows (:mod:`dedup.clustering.windows`), runs :func:`cluster_group` on each
through a caller-given ``map`` (the builtin one, or a process pool), and merges. The Ray
engine (:mod:`dedup.clustering.ray_engine`) runs the very same :func:`cluster_group` per window on its
workers and the same merge, so both engines give the same stories.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from dedup.clustering.linkage import average_linkage
from dedup.clustering.windows import WindowPlan, merge_windows, partition
from dedup.config import Config
from dedup.progress import track
from dedup.search.store import Store
from dedup.types import Article, ClusterResult, EmbeddedArticle, Story
from dedup.verify import Verifier

__all__ = [
    "GroupResult",
    "build_result",
    "cluster_embedded",
    "cluster_feed",
    "cluster_group",
    "day_bounds",
    "feed_days",
    "merge_results",
    "stories_of",
    "window_plan",
]

#: Edges as ``(i, j, score)`` with ``i < j`` positions in the group or feed.
Edges = tuple[tuple[int, int, float], ...]


@dataclass(frozen=True)
class GroupResult:
    """The clustering of one group: a label per member and the verified candidate pairs.

    Attributes:
        labels: One cluster label per member, numbered by first appearance.
        edges: Candidate pairs ``(i, j, score)`` (member positions, ``i < j``) scored at
            or above ``Config.threshold``.

    """

    labels: tuple[int, ...]
    edges: Edges


def day_bounds(article: Article) -> tuple[int, int] | None:
    """The first and last day (ordinals) an article's date can denote; None when undated."""
    if article.date is None:
        return None
    first, last = article.date.bounds()
    return first.toordinal(), last.toordinal()


def feed_days(articles: Sequence[Article]) -> list[tuple[int, int] | None]:
    """The day spans of a feed's articles (see :func:`day_bounds`)."""
    return [day_bounds(a) for a in articles]


def window_plan(config: Config) -> WindowPlan | None:
    """The windows ``config`` asks for (overlap: ``max_date_gap_days``); None for one piece."""
    return WindowPlan(config.window_days, config.max_date_gap_days) if config.window_days else None


def cluster_group(
    items: Sequence[EmbeddedArticle], config: Config, verifier: Verifier, *, show_progress: bool | None = False
) -> GroupResult:
    """Cluster one group of embedded articles into stories (search, verify, average linkage).

    ``show_progress``: report the verification (None: if :func:`dedup.progress.enabled`);
    off by default, as a group is usually one window of many, run on a worker.
    """
    n = len(items)
    if n == 0:
        return GroupResult((), ())
    dim = int(items[0].vector.shape[0])
    local = Store.in_memory("group", dim, index=config.index or "auto", recall_floor=config.recall_floor)
    local.add(list(items))
    k = min(config.candidates + 1, n)
    found = local.search(np.vstack([i.vector for i in items]), k)
    cache: dict[tuple[int, int], float] = {}

    def score(i: int, j: int) -> float:
        key = (min(i, j), max(i, j))
        if key not in cache:
            cache[key] = verifier.decide(items[key[0]], items[key[1]], config).score
        return cache[key]

    edges: list[tuple[int, int, float]] = []
    with track("verifying candidates of", n, "article", show=show_progress) as bar:
        for i in range(n):
            for position, sim in zip(found.positions[i], found.similarities[i], strict=True):
                j = int(position)
                if j < 0 or j == i or sim < config.min_candidate_similarity:
                    continue
                edges.append((min(i, j), max(i, j), score(i, j)))
            bar.update()
    labels = average_linkage(
        n,
        edges,
        score,
        threshold=config.cluster_threshold,
        linkage=config.cluster_linkage,
        days=[day_bounds(i.article) for i in items],
        max_gap_days=config.max_date_gap_days,
    )
    verified = tuple(sorted({e for e in edges if e[2] >= config.threshold}))
    return GroupResult(tuple(labels), verified)


def cluster_feed(
    items: Sequence[EmbeddedArticle],
    config: Config,
    verifier: Verifier,
    *,
    mapper: Callable[..., Iterable[GroupResult]] = map,
) -> tuple[list[int], Edges]:
    """Cluster a feed window by window (see :mod:`dedup.clustering.windows`): labels and verified edges.

    ``mapper(function, groups)`` runs the windows: the builtin ``map`` (one after the
    other) or, e.g., ``ProcessPoolExecutor.map``; results must come back in order.

    Returns:
        One label per item (numbered by first appearance) and the verified pairs of every
        window, as feed positions, each pair once.

    """
    plan = window_plan(config)
    if plan is None:
        whole = cluster_group(items, config, verifier, show_progress=None)
        return list(whole.labels), whole.edges
    days = feed_days([i.article for i in items])
    windows = partition(days, plan)
    groups = [[items[m] for m in members] for members in windows.values()]
    results: list[GroupResult] = []
    with track("clustering", len(groups), "window", weight=sum(len(g) for g in groups)) as bar:
        for result, group in zip(mapper(_Job(config, verifier), groups), groups, strict=True):
            results.append(result)
            bar.update(weight=len(group))
    return merge_results(len(items), windows, results, days, plan)


def cluster_embedded(items: Sequence[EmbeddedArticle], config: Config, verifier: Verifier) -> ClusterResult:
    """Group embedded articles into stories: :func:`cluster_feed`, then :func:`build_result`.

    Needs no encoder and no store: the vectors are given. ``Detector.cluster_embedded`` is
    this, with the stored articles joining in on request.

    Args:
        items: The articles with their vectors.
        config: Threshold, linkage, time windows, candidates per article.
        verifier: Scores each candidate pair.

    Returns:
        The stories, every article's story id and the verified pairs.

    """
    labels, edges = cluster_feed(items, config, verifier)
    return build_result([i.article for i in items], labels, edges, config.threshold)


def merge_results(
    n: int,
    windows: dict[int, list[int]],
    results: Sequence[GroupResult],
    days: Sequence[tuple[int, int] | None],
    plan: WindowPlan,
) -> tuple[list[int], Edges]:
    """Merge per-window results (in the order of ``windows``) into feed labels and edges."""
    labels = merge_windows(n, [(w, m, r.labels) for (w, m), r in zip(windows.items(), results, strict=True)], days, plan)
    edges: dict[tuple[int, int], float] = {}
    for members, result in zip(windows.values(), results, strict=True):
        for i, j, s in result.edges:
            a, b = sorted((members[i], members[j]))
            edges[a, b] = max(s, edges.get((a, b), 0.0))
    return labels, tuple((a, b, s) for (a, b), s in sorted(edges.items()))


@dataclass(frozen=True)
class _Job:
    """:func:`cluster_group` with its settings bound (picklable, for process pools)."""

    config: Config
    verifier: Verifier

    def __call__(self, group: Sequence[EmbeddedArticle]) -> GroupResult:
        return cluster_group(group, self.config, self.verifier)


def build_result(articles: Sequence[Article], labels: Sequence[int], edges: Edges, threshold: float) -> ClusterResult:
    """The :class:`ClusterResult` of a feed from its labels and verified edges."""
    stories = stories_of(articles, labels)
    ids = [a.id for a in articles]
    by_id = {ids[i]: stories[labels[i]].id for i in range(len(ids))}
    verified = sorted({(ids[i], ids[j], s) for i, j, s in edges if s >= threshold}, key=lambda e: (-e[2], e[0], e[1]))
    return ClusterResult(tuple(stories), by_id, tuple(verified))


def stories_of(articles: Sequence[Article], labels: Sequence[int]) -> list[Story]:
    """Stories from one label per article (labels numbered by first appearance)."""
    groups: dict[int, list[Article]] = {}
    for article, label in zip(articles, labels, strict=True):
        groups.setdefault(label, []).append(article)
    width = max(4, len(str(len(groups))))
    out: list[Story] = []
    for label in sorted(groups):
        members = groups[label]
        dates = sorted(a.date for a in members if a.date is not None)
        out.append(
            Story(
                id=f"story-{label + 1:0{width}d}",
                article_ids=tuple(a.id for a in members),
                langs=tuple(sorted({a.lang for a in members if a.lang})),
                first_date=dates[0] if dates else None,
                last_date=dates[-1] if dates else None,
                titles=tuple(a.title for a in members),
            )
        )
    return out
