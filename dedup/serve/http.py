"""The HTTP service: ``dedup serve --store DIR`` (FastAPI on uvicorn).

Endpoints (JSON in, JSON out; the OpenAPI document is at ``/openapi.json``, browsable at
``/docs``)::

    GET  /health           liveness, store size (never needs the token)
    GET  /metrics          counters and per-endpoint latency percentiles
    POST /check            {"articles": [...], "top": 0}        -> {"verdicts": [...]}
    POST /add              {"articles": [...], "replace": false} -> {"added", "unchanged", "replaced", "total"}
    POST /check-and-add    {"articles": [...], "top": 0}        -> {"verdicts", "added", "unchanged", "total"}
    GET  /article?id=ID    one stored article
    GET  /story?id=ID      the story of a stored article, with its articles
    POST /cluster          {"articles": [...], "with_store": false} -> {"stories", "labels", "edges"}

The story browser (:mod:`dedup.browse.web`) is served at ``/`` with its assets under ``/static/``;
neither needs the token (they hold no data), and the page sends the token it is given on
every data request. Its data endpoints::

    POST /check            with "explain": true, each verdict also carries both articles' passages
    GET  /stories          the whole store clustered into stories, filtered, newest first, paged
    GET  /stories/{id}     one story: members and the verified pairs that link them
    GET  /neighbours?id=ID a stored article, its story and its nearest stored articles, with evidence
    GET  /evidence?a=ID&b=ID  the verifier's evidence on two stored articles

Every error is a JSON body ``{"error": CODE, "detail": MESSAGE, "errors": [...]}``:

====  ======================  =====================================================
400   bad_request             empty body, malformed JSON, invalid UTF-8, JSON nested too deep
401   unauthorized            token set and the request lacks it (every path but the open ones)
404   not_found               unknown path, or no stored article with that id
405   method_not_allowed      e.g. GET /check
408   request_timeout         the body did not arrive within ``read_timeout_s``
409   conflict                an id already stored with other content
413   too_large               body over ``max_body_bytes``, batch over ``max_batch``, articles
                              over ``max_request_chars`` characters in all
415   unsupported_media_type  a body that is not ``application/json``
422   invalid_request         wrong types, unknown fields, bad dates, empty or over-long articles
503   busy                    ``max_in_flight`` requests already in flight (``Retry-After: 1``)
503   unavailable             the store or the model failed (the detail names no server path;
                              the log has the full message)
====  ======================  =====================================================

A 500 means a bug in dedup; it is logged with its traceback.

Limits (:class:`~dedup.serve.shared.ServiceLimits`, ``dedup serve --help``): the token is checked
from the headers before any body is read; a body is read only on ``POST``/``PUT``/``PATCH``
to a guarded path, within ``max_body_bytes`` and ``read_timeout_s``; other requests never
have their body read (the connection is closed after the answer instead). A client has
``read_timeout_s`` to send a request's head, and a connection idle ``keep_alive_s`` between
requests is closed, so idle or trickling sockets cannot exhaust file descriptors.
``max_in_flight`` counts requests, not connections. ``max_request_chars`` bounds the
embedding one request can ask for; there is no time limit on a request once it is embedding
(embedding cannot be interrupted), so this size limit is what keeps one request from holding
up the others for long.

The concurrency model is :mod:`dedup.serve.shared`'s: one writer at a time, readers on a
consistent state, endpoints run in a thread pool so embedding never blocks the server.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

from fastapi import FastAPI, Query, Request
from fastapi import Path as Path_
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from dedup import __version__
from dedup.browse.stories import StoryBook, StoryFilter
from dedup.browse.views import embedded_view, pair_view, story_view, verdict_view
from dedup.browse.web import PAGE_HEADERS, asset
from dedup.config import Config
from dedup.embedding.embed import article_passages
from dedup.errors import ConfigError, DedupError, IdConflictError, InputError, ModelError, StoreError
from dedup.io import KNOWN_FIELDS, parse_record
from dedup.serve.shared import ServiceLimits, SharedDetector, check_batch
from dedup.types import Article, EmbeddedArticle, PartialDate, Verdict

__all__ = ["ServiceLimits", "create_app", "is_loopback", "is_open", "listen", "serve"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Paths that never need the token: liveness, and the story browser's page and assets (no data).
OPEN_PATHS = frozenset({"/health", "/"})
OPEN_PREFIXES = ("/static/",)


def is_open(path: str) -> bool:
    """Whether ``path`` is served without the token."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


