from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dedup.embed import embed_articles
from dedup.errors import DuplicateIdError, StoreCorruptError, StoreError, StoreMismatchError, StoreNotFoundError
from dedup.io import read_articles
from dedup.store import Store
from dedup.types import Article, PartialDate

from .conftest import HashEncoder


def _items(enc: HashEncoder, *articles: Article) -> list:
    return embed_articles(list(articles), enc)


def _arts(n: int, prefix: str = "a") -> list[Article]:
    return [
        Article(id=f"{prefix}{i}", title=f"Title number {i} about {prefix}", text=f"Body {i}. More text {i * 7}.")
        for i in range(n)
    ]


def test_create_add_reopen_roundtrip(tmp_path: Path, encoder: HashEncoder, seed_dir: Path) -> None:
    store = Store.create(tmp_path / "s", encoder.name, encoder.dim)
    arts = list(read_articles([seed_dir]).articles)
    items = embed_articles(arts, encoder)
    report = store.add(items)
    assert report.added == tuple(a.id for a in arts)
    again = Store.open(tmp_path / "s", model=encoder.name, dim=encoder.dim)
    assert len(again) == 5 and again.ids == [a.id for a in arts]
    assert again.get(arts[2].id) == arts[2]  # metadata (partial date, lang, text) survives
    stored = again.embedded(again.position(arts[4].id))
    np.testing.assert_allclose(stored.passage_vectors, items[4].passage_vectors)
    assert stored.passages == items[4].passages
    found = again.search(items[4].vector[None, :], 1)
    assert found.positions[0][0] == 4


def test_readd_same_is_noop_and_different_content_is_an_error(tmp_path: Path, encoder: HashEncoder) -> None:
    store = Store.create(tmp_path / "s", encoder.name, encoder.dim)
    arts = _arts(3)
    store.add(_items(encoder, *arts))
    generation = json.loads((tmp_path / "s" / "manifest.json").read_text())["generation"]
    report = store.add(_items(encoder, *arts))
    assert report.unchanged == ("a0", "a1", "a2") and not report.added
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["generation"] == generation  # nothing written
    changed = Article(id="a1", title="Completely different", text="Other words.")
    with pytest.raises(DuplicateIdError, match="'a1' is already stored with different content"):
        store.add(_items(encoder, changed, *_arts(1, "new")))
    assert len(Store.open(tmp_path / "s")) == 3  # all or nothing: 'new0' was not added either
    report = store.add(_items(encoder, changed), replace=True)
    assert report.replaced == ("a1",)
    reopened = Store.open(tmp_path / "s")
    assert len(reopened) == 3 and reopened.get("a1").title == "Completely different"
    found = reopened.search(_items(encoder, changed)[0].vector[None, :], 1)
    assert reopened.ids[int(found.positions[0][0])] == "a1"


def test_store_refuses_another_model_or_dimension(tmp_path: Path, encoder: HashEncoder) -> None:
    Store.create(tmp_path / "s", encoder.name, encoder.dim)
    with pytest.raises(StoreMismatchError, match="built with model 'test/hash-encoder', not 'other/model'"):
        Store.open(tmp_path / "s", model="other/model", dim=encoder.dim)
    with pytest.raises(StoreMismatchError, match="dimension 512"):
        Store.open(tmp_path / "s", model=encoder.name, dim=384)


def test_store_of_another_backend_says_which_backend_made_it(tmp_path: Path) -> None:
    Store.create(tmp_path / "int8", "m:int8#query+lang-centred-v2", 8)
    with pytest.raises(StoreMismatchError, match=r"other backend.*--backend onnx-int8 \(the default\)"):
        Store.open(tmp_path / "int8", model="m#query+lang-centred-v2", dim=8)
    Store.create(tmp_path / "fp32", "m#query+lang-centred-v2", 8)
    with pytest.raises(StoreMismatchError, match=r"other backend.*--backend openvino or --backend torch"):
        Store.open(tmp_path / "fp32", model="m:int8#query+lang-centred-v2", dim=8)
    with pytest.raises(StoreMismatchError) as unrelated:
        Store.open(tmp_path / "fp32", model="other#query", dim=8)
    assert "other backend" not in str(unrelated.value)


