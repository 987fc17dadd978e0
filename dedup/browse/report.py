r"""The static HTML report of a batch run: ``dedup cluster INPUT... --html FILE``.

One self-contained file that opens from disk, without a server or a network: the style
sheet and the scripts of the story browser (:mod:`dedup.browse.web`) are inlined, the data is a
JSON block (``<script type="application/json">``, every ``<`` written ``\u003c`` so no
article text can close the block), and the summary chart is SVG drawn here. A
Content-Security-Policy in the file allows only its own inline script and style (by hash).

It shows every story with its members grouped by language, and for each story the
verified pairs that link it (:func:`dedup.browse.stories.story_links`) with their evidence: the two
articles side by side, aligned passages highlighted, score, date gap, shared names and
numbers.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dedup import __version__
from dedup.browse.stories import StoryBook
from dedup.browse.views import explain_match, story_view
from dedup.browse.web import source
from dedup.types import EmbeddedArticle, Match, Story

__all__ = ["SIZE_BINS", "build_report", "lang_chart", "nice_ticks", "plural", "report_data", "size_chart"]

#: Story-size classes of the chart: (label, smallest, largest).
SIZE_BINS: tuple[tuple[str, int, int], ...] = (
    ("1", 1, 1),
    ("2", 2, 2),
    ("3", 3, 3),
    ("4", 4, 4),
    ("5", 5, 5),
    ("6–10", 6, 10),
    ("11–20", 11, 20),
    ("21–50", 21, 50),
    ("51+", 51, 1 << 62),
)

_BAR = "#0b57d0"
_INK = "#1b1f24"
_GRID = "#c9d1d9"


def _biggest_first(stories: Sequence[Story]) -> list[Story]:
    def key(story: Story) -> tuple[int, int, str]:
        last = story.last_date.bounds()[1].toordinal() if story.last_date else 0
        return (-story.size, -last, story.id)

    return sorted(stories, key=key)


def report_data(
    book: StoryBook,
    items: Mapping[str, EmbeddedArticle],
    compare: Callable[[EmbeddedArticle, EmbeddedArticle], Match],
    *,
    title: str = "dedup report",
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report's data: summary, stories (biggest first), articles with passages, link evidence.

    Args:
        book: The clustering and its articles.
        items: Every clustered article, embedded (its passages index the evidence).
        compare: Verifies one pair (``Detector.compare``); called once per story link.
        title: The report's title.
        settings: Shown in the report's header (model, thresholds).

    """
    stories = _biggest_first(book.result.stories)
    views = [story_view(book, s) for s in stories]
    rules = {k: v for k, v in (settings or {}).items() if k in ("threshold", "max_date_gap_days", "cluster_threshold")}
    evidence: dict[str, Any] = {}
    for view in views:
        for link in view["links"]:
            a, b = items[link["a"]], items[link["b"]]
            found = explain_match(compare(a, b).to_dict(), a.passages, b.passages, rules)
            # The page finds an aligned pair's texts in the articles' passages by index: the copies would
            # be a third of the file.
            found["aligned"] = [{k: v for k, v in p.items() if k not in ("a_text", "b_text")} for p in found["aligned"]]
            evidence[f"{link['a']}\n{link['b']}"] = found
    articles = {}
    for article_id, item in items.items():
        if article_id in book.articles:
            articles[article_id] = {
                "id": article_id,
                "title": item.article.title,
                "date": str(item.article.date) if item.article.date else None,
                "lang": item.article.lang,
                "source": item.article.source,
                "url": item.article.url,
                "passages": list(item.passages),
            }
    langs = Counter(a.lang or "?" for a in book.articles.values())
    return {
        "title": title,
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "version": __version__,
        "settings": dict(settings or {}),
        "rules": rules,
        "summary": {
            "articles": len(book.articles),
            "stories": len(stories),
            "multi": sum(1 for s in stories if s.size > 1),
            "multilingual": sum(1 for s in stories if len(s.langs) > 1),
            "largest": max((s.size for s in stories), default=0),
            "langs": dict(langs.most_common()),
        },
        "stories": views,
        "articles": articles,
        "evidence": evidence,
    }


