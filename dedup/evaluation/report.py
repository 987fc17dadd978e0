"""Reporting an evaluation: markdown tables, the precision-recall plot, the record on disk.

Separate from running (:mod:`dedup.evaluation.harness`): these read the JSON-ready
records a run returns, so a report can be redrawn from saved results.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dedup.errors import OptionalDependencyError
from dedup.evaluation.results import PAIR_SYSTEMS, SYSTEMS

__all__ = [
    "markdown_table",
    "pairs_lang_table",
    "pairs_table",
    "plot_pr_curves",
    "threshold_advice",
    "threshold_table",
    "write_record",
]


def markdown_table(records: Sequence[dict[str, Any]]) -> str:
    """One markdown table row per data set, part and system.

    ECE: the expected calibration error of the detector's pair scores on the candidate pairs
    (10 bins; the baselines' cosines are no probabilities).
    """
    head = (
        "| data | part | system | B³ P | B³ R | B³ F1 | ARI | pair P | pair R | pair F1 | R@1 | R@10 | worst pair R@1 | ECE |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    for rec in records:
        for part in ("tune", "held"):
            for system in SYSTEMS:
                sysrec = rec["systems"][system]
                if part not in sysrec:
                    continue
                r = sysrec[part]
                c, p, ret = r["clustering"], r["pairs"]["at_threshold"], r["retrieval"]
                worst = min(ret["by_pair"].items(), key=lambda kv: kv[1]["recall@1"], default=None)
                worst_text = f"{worst[0]} {worst[1]['recall@1']:.3f}" if worst else "–"
                bc = c["bcubed"]
                rows.append(
                    f"| {rec['dataset']} | {part} ({rec['split'][part]['articles']}) | {system} "
                    f"| {bc['precision']:.3f} | {bc['recall']:.3f} | **{bc['f1']:.3f}** | **{c['ari']:.3f}** "
                    f"| {p['precision']:.3f} | {p['recall']:.3f} | {p['f1']:.3f} "
                    f"| {_fmt(ret.get('recall@1'))} | {_fmt(ret.get('recall@10'))} "
                    f"| {worst_text} | {_fmt((r.get('calibration') or {}).get('ece'))} |"
                )
    return "\n".join(rows)


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) and not isinstance(value, bool) and value == value else "–"


_PAIR_HEAD = "| AUC | hard AUC | Pearson | \\|Pearson\\| | Spearman | best F1 (t) | ECE |"


def _pair_cells(r: dict[str, Any]) -> str:
    f1 = f"{_fmt(r['best_f1'])} ({_fmt(r['best_threshold'])})" if r["best_f1"] is not None else "–"
    abs_r = _fmt(r["abs_pearson"])
    return (
        f"| {_fmt(r['auc'])} | {_fmt(r['hard_auc'])} | {_fmt(r['pearson'])} | {abs_r} | {_fmt(r['spearman'])} "
        f"| {f1} | {_fmt(r['ece'])} |"
    )


def pairs_table(records: Sequence[dict[str, Any]]) -> str:
    """One markdown row per pairs data set, part and system (records of ``evaluate_pairs``)."""
    rows = [f"| data | part (pairs: +/-/hard) | system {_PAIR_HEAD}", "|---|---|---" + "|---" * 7 + "|"]
    for rec in records:
        for part in ("tune", "held"):
            split = rec["split"].get(part)
            if split is None or part not in rec["systems"]["dedup"]:
                continue
            counts = f"{split['pairs']}: {split['positives']}/{split['negatives']}/{split['hard_negatives']}"
            for system in PAIR_SYSTEMS:
                cells = _pair_cells(rec["systems"][system][part]["all"])
                rows.append(f"| {rec['dataset']} | {part} ({counts}) | {system} {cells}")
    return "\n".join(rows)


def pairs_lang_table(record: dict[str, Any], part: str = "held") -> str:
    """Per language pair and system, on one part of a pairs record."""
    rows = [f"| {part}: languages (pairs: +/-/hard) | system {_PAIR_HEAD}", "|---|---" + "|---" * 7 + "|"]
    if part not in record["systems"]["dedup"]:
        return "\n".join(rows)
    for lang, r0 in record["systems"]["dedup"][part]["by_lang_pair"].items():
        counts = f"{r0['pairs']}: {r0['positives']}/{r0['negatives']}/{r0['hard_negatives']}"
        for system in PAIR_SYSTEMS:
            rows.append(f"| {lang} ({counts}) | {system} " + _pair_cells(record["systems"][system][part]["by_lang_pair"][lang]))
    return "\n".join(rows)


def threshold_table(records: Sequence[dict[str, Any]], thresholds: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9)) -> str:
    """Precision and recall of the detector's pair decisions at several thresholds, per data set and part.

    Read from each record's precision-recall curve (the point at the lowest curve threshold
    at or above each value), so users can pick ``--threshold`` by the trade-off they want.
    """
    head = "| data | part | " + " | ".join(f"t={t:g}: P / R" for t in thresholds) + " |"
    rows = [head, "|---|---|" + "---|" * len(thresholds)]
    for rec in records:
        for part in ("tune", "held"):
            rep = rec["systems"]["dedup"].get(part)
            if rep is None:
                continue
            curve = rep["pairs"]["pr_curve"]
            cells = []
            for t in thresholds:
                above = [k for k, x in enumerate(curve["threshold"]) if x >= t]
                if above:
                    k = above[-1]
                    cells.append(f"{curve['precision'][k]:.2f} / {curve['recall'][k]:.2f}")
                else:
                    cells.append("– / 0.00")
            rows.append(f"| {rec['dataset']} | {part} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _best_on_tune(record: dict[str, Any]) -> tuple[float, float, float, float] | None:
    """(threshold, F1, precision, recall) of the detector's best-F1 point on the tune part, or None."""
    tune = record["systems"]["dedup"].get("tune")
    if tune is None:
        return None
    if record["benchmark"] == "eval_pairs":
        r = tune["all"]
        if r["best_f1"] is None or r["best_threshold"] is None:
            return None
        return float(r["best_threshold"]), float(r["best_f1"]), float("nan"), float("nan")
    curve = tune["pairs"]["pr_curve"]
    points = [
        (2 * p * r / (p + r), t, p, r)
        for t, p, r in zip(curve["threshold"], curve["precision"], curve["recall"], strict=False)
        if p + r > 0
    ]
    if not points:
        return None
    f1, t, p, r = max(points)
    return float(t), float(f1), float(p), float(r)


