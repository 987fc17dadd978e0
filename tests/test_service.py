"""The HTTP service in process: every endpoint, its errors, auth on every route, the OpenAPI document."""

from __future__ import annotations

import asyncio
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
from dedup.detect.archive import ArchiveDetector
from dedup.search.store import Store
from dedup.serve.http import ServiceLimits, create_app, is_open
from dedup.serve.shared import SharedDetector

from .conftest import ROOT, HashEncoder

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

HANOI = "Ministers of Vietnam and Laos met in Hanoi on Sunday and signed three cooperation agreements."
PARIS = "The Louvre museum in Paris closed for a day after a strike by its staff over working conditions."


def art(id_: str, title: str, text: str = "", **more: object) -> dict[str, object]:
    return {"id": id_, "title": title, "text": text, "lang": "en", **more}


#: What a service serves: one store, or a time-sharded archive (the same routes and guarantees).
KINDS = ["store", "archive"]


def make_client(path: Path, *, token: str | None = TOKEN, limits: ServiceLimits | None = None, kind: str = "store") -> TestClient:
    if kind == "archive":
        service = SharedDetector(ArchiveDetector.open(path, encoder=HashEncoder(), create=True))
    else:
        service = SharedDetector(Detector.open(path, encoder=HashEncoder(), create=True))
    return TestClient(create_app(service, token=token, limits=limits), raise_server_exceptions=False)


@pytest.fixture(params=KINDS)
def client(tmp_path: Path, request: pytest.FixtureRequest) -> TestClient:
    return make_client(tmp_path / f"s.{request.param}", kind=request.param)


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

    m = client.get("/metrics.json", headers=AUTH).json()
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


@pytest.mark.parametrize("kind", KINDS)
def test_bad_requests_get_clear_4xx(tmp_path: Path, kind: str) -> None:
    client = make_client(tmp_path / "s", limits=ServiceLimits(max_body_bytes=4096, max_batch=3, max_top=5), kind=kind)
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
        client.post("/check", headers=AUTH, json={"articles": [{"id": 5.5}], "color": "red"}), 422, "invalid_request"
    )
    locs = {e["loc"]: e["type"] for e in body["errors"]}  # type: ignore[union-attr]
    assert locs == {"body.articles.0": "value_error", "body.color": "extra_forbidden"}  # ids: strings or integers
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
    assert {("GET", "/stories"), ("GET", "/stories/{story_id}"), ("GET", "/neighbours"), ("GET", "/evidence")} <= paths
    for method, path in sorted(paths):
        if method == "HEAD":
            continue
        kwargs: dict[str, object] = {"json": {"articles": [art("a", "t")]}} if method == "POST" else {}
        if is_open(path):  # /health, and the story browser's page and assets (no data in them)
            expected = 200 if "{" not in path else 404
            assert client.request(method, path, **kwargs).status_code == expected, path  # type: ignore[arg-type]
            continue
        assert_error(client.request(method, path, **kwargs), 401, "unauthorized", "Bearer")  # type: ignore[arg-type]
        for bad in ("Bearer wrong", f"Basic {TOKEN}", TOKEN, "Bearer", f"Bearer {TOKEN}x"):
            r = client.request(method, path, headers={"Authorization": bad}, **kwargs)  # type: ignore[arg-type]
            assert_error(r, 401, "unauthorized")
            assert r.headers["www-authenticate"] == "Bearer"
        ok = client.request(method, path, headers=AUTH, params={"id": "a"}, **kwargs)  # type: ignore[arg-type]
        assert ok.status_code != 401, (method, path)
    assert_error(client.get("/not-a-route"), 401, "unauthorized")  # unknown paths are guarded too
    assert_error(client.get("/static/../stories"), 401, "unauthorized")  # no way round the token through /static/


def test_without_token_everything_is_open(tmp_path: Path) -> None:
    client = make_client(tmp_path / "s", token=None)
    assert client.post("/add", json={"articles": [art("a", "Hanoi", HANOI)]}).status_code == 200
    assert client.get("/article", params={"id": "a"}).status_code == 200


