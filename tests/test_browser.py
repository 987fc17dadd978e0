"""The story browser and the static report in a real browser: Debian's headless Chromium, driven by Selenium.

A real ``dedup serve`` (the real default model, a token) holds seeds 000-003, once in a store
and once in a time-sharded archive (``serve --archive``; its screenshots go to ``archive/``); the page is
used as a person would: paste seed 004, see 000 as its duplicate with the aligned passages
highlighted, add it with the keyboard only, browse to its story. The static report of
``dedup cluster data/ --html`` is opened from disk. Each step checks that the key elements
are visible, that nothing overflows at 1280 and 800 px, and the contrast of key text.

Screenshots go to ``$DEDUP_SCREENSHOT_DIR`` when set (the ones in docs/screenshots were made
with ``DEDUP_SCREENSHOT_DIR=docs/screenshots python -m pytest tests/test_browser.py``), else
to a temporary folder, so a test run leaves the working tree as it was.

Skips, saying why, where /usr/bin/chromium or /usr/bin/chromedriver is missing
(``apt-get install chromium chromium-driver``; ``.ci/run`` installs them).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import ROOT, SEEDS, TRUE_PAIR

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _why_no_browser() -> str | None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        return f"no headless browser: {', '.join(missing)} missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


if (_reason := _why_no_browser()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.model, pytest.mark.slow]

TOKEN = "browser-test-token"
SEED_000, SEED_004 = TRUE_PAIR
WIDTHS = (1280, 800)
MAX_SHOT_HEIGHT = 1800


def seed_file(prefix: str) -> Path:
    return next(SEEDS.glob(f"{prefix}_*.txt"))


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def shots() -> Path:
    where = os.environ.get("DEDUP_SCREENSHOT_DIR")
    folder = Path(where) if where else Path(tempfile.mkdtemp(prefix="dedup-shots-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module", params=["store", "archive"])
def kind(request: pytest.FixtureRequest) -> str:
    """What the server serves: one store, or a time-sharded archive (one shard per month)."""
    return str(request.param)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, kind: str) -> Iterator[str]:
    """A real `dedup serve` with the real default model, a token, and seeds 000-003 stored (in a store or an archive)."""
    store = tmp_path_factory.mktemp("browser") / f"news.{kind}"
    seeds = [str(seed_file(p)) for p in ("000", "001", "002", "003")]
    where = [f"--{kind}", str(store)]
    subprocess.run([sys.executable, "-m", "dedup", "add", "-q", *where, *seeds], check=True, cwd=ROOT, timeout=300)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dedup", "serve", *where, "--port", "0", "--token", TOKEN],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stderr is not None
    url = None
    deadline = time.monotonic() + 300
    while url is None and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            raise AssertionError(f"dedup serve exited with {proc.returncode}")
        if "serving" in line:
            url = line.split(" on ", 1)[1].split(";", 1)[0]
    assert url is not None
    stderr = proc.stderr
    threading.Thread(target=lambda: [None for _ in stderr], daemon=True).start()  # keep the pipe drained
    while True:
        try:
            httpx.get(f"{url}/health", timeout=5).raise_for_status()
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="dedup-chromium-")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={WIDTHS[0]},900",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    browser.set_script_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    subprocess.run(
        [sys.executable, "-m", "dedup", "cluster", "-q", str(SEEDS), "--html", str(path)], check=True, cwd=ROOT, timeout=300
    )
    return path


# ------------------------------------------------------------------------------ helpers
def wait(browser: WebDriver, condition: Callable[[WebDriver], Any], timeout: float = 120) -> Any:
    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(condition)


def visible(browser: WebDriver, css: str, timeout: float = 120) -> WebElement:
    def find(d: WebDriver) -> WebElement | bool:
        found = [e for e in d.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]
        return found[0] if found else False

    element: WebElement = wait(browser, find, timeout)
    return element


def active(browser: WebDriver) -> WebElement:
    element: WebElement = browser.switch_to.active_element
    return element


def press(browser: WebDriver, *keys: str) -> None:
    ActionChains(browser).send_keys(*keys).perform()


def tab_to(browser: WebDriver, matches: Callable[[WebElement], bool], most: int = 60) -> WebElement:
    """Press Tab until the focused element matches (keyboard only)."""
    for _ in range(most):
        press(browser, Keys.TAB)
        element = active(browser)
        if matches(element):
            return element
    raise AssertionError("the element was not reached with Tab")


def luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


CONTRAST_JS = """
const parse = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
const out = [];
for (const node of document.querySelectorAll(arguments[0])) {
  if (!node.offsetParent && getComputedStyle(node).position !== 'fixed') continue;
  const fg = parse(getComputedStyle(node).color);
  let el = node, bg = null;
  while (el) {
    const c = parse(getComputedStyle(el).backgroundColor);
    if (c.length === 4 ? c[3] > 0 : c.length === 3) { bg = c; break; }
    el = el.parentElement;
  }
  out.push([fg.slice(0, 3), (bg || [255, 255, 255]).slice(0, 3)]);
  if (out.length >= 20) break;
}
return out;
"""


def min_contrast(browser: WebDriver, css: str) -> float:
    pairs = browser.execute_script(CONTRAST_JS, css)
    assert pairs, f"no visible element for {css}"
    ratios = []
    for fg, bg in pairs:
        a, b = luminance(tuple(fg)), luminance(tuple(bg))
        ratios.append((max(a, b) + 0.05) / (min(a, b) + 0.05))
    return min(ratios)


def check_contrast(browser: WebDriver, selectors: list[str]) -> dict[str, float]:
    found = {css: round(min_contrast(browser, css), 2) for css in selectors}
    low = {css: ratio for css, ratio in found.items() if ratio < 4.5}
    assert not low, f"contrast under 4.5:1 (WCAG AA): {low}"
    return found


def check_layout_and_shoot(browser: WebDriver, shots: Path, name: str, key: list[str]) -> None:
    """At each width: no horizontal overflow, the key elements visible; then a screenshot."""
    for width in WIDTHS:
        browser.set_window_size(width, 900)
        wait(browser, lambda d, w=width: d.execute_script("return window.innerWidth") == w, 10)
        scroll_width, inner = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll_width <= inner, f"{name} at {width}px: content {scroll_width}px wide overflows {inner}px"
        for css in key:
            element = visible(browser, css, 10)
            rect = element.rect
            assert rect["width"] > 0 and rect["height"] > 0 and rect["x"] >= 0 and rect["x"] + rect["width"] <= inner + 1, (
                name,
                width,
                css,
                rect,
            )
        height = min(int(browser.execute_script("return document.documentElement.scrollHeight")), MAX_SHOT_HEIGHT)
        browser.set_window_size(width, height)
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(shots / f"{name}-{width}.png"))
    browser.set_window_size(WIDTHS[0], 900)


def open_page(browser: WebDriver, url: str) -> None:
    """Load the page afresh (a change of the part after # alone would not reload it)."""
    browser.get("about:blank")
    browser.get(url)


def paste(browser: WebDriver, text: str) -> None:
    area = visible(browser, "#article-text")
    browser.execute_script(
        "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input', {bubbles: true}))", area, text
    )


def severe_logs(browser: WebDriver) -> list[str]:
    # The 401 of the first request without a token is expected (the page then asks for it).
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE" and "status of 401" not in e["message"]]


# -------------------------------------------------------------------------------- tests
def test_paste_004_and_see_000_with_aligned_passages_highlighted(
    driver: WebDriver, server: str, kind: str, shots: Path, figures: list[str]
) -> None:
    shots = shots_of(shots, kind)
    driver.get(f"{server}/")
    assert "dedup" in driver.title
    visible(driver, "#check-heading")
    load_ms = driver.execute_script("const n = performance.getEntriesByType('navigation')[0]; return n.domContentLoadedEventEnd")
    paste(driver, seed_file("004").read_text("utf-8"))
    driver.find_element(By.ID, "check-submit").click()

    # The service has a token: the page asks for it, keeps it for the tab, and goes on.
    token = visible(driver, "#token-input")
    assert "token" in driver.find_element(By.ID, "token-reason").text
    token.send_keys(TOKEN, Keys.ENTER)
    assert driver.execute_script("return sessionStorage.getItem('dedup.token')") == TOKEN

    heading = visible(driver, "#verdict-heading")
    assert heading.text.startswith("DUPLICATE")
    cards = driver.find_elements(By.CSS_SELECTOR, "#check-result .match")
    assert cards[0].get_attribute("data-id") == SEED_000 and "is-dup" in (cards[0].get_attribute("class") or "")
    # 3 near misses in a store; an archive searches the shards of 004's window (2025-01 and undated): 000 and 002.
    assert all("is-miss" in (c.get_attribute("class") or "") for c in cards[1:]) and len(cards) == (4 if kind == "store" else 2)
    top = cards[0]
    facts = top.find_element(By.CSS_SELECTOR, ".facts").text
    for word in ("Score", "Date gap", "0 days", "en → fr", "Shared names", "Lakhamphong", "Shared numbers", "2024"):
        assert word in facts
    decided = re.search(r"duplicate: score (\d\.\d+) reaches the threshold 0\.5", facts)
    assert decided is not None and float(decided.group(1)) >= 0.9, facts  # the seed pair: far above the threshold
    assert re.search(rf"Score\s+{re.escape(decided.group(1))}\b", facts) and "cosine" not in facts.lower()

    # Each near miss says which rule rejected it, and the rules are on the page.
    rules = visible(driver, "#verdict-rules").text
    assert "threshold 0.5" in rules and "at most 7 days apart" in rules
    reasons = [c.find_element(By.CSS_SELECTOR, ".facts .reason").text for c in cards[1:]]
    assert all(r.startswith("not a duplicate: ") for r in reasons), reasons
    if kind == "store":  # seeds 001 and 003 are months away (an archive does not even search their shards)
        assert any("outside the 7-day window" in r for r in reasons), reasons
    assert any("is below the threshold 0.5" in r for r in reasons), reasons  # seed 002 is undated: its score decided
    summaries = [c.find_element(By.CSS_SELECTOR, "summary").text for c in cards[1:]]
    assert all(re.search(r"\((1 matching passage|\d+ matching passages)\)$", t) for t in summaries), summaries

    # Aligned passages: highlighted in both columns, numbered alike, visible.
    left = top.find_elements(By.CSS_SELECTOR, ".column-a .passage.aligned")
    right = top.find_elements(By.CSS_SELECTOR, ".column-b .passage.aligned")
    assert len(left) == len(right) >= 8
    assert all(p.is_displayed() for p in left + right)
    assert [p.get_attribute("data-pair") for p in left] == [str(i) for i in range(len(left))]  # reading order
    assert sorted(p.get_attribute("data-pair") or "" for p in right) == sorted(p.get_attribute("data-pair") or "" for p in left)
    white = "rgba(0, 0, 0, 0)", "rgb(255, 255, 255)"
    assert all(p.value_of_css_property("background-color") not in white for p in left + right)
    plain = top.find_elements(By.CSS_SELECTOR, ".column-a .passage:not(.aligned)")
    assert all(p.value_of_css_property("background-color") in white for p in plain)

    # Hovering a passage lights its partner in the other column.
    ActionChains(driver).move_to_element(left[2]).perform()
    partner = top.find_element(By.CSS_SELECTOR, '.column-b [data-pair="2"]')
    wait(driver, lambda d: "active" in (partner.get_attribute("class") or ""), 5)

    # The page's own time: from the API's answer to the rendered verdict.
    measures = dict(driver.execute_script("return performance.getEntriesByType('measure').map(m => [m.name, m.duration])"))
    render_ms, api_ms = measures["dedup:check:render"], measures["dedup:check:api"]
    # Reported, not asserted: a wall-clock bound fails on a busy machine without any bug (speed is a benchmark's
    # job). That the page recorded both measures shows it went from the API's answer to a rendered verdict.
    assert render_ms >= 0 and api_ms >= 0
    figures.append(
        f"story browser (Chromium, {kind}): check of seed 004 rendered in {render_ms:.1f} ms after the API's {api_ms:.0f} ms; "
        f"page DOMContentLoaded {load_ms:.0f} ms"
    )

    ratios = check_contrast(
        driver,
        [
            "#check-heading",
            ".hint",
            "#store-info",
            ".top nav a",
            ".badge-dup",
            ".badge-miss",
            ".facts dd",
            ".chips li",
            ".passage.aligned .passage-text",
            ".passage:not(.aligned)",
            ".pair-no",
            ".match-title a",
            "label",
            "button",
        ],
    )
    figures.append(f"story browser: lowest text contrast on the check page {min(ratios.values()):.2f}:1")
    check_layout_and_shoot(driver, shots, "check", ["#verdict-heading", ".match.is-dup .facts", ".column-a .passage.aligned"])
    assert severe_logs(driver) == []


def shots_of(shots: Path, kind: str) -> Path:
    """Where a test against ``kind`` saves its screenshots (the archive's apart, so the store's stay the docs' ones)."""
    if kind == "store":
        return shots
    (shots / kind).mkdir(exist_ok=True)
    return shots / kind


def test_keyboard_only_check_and_add_then_browse_to_the_story(driver: WebDriver, server: str, kind: str, shots: Path) -> None:
    shots = shots_of(shots, kind)
    open_page(driver, f"{server}/#/check")
    visible(driver, "#check-heading")
    driver.execute_script("sessionStorage.setItem('dedup.token', arguments[0])", TOKEN)  # as the first test left it
    driver.find_element(By.TAG_NAME, "body").click()
    # Keyboard only from here: Tab to the text, type the article, tick "add", press Enter on Check.
    area = tab_to(driver, lambda e: e.get_attribute("id") == "article-text")
    area.send_keys(seed_file("004").read_text("utf-8").replace("\r", ""))
    tab_to(driver, lambda e: e.get_attribute("id") == "article-add")
    press(driver, Keys.SPACE)
    assert driver.find_element(By.ID, "article-add").is_selected()
    tab_to(driver, lambda e: e.get_attribute("id") == "check-submit")
    press(driver, Keys.ENTER)
    heading = visible(driver, "#verdict-heading")
    assert heading.text.startswith("DUPLICATE") and active(driver) == heading  # focus moves to the answer
    assert "added to the store" in driver.find_element(By.CSS_SELECTOR, ".verdict").text

    # Tab to "open it and its story", Enter: the article view with its story and neighbours.
    tab_to(driver, lambda e: e.text == "open it and its story")
    press(driver, Keys.ENTER)
    story_link = visible(driver, "#article-story-link")
    neighbours = driver.find_elements(By.CSS_SELECTOR, "#browse-view .match")
    assert neighbours[0].get_attribute("data-id") == SEED_000 and "is-dup" in (neighbours[0].get_attribute("class") or "")
    added_id = driver.execute_script("return decodeURIComponent(location.hash.split('/')[2])")
    assert added_id.startswith("web-")
    tab_to(driver, lambda e: e.get_attribute("id") == "article-story-link")
    press(driver, Keys.ENTER)
    wait(driver, lambda d: d.execute_script("return location.hash").startswith("#/story/"))
    del story_link

    # The story: its two articles grouped by language, and the evidence that links them, open.
    groups = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#browse-view .lang-group"))
    assert [g.find_element(By.CSS_SELECTOR, ".lang-head").text.split(" ")[0] for g in groups] == ["en", "fr"]
    members = {g.find_element(By.CSS_SELECTOR, ".lang-head").text.split(" ")[0]: g.text for g in groups}
    assert SEED_000 in members["fr"] and added_id in members["en"]
    evidence = visible(driver, "#browse-view details.link[open] .match")
    aligned = evidence.find_elements(By.CSS_SELECTOR, ".passage.aligned")
    assert len(aligned) >= 16 and all(p.is_displayed() for p in aligned)
    check_layout_and_shoot(driver, shots, "story", ["#browse-view h2", "#browse-view .lang-group", "details.link[open] .columns"])

    # The story list: newest first, so this story (2025-01-12) leads; filters keep it or drop it.
    driver.get(f"{server}/#/stories")
    first = visible(driver, ".stories .story")
    assert added_id in first.text and SEED_000 in first.text and "2 articles · en, fr" in first.text
    assert len(driver.find_elements(By.CSS_SELECTOR, ".stories .story")) == 4
    check_contrast(driver, [".story-title a", ".story .muted", ".lang-head", ".members a"])
    check_layout_and_shoot(driver, shots, "stories", ["#story-filters", ".stories .story", ".pager"])
    driver.find_element(By.ID, "f-lang").send_keys("en")
    driver.find_element(By.ID, "f-several").click()
    driver.find_element(By.CSS_SELECTOR, "#story-filters button[type=submit]").click()
    wait(driver, lambda d: "lang=en" in d.execute_script("return location.hash"))
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".stories .story")) == 1)
    driver.get(f"{server}/#/stories?date_to=2024-12-31")  # 001 (2023-01) and 003 (2024-07); undated 002 drops out
    wait(driver, lambda d: "1–2 of 2 stories" in d.find_element(By.CSS_SELECTOR, ".pager").text)
    assert severe_logs(driver) == []