# ------------------------------------------------------------------------ request bodies
Scalar = str | int | float | bool | None


def _encodable(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (it holds an unpaired surrogate)") from None
    return value


class ArticleIn(BaseModel):
    """One article, as the JSONL input takes it. Unknown fields are refused; put them in ``extra``."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    id: Annotated[str, Field(min_length=1, max_length=512, description="unique id")]
    title: str | None = None
    text: str | None = None
    date: Annotated[str | None, Field(max_length=40, description="YYYY, YYYY-MM or YYYY-MM-DD")] = None
    lang: Annotated[str | None, Field(max_length=16, description="ISO 639-1; detected when missing")] = None
    source: Annotated[str | None, Field(max_length=1000)] = None
    url: Annotated[str | None, Field(max_length=8000)] = None
    extra: Annotated[dict[str, Scalar], Field(max_length=64, description="other fields, kept and returned")] = Field(
        default_factory=dict
    )

    @field_validator("id", "title", "text", "date", "lang", "source", "url")
    @classmethod
    def _unicode(cls, value: str | None) -> str | None:
        return None if value is None else _encodable(value)

    @field_validator("extra")
    @classmethod
    def _unicode_extra(cls, value: dict[str, Scalar]) -> dict[str, Scalar]:
        for key, item in value.items():
            if key in KNOWN_FIELDS:
                raise ValueError(f"extra may not hold the field {key!r}: give it at the top level of the article")
            _encodable(key)
            if isinstance(item, str):
                _encodable(item)
        return value


_ARTICLES = Field(min_length=1, description="the articles; at most the service's max_batch")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CheckRequest(_Body):
    """Check articles against the store."""

    articles: Annotated[list[ArticleIn], _ARTICLES]
    top: Annotated[int, Field(ge=0, description="also list this many best non-duplicate candidates")] = 0
    explain: Annotated[
        bool, Field(description="also give each verdict the query's passages (`article`) and each match's stored article")
    ] = False


class AddRequest(_Body):
    """Store articles."""

    articles: Annotated[list[ArticleIn], _ARTICLES]
    replace: bool = False


class ClusterRequest(_Body):
    """Group articles into stories."""

    articles: Annotated[list[ArticleIn], _ARTICLES]
    with_store: Annotated[bool, Field(description="stored articles join the clustering")] = False


class ErrorBody(BaseModel):
    """Every 4xx and 5xx response."""

    error: str
    detail: str
    errors: list[dict[str, str]] = Field(default_factory=list)


# ------------------------------------------------------------------------------ errors
def _error(
    status: int, code: str, detail: str, errors: list[dict[str, str]] | None = None, *, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail, "errors": errors or []}, status_code=status, headers=headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "unavailable",
}


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# An absolute POSIX path not glued to a word (so "dedup/model-name" and "a/b" stay).
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~>/-])/[^\s'\"(),;]+")


def _without_paths(text: str, store: Path | None) -> str:
    """``text`` for an HTTP client: the store folder as ``<store>``, any other absolute path as ``<path>``."""
    if store is not None:
        for form in sorted({str(store), str(store.absolute())}, key=len, reverse=True):
            text = text.replace(form, "<store>")
    return _ABSOLUTE_PATH.sub("<path>", text)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    # Only strings: the offending input may be bytes or huge, and is never echoed back.
    out = []
    for err in list(exc.errors())[:20]:
        loc = ".".join(str(part) for part in err.get("loc", ()))
        out.append({"loc": _short(loc, 200), "msg": _short(str(err.get("msg", ""))), "type": str(err.get("type", ""))})
    return out


def _install_error_handlers(app: FastAPI, store: Path | None) -> None:
    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = _validation_errors(exc)
        summary = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors[:3])
        return _error(422, "invalid_request", f"the request does not match the schema: {summary}", errors)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = str(exc.detail)
        where = f"{request.method} {_short(request.url.path, 100)}"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint: {where} (the endpoints are listed in /openapi.json)"
        elif exc.status_code == 405 and detail == "Method Not Allowed":
            detail = f"method not allowed: {where} (the endpoints are listed in /openapi.json)"
        return _error(exc.status_code, _HTTP_CODES.get(exc.status_code, "error"), detail, headers=exc.headers)

    async def on_dedup(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, IdConflictError):
            return _error(409, "conflict", str(exc))
        if isinstance(exc, InputError | ConfigError):
            return _error(422, "invalid_request", str(exc))
        if isinstance(exc, StoreError | ModelError):
            logger.error("%s: %s", type(exc).__name__, exc)  # the full message, paths included, stays here
            return _error(503, "unavailable", f"{type(exc).__name__}: {_without_paths(str(exc), store)}")
        logger.exception("unexpected dedup error")
        return _error(500, "internal", f"{type(exc).__name__}: {_without_paths(str(exc), store)}")

    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("internal error on %s %s", request.method, request.url.path)
        return _error(500, "internal", f"internal error ({type(exc).__name__}); this is a bug in dedup, please report it")

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(DedupError, on_dedup)
    app.add_exception_handler(Exception, on_bug)


# -------------------------------------------------------------------------- middleware
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: Methods whose body the gate reads (on guarded paths only); every other request's body is never read.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _Exchange:
    """One request as the gate sees it: its headers, and whether a declared body is still unread."""

    def __init__(self, scope: Scope) -> None:
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        length = self.headers.get("content-length", "").strip()
        self.unread = "transfer-encoding" in self.headers or (bool(length) and length.strip("0") != "")
        self.status = 500


class _Gate:
    """Outermost layer: metrics, requests in flight, the bearer token, body size, time, media type and JSON syntax.

    The token is checked from the headers, before any body is read. Only a ``POST``/``PUT``/``PATCH``
    to a guarded path has its body read (within the size limit and the read timeout); any other
    request's body is never read, and its connection is closed after the answer rather than drained.
    Checking the body here, before routing, means a malformed body gets a clear 400/408/413/415
    whatever the route, and the app below only ever sees well-formed JSON within limits.
    """

    def __init__(self, app: ASGIApp, api: FastAPI, service: SharedDetector, token: str | None, limits: ServiceLimits) -> None:
        self.app = app
        self.api = api
        self.service = service
        self.token = token.encode("utf-8") if token else None
        self.limits = limits
        self.in_flight = 0  # the event loop is one thread: a plain counter is exact

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        exchange = _Exchange(scope)
        endpoint = self._endpoint(scope)

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = int(message["status"])
                if exchange.unread:  # close rather than read (and discard) a body nobody wants
                    message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
            await send(message)

        limit = None if scope["path"] == "/health" else self.limits.max_in_flight
        counted = int(limit is not None)
        try:
            if limit is not None and self.in_flight >= limit:
                await self._busy()(scope, receive, send_and_record)
                return
            self.in_flight += counted
            try:
                refusal, receive = await self._screen(scope, receive, exchange)
                if refusal is not None:
                    await refusal(scope, receive, send_and_record)
                else:
                    await self.app(scope, receive, send_and_record)
            finally:
                self.in_flight -= counted
        finally:
            metrics = self.service.metrics
            metrics.count("requests")
            metrics.count(f"status_{exchange.status}")
            metrics.observe(endpoint, time.perf_counter() - started)

    def _endpoint(self, scope: Scope) -> str:
        for route in self.api.router.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return f"{scope['method']} {getattr(route, 'path', '?')}"
        return "unmatched"

    def _busy(self) -> JSONResponse:
        return _error(
            503,
            "busy",
            f"{self.in_flight} requests are in flight, the most this service takes at once "
            "(`dedup serve --limit-concurrency`): retry shortly",
            headers={"Retry-After": "1"},
        )

    async def _screen(self, scope: Scope, receive: Receive, exchange: _Exchange) -> tuple[JSONResponse | None, Receive]:
        path = scope["path"]
        if self.token is not None and not is_open(path):
            refusal = self._authorize(scope)
            if refusal is not None:
                return refusal, receive
        if _CONTROL.search(path):  # Starlette's "$" also matches before a final newline: "/health\n" is not /health
            return _error(404, "not_found", f"no such endpoint: {_short(path, 100)!r} holds control characters"), receive
        declared = exchange.headers.get("content-length")
        if declared is not None and not declared.strip().isdigit():
            return _error(400, "bad_request", f"invalid Content-Length header {_short(declared, 40)!r}"), receive
        if scope["method"] not in BODY_METHODS or is_open(path):
            return None, _no_body(receive)  # never read: nothing here takes one
        limit = self.limits.max_body_bytes
        if declared is not None and int(declared) > limit:
            return self._too_large(declared.strip()), receive
        body = bytearray()
        more = True
        timeout = self.limits.read_timeout_s
        deadline = asyncio.get_running_loop().time() + timeout
        while more:
            try:
                message = await asyncio.wait_for(receive(), deadline - asyncio.get_running_loop().time())
            except TimeoutError:
                return _error(
                    408,
                    "request_timeout",
                    f"the request body did not arrive within {timeout:g} s ({len(body)} bytes came); "
                    "send it at once, or raise `dedup serve --read-timeout`",
                ), receive
            if message["type"] == "http.disconnect":
                exchange.unread = False
                return _error(400, "bad_request", "client disconnected"), receive
            body += message.get("body", b"")
            more = bool(message.get("more_body"))
            if len(body) > limit:
                return self._too_large(f"more than {len(body)}"), receive
        exchange.unread = False
        refusal = self._check_body(scope["method"], exchange.headers.get("content-type"), bytes(body))
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        return refusal, replay

    def _authorize(self, scope: Scope) -> JSONResponse | None:
        assert self.token is not None
        value = b""
        for key, header in scope.get("headers", []):
            if key.lower() == b"authorization":
                value = header
        scheme, _, given = value.partition(b" ")
        challenge = {"WWW-Authenticate": "Bearer"}
        if not value or scheme.lower() != b"bearer":
            return _error(
                401,
                "unauthorized",
                "this service needs a token: send the header 'Authorization: Bearer TOKEN'",
                headers=challenge,
            )
        if not hmac.compare_digest(given.strip(), self.token):
            return _error(401, "unauthorized", "the bearer token is not valid", headers=challenge)
        return None

    def _too_large(self, size: str) -> JSONResponse:
        return _error(
            413,
            "too_large",
            f"request body of {_short(size, 40)} bytes is over the limit of {self.limits.max_body_bytes} bytes "
            "(split the batch, or raise the limit with `dedup serve --max-body-mb`)",
        )

    @staticmethod
    def _check_body(method: str, content_type: str | None, body: bytes) -> JSONResponse | None:
        if method not in ("POST", "PUT", "PATCH"):
            return None
        if not body.strip():
            return _error(400, "bad_request", "the request body is empty: send a JSON object")
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            return _error(
                415,
                "unsupported_media_type",
                f"the body must be JSON sent with 'Content-Type: application/json', got {_short(media or 'none', 80)!r}",
            )
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _error(
                400, "bad_request", f"the body is not valid UTF-8: byte {body[exc.start : exc.start + 1]!r} at offset {exc.start}"
            )
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            return _error(400, "bad_request", f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        except RecursionError:
            return _error(400, "bad_request", "the JSON is nested too deeply")
        except ValueError as exc:  # e.g. an integer with more digits than Python converts
            return _error(400, "bad_request", f"malformed JSON: {_short(str(exc), 200)}")
        return None


def _no_body(receive: Receive) -> Receive:
    """A receive that gives the app an empty body, then only waits for the client to go (never reads the body)."""
    given = False

    async def empty() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        while True:  # asked again (e.g. to watch for a disconnect): pass that on, drop body chunks
            message = await receive()
            if message["type"] != "http.request":
                return message

    return empty


# ----------------------------------------------------------------------------- the app
def _articles(items: list[ArticleIn], config: Config) -> list[Article]:
    articles = []
    for position, item in enumerate(items):
        record: dict[str, Any] = {**item.extra, **item.model_dump(exclude={"extra"})}
        articles.append(parse_record(record, source=f"articles[{position}]", line=None, max_chars=config.max_article_chars))
    check_batch(articles)
    return articles


def create_app(
    detector: SharedDetector | str | Path,
    *,
    config: Config | None = None,
    token: str | None = None,
    limits: ServiceLimits | None = None,
) -> FastAPI:
    """The ASGI app over a store. Run it with :func:`serve` or any ASGI server.

    Args:
        detector: A shared detector, or the path of an existing store to open (verified).
        config: Settings when ``detector`` is a path.
        token: When set, every path but ``/health`` needs ``Authorization: Bearer TOKEN``.
        limits: Request size and batch limits.

    Raises:
        StoreError: The store is missing, damaged or was built with another model.
        ModelError: The model cannot be loaded.

    """
    service = detector if isinstance(detector, SharedDetector) else SharedDetector.open(detector, config)
    limits = limits or ServiceLimits()
    errors: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorBody, "description": _HTTP_CODES[code]} for code in (400, 401, 413, 415, 422, 503)
    }
    app = FastAPI(
        title="dedup",
        version=__version__,
        description="Is this article a duplicate of one already stored? Cross-language duplicate-story detection.",
        responses=errors,
    )
    app.state.service = service
    app.state.limits = limits
    _install_error_handlers(app, service.detector.store.path)

    def batch(items: list[ArticleIn]) -> list[Article]:
        if len(items) > limits.max_batch:
            raise StarletteHTTPException(
                413,
                f"{len(items)} articles in one request, over the limit of {limits.max_batch} (split the batch, or `--max-batch`)",
            )
        chars = sum(len(item.title or "") + len(item.text or "") for item in items)
        if chars > limits.max_request_chars:
            raise StarletteHTTPException(
                413,
                f"the articles of this request hold {chars:,} characters, over the limit of {limits.max_request_chars:,} "
                "that one request may ask to embed (split the batch, or `dedup serve --max-request-chars`)",
            )
        return _articles(items, service.config)

    def top_of(top: int) -> int:
        if top > limits.max_top:
            raise StarletteHTTPException(422, f"top must be at most {limits.max_top}, got {top}")
        return top

    def verdicts_out(verdicts: Sequence[Verdict], articles: Sequence[Article], explain: bool) -> list[dict[str, Any]]:
        if not explain:
            return [v.to_dict() for v in verdicts]
        chars = service.config.max_passage_chars
        return [verdict_view(v, a, article_passages(a, chars), stored_now) for v, a in zip(verdicts, articles, strict=True)]

    def stored_now(article_id: str) -> EmbeddedArticle | None:
        try:
            return service.stored(article_id)
        except KeyError:
            return None

    def stored_or_404(article_id: str) -> NoReturn:
        raise StarletteHTTPException(404, f"no stored article with id {_short(article_id, 100)!r}")

    @app.get("/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Liveness: the service answers and its store is readable. Never needs the token."""
        return {"status": "ok", "articles": len(service), "generation": service.generation, "model": service.config.model}

    @app.get("/metrics", tags=["service"])
    def metrics() -> dict[str, Any]:
        """Requests, articles checked/added/duplicate, latency percentiles per endpoint, store size."""
        return {**service.metrics.snapshot(), "store": {"articles": len(service), "generation": service.generation}}

    @app.post("/check", tags=["articles"])
    def check(body: CheckRequest) -> dict[str, Any]:
        """Is each article a duplicate of a stored one? Nothing is stored."""
        articles = batch(body.articles)
        verdicts = service.check(articles, top=top_of(body.top))
        return {"verdicts": verdicts_out(verdicts, articles, body.explain)}

    @app.post("/add", tags=["articles"])
    def add(body: AddRequest) -> dict[str, Any]:
        """Store articles, atomically: all of them or none. Same id and content again: unchanged."""
        report = service.add(batch(body.articles), replace=body.replace)
        return {
            "added": list(report.added),
            "unchanged": list(report.unchanged),
            "replaced": list(report.replaced),
            "total": len(service),
        }

    @app.post("/check-and-add", tags=["articles"])
    def check_and_add(body: CheckRequest) -> dict[str, Any]:
        """Check each article, then store it; later articles are checked against earlier ones."""
        articles = batch(body.articles)
        result = service.check_and_add(articles, top=top_of(body.top))
        return {
            "verdicts": verdicts_out(result.verdicts, articles, body.explain),
            "added": list(result.report.added),
            "unchanged": list(result.report.unchanged),
            "total": len(service),
        }

    @app.get("/article", tags=["articles"], responses={404: {"model": ErrorBody}})
    def article(id: Annotated[str, Query(min_length=1, max_length=512)]) -> dict[str, Any]:
        """One stored article."""
        try:
            return service.get(id).to_dict()
        except KeyError:
            raise StarletteHTTPException(404, f"no stored article with id {_short(id, 100)!r}") from None

    @app.get("/story", tags=["stories"], responses={404: {"model": ErrorBody}})
    def story(id: Annotated[str, Query(min_length=1, max_length=512)]) -> dict[str, Any]:
        """The story of a stored article: it and the stored articles clustered with it."""
        try:
            found, articles = service.story(id)
        except KeyError:
            raise StarletteHTTPException(404, f"no stored article with id {_short(id, 100)!r}") from None
        return {"story": found.to_dict(), "articles": [a.to_dict() for a in articles]}

    @app.post("/cluster", tags=["stories"])
    def cluster(body: ClusterRequest) -> dict[str, Any]:
        """Group a batch into stories (with ``with_store``, stored articles join in)."""
        result = service.cluster(batch(body.articles), with_store=body.with_store)
        return {
            "stories": [s.to_dict() for s in result.stories],
            "labels": result.labels,
            "edges": [{"a": a, "b": b, "score": round(s, 4)} for a, b, s in result.edges],
        }

    # ------------------------------------------------------------- the story browser
    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def page() -> Response:
        """The story browser (no data in it: it asks the endpoints below, with the token)."""
        return _asset_response("index.html")

    @app.api_route("/static/{name}", methods=["GET", "HEAD"], include_in_schema=False)
    def static(name: str) -> Response:
        """The page's script and style sheet."""
        return _asset_response(name)

    @app.get("/stories", tags=["stories"], responses={422: {"model": ErrorBody}})
    def stories(
        date_from: Annotated[str | None, Query(max_length=40, description="YYYY[-MM[-DD]]: stories reaching this date")] = None,
        date_to: Annotated[str | None, Query(max_length=40, description="YYYY[-MM[-DD]]: stories starting by this date")] = None,
        lang: Annotated[str | None, Query(min_length=1, max_length=16, description="stories with an article in it")] = None,
        min_size: Annotated[int, Query(ge=1, le=1_000_000, description="stories with at least this many articles")] = 1,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> dict[str, Any]:
        """The stored articles clustered into stories (kept until the next commit), newest first, filtered, paged."""
        where = StoryFilter(_date("date_from", date_from), _date("date_to", date_to), (lang or "").lower() or None, min_size)
        book = service.stories()
        found = book.page(where, offset=offset, limit=limit)
        return {
            **_book_head(book),
            "total": found.total,
            "offset": found.offset,
            "limit": found.limit,
            "stories": [story_view(book, s) for s in found.stories],
        }

    @app.get("/stories/{story_id}", tags=["stories"], responses={404: {"model": ErrorBody}})
    def one_story(story_id: Annotated[str, Path_(max_length=100)]) -> dict[str, Any]:
        """One story of ``/stories``: its members and the verified pairs that link them."""
        book = service.stories()
        try:
            found = book.story(story_id)
        except KeyError:
            raise StarletteHTTPException(
                404,
                f"no story {_short(story_id, 100)!r} in the stories of store generation {book.generation} "
                "(story ids change when the store does: list /stories again)",
            ) from None
        return {**_book_head(book), "story": story_view(book, found)}

    @app.get("/neighbours", tags=["stories"], responses={404: {"model": ErrorBody}})
    def neighbours(
        id: Annotated[str, Query(min_length=1, max_length=512)],
        top: Annotated[int, Query(ge=0, description="near misses to list besides the duplicates")] = 5,
    ) -> dict[str, Any]:
        """A stored article: its story (as in ``/stories``) and its nearest stored articles, with evidence."""
        try:
            item, verdict = service.neighbours(id, top=top_of(top))
            book = service.stories()
            story = book.story_of(id)
        except KeyError:
            stored_or_404(id)
        return {
            **_book_head(book),
            "article": embedded_view(item),
            "story": story_view(book, story),
            "verdict": verdict_view(verdict, item.article, item.passages, stored_now),
        }

    @app.get("/evidence", tags=["stories"], responses={404: {"model": ErrorBody}})
    def evidence(
        a: Annotated[str, Query(min_length=1, max_length=512, description="the first article (the query side)")],
        b: Annotated[str, Query(min_length=1, max_length=512, description="the second article")],
    ) -> dict[str, Any]:
        """The verifier's decision on two stored articles, with both articles' passages (a story link)."""
        for article_id in (a, b):
            try:
                service.stored(article_id)
            except KeyError:
                stored_or_404(article_id)
        first, second, match = service.evidence(a, b)
        return pair_view(first, second, match)

    app.add_middleware(_Gate, api=app, service=service, token=token, limits=limits)
    return app


def _asset_response(name: str) -> Response:
    try:
        body, media = asset(name)
    except KeyError:
        raise StarletteHTTPException(404, f"no such file: /static/{_short(name, 100)}") from None
    return Response(body, media_type=media, headers=PAGE_HEADERS)


def _date(name: str, value: str | None) -> PartialDate | None:
    if value is None or not value.strip():
        return None
    try:
        return PartialDate.parse(value)
    except ValueError as exc:
        raise StarletteHTTPException(422, f"{name}: {exc}") from None


def _book_head(book: StoryBook) -> dict[str, Any]:
    return {
        "generation": book.generation,
        "articles": len(book.articles),
        "clustered_in_s": round(book.seconds, 3),
        "langs": list(book.langs),
    }


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    return host in ("localhost", "::1") or host.startswith("127.")


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: a free one), for :func:`serve`.

    Raises:
        ConfigError: The port is out of range or the address cannot be bound (in use, no such host).

    """
    if not 0 <= port <= 65535:
        raise ConfigError(f"port must be in [0, 65535], got {port}")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (choose another --port or --host)") from None
    return sock


def serve(app: FastAPI, sock: socket.socket, *, limits: ServiceLimits | None = None) -> bool:
    """Run the app with uvicorn on a bound socket until Ctrl-C or SIGTERM (graceful: requests in flight finish).

    Args:
        app: From :func:`create_app`.
        sock: From :func:`listen`.
        limits: The connection timeouts (``keep_alive_s``, ``read_timeout_s``); default: the app's.

    Returns:
        True when a signal stopped it (uvicorn may also re-raise the signal).

    """
    import uvicorn

    limits = limits or getattr(app.state, "limits", None) or ServiceLimits()
    config = uvicorn.Config(
        app,
        http=_protocol(limits.read_timeout_s),
        log_config=None,  # keep the caller's logging
        access_log=False,
        timeout_keep_alive=limits.keep_alive_s,
        timeout_graceful_shutdown=30,
    )
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return bool(server.should_exit)


#: Sent, raw, to a client that took too long over a request's head (h11 has no request to answer yet).
_HEAD_TIMEOUT = json.dumps(
    {"error": "request_timeout", "detail": "the request head did not arrive in time", "errors": []}
).encode()
_HEAD_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + f"content-length: {len(_HEAD_TIMEOUT)}\r\n\r\n".encode()
    + _HEAD_TIMEOUT
)


def _protocol(read_timeout_s: float) -> type[asyncio.Protocol]:
    """The h11 protocol of uvicorn, with a deadline on each request's head.

    uvicorn arms its keep-alive timer only after a response, and cancels it on any byte: a
    socket that connects and sends nothing, or trickles a header byte now and then, would
    hold a file descriptor forever. Here, whenever the connection waits for a request head
    (from connecting, or from the first byte of the next request), the head must be complete
    within ``read_timeout_s`` -- a deadline, not reset by more bytes -- or the client gets a
    408 and the connection is closed. While a request is being answered no timer runs (the
    gate bounds the body read; the app's work is not the client's fault).
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadTimeoutProtocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._watch_head()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            super().connection_lost(exc)

        def _watch_head(self) -> None:
            answering = self.cycle is not None and not self.cycle.response_complete
            if answering or self.transport.is_closing():
                self._stop_head_timer()
            elif self._head_timer is None:
                self._head_timer = self.loop.call_later(read_timeout_s, self._head_timed_out)

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                logger.debug("closing a connection that sent no complete request head within %g s", read_timeout_s)
                self.transport.write(_HEAD_TIMEOUT_RESPONSE)
                self.transport.close()

    return HeadTimeoutProtocol