def nice_ticks(peak: int, most: int = 5) -> list[int]:
    """Round axis ticks from 0 to at least ``peak``: steps of 1, 2 or 5 times a power of ten, at most ``most`` + 1 ticks.

    Examples:
        >>> nice_ticks(123)
        [0, 50, 100, 150]
        >>> nice_ticks(7)
        [0, 2, 4, 6, 8]

    """
    peak = max(int(peak), 1)
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            step = factor * magnitude
            if -(-peak // step) <= most:
                top = -(-peak // step) * step
                return list(range(0, top + 1, step))
        magnitude *= 10


def _bars(labels: Sequence[str], values: Sequence[int], *, label: str, x_title: str, width: int = 460, height: int = 220) -> str:
    """A vertical bar chart as an SVG element (labels and numbers escaped)."""
    left, right, top, bottom = 44, 12, 22, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    ticks = nice_ticks(max([*values, 1]))
    peak = ticks[-1]  # the axis ends at a round value at or above the tallest bar
    slot = plot_w / max(len(values), 1)
    bar_w = max(4.0, slot * 0.7)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{html.escape(label)}">',
        f"<title>{html.escape(label)}</title>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="{_INK}" stroke-width="1"/>',
    ]
    for tick in ticks:
        y = top + plot_h - plot_h * tick / peak
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="{_GRID}" stroke-width="1"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="12" fill="{_INK}">{tick}</text>')
    for i, (name, value) in enumerate(zip(labels, values, strict=True)):
        x = left + i * slot + (slot - bar_w) / 2
        h = plot_h * value / peak
        y = top + plot_h - h
        cx = x + bar_w / 2
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{_BAR}">'
            f"<title>{html.escape(name)}: {value}</title></rect>"
        )
        if value:
            parts.append(f'<text x="{cx:.1f}" y="{y - 5:.1f}" text-anchor="middle" font-size="12" fill="{_INK}">{value}</text>')
        parts.append(
            f'<text x="{cx:.1f}" y="{top + plot_h + 16}" text-anchor="middle" font-size="12" fill="{_INK}">'
            f"{html.escape(name)}</text>"
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" font-size="12" fill="{_INK}">'
        f"{html.escape(x_title)}</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def size_chart(stories: Sequence[Story]) -> str:
    """Stories per size class, as SVG."""
    counts = [sum(1 for s in stories if low <= s.size <= high) for _, low, high in SIZE_BINS]
    return _bars(
        [name for name, _, _ in SIZE_BINS], counts, label="Stories by number of articles", x_title="articles in the story"
    )


def lang_chart(langs: Mapping[str, int], *, most: int = 12) -> str:
    """Articles per language (the ``most`` commonest, then "other"), as SVG."""
    ranked = sorted(langs.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ranked[:most]
    rest = sum(n for _, n in ranked[most:])
    if rest:
        shown.append(("other", rest))
    return _bars([k for k, _ in shown], [n for _, n in shown], label="Articles by language", x_title="language")


def plural(n: int, word: str) -> str:
    """``n`` and ``word``, plural when ``n`` is not 1: "1 article", "2 articles", "3 stories"."""
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word[:-1]}ies" if word.endswith("y") and word[-2:-1] not in "aeiou" else f"{n} {word}s"


def _rules_line(rules: Mapping[str, Any]) -> str:
    """The rules the pairs were judged by, in words (nothing when unknown)."""
    if rules.get("threshold") is None:
        return ""
    window = rules.get("max_date_gap_days")
    dates = f" and their dates are at most {plural(int(window), 'day')} apart" if window is not None else ""
    merge = rules.get("cluster_threshold")
    stories = f" Two stories merge when a pair across them scores at least {merge:g}." if merge is not None else ""
    return (
        f'<p id="rules-line" class="muted">Two articles are duplicates when their score reaches the threshold '
        f"{float(rules['threshold']):g}{dates}.{stories}</p>"
    )


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def _script_safe(code: str, name: str) -> str:
    if "</script" in code.lower() or "<!--" in code:
        raise ValueError(f"{name} must not contain '</script' or '<!--': it is inlined into the report")
    return code


def build_report(data: Mapping[str, Any], stories: Sequence[Story]) -> str:
    """The report as one HTML document (see :func:`report_data` for ``data``)."""
    style = source("style.css")
    script = _script_safe(source("render.js"), "render.js") + "\n" + _script_safe(source("report.js"), "report.js")
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    csp = f"default-src 'none'; script-src {_csp_hash(script)}; style-src {_csp_hash(style)}; img-src data:; base-uri 'none'"
    summary = data["summary"]
    title = html.escape(str(data["title"]))
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f'<meta http-equiv="Content-Security-Policy" content="{html.escape(csp, quote=False)}">',
            f"<title>{title}</title>",
            '<link rel="icon" href="data:,">',
            f"<style>{style}</style>",
            "</head>",
            "<body>",
            '<header class="top"><span class="brand">dedup</span>'
            f'<span class="muted">static report · {html.escape(str(data["generated"]))} · dedup {html.escape(__version__)}</span>'
            "</header>",
            '<main id="main">',
            f'<h1 id="report-title">{title}</h1>',
            '<section aria-labelledby="summary-head">',
            '<h2 id="summary-head">Summary</h2>',
            f'<p id="summary-line">{plural(summary["articles"], "article")} → {plural(summary["stories"], "story")}; '
            f"{summary['multi']} with several articles, {summary['multilingual']} in several languages; "
            f"the largest has {plural(summary['largest'], 'article')}.</p>",
            _rules_line(data.get("rules") or {}),
            '<div class="charts">',
            f'<figure id="chart-sizes"><figcaption>Stories by size</figcaption>{size_chart(stories)}</figure>',
            f'<figure id="chart-langs"><figcaption>Articles by language</figcaption>{lang_chart(summary["langs"])}</figure>',
            "</div>",
            "</section>",
            '<section aria-labelledby="stories-head">',
            '<h2 id="stories-head">Stories</h2>',
            '<div id="report-view"><p>This report needs JavaScript to list the stories.</p></div>',
            "</section>",
            "</main>",
            f'<script type="application/json" id="report-data">{payload}</script>',
            f"<script>{script}</script>",
            "</body>",
            "</html>",
            "",
        ]
    )