def test_upload_and_article_markup_is_shown_as_text_never_run(driver: WebDriver, server: str) -> None:
    hostile = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> Hanoi'
    open_page(driver, f"{server}/#/check")
    driver.execute_script("sessionStorage.setItem('dedup.token', arguments[0])", TOKEN)
    # Upload works too: a seed file fills the text and the id (its name).
    driver.find_element(By.ID, "article-file").send_keys(str(seed_file("001")))
    wait(driver, lambda d: d.find_element(By.ID, "article-id").get_attribute("value") == seed_file("001").stem, 10)
    assert (driver.find_element(By.ID, "article-text").get_attribute("value") or "").startswith(" date 2023-01")
    driver.find_element(By.ID, "article-id").clear()
    paste(driver, f'{hostile}\n\nBody: <b>bold?</b> <a href="javascript:window.__pwned=3">link</a>')
    driver.find_element(By.ID, "check-submit").click()
    visible(driver, "#verdict-heading")
    misses = driver.find_elements(By.CSS_SELECTOR, "#check-result .match")
    assert misses, "near misses expected (top 3)"
    misses[0].find_element(By.CSS_SELECTOR, "summary").click()
    title = visible(driver, "#check-result .column-a .passage")
    assert title.text.splitlines()[-1] == hostile  # (after its pair number, when it aligns)
    assert driver.execute_script("return window.__pwned") is None
    assert driver.find_elements(By.CSS_SELECTOR, "#check-result img, #check-result b, #check-result script") == []


