"""Training and evaluation rows for ``benchmarks/fit_verifier.py``: one feature row per candidate pair, per source.

Sources (files given on the command line; nothing here defaults to a data folder):

* ``semeval``: SemEval-2022 task 8 pairs (independently written reports, rated by people).
  Split into tune and held parts by connected component of the article graph; only
  labelled tune pairs train, the held part is scored by the final model.
* ``ntrex``: NTREX-128 translations. Rows: every article's ``k`` nearest articles (as
  retrieval proposes them), and each translation against its ``k`` nearest English
  originals (the recall@1 rows). Pairs of two documents of one same-event group (named in
  the data's README) are neither positives nor negatives, and are left out.
* ``og2021``: OG2021 titles, every title's ``k`` nearest titles.
* ``seeds``: the ten pairs of the five seed articles (never trained on).
* ``template``: two pairs of unrelated stories written from one template (never trained on).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dedup.config import Config
from dedup.evaluation.pairs import components, held_out_component
from dedup.io import read_articles
from dedup.search.index import VectorIndex
from dedup.types import Article, EmbeddedArticle
from dedup.verify import compare, identical
from dedup.verify_features import FEATURES, pair_features

Embed = Callable[[Sequence[Article], str], list[EmbeddedArticle]]

#: NTREX documents about one event (the data README's caveat): "related", not negatives.
NTREX_SAME_EVENT = (
    "nytimes.184837 nytimes.184860 reuters.218863 reuters.218865 euronews-en.153797 euronews-en.153835 "
    "telegraph.405422 newsweek.51340",
    "cbsnews.248384 cbsnews.248394 cnn.304489 newsweek.51328 telegraph.405413",
    "independent.226301 reuters.218914 reuters.218923 euronews-en.153826",
    "rt.com.91337 reuters.218932",
    "cnn.304447 newsweek.51310 cnn.304478",
)
_GROUP_OF = {doc: n for n, group in enumerate(NTREX_SAME_EVENT) for doc in group.split()}

#: Two stories from one template (same sentence frames, other names, places and numbers).
TEMPLATE = (
    "On {d} March, {p}, the prime minister of {c}, received {q}, the foreign minister of {c2}, in {city}. "
    "The two sides discussed cooperation in trade, energy and education and agreed to open a new consulate in {c3}. "
    "{p} said relations between {c} and {c2} had reached a new level, and {q} invited him to visit {city2} next year. "
    "The talks were followed by the signing of {n} agreements worth {m} million dollars."
)
TEMPLATE_FILLS = (
    {"d": 12, "p": "Jan Kowalski", "c": "Poland", "q": "Ahmed Benali", "c2": "Algeria", "city": "Warsaw", "c3": "Oran",
     "city2": "Algiers", "n": 5, "m": 340},
    {"d": 27, "p": "Maria Ortega", "c": "Chile", "q": "Kenji Watanabe", "c2": "Japan", "city": "Santiago", "c3": "Osaka",
     "city2": "Tokyo", "n": 3, "m": 85},
)  # fmt: skip
TEMPLATE_ISSUE = (
    "Gdansk opened a desalination plant on Monday. Mayor Anna Nowak said the plant would supply 40,000 homes. "
    "The project cost 120 million zloty and was financed by the European Union. Work began in 2021 in the port district.",
    "Valparaiso signed a fishing accord on Monday. Mayor Jorge Sharp said the accord would protect 3,000 jobs. "
    "The agreement covers 80 vessels and was negotiated with Peru. Talks began in 2019 in the harbour office.",
)


@dataclass
class Rows:
    """Feature rows of one source, with what the fit and the report need.

    Attributes:
        source: The source's name.
        x: Feature rows (:data:`dedup.verify_features.FEATURES`).
        y: 1 same story, 0 not, NaN unlabelled.
        group1: Fold key of the first article (story or component).
        group2: Fold key of the second article.
        kind: ``knn``, ``r1:<query id>`` (recall rows), ``tune``, ``held``, ``eval`` (never trained on).
        lang: The non-English language of an NTREX row ("" elsewhere).
        overall: SemEval's human rating (NaN elsewhere).
        hard: SemEval hard negatives.
        identical: Exact repeats (scored 1.0 by the verifier, whatever the model).
        va: The first article's (centred) vector, per row: the learned map's input.
        vb: The second article's vector.

    """

    source: str
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    group1: NDArray[np.str_]
    group2: NDArray[np.str_]
    kind: NDArray[np.str_]
    lang: NDArray[np.str_]
    overall: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    hard: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    identical: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    va: NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    vb: NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))

    def __post_init__(self) -> None:
        n = len(self.y)
        if len(self.overall) != n:
            self.overall = np.full(n, np.nan)
        if len(self.hard) != n:
            self.hard = np.zeros(n, dtype=bool)
        if len(self.identical) != n:
            self.identical = np.zeros(n, dtype=bool)

    @property
    def trainable(self) -> NDArray[np.bool_]:
        """Rows the model may be fitted on (labelled, not held, not evaluation-only)."""
        out: NDArray[np.bool_] = ~np.isnan(self.y) & np.isin(self.kind, ("held", "eval"), invert=True)
        return out


def _row(
    a: EmbeddedArticle, b: EmbeddedArticle, config: Config
) -> tuple[NDArray[np.float64], NDArray[np.float32], NDArray[np.float32]]:
    """The pair's features (``mapped_similarity`` NaN: the fit fills it in) and its two article vectors."""
    x = pair_features(compare(a, b, config), a, b, max_date_gap_days=config.max_date_gap_days)
    return x, a.vector.astype(np.float32), b.vector.astype(np.float32)


