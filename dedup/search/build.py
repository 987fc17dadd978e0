"""Building archive shards in parallel: one task per touched shard, on processes or Ray.

Each task opens (or creates) its shard under the shard's own writer lock and commits
once, so tasks never conflict, and a concurrent writer of the same shard is serialised
with them by that lock. Tasks carry the embedded articles themselves: an
:class:`~dedup.types.Article` pickles (see ``Article.__reduce__``), numpy arrays too.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from dedup.errors import OptionalDependencyError
from dedup.search.archive import Archive
from dedup.search.routing import group_by_shard
from dedup.search.store import Store
from dedup.types import AddReport, EmbeddedArticle

__all__ = ["Mapper", "build_shards", "ray_mapper"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R")


class Mapper(Protocol):
    """Runs tasks in parallel: anything with ``map(fn, iterable)``.

    A :class:`concurrent.futures.Executor`, a :class:`multiprocessing.pool.Pool`, or Ray's
    ``ray.util.multiprocessing.Pool`` (see :func:`ray_mapper`).
    """

    def map(self, fn: Callable[[_T], _R], iterable: Iterable[_T], /) -> Iterable[_R]:
        """Apply ``fn`` to every element, in parallel, returning results in order."""
        ...


@dataclass(frozen=True)
class _ShardTask:
    folder: str
    model: str
    dim: int
    index: str
    recall_floor: float
    replace: bool
    items: tuple[EmbeddedArticle, ...]


def _build_shard(task: _ShardTask) -> tuple[str, AddReport]:
    """One shard's add, in a worker: open or create the shard under its lock, add, commit."""
    store = Store.open_or_create(task.folder, task.model, task.dim, index=task.index, recall_floor=task.recall_floor)
    report = store.add(task.items, replace=task.replace)
    return Path(task.folder).name, report


def build_shards(
    path: str | Path,
    items: Sequence[EmbeddedArticle],
    *,
    executor: Mapper | None = None,
    workers: int = 2,
    replace: bool = False,
    index: str = "auto",
    recall_floor: float = 0.99,
) -> dict[str, AddReport]:
    """Add embedded articles to the archive at ``path``, building the touched shards in parallel.

    The articles are grouped by shard; each group is one task that opens (or creates) its
    shard under the shard's own lock and commits once, so tasks never conflict, and a
    concurrent writer of the same shard is serialised with them by that lock.

    Args:
        path: An existing archive (see :meth:`Archive.create`).
        items: Embedded articles, in any order.
        executor: Runs the tasks: anything with ``map(fn, iterable)`` (:class:`Mapper`),
            e.g. a ``concurrent.futures`` executor or :func:`ray_mapper`'s pool on a Ray
            cluster (the workers must see ``path``: a shared file system). None: a local
            process pool of ``workers`` processes (``spawn``), or in this process when
            ``workers`` is 1 or only one shard is touched.
        workers: Processes of the local pool.
        replace: As :meth:`Store.add`.
        index: Index choice for shards created now.
        recall_floor: Recall@10 an approximate shard index must meet.

    Returns:
        Shard key -> what its add did.

    Raises:
        StoreNotFoundError: No archive at ``path``.

    """
    root = Path(path).resolve()
    manifest = Archive.read_manifest(root)
    model, dim = str(manifest["model"]), int(manifest["dim"])
    tasks = [
        _ShardTask(str(root / key), model, dim, index, recall_floor, replace, tuple(group))
        for key, group in sorted(group_by_shard(items).items())
    ]
    results: Iterable[tuple[str, AddReport]]
    if executor is not None:
        results = list(executor.map(_build_shard, tasks))
    elif workers <= 1 or len(tasks) <= 1:
        results = [_build_shard(t) for t in tasks]
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_build_shard, tasks))
    out = dict(results)
    logger.info("built %d shard(s) of %s: %d article(s) added", len(out), root, sum(len(r.added) for r in out.values()))
    return out


def ray_mapper(processes: int | None = None) -> Mapper:
    """A :class:`Mapper` running tasks on Ray (``ray.util.multiprocessing.Pool``); Ray is imported only here.

    Raises:
        OptionalDependencyError: Ray is not installed.

    """
    try:
        from ray.util.multiprocessing import Pool
    except ImportError:
        raise OptionalDependencyError("ray", "building archive shards on Ray") from None
    pool: Mapper = Pool(processes=processes)
    return pool