def test_static_report_opens_from_disk(driver: WebDriver, report_file: Path, shots: Path) -> None:
    driver.get(report_file.as_uri())
    stories = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#report-stories .story"))
    assert len(stories) == 4 and "5 articles → 4 stories" in driver.find_element(By.ID, "summary-line").text
    first = stories[0]
    # Collapsed by default: each story shows its title and counts; nothing else is open.
    assert driver.find_elements(By.CSS_SELECTOR, "#report-stories details[open]") == []
    assert "2 articles · en, fr" in first.text and SEED_004 not in first.text
    first.find_element(By.CSS_SELECTOR, "summary").click()
    wait(driver, lambda d: SEED_004 in first.text)
    assert SEED_000 in first.text and SEED_004 in first.text
    heads = [h.text.split(" ")[0] for h in first.find_elements(By.CSS_SELECTOR, ".lang-head")]
    assert heads == ["en", "fr"]
    link = first.find_element(By.CSS_SELECTOR, "details.link")
    assert "reaches the threshold 0.5" in link.text  # the decision is in the link's summary
    link.find_element(By.CSS_SELECTOR, "summary").click()
    aligned = visible(driver, "#report-stories details.link[open] .match").find_elements(By.CSS_SELECTOR, ".passage.aligned")
    assert len(aligned) >= 16 and all(p.is_displayed() for p in aligned)
    assert "threshold 0.5" in driver.find_element(By.ID, "rules-line").text
    for chart in ("#chart-sizes svg", "#chart-langs svg"):
        svg = visible(driver, chart)
        assert svg.size["height"] > 100 and len(svg.find_elements(By.CSS_SELECTOR, "rect")) >= 2
    check_contrast(driver, ["#report-title", "#summary-line", ".story-title", ".passage.aligned .passage-text", ".facts dd"])
    # Keyboard: the language filter keeps only the French stories.
    driver.find_element(By.ID, "r-lang").send_keys("fr")
    wait(driver, lambda d: "4 of 4" in d.find_element(By.ID, "r-count").text)
    driver.find_element(By.ID, "r-several").send_keys(Keys.SPACE)
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#report-stories .story")) == 1)
    driver.find_element(By.ID, "r-several").send_keys(Keys.SPACE)
    driver.find_element(By.ID, "r-lang").send_keys("any")
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#report-stories .story")) == 4)
    # Filtering lists the stories afresh, collapsed again: open the first one and its evidence for the screenshot.
    driver.find_element(By.CSS_SELECTOR, "#report-stories .story summary").click()
    visible(driver, "#report-stories details.link summary").click()
    check_layout_and_shoot(driver, shots, "report", ["#chart-sizes svg", "#report-stories .story", "details.link[open] .columns"])
    assert [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []  # no CSP violation, no error
