"""``/docs`` and ``/redoc`` point at local copies of Swagger UI and ReDoc (the browser test is tests/test_docs_offline.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dedup import Detector
from dedup.serve import docs
from dedup.serve.http import create_app
from dedup.serve.shared import SharedDetector

from .conftest import HashEncoder


def make_client(tmp_path: Path, token: str | None = None) -> TestClient:
    service = SharedDetector(Detector.open(tmp_path / "s.store", encoder=HashEncoder(), create=True))
    return TestClient(create_app(service, token=token), raise_server_exceptions=False)


def test_docs_pages_load_only_local_files(tmp_path: Path) -> None:
    client = make_client(tmp_path)
    for path in ("/docs", "/redoc"):
        page = client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources and all(s.startswith("/static/docs/") for s in sources), sources
        assert "http://" not in page.text and "https://" not in page.text
        for source in sources:
            asset = client.get(source)  # the assets never need the token
            assert asset.status_code == 200 and len(asset.content) > 1000, source
    assert b"cdn.redoc.ly" not in client.get("/static/docs/redoc.standalone.js").content
    assert client.get("/static/docs/other.js").status_code == 404
    assert client.get("/static/docs/..%2Fapp.js").status_code == 404


def test_docs_routes_are_not_in_the_openapi_document(tmp_path: Path) -> None:
    paths = set(make_client(tmp_path).get("/openapi.json").json()["paths"])
    assert "/metrics" in paths and "/metrics.json" in paths
    assert not {p for p in paths if p.startswith(("/docs", "/redoc", "/static"))}


def test_without_fastapi_offline_the_pages_say_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docs, "have_assets", lambda: False)
    client = make_client(tmp_path)
    for path in ("/docs", "/redoc"):
        page = client.get(path)
        assert page.status_code == 200 and "pip install 'dedup[serve]'" in page.text and "/openapi.json" in page.text
        assert "https://" not in page.text
    assert client.get("/openapi.json").status_code == 200
