"""`dedup cluster --engine ray` on a real Ray cluster (a head and a worker node on 127.0.0.1).

The cluster is started inside the tests and stopped after them (see ``tests/raycluster.py``).
The Ray engine must give the same stories as the local engine on the same input, also
when a worker node dies mid-job. The dev sets in ``../shared/data`` (or ``$DEDUP_DEV_DATA``)
are used when present; the other tests use the demo corpus and generated feeds.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from dedup.config import Config
from dedup.detect.detector import Detector
from dedup.io import read_articles
from dedup.types import Article, ClusterResult

from .raycluster import ROOT, LocalRayCluster, connected_cluster

ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.ray, pytest.mark.model, pytest.mark.slow]

DEV_DATA = Path(os.environ.get("DEDUP_DEV_DATA", ROOT.parent / "shared" / "data"))


def groups(result: ClusterResult) -> list[list[str]]:
    return sorted(sorted(s.article_ids) for s in result.stories)


def local(articles: Sequence[Article], config: Config) -> ClusterResult:
    return Detector.in_memory(config).cluster(articles)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRayCluster]:
    with connected_cluster(tmp_path_factory.mktemp("ray")) as nodes:
        yield nodes


def write_jsonl(path: Path, articles: Sequence[Article]) -> Path:
    path.write_text("".join(json.dumps(a.to_dict(), ensure_ascii=False) + "\n" for a in articles), encoding="utf-8")
    return path


WORDS = [
    "minister",
    "council",
    "flood",
    "harbour",
    "election",
    "budget",
    "strike",
    "festival",
    "court",
    "vaccine",
    "bridge",
    "railway",
    "summit",
    "treaty",
    "drought",
    "wildfire",
    "museum",
    "orchestra",
    "satellite",
    "parliament",
    "union",
    "tariff",
    "reactor",
    "glacier",
    "refinery",
    "airport",
    "stadium",
    "hospital",
    "factory",
    "census",
    "protest",
    "verdict",
    "ceasefire",
    "merger",
    "pipeline",
    "harvest",
    "exhibition",
]


def generated_feed(stories: int, per_story: int, seed: int = 7) -> list[Article]:
    """Stories of a few sentences, each told several times (reworded, reordered) on nearby days."""
    rng = random.Random(seed)
    out: list[Article] = []
    for s in range(stories):
        place = f"Town{s}"
        facts = [
            f"The {rng.choice(WORDS)} in {place} reported {rng.randint(10, 9999)} cases of {rng.choice(WORDS)}." for _ in range(4)
        ]
        day = 1 + (s * 3) % 60
        for k in range(per_story):
            body = facts[:]
            rng.shuffle(body)
            body.append(f"Correspondent {k} added that the {rng.choice(WORDS)} {rng.choice(WORDS)} remains open.")
            date = f"2025-{3 + (day + k) // 30:02d}-{1 + (day + k) % 28:02d}"
            out.append(
                Article(id=f"s{s}-{k}", title=f"{place}: {facts[0][:50]}", text="\n".join(body), date=_date(date), lang="en")
            )
    rng.shuffle(out)
    return out


def _date(text: str) -> Any:
    from dedup.types import PartialDate

    return PartialDate.parse(text)


def test_ray_gives_the_local_stories_on_the_demo_corpus(cluster: LocalRayCluster) -> None:
    from dedup.clustering.ray_engine import cluster_on_ray

    config = Config()
    run = cluster_on_ray([ROOT / "data"], config, address=cluster.address)
    expected = local(read_articles([ROOT / "data"]).articles, config)
    assert run.nodes == 2 and run.cpus == 2
    assert groups(run.result) == groups(expected)
    assert run.result.labels == expected.labels  # not even renamed: numbered by first appearance
    assert ["000_57c5f2451950a71c", "004_7759ea6dc643d52c"] in groups(run.result)
    assert run.windows >= 2  # the seeds span 2022-2025: several windows, and the undated 002


def test_ray_reads_jsonl_shards_in_order_and_matches_across_windows(cluster: LocalRayCluster, tmp_path: Path) -> None:
    from dedup.clustering.ray_engine import cluster_on_ray

    feed = generated_feed(stories=24, per_story=3)
    shards = [write_jsonl(tmp_path / f"part-{k}.jsonl", feed[k::3]) for k in range(3)]
    config = Config(window_days=7)
    run = cluster_on_ray(shards, config, address=cluster.address)
    articles = read_articles(shards).articles
    expected = local(articles, config)
    assert [a.id for a in run.articles] == [a.id for a in articles]
    assert run.result.labels == expected.labels and groups(run.result) == groups(expected)
    assert run.result.edges == expected.edges
    assert run.windows > 3
    assert sum(len(g) > 1 for g in groups(expected)) >= 12  # the feed does have stories to find


def _dev(name: str) -> Path:
    path = DEV_DATA / name
    if not path.is_file():
        pytest.skip(f"dev set {path} not found (set DEDUP_DEV_DATA to the folder holding it)")
    return path


def test_ray_gives_the_local_stories_on_og2021_dev(cluster: LocalRayCluster, tmp_path: Path) -> None:
    """All 4,250 OG2021 titles (24 days), in 4-day windows so that many windows are merged."""
    from dedup.clustering.ray_engine import cluster_on_ray

    articles = list(read_articles([_dev("og2021_dev.jsonl")]).articles)
    shards = [write_jsonl(tmp_path / f"og-{k}.jsonl", articles[k::2]) for k in range(2)]  # the copy is deleted after the test
    config = Config(window_days=4)
    run = cluster_on_ray(shards, config, address=cluster.address)
    expected = local(read_articles(shards).articles, config)
    assert run.windows >= 6
    assert groups(run.result) == groups(expected)


def test_ray_gives_the_local_stories_on_ntrex_dev(cluster: LocalRayCluster, tmp_path: Path) -> None:
    """NTREX articles (undated: one partition), the first 12 documents in all their ~20 languages."""
    from dedup.clustering.ray_engine import cluster_on_ray

    rows = [json.loads(line) for line in _dev("ntrex_dev.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    keep = sorted({r["story"] for r in rows})[:12]
    subset = write_jsonl(
        tmp_path / "ntrex.jsonl", [a for a in read_articles([_dev("ntrex_dev.jsonl")]).articles if _story(rows, a.id) in keep]
    )
    config = Config()
    run = cluster_on_ray([subset], config, address=cluster.address)
    expected = local(read_articles([subset]).articles, config)
    assert run.windows == 1
    assert groups(run.result) == groups(expected)
    assert len(run.articles) > 200


def _story(rows: list[dict[str, Any]], article_id: str) -> str:
    table: dict[str, str] = _story.__dict__.setdefault("table", {})
    if not table:
        table.update({r["id"]: r["story"] for r in rows})
    return table[article_id]