def test_openapi_document_describes_the_endpoints(client: TestClient) -> None:
    doc = client.get("/openapi.json", headers=AUTH).json()
    assert doc["info"]["title"] == "dedup"
    assert {"/check", "/add", "/check-and-add", "/article", "/story", "/cluster", "/health", "/metrics"} <= set(doc["paths"])
    schema = doc["components"]["schemas"]["ArticleIn"]
    assert schema["additionalProperties"] is True and "id" in schema["required"]  # unknown fields are kept in extra
    assert "413" in doc["paths"]["/check"]["post"]["responses"]
    assert client.get("/docs", headers=AUTH).status_code == 200
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}  # /docs can send it
    assert doc["security"] == [{"bearer": []}]
    for page in ("/docs", "/redoc", "/openapi.json"):  # a browser cannot send the token to open them
        assert client.get(page).status_code == 200, page


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


# ------------------------------------------------------------------ the story browser's endpoints
def story_client(tmp_path: Path) -> TestClient:
    client = make_client(tmp_path / "s")
    batch = [
        art("h1", "Hanoi talks", HANOI, date="2025-01-12"),
        art("h2", "Hanoi talks", HANOI + " More.", date="2025-01-13", lang="fr"),
        art("p1", "Louvre strike", PARIS, date="2024-06-01"),
        art("u1", "Berlin marathon", "A Kenyan runner set a new course record at the Berlin marathon this morning."),
    ]
    assert client.post("/add", headers=AUTH, json={"articles": batch}).status_code == 200
    return client


