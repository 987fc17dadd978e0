"""The HTTP service in process: every endpoint, its errors, auth on every route, the OpenAPI document."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Route

from dedup import Detector
from dedup.service import ServiceLimits, create_app
from dedup.serving import SharedDetector
from dedup.store import Store

from .conftest import ROOT, HashEncoder

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

HANOI = "Ministers of Vietnam and Laos met in Hanoi on Sunday and signed three cooperation agreements."
PARIS = "The Louvre museum in Paris closed for a day after a strike by its staff over working conditions."


def art(id_: str, title: str, text: str = "", **more: object) -> dict[str, object]:
    return {"id": id_, "title": title, "text": text, "lang": "en", **more}


def make_client(path: Path, *, token: str | None = TOKEN, limits: ServiceLimits | None = None) -> TestClient:
    service = SharedDetector(Detector.open(path, encoder=HashEncoder(), create=True))
    return TestClient(create_app(service, token=token, limits=limits), raise_server_exceptions=False)


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return make_client(tmp_path / "s.store")


def assert_error(response: httpx.Response, status: int, code: str, *words: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and isinstance(body["detail"], str) and body["detail"]
    for word in words:
        assert word in body["detail"], body
    return body


def test_add_check_get_story_and_check_and_add(client: TestClient) -> None:
    r = client.post("/add", headers=AUTH, json={"articles": [art("h1", "Hanoi talks", HANOI), art("p1", "Louvre strike", PARIS)]})
    assert r.status_code == 200 and r.json() == {"added": ["h1", "p1"], "unchanged": [], "replaced": [], "total": 2}
    # Same id, same content: unchanged, nothing written twice.
    r = client.post("/add", headers=AUTH, json={"articles": [art("h1", "Hanoi talks", HANOI)]})
    assert r.json()["unchanged"] == ["h1"] and r.json()["total"] == 2

    r = client.post("/check", headers=AUTH, json={"articles": [art("h2", "Hanoi talks", HANOI)], "top": 1})
    verdict = r.json()["verdicts"][0]
    assert verdict["id"] == "h2" and verdict["duplicate"] is True
    assert verdict["matches"][0]["id"] == "h1" and verdict["matches"][0]["aligned"]
    assert len(verdict["matches"]) == 2 and verdict["matches"][1]["duplicate"] is False  # the near miss (top=1)
    assert client.get("/health").json()["articles"] == 2  # check stores nothing

    r = client.post(
        "/check-and-add", headers=AUTH, json={"articles": [art("h2", "Hanoi talks", HANOI), art("h3", "Hanoi talks", HANOI)]}
    )
    body = r.json()
    assert body["added"] == ["h2", "h3"] and body["total"] == 4
    assert [m["id"] for m in body["verdicts"][1]["matches"] if m["duplicate"]] == ["h1", "h2"]  # h3 sees h2, added just before

    r = client.get("/article", headers=AUTH, params={"id": "p1"})
    assert r.json()["title"] == "Louvre strike" and r.json()["text"] == PARIS
    r = client.get("/story", headers=AUTH, params={"id": "h2"})
    assert sorted(r.json()["story"]["article_ids"]) == ["h1", "h2", "h3"]
    assert {a["id"] for a in r.json()["articles"]} == {"h1", "h2", "h3"}
    assert_error(client.get("/article", headers=AUTH, params={"id": "nope"}), 404, "not_found", "'nope'")
    assert_error(client.get("/story", headers=AUTH, params={"id": "nope"}), 404, "not_found")

    r = client.post("/cluster", headers=AUTH, json={"articles": [art("x", "Hanoi talks", HANOI), art("y", "Louvre", PARIS)]})
    assert r.status_code == 200 and r.json()["labels"]["x"] != r.json()["labels"]["y"]
    r = client.post("/cluster", headers=AUTH, json={"articles": [art("x", "Hanoi talks", HANOI)], "with_store": True})
    labels = r.json()["labels"]
    assert labels["x"] == labels["h1"] != labels["p1"]

    m = client.get("/metrics", headers=AUTH).json()
    assert m["counts"]["articles_added"] == 4 and m["counts"]["articles_unchanged"] == 1
    assert m["counts"]["duplicates_found"] >= 3 and m["store"]["articles"] == 4
    assert m["latency_ms"]["POST /check"]["count"] == 1 and m["latency_ms"]["POST /check"]["p99_ms"] > 0


def test_conflicting_content_is_409_and_replace_overwrites(client: TestClient) -> None:
    client.post("/add", headers=AUTH, json={"articles": [art("h1", "Hanoi talks", HANOI)]})
    for path in ("/add", "/check-and-add"):
        body = assert_error(
            client.post(path, headers=AUTH, json={"articles": [art("h1", "Other", PARIS)]}), 409, "conflict", "'h1'"
        )
        assert "replace" in str(body["detail"])
    r = client.post("/add", headers=AUTH, json={"articles": [art("h1", "Other", PARIS)], "replace": True})
    assert r.json()["replaced"] == ["h1"]
    assert client.get("/article", headers=AUTH, params={"id": "h1"}).json()["title"] == "Other"


def test_bad_requests_get_clear_4xx(tmp_path: Path) -> None:
    client = make_client(tmp_path / "s", limits=ServiceLimits(max_body_bytes=4096, max_batch=3, max_top=5))
    post = lambda body, **kw: client.post("/check", headers={**AUTH, **kw.pop("headers", {})}, content=body, **kw)  # noqa: E731
    js = {"Content-Type": "application/json"}
    assert_error(post(b"", headers=js), 400, "bad_request", "empty")
    assert_error(post(b'{"articles": [', headers=js), 400, "bad_request", "malformed JSON")
    assert_error(post(b'{"articles": ["\xff\xfe"]}', headers=js), 400, "bad_request", "UTF-8", "offset 15")
    assert_error(post(b"[" * 2000 + b"]" * 2000, headers=js), 400, "bad_request", "nested too deeply")
    assert_error(post(b'{"articles": []}', headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type")
    assert_error(post(b"x" * 5000, headers=js), 413, "too_large", "4096")
    many = {"articles": [art(f"a{i}", "t") for i in range(4)]}
    assert_error(client.post("/check", headers=AUTH, json=many), 413, "too_large", "4 articles", "limit of 3")
    assert_error(
        client.post("/check", headers=AUTH, json={"articles": [art("a", "t")], "top": 6}), 422, "invalid_request", "at most 5"
    )

    body = assert_error(
        client.post("/check", headers=AUTH, json={"articles": [{"id": 5}], "color": "red"}), 422, "invalid_request"
    )
    locs = {e["loc"]: e["type"] for e in body["errors"]}  # type: ignore[union-attr]
    assert locs == {"body.articles.0.id": "string_type", "body.color": "extra_forbidden"}
    cases = {
        "date": (art("a", "t", date="2025-02-30"), "2025-02-30"),
        "empty": (art("a", "", ""), "empty"),
        "twice": ({"articles": [art("a", "t"), art("a", "u")]}, "twice"),
        "surrogate": (art("a", "x\ud800"), "surrogate"),
        "nan": (art("a", "t", extra={"score": float("nan")}), "finite"),
        "extra-known": (art("a", "t", extra={"title": "x"}), "top level"),
        "no-articles": ({"articles": []}, "at least 1"),
        "null": (None, "Input should be"),
    }
    for name, (case, word) in cases.items():
        payload = case if name in ("twice", "no-articles", "null") else {"articles": [case]}
        raw = json.dumps(payload, ensure_ascii=True).replace("NaN", "1e999")
        response = client.post("/check", headers={**AUTH, **js}, content=raw.encode())
        assert_error(response, 422, "invalid_request", word)
    assert_error(client.get("/nowhere", headers=AUTH), 404, "not_found", "/openapi.json")
    assert_error(client.get("/check", headers=AUTH), 405, "method_not_allowed")
    assert_error(client.get("/article", headers=AUTH), 422, "invalid_request", "query.id")


def test_token_guards_every_route_but_health(client: TestClient) -> None:
    app = client.app
    routes = [r for r in app.routes if isinstance(r, APIRoute | Route)]  # type: ignore[attr-defined]
    paths = {(method, route.path) for route in routes for method in route.methods or ()}
    assert {("POST", "/check"), ("POST", "/add"), ("POST", "/check-and-add"), ("GET", "/article")} <= paths
    assert ("GET", "/openapi.json") in paths and len(paths) >= 10
    for method, path in sorted(paths):
        if method == "HEAD":
            continue
        kwargs: dict[str, object] = {"json": {"articles": [art("a", "t")]}} if method == "POST" else {}
        if path == "/health":
            assert client.request(method, path, **kwargs).status_code == 200  # type: ignore[arg-type]
            continue
        assert_error(client.request(method, path, **kwargs), 401, "unauthorized", "Bearer")  # type: ignore[arg-type]
        for bad in ("Bearer wrong", f"Basic {TOKEN}", TOKEN, "Bearer", f"Bearer {TOKEN}x"):
            r = client.request(method, path, headers={"Authorization": bad}, **kwargs)  # type: ignore[arg-type]
            assert_error(r, 401, "unauthorized")
            assert r.headers["www-authenticate"] == "Bearer"
        ok = client.request(method, path, headers=AUTH, params={"id": "a"}, **kwargs)  # type: ignore[arg-type]
        assert ok.status_code != 401, (method, path)
    assert_error(client.get("/not-a-route"), 401, "unauthorized")  # unknown paths are guarded too


def test_without_token_everything_is_open(tmp_path: Path) -> None:
    client = make_client(tmp_path / "s", token=None)
    assert client.post("/add", json={"articles": [art("a", "Hanoi", HANOI)]}).status_code == 200
    assert client.get("/article", params={"id": "a"}).status_code == 200


def test_openapi_document_describes_the_endpoints(client: TestClient) -> None:
    doc = client.get("/openapi.json", headers=AUTH).json()
    assert doc["info"]["title"] == "dedup"
    assert {"/check", "/add", "/check-and-add", "/article", "/story", "/cluster", "/health", "/metrics"} <= set(doc["paths"])
    schema = doc["components"]["schemas"]["ArticleIn"]
    assert schema["additionalProperties"] is False and "id" in schema["required"]
    assert "413" in doc["paths"]["/check"]["post"]["responses"]
    assert client.get("/docs", headers=AUTH).status_code == 200


def test_store_errors_map_to_503_and_damage_is_refused_at_start(tmp_path: Path) -> None:
    client = make_client(tmp_path / "s")
    client.post("/add", headers=AUTH, json={"articles": [art("a", "Hanoi", HANOI)]})
    manifest = tmp_path / "s" / "manifest.json"
    manifest.write_text("{broken")
    # Another process "committed" a broken manifest: the running service refuses to serve it.
    body = assert_error(client.post("/check", headers=AUTH, json={"articles": [art("b", "Hanoi", HANOI)]}), 503, "unavailable")
    assert "restore it from a backup" in str(body["detail"])
    assert_error(client.get("/health"), 503, "unavailable")
    with pytest.raises(Exception, match="not valid JSON"):
        create_app(tmp_path / "s")


def test_serve_command_refuses_a_damaged_store_and_a_busy_port(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "s", "test/hash-encoder", 512)
    del store
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    index = tmp_path / "s" / manifest["index"]["file"]
    index.write_bytes(index.read_bytes()[:-10])  # truncated index
    proc = subprocess.run(
        [sys.executable, "-m", "tests.fake_cli", "serve", "--store", str(tmp_path / "s"), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    assert "truncated or altered" in proc.stderr and "restore the store from a backup" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "tests.fake_cli", "serve", "--store", str(tmp_path / "none"), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 3 and "no store at" in proc.stderr


def test_serve_command_runs_binds_loopback_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    env_token = "env-token"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_cli", "serve", "--store", str(tmp_path / "s"), "--create", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "DEDUP_TOKEN": env_token},
    )
    try:
        url = None
        deadline = time.monotonic() + 60
        assert proc.stderr is not None
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if "serving" in line:
                url = line.split(" on ", 1)[1].split(";", 1)[0]
        assert url is not None and url.startswith("http://127.0.0.1:"), url
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(f"{url}/health", timeout=5).json()["status"] == "ok"
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert httpx.post(f"{url}/add", json={"articles": [art("a", "Hanoi", HANOI)]}).status_code == 401
        r = httpx.post(
            f"{url}/add", json={"articles": [art("a", "Hanoi", HANOI)]}, headers={"Authorization": f"Bearer {env_token}"}
        )
        assert r.json()["added"] == ["a"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert proc.returncode == 130  # Ctrl-C: requests in flight finish, then exit code 130 as every command
    assert Store.open(tmp_path / "s").ids == ["a"]
