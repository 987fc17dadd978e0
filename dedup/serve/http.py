"""The HTTP service: ``dedup serve --store DIR`` (FastAPI on uvicorn).

Endpoints (JSON in, JSON out; the OpenAPI document is at ``/openapi.json``, browsable at
``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), both served from local files: :mod:`~dedup.serve.docs`)::

    GET  /health           liveness, store size, kind and read_only (never needs the token)
    GET  /metrics          counters and per-endpoint latency percentiles, Prometheus text format
    GET  /metrics.json     the same, as JSON
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

The parts: :mod:`~dedup.serve.schemas` (request and error bodies), :mod:`~dedup.serve.gate`
(token, limits, body checks), :mod:`~dedup.serve.routes` (the endpoints), :mod:`~dedup.serve.docs`
(the offline API docs), :mod:`~dedup.serve.prometheus` (the text format of ``/metrics``) and
:mod:`~dedup.serve.server` (socket, uvicorn, head timeout); this module assembles them.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dedup import __version__
from dedup.config import Config
from dedup.errors import ConfigError, DedupError, IdConflictError, InputError, ModelError, StoreError
from dedup.serve.docs import add_docs_routes
from dedup.serve.gate import Gate, is_open
from dedup.serve.routes import Api, add_routes
from dedup.serve.schemas import HTTP_CODES, ErrorBody, error_response, short
from dedup.serve.server import is_loopback, listen, serve
from dedup.serve.shared import ServiceLimits, SharedDetector

__all__ = ["ServiceLimits", "create_app", "is_loopback", "is_open", "listen", "serve"]

logger = logging.getLogger(__name__)


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
        token: When set, every path but the open ones (:data:`~dedup.serve.gate.OPEN_PATHS`: ``/health``,
            the browser page, ``/openapi.json``, ``/docs``, ``/redoc``) needs ``Authorization: Bearer TOKEN``.
        limits: Request size and batch limits.

    Raises:
        StoreError: The store is missing, damaged or was built with another model.
        ModelError: The model cannot be loaded.

    """
    service = detector if isinstance(detector, SharedDetector) else SharedDetector.open(detector, config)
    limits = limits or ServiceLimits()
    errors: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorBody, "description": HTTP_CODES[code]} for code in (400, 401, 413, 415, 422, 503)
    }
    app = FastAPI(
        title="dedup",
        version=__version__,
        description="Is this article a duplicate of one already stored? Cross-language duplicate-story detection.",
        responses=errors,
        docs_url=None,  # FastAPI's pages load from a CDN; dedup.serve.docs serves local copies
        redoc_url=None,
    )
    app.state.service = service
    app.state.limits = limits
    app.state.api = Api(service, limits)
    _install_error_handlers(app, service.path)
    add_routes(app)
    add_docs_routes(app)
    if token is not None:
        _declare_bearer(app)
    app.add_middleware(Gate, api=app, service=service, token=token, limits=limits)
    return app


def _declare_bearer(app: FastAPI) -> None:
    """Declare the bearer token in the OpenAPI document, so /docs offers "Authorize" and sends it."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        doc = plain()
        doc.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {"type": "http", "scheme": "bearer"}
        doc["security"] = [{"bearer": []}]
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


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
        out.append({"loc": short(loc, 200), "msg": short(str(err.get("msg", ""))), "type": str(err.get("type", ""))})
    return out


def _install_error_handlers(app: FastAPI, store: Path | None) -> None:
    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = _validation_errors(exc)
        summary = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors[:3])
        return error_response(422, "invalid_request", f"the request does not match the schema: {summary}", errors)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = str(exc.detail)
        where = f"{request.method} {short(request.url.path, 100)}"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint: {where} (the endpoints are listed in /openapi.json)"
        elif exc.status_code == 405 and detail == "Method Not Allowed":
            detail = f"method not allowed: {where} (the endpoints are listed in /openapi.json)"
        return error_response(exc.status_code, HTTP_CODES.get(exc.status_code, "error"), detail, headers=exc.headers)

    async def on_dedup(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, IdConflictError):
            return error_response(409, "conflict", str(exc))
        if isinstance(exc, InputError | ConfigError):
            return error_response(422, "invalid_request", str(exc))
        if isinstance(exc, StoreError | ModelError):
            logger.error("%s: %s", type(exc).__name__, exc)  # the full message, paths included, stays here
            return error_response(503, "unavailable", f"{type(exc).__name__}: {_without_paths(str(exc), store)}")
        logger.exception("unexpected dedup error")
        return error_response(500, "internal", f"{type(exc).__name__}: {_without_paths(str(exc), store)}")

    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", f"internal error ({type(exc).__name__}); this is a bug in dedup, please report it")

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(DedupError, on_dedup)
    app.add_exception_handler(Exception, on_bug)