def test_page_and_assets_are_served_without_token_with_a_content_security_policy(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert '<script src="/static/app.js"' in page.text and "http" not in page.text.replace('"http://', "")  # no CDN
    assert "<script>" not in page.text and " on" + "click=" not in page.text  # no inline script for the CSP to allow
    for name, media in (("app.js", "text/javascript"), ("render.js", "text/javascript"), ("style.css", "text/css")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(media)
        assert r.headers["content-security-policy"] == csp
        assert "https://" not in r.text and "innerHTML" not in r.text  # offline, and text only ever goes in as text
    assert client.head("/").status_code == 200
    assert_error(client.get("/static/report.js"), 404, "not_found")  # only the page's files
    assert_error(client.get("/static/..%2Fservice.py"), 404, "not_found")
    assert_error(client.get("/stories"), 401, "unauthorized")  # the data is not


def test_check_with_explain_carries_both_articles_passages(client: TestClient) -> None:
    client.post("/add", headers=AUTH, json={"articles": [art("h1", "Hanoi talks", HANOI + "\n\nSecond paragraph here.")]})
    body = {"articles": [art("q", "Hanoi talks", HANOI)], "top": 1}
    plain = client.post("/check", headers=AUTH, json=body).json()["verdicts"][0]
    assert "article" not in plain and "article" not in plain["matches"][0]
    explained = client.post("/check", headers=AUTH, json={**body, "explain": True}).json()["verdicts"][0]
    assert set(explained) - set(plain) == {"article", "rules"}  # the same verdict, plus the articles and the rules
    assert {k: v for k, v in explained.items() if k in plain and k != "matches"} == {
        k: v for k, v in plain.items() if k != "matches"
    }
    for shown, bare in zip(explained["matches"], plain["matches"], strict=True):
        assert {k: shown[k] for k in bare} == bare and "article" in shown  # each match as plain, plus its article
    assert explained["rules"]["threshold"] == 0.5
    assert explained["article"]["passages"] == ["Hanoi talks", HANOI]
    stored = explained["matches"][0]["article"]
    assert stored["id"] == "h1" and stored["passages"] == ["Hanoi talks", HANOI, "Second paragraph here."]
    for pair in explained["matches"][0]["aligned"]:  # the indexes point into the two passage lists
        assert explained["article"]["passages"][pair["a"]] == pair["a_text"] and stored["passages"][pair["b"]] == pair["b_text"]
    r = client.post("/check-and-add", headers=AUTH, json={"articles": [art("q2", "Hanoi talks", HANOI)], "explain": True})
    assert r.json()["verdicts"][0]["article"]["id"] == "q2" and r.json()["added"] == ["q2"]


def test_stories_are_the_whole_store_clustered_filtered_newest_first_and_paged(tmp_path: Path) -> None:
    client = story_client(tmp_path)
    body = client.get("/stories", headers=AUTH).json()
    assert body["articles"] == 4 and body["generation"] == 2 and body["langs"] == ["en", "fr"] and body["total"] == 3
    stories = body["stories"]
    hanoi = stories[0]  # newest first: 2025-01-13, then 2024-06-01, then the undated story
    assert sorted(hanoi["article_ids"]) == ["h1", "h2"] and hanoi["last_date"] == "2025-01-13" and hanoi["size"] == 2
    assert {m["id"]: m["lang"] for m in hanoi["members"]} == {"h1": "en", "h2": "fr"}
    assert "text" not in hanoi["members"][0]  # lists carry no bodies
    assert [(link["a"], link["b"]) for link in hanoi["links"]] in ([("h1", "h2")], [("h2", "h1")])
    assert [s["article_ids"] for s in stories[1:]] == [["p1"], ["u1"]]

    def ids(**params: object) -> list[list[str]]:
        r = client.get("/stories", headers=AUTH, params=params)
        assert r.status_code == 200, r.text
        return [sorted(s["article_ids"]) for s in r.json()["stories"]]

    assert ids(lang="fr") == [["h1", "h2"]]
    assert ids(date_from="2025-01-13") == [["h1", "h2"]]
    assert ids(date_to="2024-12") == [["p1"]]
    assert ids(date_from="2024", date_to="2024") == [["p1"]]
    assert ids(min_size=2) == [["h1", "h2"]]
    assert ids(offset=1, limit=1) == [["p1"]] and ids(offset=5) == []
    assert_error(client.get("/stories", headers=AUTH, params={"date_from": "2025-02-30"}), 422, "invalid_request", "date_from")
    assert_error(
        client.get("/stories", headers=AUTH, params={"date_from": "2025", "date_to": "2024"}), 422, "invalid_request", "after"
    )
    assert_error(client.get("/stories", headers=AUTH, params={"limit": 0}), 422, "invalid_request")

    one = client.get(f"/stories/{hanoi['id']}", headers=AUTH).json()
    assert one["story"] == hanoi
    assert_error(client.get("/stories/story-9999", headers=AUTH), 404, "not_found", "list /stories again")


def test_stories_are_clustered_once_per_store_generation(tmp_path: Path) -> None:
    client = story_client(tmp_path)
    service: SharedDetector = client.app.state.service  # type: ignore[attr-defined]
    calls = 0
    real = service.detector.cluster_embedded

    def counting(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]

    service.detector.cluster_embedded = counting  # type: ignore[method-assign]
    for _ in range(3):
        assert client.get("/stories", headers=AUTH).json()["generation"] == 2
    client.get("/neighbours", headers=AUTH, params={"id": "h1"})
    assert calls == 1
    client.post("/add", headers=AUTH, json={"articles": [art("h3", "Hanoi talks", HANOI, date="2025-01-12")]})
    body = client.get("/stories", headers=AUTH).json()
    assert calls == 2 and body["generation"] == 3 and sorted(body["stories"][0]["article_ids"]) == ["h1", "h2", "h3"]


def test_neighbours_and_evidence_of_stored_articles(tmp_path: Path) -> None:
    client = story_client(tmp_path)
    body = client.get("/neighbours", headers=AUTH, params={"id": "h1", "top": 2}).json()
    assert body["article"]["id"] == "h1" and body["article"]["passages"][0] == "Hanoi talks"
    assert sorted(body["story"]["article_ids"]) == ["h1", "h2"]
    verdict = body["verdict"]
    assert verdict["id"] == "h1" and verdict["duplicate"] is True and verdict["matches"][0]["id"] == "h2"
    assert all(m["id"] != "h1" for m in verdict["matches"])  # never its own neighbour
    assert verdict["matches"][0]["article"]["passages"] and verdict["article"]["passages"] == body["article"]["passages"]
    assert_error(client.get("/neighbours", headers=AUTH, params={"id": "nope"}), 404, "not_found", "'nope'")

    pair = client.get("/evidence", headers=AUTH, params={"a": "h1", "b": "h2"}).json()
    assert pair["query"]["id"] == "h1" and pair["match"]["id"] == "h2" and pair["match"]["article"]["id"] == "h2"
    assert pair["match"]["duplicate"] is True and pair["match"]["aligned"]
    assert pair["match"]["score"] == next(m["score"] for m in verdict["matches"] if m["id"] == "h2")
    assert_error(client.get("/evidence", headers=AUTH, params={"a": "h1", "b": "zz"}), 404, "not_found", "'zz'")
    assert_error(client.get("/evidence", headers=AUTH, params={"a": "h1"}), 422, "invalid_request", "query.b")


def test_issue14_service_refuses_far_dates_and_keeps_line_separators(client: TestClient) -> None:
    far = client.post("/add", headers=AUTH, json={"articles": [art("far", "Hanoi talks", HANOI, date="9999-12")]})
    assert_error(far, 422, "invalid_request", "'9999-12' is outside 1900-01-01 to 2100-12-31")
    odd = art("sep\u2028id", "Hanoi\u2029talks", HANOI + "\u2028More\x85text.", date="2025-01-12")
    body = json.dumps({"articles": [odd]}, ensure_ascii=False).encode()
    r = client.post("/add", headers={**AUTH, "Content-Type": "application/json"}, content=body)
    assert r.status_code == 200 and r.json()["added"] == ["sep\u2028id"]
    got = client.get("/article", headers=AUTH, params={"id": "sep\u2028id"}).json()
    assert (got["title"], got["text"]) == (odd["title"], odd["text"])
    for params in ({"date_from": "9999-12"}, {"date_to": "0001-01-01"}, {"date_from": "0001", "date_to": "9999-12-31"}):
        r = client.get("/stories", headers=AUTH, params=params)  # filters may name any date Python knows
        assert r.status_code == 200, r.text
    assert client.get("/stories", headers=AUTH, params={"date_from": "9999-12"}).json()["total"] == 0


# ------------------------------------------------------------------ limits, in process (raw ASGI: what the gate reads)
class Exchange:
    """One request sent straight to the ASGI app, counting the body bytes the app pulls."""

    def __init__(self, method: str, path: str, headers: dict[str, str], chunks: list[bytes], hold: asyncio.Event | None = None):
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        self.chunks = list(chunks)
        self.hold = hold  # the body waits for this event: a slow client
        self.reading = asyncio.Event()  # set when the app first asks for the body
        self.bytes_read = 0
        self.messages: list[dict[str, object]] = []

    async def receive(self) -> dict[str, object]:
        self.reading.set()
        if self.hold is not None:
            await self.hold.wait()
        if not self.chunks:
            await asyncio.Event().wait()  # the client sends nothing more and stays connected
        chunk = self.chunks.pop(0)
        self.bytes_read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}

    async def send(self, message: dict[str, object]) -> None:
        self.messages.append(message)

    async def run(self, app: object) -> Exchange:
        await asyncio.wait_for(app(self.scope, self.receive, self.send), timeout=30)  # type: ignore[operator]
        return self

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])  # type: ignore[call-overload]

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.messages[0]["headers"]}  # type: ignore[attr-defined]

    @property
    def body(self) -> dict[str, object]:
        return json.loads(b"".join(m.get("body", b"") for m in self.messages[1:]))  # type: ignore[misc]


