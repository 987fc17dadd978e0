"""``/docs`` (Swagger UI) and ``/redoc`` render in headless Chromium with nothing loaded from the internet.

A real ``dedup serve`` process (the fake encoder, no model) on 127.0.0.1. Chromium's own
network log (the DevTools ``performance`` log) lists every request the page made; every one
must go to the server's origin (or be a ``data:``/``blob:`` URL). To be sure the page would work
with no network at all, Chromium also resolves every host name but 127.0.0.1 to nothing, so a
page that needed a CDN would show no operations.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from .conftest import ROOT
from .servers import served_url

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

_missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
if _missing:
    pytest.skip(
        f"no headless browser: {', '.join(_missing)} missing (apt-get install chromium chromium-driver)", allow_module_level=True
    )
selenium = pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = tmp_path_factory.mktemp("docs") / "s.store"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_cli", "serve", "--store", str(store), "--create", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "DEDUP_TOKEN"},
    )
    try:
        yield served_url(proc, time.monotonic() + 120)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def offline_driver() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="dedup-chromium-docs-")
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
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no name resolves: offline
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


def requested_urls(browser: WebDriver) -> list[str]:
    """Every URL the browser asked for since the log was last read (DevTools Network.requestWillBeSent)."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def assert_only_local(urls: list[str], origin: str) -> None:
    assert urls, "the browser logged no request"
    outside = [u for u in urls if not (u.startswith(origin + "/") or urlsplit(u).scheme in ("data", "blob", "about"))]
    assert not outside, f"requests left {origin}: {outside}"


@pytest.mark.parametrize(
    ("path", "operation_css"),
    [("/docs", ".opblock-summary-path"), ("/redoc", "[data-section-id^='tag/'], [id^='tag/'], [data-section-id^='operation/']")],
)
def test_api_docs_render_offline(offline_driver: WebDriver, server: str, path: str, operation_css: str) -> None:
    page = httpx.get(server + path, timeout=10)
    assert page.status_code == 200 and "cdn" not in page.text.lower() and "googleapis" not in page.text
    offline_driver.get("about:blank")
    offline_driver.get_log("performance")  # forget earlier pages' requests
    offline_driver.get(server + path)

    def operations(d: WebDriver) -> list[str]:
        return [e.text for e in d.find_elements(By.CSS_SELECTOR, operation_css) if e.text.strip()]

    shown = WebDriverWait(offline_driver, 60, poll_frequency=0.2).until(operations)
    text = offline_driver.find_element(By.TAG_NAME, "body").text
    if path == "/docs":
        assert {"/check", "/add", "/check-and-add", "/metrics"} <= {s.strip().replace("\u200b", "") for s in shown}, shown
    for endpoint in ("/check", "/stories"):
        assert endpoint in text.replace("\u200b", ""), f"{path} does not show {endpoint}"
    assert_only_local(requested_urls(offline_driver), server)
    severe = [e["message"] for e in offline_driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