def test_missing_and_unreadable_store(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError, match="does not exist"):
        Store.open(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreNotFoundError, match=r"manifest\.json is missing"):
        Store.open(tmp_path / "empty")
    (tmp_path / "empty" / "manifest.json").write_text("{not json")
    with pytest.raises(StoreCorruptError, match="not valid JSON"):
        Store.open(tmp_path / "empty")
    with pytest.raises(StoreError, match="a store already exists"):
        Store.create(tmp_path / "empty", "m", 4)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty"):
        Store.create(tmp_path / "other", "m", 4)


@pytest.mark.parametrize("victim", ["vectors.npy", "articles.jsonl", "index"])
@pytest.mark.parametrize("damage", ["truncate", "alter"])
def test_damaged_files_are_detected_on_open(tmp_path: Path, encoder: HashEncoder, victim: str, damage: str) -> None:
    store = Store.create(tmp_path / "s", encoder.name, encoder.dim)
    store.add(_items(encoder, *_arts(4)))
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    path = tmp_path / "s" / (manifest["index"]["file"] if victim == "index" else f"{manifest['segments'][0]['name']}/{victim}")
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        data[-3] ^= 0xFF
        path.write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError, match="restore"):
        Store.open(tmp_path / "s")


def test_crash_before_commit_leaves_previous_store(tmp_path: Path, encoder: HashEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store.create(tmp_path / "s", encoder.name, encoder.dim)
    store.add(_items(encoder, *_arts(3)))
    real_replace = os.replace

    def crash(src: object, dst: object) -> None:
        if str(dst).endswith("manifest.json"):
            raise KeyboardInterrupt  # Ctrl-C at the worst moment: everything written but the commit
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        store.add(_items(encoder, *_arts(2, "b")))
    monkeypatch.setattr(os, "replace", real_replace)
    reopened = Store.open(tmp_path / "s")
    assert reopened.ids == ["a0", "a1", "a2"]
    reopened.add(_items(encoder, *_arts(2, "b")))  # the next writer cleans up and succeeds
    assert Store.open(tmp_path / "s").ids == ["a0", "a1", "a2", "b0", "b1"]
    leftovers = [p.name for p in (tmp_path / "s").iterdir() if p.name.startswith(".tmp")]
    assert leftovers == []


def test_in_memory_store(encoder: HashEncoder) -> None:
    store = Store.in_memory(encoder.name, encoder.dim)
    store.add(_items(encoder, *_arts(2)))
    store.add(_items(encoder, *_arts(2, "b")))
    assert store.ids == ["a0", "a1", "b0", "b1"] and store.path is None
    assert len(store.search(np.ones((1, encoder.dim), np.float32) / 8, 10).positions[0]) == 4


@pytest.mark.parametrize(
    "damage",
    [
        "truncate-manifest",
        "manifest-checksum",
        "manifest-count",
        "missing-segment-file",
        "index-bytes-flipped",
        "articles-line-dropped",
    ],
)
def test_damaged_metadata_is_detected_on_open_with_what_to_do(tmp_path: Path, encoder: HashEncoder, damage: str) -> None:
    store = Store.create(tmp_path / "s", encoder.name, encoder.dim)
    store.add(_items(encoder, *_arts(4)))
    store.add(_items(encoder, *_arts(2, "b")))
    root = tmp_path / "s"
    manifest_path = root / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    seg = root / manifest["segments"][0]["name"]
    if damage == "truncate-manifest":
        manifest_path.write_bytes(manifest_path.read_bytes()[:-40])
    elif damage == "manifest-checksum":
        manifest["segments"][0]["files"]["articles.jsonl"]["sha256"] = "0" * 64
        manifest_path.write_text(json.dumps(manifest))
    elif damage == "manifest-count":
        manifest["segments"][1]["count"] += 1
        manifest_path.write_text(json.dumps(manifest))
    elif damage == "missing-segment-file":
        (seg / "passages.npy").unlink()
    elif damage == "index-bytes-flipped":  # the right size, other bytes
        index = root / manifest["index"]["file"]
        data = bytearray(index.read_bytes())
        data[-8:] = bytes(b ^ 0xFF for b in data[-8:])
        index.write_bytes(bytes(data))
    else:  # same size, one record blanked out
        text = (seg / "articles.jsonl").read_text("utf-8").splitlines(keepends=True)
        text[1] = " " * (len(text[1].encode("utf-8")) - 1) + "\n"
        (seg / "articles.jsonl").write_text("".join(text), "utf-8")
    with pytest.raises(StoreError, match="restore") as exc:
        Store.open(root)
    assert str(root) in str(exc.value)


def test_writing_holds_the_lock_across_steps_and_is_reentrant(tmp_path: Path, encoder: HashEncoder) -> None:
    first = Store.create(tmp_path / "s", encoder.name, encoder.dim)
    second = Store.open(tmp_path / "s")
    order: list[str] = []

    def other_writer() -> None:
        second.add(_items(encoder, *_arts(1, "other")))  # waits for the lock, then sees first's commit
        order.append("other committed")

    with first.writing():
        thread = threading.Thread(target=other_writer)
        thread.start()
        time.sleep(0.3)
        first.add(_items(encoder, *_arts(2)))  # re-enters the lock held by writing()
        order.append("first committed")
    thread.join(timeout=30)
    assert order == ["first committed", "other committed"]
    assert Store.open(tmp_path / "s").ids == ["a0", "a1", "other0"]
    assert first.refresh() and first.ids == ["a0", "a1", "other0"] and not first.refresh()


# ------------------------------------------------- issue 14: what goes in must come out
LINE_BREAKS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
_chars = st.one_of(st.sampled_from(LINE_BREAKS), st.characters(exclude_categories=("Cs",)))
_texts = st.lists(_chars, max_size=30).map("".join)
_articles = st.lists(
    st.builds(
        Article,
        id=_texts.filter(bool),
        title=_texts,
        text=_texts,
        date=st.one_of(st.none(), st.dates().map(lambda d: PartialDate(d.year, d.month, d.day))),
        lang=st.one_of(st.none(), _texts),
        source=st.one_of(st.none(), _texts),
        url=st.one_of(st.none(), _texts),
        extra=st.dictionaries(
            _texts, st.one_of(_texts, st.integers(), st.floats(allow_nan=False, allow_infinity=False)), max_size=2
        ),
    ),
    min_size=1,
    max_size=5,
    unique_by=lambda a: a.id,
).filter(lambda arts: all(a.title.strip() or a.text.strip() for a in arts))  # the readers skip empty articles


def test_issue14_store_keeps_raw_line_separators(tmp_path: Path, encoder: HashEncoder) -> None:
    arts = [
        Article(id="sep\u2028id", title="One\u2029two", text="a\u2028b\x85c\x1cd", extra={"k\u2028": "v\x85"}),
        Article(id="plain", title="Plain", text="Nothing odd."),
    ]
    Store.create(tmp_path / "s", encoder.name, encoder.dim).add(_items(encoder, *arts))
    reopened = Store.open(tmp_path / "s")
    assert [reopened.get(a.id) for a in arts] == arts
    assert dict(reopened.get("sep\u2028id").extra) == {"k\u2028": "v\x85"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(arts=_articles)
def test_issue14_store_round_trips_any_unicode(tmp_path_factory: pytest.TempPathFactory, arts: list[Article]) -> None:
    path = tmp_path_factory.mktemp("store") / "s"
    enc = HashEncoder(dim=32)
    Store.create(path, enc.name, enc.dim).add(embed_articles(arts, enc))
    reopened = Store.open(path)
    assert reopened.ids == [a.id for a in arts]
    for article in arts:
        got = reopened.get(article.id)
        assert got == article and dict(got.extra) == dict(article.extra)