def test_open_paths_and_refused_requests_never_read_the_body(tmp_path: Path) -> None:
    app = make_client(tmp_path / "s").app
    big = [b"x" * (1 << 20)] * 10  # 10 MB declared and offered, under the 16 MB body limit

    async def scenario() -> list[Exchange]:
        declared = {"Content-Length": str(10 << 20), "Content-Type": "application/json"}
        return [
            await Exchange("GET", "/health", declared, big).run(app),
            await Exchange("GET", "/static/app.js", declared, big).run(app),
            await Exchange("POST", "/health", declared, big).run(app),
            await Exchange("GET", "/stories", {**declared, **AUTH}, big).run(app),
            await Exchange("POST", "/check", declared, big).run(app),  # no token
        ]

    health, asset, post_health, stories, unauthorised = asyncio.run(scenario())
    assert (health.status, asset.status, post_health.status, stories.status, unauthorised.status) == (200, 200, 405, 200, 401)
    for exchange in (health, asset, post_health, stories, unauthorised):
        assert exchange.bytes_read == 0, exchange.scope["path"]  # not one byte held in memory
        assert exchange.headers["connection"] == "close"  # and the body is not drained either: the socket is closed


def test_a_body_that_does_not_arrive_in_time_gets_408(tmp_path: Path) -> None:
    app = make_client(tmp_path / "s", limits=ServiceLimits(read_timeout_s=0.2)).app
    body = json.dumps({"articles": [art("a", "Hanoi talks", HANOI)]}).encode()
    headers = {**AUTH, "Content-Type": "application/json", "Content-Length": str(len(body))}

    async def scenario() -> tuple[Exchange, Exchange]:
        stalled = await Exchange("POST", "/check", headers, [body[:10], body[10:]], hold=asyncio.Event()).run(app)
        prompt = await Exchange("POST", "/check", headers, [body[:10], body[10:]]).run(app)
        return stalled, prompt

    stalled, prompt = asyncio.run(scenario())
    assert stalled.status == 408 and stalled.body["error"] == "request_timeout" and "--read-timeout" in str(stalled.body)
    assert stalled.headers["connection"] == "close"
    assert prompt.status == 200


