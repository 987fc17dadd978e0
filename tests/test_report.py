"""The static HTML report (``dedup cluster --html``): self-contained, escaped, with evidence and charts.

The browser test (test_browser.py) opens it from disk in Chromium; these tests read the file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest

import dedup.detect.detector
from dedup.browse.report import SIZE_BINS, lang_chart, nice_ticks, plural, size_chart
from dedup.cli import EXIT_INPUT, EXIT_OK, main
from dedup.types import Story

from .conftest import HashEncoder

HOSTILE = "</script><script>window.pwned = 1</script><!-- <img src=x onerror=alert(1)>"
HANOI = "Ministers of Vietnam and Laos met in Hanoi on Sunday and signed three cooperation agreements worth 45 million."


@pytest.fixture
def feed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(dedup.detect.detector, "load_encoder", lambda model, **kwargs: HashEncoder())
    rows = [
        {"id": "h1", "title": "Hanoi talks", "text": HANOI, "date": "2025-01-12", "lang": "en"},
        {"id": "h2", "title": "Hanoi talks", "text": HANOI + " They met again.", "date": "2025-01-12", "lang": "fr"},
        {"id": "x1", "title": HOSTILE, "text": "A Kenyan runner set a course record in Berlin.", "lang": "en"},
    ]
    path = tmp_path / "feed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


def report_parts(html: str) -> tuple[dict[str, object], str, str]:
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    script = re.search(r"<script>(.*?)</script>", html, re.S)
    style = re.search(r"<style>(.*?)</style>", html, re.S)
    assert data and script and style
    return json.loads(data.group(1)), script.group(1), style.group(1)


def sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_cluster_html_writes_one_self_contained_escaped_file(
    feed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    assert main(["cluster", "-q", "--no-cache", str(feed), "--html", str(out)]) == EXIT_OK
    assert "3 articles -> 2 stories" in capsys.readouterr().out  # the usual summary is still printed
    html = out.read_text("utf-8")

    # Self-contained: nothing to fetch (the only URL is the SVG namespace, which is a name).
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "@import" not in html and "url(" not in html and '<link rel="stylesheet"' not in html
    assert re.findall(r"https?://[^\s\"'<>]+", html) == ["http://www.w3.org/2000/svg"] * 2

    # The hostile title cannot leave the JSON block: exactly two script elements end.
    assert html.count("</script>") == 2 and "window.pwned" in html and "<script>window.pwned" not in html
    assert "<!--" not in html.split("<script>", 1)[1]
    data, script, style = report_parts(html)
    assert data["articles"]["x1"]["title"] == HOSTILE  # intact after the round trip  # type: ignore[index]

    # The CSP allows exactly the inline script and style, by hash.
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert csp and sha(script) in csp.group(1) and sha(style) in csp.group(1) and "unsafe-inline" not in csp.group(1)

    # Stories, biggest first, with members, languages and the evidence of their links.
    stories = data["stories"]
    assert isinstance(stories, list) and [sorted(s["article_ids"]) for s in stories] == [["h1", "h2"], ["x1"]]
    assert stories[0]["langs"] == ["en", "fr"] and stories[0]["links"][0]["score"] >= 0.5
    link = stories[0]["links"][0]
    evidence = data["evidence"][f"{link['a']}\n{link['b']}"]  # type: ignore[index]
    assert evidence["duplicate"] is True and evidence["aligned"] and evidence["date_gap_days"] == 0
    passages = data["articles"][link["a"]]["passages"]  # type: ignore[index]
    assert 0 <= evidence["aligned"][0]["a"] < len(passages)  # the page shows passages by index ...
    assert "a_text" not in evidence["aligned"][0]  # ... so the report does not hold their texts twice
    assert data["summary"] == {  # type: ignore[comparison-overlap]
        "articles": 3,
        "stories": 2,
        "multi": 1,
        "multilingual": 1,
        "largest": 2,
        "langs": {"en": 2, "fr": 1},
    }
    assert 'id="chart-sizes"' in html and 'id="chart-langs"' in html

    # The rules on the page, and each link's decision in words; names as written.
    assert "reaches the threshold 0.5 and their dates are at most 7 days apart" in html
    assert data["rules"] == {"threshold": 0.5, "max_date_gap_days": 7, "cluster_threshold": 0.7}
    assert evidence["decision"]["rule"] == "score" and evidence["decision"]["reason"].endswith("reaches the threshold 0.5")
    assert "Hanoi" in evidence["names_shown"] and "hanoi" in evidence["shared_names"]
    # Collapsed by default: no story or link is opened by the script.
    assert ".open = true" not in script and "open: true" not in script.split("function linkItem", 1)[0]


def test_unwritable_report_path_is_an_input_error(feed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cluster", "-q", "--no-cache", str(feed), "--html", str(tmp_path / "missing" / "r.html")]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert "--html" in err and "missing" in err and "does not exist" in err and "Traceback" not in err


def test_charts_count_and_escape() -> None:
    sizes = [1, 1, 1, 2, 7, 60]
    stories = [Story(f"s{i}", tuple(f"a{i}-{k}" for k in range(n)), ("en",), None, None, ()) for i, n in enumerate(sizes)]
    svg = size_chart(stories)
    bars = dict(re.findall(r"<rect [^>]*><title>([^<]+): (\d+)</title>", svg))
    assert bars == {"1": "3", "2": "1", "3": "0", "4": "0", "5": "0", "6–10": "1", "11–20": "0", "21–50": "0", "51+": "1"}
    assert len(bars) == len(SIZE_BINS) and svg.startswith("<svg") and 'role="img"' in svg
    svg = lang_chart({"en": 5, "<b>": 2, **{f"l{i}": 1 for i in range(20)}}, most=3)
    labels = re.findall(r"<title>([^<]+): (\d+)</title>", svg)
    assert labels == [("en", "5"), ("&lt;b&gt;", "2"), ("l0", "1"), ("other", "19")]


@pytest.mark.parametrize(
    ("peak", "ticks"),
    [
        (1, [0, 1]),
        (3, [0, 1, 2, 3]),
        (7, [0, 2, 4, 6, 8]),
        (10, [0, 2, 4, 6, 8, 10]),
        (123, [0, 50, 100, 150]),
        (61, [0, 20, 40, 60, 80]),
    ],
)
def test_chart_ticks_fall_at_round_values(peak: int, ticks: list[int]) -> None:
    assert nice_ticks(peak) == ticks


def test_chart_axis_reaches_a_round_value_above_the_tallest_bar() -> None:
    svg = lang_chart({"en": 123, "fr": 40})
    labels = re.findall(r'text-anchor="end" font-size="12" fill="[^"]+">(\d+)</text>', svg)
    assert labels == ["0", "50", "100", "150"]


def test_plurals() -> None:
    assert [plural(1, "article"), plural(2, "article"), plural(1, "story"), plural(0, "story"), plural(2, "day")] == [
        "1 article",
        "2 articles",
        "1 story",
        "0 stories",
        "2 days",
    ]
