from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dedup.embedding.embed import embed_articles
from dedup.errors import DuplicateIdError, StoreCorruptError, StoreError, StoreMismatchError, StoreNotFoundError
from dedup.io import read_articles
from dedup.search.store import Store
from dedup.types import Article, EmbeddedArticle, PartialDate

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
    # Passage vectors are stored as float16 (issue 18): exactly the float16 rounding of the input.
    np.testing.assert_array_equal(stored.passage_vectors, items[4].passage_vectors.astype(np.float16).astype(np.float32))
    assert stored.passage_vectors.dtype == np.float32
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
def test_damaged_files_are_detected_before_use(tmp_path: Path, encoder: HashEncoder, victim: str, damage: str) -> None:
    """Sizes and the index are checked at open; a segment's mapped files on first read (issue 18)."""
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
        store = Store.open(tmp_path / "s")
        [store.embedded(p) for p in range(len(store))]


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
def test_damaged_metadata_is_detected_before_use_with_what_to_do(tmp_path: Path, encoder: HashEncoder, damage: str) -> None:
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
        manifest["segments"][0]["files"]["blocks.json"]["sha256"] = "0" * 64  # read and checked at open
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
        store = Store.open(root)
        [store.embedded(p) for p in range(len(store))]
    assert str(root) in str(exc.value)


def test_article_records_of_format_version_3(tmp_path: Path, encoder: HashEncoder) -> None:
    """A segment's article record is version 1's without ``passage_offset`` (``offsets.npy`` holds it now)."""
    article = Article(id="é1", title="Titre", text="Corps.", date=PartialDate.parse("2025-01"), lang="fr", extra={"story": 7})
    store = Store.create(tmp_path / "s", encoder.name, encoder.dim)
    (item,) = _items(encoder, article)
    store.add([item])
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text("utf-8"))
    assert manifest["format_version"] == 3
    written = (tmp_path / "s" / manifest["segments"][0]["name"] / "articles.jsonl").read_text("utf-8")
    offsets = np.load(tmp_path / "s" / manifest["segments"][0]["name"] / "offsets.npy")  # the days of January 2025
    january = [PartialDate.parse(d).bounds()[0].toordinal() for d in ("2025-01-01", "2025-01-31")]
    assert offsets[:, 2:].tolist() == [january, [0, 0]] and store.days(0) == tuple(january)
    core = {"id": "é1", "title": "Titre", "text": "Corps.", "date": "2025-01", "lang": "fr", "source": None, "url": None}
    record = {
        "id": "é1",
        "content_hash": article.content_hash,
        "article": {**core, "extra": {"story": 7}},
        "passages": list(item.passages),
    }
    assert written == json.dumps(record, ensure_ascii=False) + "\n"
    assert Store.open(tmp_path / "s").get("é1").to_dict() == {**core, "story": 7}