def test_limit_concurrency_counts_requests_in_flight_and_answers_503_with_retry_after(tmp_path: Path) -> None:
    app = make_client(tmp_path / "s", limits=ServiceLimits(max_in_flight=1)).app
    body = json.dumps({"articles": [art("a", "Hanoi talks", HANOI)]}).encode()
    headers = {**AUTH, "Content-Type": "application/json", "Content-Length": str(len(body))}

    async def scenario() -> tuple[Exchange, Exchange, Exchange, Exchange]:
        release = asyncio.Event()
        slow = Exchange("POST", "/check", headers, [body], hold=release)
        first = asyncio.create_task(slow.run(app))
        await asyncio.wait_for(slow.reading.wait(), 10)  # in flight: its body is being read
        refused = await Exchange("GET", "/metrics", AUTH, []).run(app)
        health = await Exchange("GET", "/health", {}, []).run(app)  # never refused
        release.set()
        await first
        after = await Exchange("GET", "/metrics.json", AUTH, []).run(app)
        return slow, refused, health, after

    slow, refused, health, after = asyncio.run(scenario())
    assert refused.status == 503 and refused.body["error"] == "busy" and refused.headers["retry-after"] == "1"
    assert "--limit-concurrency" in str(refused.body["detail"])
    assert health.status == 200 and slow.status == 200 and after.status == 200  # the slot is given back
    assert after.body["counts"]["status_503"] == 1  # type: ignore[index]


@pytest.mark.parametrize("kind", KINDS)
def test_embedding_routes_refuse_a_request_over_max_request_chars_with_413(tmp_path: Path, kind: str) -> None:
    client = make_client(tmp_path / "s", limits=ServiceLimits(max_request_chars=1000), kind=kind)
    small, large = art("s", "Hanoi", "x" * 500), art("l", "Hanoi", "y" * 600)
    for path in ("/check", "/add", "/check-and-add", "/cluster"):
        assert_error(
            client.post(path, headers=AUTH, json={"articles": [small, large]}),
            413,
            "too_large",
            "1,110 characters",
            "1,000",
            "--max-request-chars",
        )
        assert client.post(path, headers=AUTH, json={"articles": [small]}).status_code == 200, path


def test_store_errors_over_http_name_no_server_path(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    client = make_client(tmp_path / "s")
    client.post("/add", headers=AUTH, json={"articles": [art("a", "Hanoi", HANOI)]})
    (tmp_path / "s" / "manifest.json").write_text("{broken")
    for response in (client.post("/check", headers=AUTH, json={"articles": [art("b", "Hanoi", HANOI)]}), client.get("/health")):
        body = assert_error(response, 503, "unavailable", "<store>/manifest.json", "restore it from a backup")
        assert str(tmp_path) not in response.text and "/tmp" not in response.text, body
    assert str(tmp_path / "s" / "manifest.json") in caplog.text  # the operator's log has the full path


def test_a_path_with_a_control_character_is_no_route(client: TestClient) -> None:
    # Starlette's route patterns end in "$", which also matches before a final newline.
    for path in ("/%0A", "/health%0A", "/stories%0A", "/static/app.js%0A", "/article%0D"):
        assert_error(client.get(path, headers=AUTH, params={"id": "a"}), 404, "not_found", "control characters")
    assert_error(client.get("/health%0A"), 401, "unauthorized")  # without the token: guarded like any unknown path