def threshold_advice(records: Sequence[dict[str, Any]]) -> str:
    """Which ``--threshold`` to pick, per data set: the detector's best-F1 threshold on the tune part.

    Chosen on the tune part only, so the held figures above stay an honest check of it.
    """
    lines = []
    for rec in records:
        best = _best_on_tune(rec)
        if best is None:
            continue
        t, f1, p, r = best
        pr = f", P {p:.2f} / R {r:.2f}" if p == p else ""
        lines.append(f"- {rec['dataset']}: `--threshold {t:.2f}` (best F1 {f1:.3f} on the tune part{pr})")
    if not lines:
        return ""
    head = "Which threshold to pick (the pair decision of check, add and cluster; the default is 0.5):"
    return "\n".join([head, *lines])


def plot_pr_curves(record: dict[str, Any], path: Path) -> None:
    """Write the precision-recall curves of every system and part as a PNG.

    Raises:
        OptionalDependencyError: When matplotlib is not installed.

    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise OptionalDependencyError("matplotlib", "the precision-recall plot (pip install 'dedup[bench]')") from exc
    parts = [p for p in ("tune", "held") if p in record["systems"]["dedup"]]
    fig, axes = plt.subplots(1, len(parts), figsize=(5.5 * len(parts), 4.5), squeeze=False)
    for ax, part in zip(axes[0], parts, strict=True):
        for system in SYSTEMS:
            rep = record["systems"][system][part]["pairs"]
            curve = rep["pr_curve"]
            ax.plot(curve["recall"], curve["precision"], label=f"{system} (best F1 {rep['best']['f1']:.2f})")
            at = rep["at_threshold"]
            ax.scatter([at["recall"]], [at["precision"]], marker="o", s=25)
        ax.set_title(f"{record['dataset']}: {part} part ({record['split'][part]['articles']} articles)")
        ax.set_xlabel("recall (of true candidate pairs)")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
    fig.suptitle(f"pair decisions, model {record['model']}; dots: chosen thresholds", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_record(record: dict[str, Any], out_dir: Path, *, plot: bool = True) -> Path:
    """Write ``eval_<dataset>.json`` (and the PR plot ``eval_<dataset>_pr.png``) into ``out_dir``.

    Records of labelled pairs (``"benchmark": "eval_pairs"``) have no plot.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"eval_{record['dataset']}.json"
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if plot and record.get("benchmark") == "eval":
        plot_pr_curves(record, out_dir / f"eval_{record['dataset']}_pr.png")
    return path
