"""Language detection on labelled articles: accuracy of :func:`dedup.langdetect.detect_language`.

Reads a JSONL file whose articles carry ``lang`` (default ``og2021_dev.jsonl``: headlines,
the hard case), hides it, detects it from the title and text together, and reports:

* py3langid over all its languages (what dedup did before);
* restricted to the covered languages, each title alone, at several probability floors:
  accuracy (an unknown answer counts as wrong), the share answered and accuracy on it;
* the same floors with the feed's languages as prior for the unsure titles
  (:func:`dedup.langdetect.detect_languages`, what ``read_articles`` does);
* the confusions and the per-language accuracy of what dedup ships.

With ``--clusters`` it also runs the evaluation harness (as ``dedup eval``) twice, on the
file as given and on a temporary copy with every ``lang`` set to null, and prints the
detector's B³ F1 and ARI on both parts of each.

Only aggregate figures are printed and written (``--out``); data are never copied into
the repository (the copy without languages lives in a temporary folder).

Run: ``python -m benchmarks.langid --data ../shared/data/og2021_dev.jsonl [--clusters] [--out benchmarks/results]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from dedup.langdetect import COVERED_LANGUAGES, MIN_PROBABILITY, detect_languages, guess_language

ROOT = Path(__file__).resolve().parents[1]
FLOORS = (0.0, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7)


def _rows(path: Path) -> list[tuple[str, str]]:
    """(title and text, gold language) of every article with a language."""
    out = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                if record.get("lang"):
                    out.append((f"{record.get('title') or ''}\n{record.get('text') or ''}", str(record["lang"])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "og2021_dev.jsonl")
    parser.add_argument("--out", type=Path, help="write langid_<data>.json into this folder")
    parser.add_argument("--clusters", action="store_true", help="also cluster with lang given and with lang removed")
    parser.add_argument("--cache", type=Path, help="embedding cache folder (default: dedup eval's)")
    args = parser.parse_args()
    rows = _rows(args.data)
    gold = [g for _, g in rows]
    n = len(rows)
    free = [guess_language(t, candidates=None, min_probability=0.0) for t, _ in rows]
    covered = [guess_language(t, min_probability=0.0) for t, _ in rows]
    free_acc = sum(g is not None and g.best == y for g, y in zip(free, gold, strict=True)) / n
    print(f"{args.data.name}: {n} articles with a language; {Counter(gold).most_common()}")
    print(f"py3langid, all its languages: accuracy {free_acc:.4f}")
    print(f"restricted to the {len(COVERED_LANGUAGES)} covered languages:")
    print("| floor | alone: accuracy (unknown = wrong) | answered | accuracy when answered | in the feed: accuracy | answered |")
    print("|---|---|---|---|---|---|")
    floors: list[dict[str, Any]] = []
    texts = [t for t, _ in rows]
    shipped: list[str | None] = []
    for floor in FLOORS:
        answered = [(g.best, y) for g, y in zip(covered, gold, strict=True) if g is not None and g.probability >= floor]
        right = sum(b == y for b, y in answered)
        feed = detect_languages(texts, min_probability=floor) if floor > 0 else [g.best if g else None for g in covered]
        row = {
            "floor": floor,
            "accuracy": right / n,
            "answered": len(answered) / n,
            "precision": right / max(1, len(answered)),
            "feed_accuracy": sum(p == y for p, y in zip(feed, gold, strict=True)) / n,
            "feed_answered": sum(p is not None for p in feed) / n,
        }
        floors.append(row)
        if floor == MIN_PROBABILITY:
            shipped = feed
        mark = " (shipped)" if floor == MIN_PROBABILITY else ""
        print(
            f"| {floor:g}{mark} | {row['accuracy']:.4f} | {row['answered']:.4f} | {row['precision']:.4f} "
            f"| {row['feed_accuracy']:.4f} | {row['feed_answered']:.4f} |"
        )
    errors = Counter((y, p) for p, y in zip(shipped, gold, strict=True) if p != y)
    per_lang = {
        lang: round(sum(p == y for p, y in zip(shipped, gold, strict=True) if y == lang) / count, 4)
        for lang, count in Counter(gold).most_common()
    }
    print(f"shipped (floor {MIN_PROBABILITY}, feed prior): confusions (gold, detected) {errors.most_common(8)}")
    print(f"per language: {per_lang}")
    clusters = _clusters(args.data, args.cache) if args.clusters else None
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        record = {
            "benchmark": "langid",
            "dataset": args.data.stem,
            "articles": n,
            "unrestricted_accuracy": round(free_acc, 4),
            "floors": [{k: round(v, 4) for k, v in r.items()} for r in floors],
            "shipped_floor": MIN_PROBABILITY,
            "per_language": per_lang,
            "clusters": clusters,
        }
        path = args.out / f"langid_{args.data.stem}.json"
        path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {path}")


def _clusters(path: Path, cache: Path | None) -> dict[str, Any]:
    """The detector's B³ F1 and ARI per part, with ``lang`` as given and with ``lang`` removed."""
    from dedup.evaluation.data import default_cache_dir
    from dedup.evaluation.harness import evaluate

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        hidden = Path(tmp) / path.name
        with path.open(encoding="utf-8") as src, hidden.open("w", encoding="utf-8") as dst:
            for line in src:
                if line.strip():
                    dst.write(json.dumps({**json.loads(line), "lang": None}, ensure_ascii=False) + "\n")
        for name, data in (("given", path), ("removed", hidden)):
            record = evaluate(data, cache=cache or default_cache_dir())
            out[name] = {
                part: {"bcubed_f1": rep["clustering"]["bcubed"]["f1"], "ari": rep["clustering"]["ari"]}
                for part, rep in record["systems"]["dedup"].items()
                if part in ("tune", "held")
            }
            scores = ", ".join(f"{p} B³ F1 {v['bcubed_f1']:.3f} ARI {v['ari']:.3f}" for p, v in out[name].items())
            print(f"lang {name}: {scores}")
    return out


if __name__ == "__main__":
    main()
