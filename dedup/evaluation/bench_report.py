"""Reporting a benchmark run: the README's markdown tables, and the run on disk.

Separate from running (:mod:`dedup.evaluation.bench`): these read the JSON-ready report a
run returns, so tables can be redrawn from saved results.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["markdown", "write"]

_PATH_NAMES = {"plain": "plain sentence-transformers", "ours": "dedup default", "openvino": "OpenVINO fp32"}


def markdown(report: dict[str, Any]) -> str:
    """The README tables of a report."""
    lines = []
    if "search" in report:
        lines += [
            "| index | n | param | build s | bytes/vector | p50 ms | p99 ms | queries/s | recall@1 | recall@10 | range recall |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in report["search"]:
            if r["index"] in ("ivf", "hnsw") and not r.get("chosen", True):
                continue
            lines.append(
                f"| {r['index']} | {r['n']:,} | {r['param'] or '-'} | {r['build_s']:.1f} | {r['bytes_per_vector']:.0f} | "
                f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['qps']:,.0f} | {r['recall_at_1']:.3f} | {r['recall_at_10']:.3f} | "
                f"{r['range_recall']:.3f} |"
            )
    if "check" in report:
        lines += [
            "",
            "| store size | index (auto) | retrieval p50 ms | retrieval p99 ms | recall@10 "
            "| verification p50 ms | verification p99 ms |",
            "|---:|---|---:|---:|---:|---:|---:|",
        ]
        for r in report["check"]:
            lines.append(
                f"| {r['n']:,} | {r['index']} | {r['retrieval_p50_ms']:.3f} | {r['retrieval_p99_ms']:.3f} | "
                f"{r['retrieval_recall_at_10']:.3f} | {r['verification_p50_ms']:.1f} | {r['verification_p99_ms']:.1f} |"
            )
    if "cluster" in report:
        lines += ["", "| feed size | seconds | ms/article | peak RSS MB |", "|---:|---:|---:|---:|"]
        for r in report["cluster"]:
            lines.append(f"| {r['n']:,} | {r['seconds']:.1f} | {r['ms_per_article']:.2f} | {r['peak_rss_mb']:.0f} |")
    if "embedding" in report:
        e = report["embedding"]
        lines += [
            "",
            "| embedding path | articles/s | passages/s | speed-up (all / median group) | cosine to plain: min / mean |",
            "|---|---:|---:|---:|---|",
            *(
                f"| {_PATH_NAMES.get(p['path'], p['path'])} ({p['backend']}) | {p['articles_per_s']:.2f} | "
                f"{p['passages_per_s']:.1f} | {p['speedup']:.2f}x / {p['speedup_median_group']:.2f}x | "
                f"{p['cosine_to_plain_min']:.4f} / {p['cosine_to_plain_mean']:.4f} |"
                for p in e.get("paths", [])
            ),
            f"| dedup, re-run (embedding cache) | {e['cached_rerun_articles_per_s']:,.0f} | - | - | - |",
            "",
            f"{e['articles']} articles, {e['passages']} passages, in {e.get('groups', '?')} groups of 8 articles"
            + (f", from {e['source']}." if e.get("source") else "."),
        ]
    if "ingest" in report:
        lines += _ingest_table(report["ingest"], report.get("ingest_setup", {}))
    lines += _data_line(report.get("data", {}))
    machine = report.get("machine", {})
    if machine:
        isa = ", ".join(machine.get("isa", [])) or "not read"
        lines += ["", f"Machine: {machine.get('cpus', '?')} cores, {machine.get('cpu', '?')}; int8/bf16 instruction sets: {isa}."]
    return "\n".join(lines) + "\n"


def _ingest_table(rows: list[dict[str, Any]], setup: dict[str, Any]) -> list[str]:
    """The live-archive table: sustained add and check latency, open time, memory and disk per article."""
    lines = [
        "",
        "| archive size | shards | add 10 p50 ms | add 10 p99 ms | check p50 ms | check p99 ms | of which retrieval "
        "p50 / p99 ms | open ms | open all shards ms | RSS bytes/article | disk bytes/article | near-copies found "
        "| new flagged |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['shards']} | {r['add_p50_ms']:.1f} | {r['add_p99_ms']:.1f} | {r['check_p50_ms']:.1f} | "
            f"{r['check_p99_ms']:.1f} | {_pair(r, 'retrieval')} | {r['open_ms']:.0f} | {r['open_all_shards_ms']:.0f} | "
            f"{r['rss_bytes_per_article']:,.0f} | {r['disk_bytes_per_article']:,.0f} | "
            f"{r['near_copies_found']}/{r['near_copies']} | {r['new_articles_flagged']}/{r['new_articles']} |"
        )
    if setup.get("method"):
        lines += ["", f"Ingest: {setup['method']}; {setup.get('vectors', '')}."]
    return lines


def _pair(row: dict[str, Any], name: str) -> str:
    p50, p99 = row.get(f"{name}_p50_ms"), row.get(f"{name}_p99_ms")
    return "-" if p50 is None or p99 is None else f"{p50:.1f} / {p99:.1f}"


def _data_line(data: dict[str, Any]) -> list[str]:
    """Where the vectors came from, in words (the report must say it, not leave it to guess)."""
    if not data:
        return []
    source = data.get("source") or data.get("sources", "?")
    grown = data.get("grown_to")
    tail = f", grown to {grown:,} with synthetic vectors near them" if isinstance(grown, int) else ""
    return ["", f"Vectors: {data.get('real_vectors', '?')} real article vectors from {source}{tail}."]


def write(report: dict[str, Any], out_dir: Path, name: str) -> Path:
    """Write ``<name>.json`` and ``<name>.md`` into ``out_dir``; returns the JSON path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(report, indent=1) + "\n", "utf-8")
    (out_dir / f"{name}.md").write_text(markdown(report), "utf-8")
    return path