def _too_far(a: EmbeddedArticle, b: EmbeddedArticle, config: Config) -> bool:
    da, db = a.article.date, b.article.date
    return da is not None and db is not None and da.gap_days(db) > config.max_date_gap_days


def _rows(source: str, table: list[tuple[object, ...]], **extra: NDArray[np.float64] | NDArray[np.bool_]) -> Rows:
    cols = list(zip(*table, strict=True)) if table else [[]] * 6
    pairs = cols[0]
    return Rows(
        source,
        np.vstack([p[0] for p in pairs]) if table else np.zeros((0, len(FEATURES))),
        np.asarray(cols[1], dtype=np.float64),
        np.asarray(cols[2], dtype=str),
        np.asarray(cols[3], dtype=str),
        np.asarray(cols[4], dtype=str),
        np.asarray(cols[5], dtype=str),
        **extra,  # type: ignore[arg-type]
        va=np.vstack([p[1] for p in pairs]) if table else np.zeros((0, 0), dtype=np.float32),
        vb=np.vstack([p[2] for p in pairs]) if table else np.zeros((0, 0), dtype=np.float32),
    )


def semeval_rows(path: Path, embed: Embed, config: Config) -> Rows:
    """Rows of the SemEval pairs file; held components (sha256 of the representative odd) are ``held``."""
    pairs = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    articles: dict[str, Article] = {}
    for p in pairs:
        for k in ("1", "2"):
            articles.setdefault(p["id" + k], Article(id=p["id" + k], text=p["text" + k], lang=p["lang" + k] or None))
    items = dict(zip(articles, embed(list(articles.values()), "semeval"), strict=True))
    roots = components([(p["id1"], p["id2"]) for p in pairs])
    table: list[tuple[object, ...]] = []
    for p, root in zip(pairs, roots, strict=True):
        held = held_out_component(root)
        y = float("nan") if p.get("label") is None else float(p["label"])
        table.append((_row(items[p["id1"]], items[p["id2"]], config), y, root, root, "held" if held else "tune", ""))
    return _rows(
        "semeval",
        table,
        overall=np.asarray([float(p["overall"]) for p in pairs]),
        hard=np.asarray([bool(p.get("hard_negative")) for p in pairs]),
    )


def _knn(items: list[EmbeddedArticle], k: int, config: Config) -> Iterator[tuple[int, int]]:
    index = VectorIndex(items[0].vector.shape[0])
    index.add(np.vstack([e.vector for e in items]))
    found = index.search(np.vstack([e.vector for e in items]), min(k + 1, len(items)))
    seen: set[tuple[int, int]] = set()
    for i in range(len(items)):
        for j in found.positions[i]:
            key = (min(i, int(j)), max(i, int(j)))
            if j < 0 or key[0] == key[1] or key in seen or _too_far(items[key[0]], items[key[1]], config):
                continue
            seen.add(key)
            yield key