def _as_format_2(root: Path) -> None:
    """Rewrite a store as dedup wrote format 2: offsets without the days."""
    manifest = json.loads((root / "manifest.json").read_text("utf-8"))
    for seg in manifest["segments"]:
        path = root / seg["name"] / "offsets.npy"
        np.save(path, np.load(path)[:, :2])
        data = path.read_bytes()
        seg["files"]["offsets.npy"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest["format_version"] = 2
    (root / "manifest.json").write_text(json.dumps(manifest), "utf-8")


def test_a_store_of_format_version_2_opens_and_becomes_3_at_its_next_commit(tmp_path: Path, encoder: HashEncoder) -> None:
    """Issue 18: format 3 keeps each article's days in offsets.npy; a format-2 store reads as before, its days unknown."""
    root = tmp_path / "s"
    store = Store.create(root, encoder.name, encoder.dim)
    old = [
        Article(id=f"o{i}", title=f"Old {i}", text=f"Report {i} of the fair.", date=PartialDate.parse("2024-05-0" + str(i + 1)))
        for i in range(3)
    ]
    store.add(_items(encoder, *old))
    _as_format_2(root)
    v2 = Store.open(root)
    assert [v2.days(p) for p in range(3)] == [None, None, None] and v2.get("o1").title == "Old 1"
    assert v2.search(v2.embedded(2).vector[None, :], 1).positions[0, 0] == 2
    new = Article(id="n", title="New", text="A report of the new fair.", date=PartialDate.parse("2024"))
    v2.add(_items(encoder, new))  # a commit writes format 3; the older segment keeps its two columns
    assert json.loads((root / "manifest.json").read_text("utf-8"))["format_version"] == 3
    year = tuple(d.toordinal() for d in PartialDate.parse("2024").bounds())
    reopened = Store.open(root)
    assert [reopened.days(p) for p in range(4)] == [None, None, None, year]
    report = reopened.compact()  # merged: the older articles' days stay unknown, the newer one's are kept
    assert (report.segments_before, report.segments_after) == (2, 1)
    merged = Store.open(root)
    assert [merged.days(p) for p in range(4)] == [None, None, None, year]
    assert [merged.get(f"o{i}").date for i in range(3)] == [a.date for a in old]
    merged.verify()  # every file against its checksums (raises if not)


def test_days_that_end_before_they_start_in_offsets_are_reported_as_corruption(tmp_path: Path, encoder: HashEncoder) -> None:
    root = tmp_path / "s"
    Store.create(root, encoder.name, encoder.dim).add(_items(encoder, *_arts(2)))
    manifest = json.loads((root / "manifest.json").read_text("utf-8"))
    seg = manifest["segments"][0]
    path = root / seg["name"] / "offsets.npy"
    offsets = np.load(path)
    offsets[0, 2:] = [739000, 738000]  # consistent checksums, impossible content
    np.save(path, offsets)
    data = path.read_bytes()
    seg["files"]["offsets.npy"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (root / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    with pytest.raises(StoreCorruptError, match=r"offsets\.npy"):
        Store.open(root)


def test_writing_holds_the_lock_across_steps_and_is_reentrant(
    tmp_path: Path, encoder: HashEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dedup import _fs

    first = Store.create(tmp_path / "s", encoder.name, encoder.dim)
    second = Store.open(tmp_path / "s")
    order: list[str] = []
    other_at_lock = threading.Event()
    real_hold_lock = _fs.hold_lock

    def watched_hold_lock(lock_file: Path, **kwargs: Any) -> Any:
        if threading.current_thread().name == "other-writer":
            other_at_lock.set()
        return real_hold_lock(lock_file, **kwargs)

    monkeypatch.setattr(_fs, "hold_lock", watched_hold_lock)

    def other_writer() -> None:
        second.add(_items(encoder, *_arts(1, "other")))  # waits for the lock, then sees first's commit
        order.append("other committed")

    with first.writing():
        thread = threading.Thread(target=other_writer, name="other-writer")
        thread.start()
        assert other_at_lock.wait(timeout=30), "the other writer never reached the lock"
        first.add(_items(encoder, *_arts(2)))  # re-enters the lock held by writing()
        order.append("first committed")
    thread.join(timeout=30)
    assert not thread.is_alive(), "the other writer did not commit within 30 s of the lock's release"
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
    report = Store.create(path, enc.name, enc.dim).add(embed_articles(arts, enc))
    reopened = Store.open(path)
    kept = [a for a in arts if a.id not in report.skipped]  # empty after cleaning ("»"): never stored
    assert reopened.ids == [a.id for a in kept]
    for article in kept:
        got = reopened.get(article.id)
        assert got == article and dict(got.extra) == dict(article.extra)


# --------------------------------------------------------------------------- issue 14: concurrent readers, creation, manifests
DIM = 96


def _random_items(rng: np.random.Generator, prefix: str, n: int, dim: int = DIM, version: int = 0) -> list[EmbeddedArticle]:
    items = []
    for i in range(n):
        vectors = rng.standard_normal((3, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        article = Article(id=f"{prefix}{i}", title=f"{prefix} title {i} v{version}", text="x" * 400)
        items.append(EmbeddedArticle(article, ("a", "b", "c"), vectors, vectors[0]))
    return items


def _commit_loop(path: str, started: Any, stop: Any, commits: Any) -> None:
    """In a spawned process: commit back to back until ``stop`` (at most 300 s).

    Commits alternate: 5 new articles (a new segment), then 5 of them replaced
    (rewrites the store as one segment: retires every segment and the index).
    """
    store = Store.open(path)
    rng = np.random.default_rng(21)
    deadline = time.monotonic() + 300
    batch = 0
    while not stop.is_set() and time.monotonic() < deadline:
        if batch % 2:
            store.add(_random_items(rng, f"w{batch - 1}-", 5, version=1), replace=True)
        else:
            store.add(_random_items(rng, f"w{batch}-", 5))
        batch += 1
        commits.value = batch
        started.set()


def _read_loop(path: str, mode: str, opens: int, started: Any, results: Any) -> None:
    """In a spawned process: open the store ``opens`` times while the writer commits; report what failed.

    ``open``: ``Store.open(verify=True)`` then a search and a ``refresh`` of the previous
    object; ``info``: the ``dedup info`` command in this process.
    """
    import io
    import traceback

    from dedup.cli import main

    started.wait(60)
    damaged: list[str] = []
    tracebacks: list[str] = []
    other: list[str] = []
    generations: set[int] = set()
    previous: Store | None = None
    deadline = time.monotonic() + 240  # a bound against hangs, not a timing assertion
    done = 0
    while done < opens and time.monotonic() < deadline:
        done += 1
        try:
            if mode == "info":
                out, err = io.StringIO(), io.StringIO()
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    code = main(["info", "--json", "--store", path])
                if code != 0:
                    (damaged if "restore" in err.getvalue() else other).append(f"exit {code}: {err.getvalue()}")
                else:
                    generations.add(json.loads(out.getvalue())["articles"])
            else:
                store = Store.open(path, verify=True)
                generations.add(store.generation)
                assert len(store.search(store.embedded(0).vector[None, :], 3).positions[0]) == 3
                if previous is not None and done % 5 == 0:
                    previous.refresh()
                    assert len(previous) >= len(store)
                previous = store
        except StoreCorruptError as exc:
            damaged.append(str(exc))
        except StoreError as exc:
            other.append(str(exc))
        except Exception:
            tracebacks.append(traceback.format_exc())
    results.put((mode, done, damaged, tracebacks, other, len(generations)))


@pytest.mark.slow
def test_readers_never_see_a_half_collected_generation(tmp_path: Path, figures: list[str]) -> None:
    """Issue 14 (1): readers in other processes open the store while a writer commits back to back."""
    import multiprocessing

    path = tmp_path / "s"
    store = Store.create(path, "test/concurrent", DIM)
    rng = np.random.default_rng(20)
    for batch in range(10):
        store.add(_random_items(rng, f"seed{batch}-", 50))
    ctx = multiprocessing.get_context("spawn")
    started, stop, commits, results = ctx.Event(), ctx.Event(), ctx.Value("i", 0), ctx.Queue()
    writer = ctx.Process(target=_commit_loop, args=(str(path), started, stop, commits))
    readers = [ctx.Process(target=_read_loop, args=(str(path), mode, 120, started, results)) for mode in ("open", "info")]
    began = time.monotonic()
    writer.start()
    for reader in readers:
        reader.start()
    try:
        assert started.wait(60), "the writer never committed"
        first_commit = commits.value
        reports = [results.get(timeout=300) for _ in readers]
        during = commits.value - first_commit
    finally:
        stop.set()
        writer.join(timeout=30)
        for process in [writer, *readers]:
            if process.is_alive():
                process.kill()
            process.join(timeout=10)
    seconds = time.monotonic() - began
    opens = sum(r[1] for r in reports)
    damaged = [d for r in reports for d in r[2]]
    tracebacks = [t for r in reports for t in r[3]]
    other = [o for r in reports for o in r[4]]
    figures.append(
        f"store readers during commits: {opens} opens ({', '.join(f'{r[0]} {r[1]}' for r in reports)}) while "
        f"{during} commits landed, {len(damaged)} false 'damaged', {len(tracebacks)} tracebacks, "
        f"{len(other)} other errors, {seconds:.0f} s"
    )
    assert writer.exitcode == 0
    assert tracebacks == [], tracebacks[:2]
    assert damaged == [], damaged[:3]
    assert other == [], other[:3]
    assert opens >= 200
    assert during >= 20, f"only {during} commits while the readers read: the test did not race"
    assert all(r[5] >= 5 for r in reports), "a reader saw fewer than 5 generations"
    # The creation, 10 seed adds, the merge of the first 8 seed segments (compaction), then the writer's commits.
    assert Store.open(path, verify=True).generation == commits.value + 12


def test_a_commit_keeps_the_previous_generation_until_the_next(tmp_path: Path) -> None:
    """Issue 14 (1a): the files a commit retires are listed in its manifest and removed one commit later."""
    path = tmp_path / "s"
    store = Store.create(path, "m", DIM)
    rng = np.random.default_rng(3)
    store.add(_random_items(rng, "a", 3))
    first = json.loads((path / "manifest.json").read_text())
    store.add(_random_items(rng, "b", 3))
    second = json.loads((path / "manifest.json").read_text())
    # An add writes its segment and the manifest only: the index file stays, retiring nothing.
    assert second["retired"] == [] and second["index"] == first["index"]
    store.add(_random_items(rng, "a", 1, version=1), replace=True)  # rewrites everything as one segment
    third = json.loads((path / "manifest.json").read_text())
    assert third["retired"] == sorted([s["name"] for s in second["segments"]] + [second["index"]["file"]])
    assert all((path / name).exists() for name in third["retired"])  # a reader of the second manifest finds them
    store.add(_random_items(rng, "c", 1))
    assert not any((path / name).exists() for name in third["retired"])
    assert len(Store.open(path, verify=True)) == 7


def test_open_rereads_the_manifest_when_a_commit_removed_a_file_it_was_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14 (1b): a file gone because writers committed meanwhile means 'load the newer generation', not 'damaged'."""
    import dedup.search.segments as segments_mod

    path = tmp_path / "s"
    writer = Store.create(path, "m", DIM)
    rng = np.random.default_rng(4)
    writer.add(_random_items(rng, "a", 3))
    real_open = segments_mod._open
    calls = 0

    def racing(file: Path) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:  # after the index was opened, before the segment's files: two commits and their clean-up
            writer.add(_random_items(rng, "b", 1))
            writer.add(_random_items(rng, "a", 3, version=1), replace=True)
            writer.add(_random_items(rng, "c", 1))
        return real_open(file)

    monkeypatch.setattr(segments_mod, "_open", racing)
    reader = Store.open(path, verify=True)
    assert reader.generation == writer.generation and sorted(reader.ids) == ["a0", "a1", "a2", "b0", "c0"]
    # The same file missing while the manifest still names it: the store is damaged.
    monkeypatch.setattr(segments_mod, "_open", real_open)
    manifest = json.loads((path / "manifest.json").read_text())
    (path / manifest["segments"][0]["name"] / "vectors.npy").unlink()
    with pytest.raises(StoreCorruptError, match=r"vectors\.npy is missing; the store is damaged"):
        Store.open(path)


def _first_add(kind: str, path: str, feed: str, barrier: Any, loading: Any, results: Any) -> None:
    """In a forked process: run the first ``dedup add`` of ``feed`` with the fake encoder, all processes at once.

    The fake model load waits until every process is loading it (``loading``), as a real
    model load of a few seconds makes happen: each looked for the store before any created it.
    """
    import io
    import traceback
    from contextlib import redirect_stderr, redirect_stdout

    import dedup.detect.archive
    import dedup.detect.detector
    from dedup.cli import main

    fake = HashEncoder()

    def load(model: str, **kwargs: object) -> HashEncoder:
        loading.wait(timeout=60)
        return fake

    dedup.detect.detector.load_encoder = load  # type: ignore[assignment]
    dedup.detect.archive.load_encoder = load  # type: ignore[assignment]
    err = io.StringIO()
    barrier.wait(timeout=60)
    try:
        with redirect_stdout(io.StringIO()), redirect_stderr(err):
            code = main(["add", "-q", "--no-cache", f"--{kind}", path, feed])
    except BaseException:
        code, err = -1, io.StringIO(traceback.format_exc())
    results.put((code, err.getvalue()))


def run_first_adds(tmp_path: Path, kind: str, trials: int = 4, processes: int = 3) -> list[str]:
    """``processes`` first adds at once on a new store or archive, ``trials`` times; returns what failed."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    failures: list[str] = []
    for trial in range(trials):
        path = tmp_path / f"{kind}-{trial}"
        feeds = []
        for n in range(processes):
            feed = tmp_path / f"feed-{trial}-{n}.jsonl"
            dates = ["2025-01-05", "2025-02-05", None]
            rows = [
                {"id": f"p{n}-{i}", "title": f"Story {n} {i} " + "w" * i, "text": f"Body {n} {i}.", "date": dates[i % 3]}
                for i in range(6)
            ]
            feed.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
            feeds.append(str(feed))
        barrier, loading, results = ctx.Barrier(processes), ctx.Barrier(processes), ctx.Queue()
        procs = [ctx.Process(target=_first_add, args=(kind, str(path), feed, barrier, loading, results)) for feed in feeds]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=30)
        failures += [f"trial {trial}: exit {code}: {err.strip()[-300:]}" for code, err in outcomes if code != 0]
        if not any(code != 0 for code, _ in outcomes):
            if kind == "store":
                held = len(Store.open(path, verify=True))
            else:
                from dedup.search.archive import Archive

                held = Archive.open(path).count()
            if held != 6 * processes:
                failures.append(f"trial {trial}: {held} articles stored, not {6 * processes}")
    return failures


@pytest.mark.slow
def test_first_adds_at_once_on_a_new_store_all_succeed(tmp_path: Path) -> None:
    """Issue 14 (2): several first `dedup add --store` at once: one creates, the others open; nothing is lost."""
    assert run_first_adds(tmp_path, "store") == []


MANIFEST_DAMAGE: dict[str, tuple[str, Any]] = {
    "segments-not-a-list": ("segments", lambda m: m.update(segments={"name": "seg-000002"})),
    "segment-without-name": ("segments[0].name", lambda m: m["segments"][0].pop("name")),
    "segment-count-a-string": ("segments[0].count", lambda m: m["segments"][0].update(count="abc")),
    "segment-count-negative": ("segments[0].count", lambda m: m["segments"][0].update(count=-1)),
    "segment-passages-a-float": ("segments[0].passages", lambda m: m["segments"][0].update(passages=12.0)),
    "files-not-a-dict": ("segments[0].files", lambda m: m["segments"][0].update(files=["vectors.npy"])),
    "file-size-a-string": (
        "segments[0].files.vectors.npy.size",
        lambda m: m["segments"][0]["files"]["vectors.npy"].update(size="9"),
    ),
    "index-missing": ("index", lambda m: m.pop("index")),
    "index-file-not-a-string": ("index.file", lambda m: m["index"].update(file=7)),
    "index-sha256-missing": ("index.sha256", lambda m: m["index"].pop("sha256")),
    "index-plan-not-an-object": ("index.plan", lambda m: m["index"].update(plan="flat")),
    "index-plan-bad-param": ("index.plan", lambda m: m["index"]["plan"].update(param="fast")),
    "generation-a-string": ("generation", lambda m: m.update(generation="2")),
    "dim-zero": ("dim", lambda m: m.update(dim=0)),
    "dim-a-string": ("dim", lambda m: m.update(dim="96")),
    "dim-a-bool": ("dim", lambda m: m.update(dim=True)),
    "model-a-list": ("model", lambda m: m.update(model=["m"])),
    "count-a-string": ("count", lambda m: m.update(count="4")),
    "retired-not-a-list": ("retired", lambda m: m.update(retired="index-000001.faiss")),
    "dates-one-day": ("dates", lambda m: m.update(dates=["2025-01-01"])),
    "dates-reversed": ("dates", lambda m: m.update(dates=["2025-02-01", "2025-01-01"])),
    "dates-not-a-day": ("dates", lambda m: m.update(dates=["2025-02-30", "2025-03-01"])),
    "dates-a-string": ("dates", lambda m: m.update(dates="2025-01-01")),
}


def damage_manifest(file: Path, kind: str) -> str:
    """Apply ``MANIFEST_DAMAGE[kind]`` to the store manifest ``file``; returns the field it damaged."""
    field, change = MANIFEST_DAMAGE[kind]
    manifest = json.loads(file.read_text("utf-8"))
    change(manifest)
    file.write_text(json.dumps(manifest), "utf-8")
    return field


@pytest.mark.parametrize("kind", sorted(MANIFEST_DAMAGE))
def test_a_manifest_of_the_wrong_shape_is_reported_naming_the_field(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 14 (3): valid JSON of the wrong shape -> StoreCorruptError naming the manifest and field; CLI exit 3."""
    from dedup.cli import EXIT_STORE, main

    path = tmp_path / "s"
    store = Store.create(path, "m", DIM)
    store.add(_random_items(np.random.default_rng(5), "a", 4))
    field = damage_manifest(path / "manifest.json", kind)
    with pytest.raises(StoreCorruptError) as exc:
        Store.open(path)
    assert str(path / "manifest.json") in str(exc.value) and f"field {field!r}" in str(exc.value)
    assert main(["info", "--store", str(path)]) == EXIT_STORE
    err = capsys.readouterr().err
    assert f"field {field!r}" in err and "Traceback" not in err


def _foreign_manifest(tmp_path: Path) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """A store ``s`` and the manifest of another store ``other`` beside it (both with one segment)."""
    rng = np.random.default_rng(6)
    Store.create(tmp_path / "s", "m", DIM).add(_random_items(rng, "mine", 2))
    Store.create(tmp_path / "other", "m", DIM).add(_random_items(rng, "theirs", 3))
    own = json.loads((tmp_path / "s" / "manifest.json").read_text())
    other = json.loads((tmp_path / "other" / "manifest.json").read_text())
    return tmp_path / "s", own, other


@pytest.mark.parametrize(
    "where", ["segment-relative", "segment-absolute", "index-relative", "index-absolute", "segment-file", "retired"]
)
def test_manifest_file_names_are_confined_to_the_store_folder(tmp_path: Path, where: str) -> None:
    """Issue 14 (4): a manifest naming files outside its folder (``../``, absolute paths) is refused, never read."""
    path, manifest, other = _foreign_manifest(tmp_path)
    outside = tmp_path / "other"
    segment, index = other["segments"][0], other["index"]
    if where.startswith("segment-") and where != "segment-file":
        name = f"../other/{segment['name']}" if where == "segment-relative" else str(outside / segment["name"])
        manifest["segments"], manifest["count"] = [{**segment, "name": name}], segment["count"]
        manifest["index"] = {**index, "file": f"../other/{index['file']}"}
        field = "segments[0].name"
    elif where.startswith("index-"):
        manifest["segments"], manifest["count"] = [], 0
        empty = Store.create(tmp_path / "empty", "m", DIM)  # an index of 0 vectors, elsewhere
        meta = json.loads((tmp_path / "empty" / "manifest.json").read_text())["index"]
        name = f"../empty/{meta['file']}" if where == "index-relative" else str(tmp_path / "empty" / meta["file"])
        manifest["index"] = {**meta, "file": name}
        field = "index.file"
        assert len(empty) == 0
    elif where == "segment-file":
        victim = outside / "manifest.json"
        data = victim.read_bytes()
        files = manifest["segments"][0]["files"]
        files["../../other/manifest.json"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        field = "segments[0].files"
    else:
        manifest["retired"] = ["../other"]
        field = "retired[0]"
    (path / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    with pytest.raises(StoreCorruptError) as exc:
        Store.open(path)
    assert f"field {field!r}" in str(exc.value)
    assert (outside / "manifest.json").is_file() and len(Store.open(outside, verify=True)) == 3


def test_a_lock_that_is_a_folder_is_a_clear_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 14 (5): ``.lock`` a folder -> StoreError naming it (CLI exit 3), never IsADirectoryError."""
    import dedup.detect.detector
    from dedup.cli import EXIT_STORE, main

    encoder = HashEncoder()
    monkeypatch.setattr(dedup.detect.detector, "load_encoder", lambda model, **kwargs: encoder)
    path = tmp_path / "s"
    Store.create(path, encoder.name, encoder.dim)
    (path / ".lock").unlink()
    (path / ".lock").mkdir()
    with pytest.raises(StoreError, match=f"cannot take the writer lock {path / '.lock'}"):
        Store.open(path).add(_items(encoder, *_arts(1)))
    feed = tmp_path / "feed.jsonl"
    feed.write_text(json.dumps({"id": "x", "title": "A title", "text": "A body."}) + "\n", "utf-8")
    assert main(["add", "-q", "--no-cache", "--store", str(path), str(feed)]) == EXIT_STORE
    assert str(path / ".lock") in capsys.readouterr().err
    (tmp_path / "new" / ".lock").mkdir(parents=True)  # a first add into a folder holding only such a lock
    assert main(["add", "-q", "--no-cache", "--store", str(tmp_path / "new"), str(feed)]) == EXIT_STORE
    assert str(tmp_path / "new" / ".lock") in capsys.readouterr().err


# --------------------------------------------------------------------------- issue 18: adds that cost O(batch)
def test_an_add_writes_no_index_file_until_the_tail_is_folded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The newest vectors are searched exactly beside the index file; past TAIL_MAX a commit folds them in."""
    import dedup.search.store as store_mod

    monkeypatch.setattr(store_mod, "TAIL_MAX", 10)
    path = tmp_path / "s"
    store = Store.create(path, "m", DIM)
    rng = np.random.default_rng(5)
    files = []
    for batch in range(6):
        store.add(_random_items(rng, f"b{batch}-", 3))
        files.append(json.loads((path / "manifest.json").read_text())["index"])
    # 3, 6, 9 articles beside the empty index file; the fourth add (12 > 10) folds them; then 3, 6 again.
    assert [f["count"] for f in files] == [0, 0, 0, 12, 12, 12]
    assert len({f["file"] for f in files}) == 2
    every = np.vstack([store.embedded(p).vector for p in range(len(store))])
    for reader in (store, Store.open(path)):
        found = reader.search(every, 4)
        truth = every @ every.T
        assert [int(p) for p in found.positions[:, 0]] == list(range(len(every)))  # each finds itself first
        np.testing.assert_allclose(found.similarities, -np.sort(-truth, axis=1)[:, :4], atol=1e-5)
        assert found.truncated.all()
    assert Store.open(path).search(every[:1], 100).positions.shape == (1, 18)


# --------------------------------------------------------------------------- issues 17 and 18: compaction
def test_one_article_adds_are_merged_as_they_go_and_compact_merges_the_rest(tmp_path: Path) -> None:
    """100 one-article adds keep one segment per octal digit (size-tiered merging), not 100 segments."""
    path = tmp_path / "s"
    store = Store.create(path, "m", DIM)
    rng = np.random.default_rng(8)
    items = _random_items(rng, "x", 100)
    for item in items:
        store.add([item])
    manifest = json.loads((path / "manifest.json").read_text())
    counts = [s["count"] for s in manifest["segments"]]
    assert counts == [64, 8, 8, 8, 8, 1, 1, 1, 1]  # 100 = 0o144
    assert sorted(p.name for p in path.iterdir() if p.name.startswith("seg-")) == sorted(
        {s["name"] for s in manifest["segments"]} | {n for n in manifest["retired"] if n.startswith("seg-")}
    )
    queries = np.vstack([i.vector for i in items])
    before = store.search(queries, 5)
    report = store.compact()
    assert (report.segments_before, report.segments_after, report.merged, report.folded, report.articles) == (9, 1, 9, 100, 100)
    manifest = json.loads((path / "manifest.json").read_text())
    assert [s["count"] for s in manifest["segments"]] == [100] and manifest["index"]["count"] == 100
    generation = store.generation
    assert store.compact().merged == 0 and store.generation == generation  # nothing left to do: no commit
    for reader in (store, Store.open(path, verify=True)):
        assert reader.ids == [i.id for i in items]
        after = reader.search(queries, 5)
        np.testing.assert_array_equal(after.positions, before.positions)
        for position in (0, 37, 99):
            got = reader.embedded(position)
            assert got.article == items[position].article and got.passages == items[position].passages
            f16 = items[position].passage_vectors.astype(np.float16).astype(np.float32)
            np.testing.assert_array_equal(got.passage_vectors, f16)
            np.testing.assert_array_equal(got.vector, items[position].vector)


def test_compaction_in_memory_is_a_no_op() -> None:
    store = Store.in_memory("m", DIM)
    store.add(_random_items(np.random.default_rng(1), "a", 3))
    assert store.compact().merged == 0 and len(store) == 3


def test_cli_compact_and_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dedup.cli import EXIT_OK, EXIT_STORE, main

    path = tmp_path / "s"
    store = Store.create(path, "m", DIM)
    for item in _random_items(np.random.default_rng(2), "x", 12):
        store.add([item])
    assert main(["compact", "--store", str(path), "--json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert (report["segments_before"], report["segments_after"], report["folded"]) == (5, 1, 12)  # 12 = 0o14
    assert main(["verify", "--store", str(path), "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["files"] == 7  # the index file and one segment's six
    manifest = json.loads((path / "manifest.json").read_text())
    victim = path / manifest["segments"][0]["name"] / "articles.jsonl"
    data = bytearray(victim.read_bytes())
    data[data.index(b"x" * 10)] = ord("y")  # same size, other content
    victim.write_bytes(bytes(data))
    assert main(["verify", "--store", str(path)]) == EXIT_STORE
    assert "articles.jsonl does not match its checksum" in capsys.readouterr().err


# --------------------------------------------------------------------------- issue 18: opens that cost O(manifest)
@pytest.mark.parametrize("block", [1 << 20, 1 << 14], ids=["1MiB-blocks-of-older-segments", "16KiB-blocks"])
@pytest.mark.parametrize("victim", ["articles.jsonl", "passages.npy", "vectors.npy"])
def test_a_flipped_byte_is_found_when_a_check_first_reads_the_segment(
    tmp_path: Path, encoder: HashEncoder, victim: str, block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An open reads the manifest, ids, offsets and the index; a segment's data files are checked on first read."""
    from dedup.detect.detector import Detector
    from dedup.search import segments

    monkeypatch.setattr(segments, "BLOCK", block)  # the block size the segments are written with
    arts = _arts(6)
    detector = Detector.open(tmp_path / "s", encoder=encoder, create=True)
    detector.add(arts)
    detector.store.compact()  # every vector in the index file: an open reads no segment data
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    path = tmp_path / "s" / manifest["segments"][0]["name"] / victim
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # the same size: only the checksum can tell
    path.write_bytes(bytes(data))
    reopened = Detector.open(tmp_path / "s", encoder=encoder)  # the open itself succeeds
    with pytest.raises(StoreCorruptError, match=f"{victim} does not match its checksum"):
        reopened.check(arts[0])
    with pytest.raises(StoreCorruptError, match=f"{victim} does not match its checksum"):
        reader = Store.open(tmp_path / "s")
        reader.embedded(reader.position("a3"))
    with pytest.raises(StoreCorruptError, match=f"{victim} does not match its checksum"):
        Store.open(tmp_path / "s", verify=False).verify()
    blocks = json.loads((path.parent / "blocks.json").read_text())
    assert blocks["block"] == block


def test_blocks_are_checked_one_by_one_and_a_block_size_out_of_range_is_refused(tmp_path: Path) -> None:
    from dedup.search import parts

    store = Store.create(tmp_path / "s", "m", DIM)
    store.add(_random_items(np.random.default_rng(9), "b", 400))  # passages.npy spans several blocks
    segment = json.loads((tmp_path / "s" / "manifest.json").read_text())["segments"][-1]["name"]
    folder = tmp_path / "s" / segment
    size = (folder / "passages.npy").stat().st_size
    assert size > 3 * parts.BLOCK
    data = bytearray((folder / "passages.npy").read_bytes())
    data[-3] ^= 0x01  # in the last block only
    (folder / "passages.npy").write_bytes(bytes(data))
    reader = Store.open(tmp_path / "s")
    reader.embedded(0)  # the first block is intact: served
    with pytest.raises(StoreCorruptError, match=r"passages\.npy does not match its checksum"):
        reader.embedded(len(reader) - 1)
    blocks = json.loads((folder / "blocks.json").read_text())
    blocks["block"] = 1000  # not a power of two in range
    (folder / "blocks.json").write_text(json.dumps(blocks))
    with pytest.raises(StoreCorruptError):
        Store.open(tmp_path / "s", verify=False)


def test_a_store_of_format_version_1_is_refused_with_what_to_do(tmp_path: Path) -> None:
    Store.create(tmp_path / "s", "m", DIM)
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    manifest["format_version"] = 1
    (tmp_path / "s" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreMismatchError, match=r"format version 1.*rebuild the store"):
        Store.open(tmp_path / "s")


def test_file_bytes_serve_what_they_checked_block_by_block(tmp_path: Path) -> None:
    """Issue 18: a first read checks its blocks and returns those very bytes (one read); an altered block is refused."""
    from dedup.search.parts import FileBytes, block_checksums

    rng = np.random.default_rng(12)
    data = rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    with path.open("rb") as fh:
        clean = FileBytes(fh, path, block_checksums(data, 4096), 4096)
    for start, stop in [(0, 10), (4090, 4100), (100, 20_000), (49_990, 50_000), (4096, 8192), (30_000, 30_000), (0, 50_000)]:
        assert clean[start:stop] == data[start:stop]  # first reads and re-reads, within and across blocks
    altered = bytearray(data)
    altered[3 * 4096 + 7] ^= 0xFF
    path.write_bytes(bytes(altered))
    with path.open("rb") as fh:
        reader = FileBytes(fh, path, block_checksums(data, 4096), 4096)
    assert reader[0:12_000] == data[0:12_000]  # blocks 0 to 2: intact
    with pytest.raises(StoreCorruptError, match="altered"):
        reader[12_000:12_300]  # touches block 3
    with pytest.raises(StoreCorruptError, match="altered"):
        reader[3 * 4096 + 7 : 3 * 4096 + 8]  # still refused: an altered block is never marked checked