def _lang_tag(article_id: str) -> str:
    return article_id.rsplit("-", 1)[-1]


def _related(s1: str, s2: str) -> bool:
    return s1 != s2 and s1 in _GROUP_OF and _GROUP_OF.get(s2) == _GROUP_OF[s1]


def ntrex_rows(path: Path, embed: Embed, config: Config, k: int) -> Rows:
    """Nearest-neighbour rows and recall@1 rows (each translation against its ``k`` nearest English originals)."""
    arts = list(read_articles([path], detect_lang=False).articles)
    items = embed(arts, "ntrex_dev")
    story = [str(a.extra["story"]) for a in arts]
    table: list[tuple[object, ...]] = []
    for i, j in _knn(items, k, config):
        if _related(story[i], story[j]):
            continue
        lang = next((t for t in (_lang_tag(arts[i].id), _lang_tag(arts[j].id)) if t != "src"), "src")
        table.append((_row(items[i], items[j], config), float(story[i] == story[j]), story[i], story[j], "knn", lang))
    originals = [n for n, a in enumerate(arts) if _lang_tag(a.id) == "src"]
    vectors = np.vstack([items[n].vector for n in originals])
    for q, article in enumerate(arts):
        if _lang_tag(article.id) == "src":
            continue
        for r in np.argsort(-(vectors @ items[q].vector))[:k]:
            o = originals[int(r)]
            if _related(story[q], story[o]):
                continue
            row = _row(items[q], items[o], config)
            table.append((row, float(story[q] == story[o]), story[q], story[o], f"r1:{article.id}", _lang_tag(article.id)))
    return _rows("ntrex", table)


def og2021_rows(path: Path, embed: Embed, config: Config, k: int, fit_until: str) -> Rows:
    """Nearest-neighbour rows of the titles; pairs dated after ``fit_until`` are ``eval`` only."""
    arts = list(read_articles([path], detect_lang=False).articles)
    items = embed(arts, "og2021_dev")
    story = [str(a.extra["story"]) for a in arts]
    table: list[tuple[object, ...]] = []
    same: list[bool] = []
    for i, j in _knn(items, k, config):
        late = any(a.date is None or str(a.date) > fit_until for a in (arts[i], arts[j]))
        table.append(
            (_row(items[i], items[j], config), float(story[i] == story[j]), story[i], story[j], "eval" if late else "knn", "")
        )
        same.append(identical(items[i], items[j]))
    return _rows("og2021", table, identical=np.asarray(same, dtype=bool))


def seeds_rows(path: Path, embed: Embed, config: Config) -> Rows:
    """The ten pairs of the seed articles (evaluation only; a pair outside the date window is labelled NaN)."""
    arts = list(read_articles([path], detect_lang=False).articles)
    items = embed(arts, "seeds")
    table: list[tuple[object, ...]] = []
    for i in range(len(arts)):
        for j in range(i + 1, len(arts)):
            y = float(arts[i].extra["story"] == arts[j].extra["story"])
            y = float("nan") if _too_far(items[i], items[j], config) else y
            table.append((_row(items[i], items[j], config), y, arts[i].id, arts[j].id, "eval", ""))
    return _rows("seeds", table)


def template_rows(embed: Embed, config: Config) -> Rows:
    """Two pairs written from one template with other names, places and numbers (evaluation only)."""
    texts = [TEMPLATE.format(**fill) for fill in TEMPLATE_FILLS] + list(TEMPLATE_ISSUE)
    arts = [Article(id=f"template-{n}", text=t, lang="en") for n, t in enumerate(texts)]
    items = embed(arts, "template")
    table: list[tuple[object, ...]] = [
        (_row(items[i], items[i + 1], config), 0.0, arts[i].id, arts[i + 1].id, "eval", "") for i in (0, 2)
    ]
    return _rows("template", table)
