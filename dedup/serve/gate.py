"""The gate: the outermost ASGI layer of the service, in front of the routes.

In order, for each HTTP request: metrics (count, status, latency per endpoint), the number of
requests in flight (``max_in_flight``, a 503 with ``Retry-After`` beyond), the bearer token
(checked from the headers, before any body is read; :func:`is_open` paths never need it), the
refusal of writes by a read-only service (403, :data:`WRITE_PATHS`), the
body (read only on ``POST``/``PUT``/``PATCH`` to a guarded path, within ``max_body_bytes`` and
``read_timeout_s``), its media type and its JSON syntax. The routes below only ever see a
well-formed JSON body within limits.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.routing import Match

from dedup.serve.schemas import error_response, short
from dedup.serve.shared import ServiceLimits, SharedDetector

__all__ = ["BODY_METHODS", "OPEN_PATHS", "OPEN_PREFIXES", "WRITE_PATHS", "Gate", "is_open"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Paths that never need the token: liveness, the story browser's page and assets, and the API's
#: description and its documentation pages (no data in any of them; a browser cannot send a token
#: to open /docs, whose "Authorize" button then sends it with every request it tries).
OPEN_PATHS = frozenset({"/health", "/", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
OPEN_PREFIXES = ("/static/",)


def is_open(path: str) -> bool:
    """Whether ``path`` is served without the token."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: Methods whose body the gate reads (on guarded paths only); every other request's body is never read.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

#: Paths that write: a read-only service (a replica) refuses them with 403, before reading the body.
WRITE_PATHS = frozenset({"/add", "/check-and-add"})


class _Exchange:
    """One request as the gate sees it: its headers, and whether a declared body is still unread."""

    def __init__(self, scope: Scope) -> None:
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        length = self.headers.get("content-length", "").strip()
        self.unread = "transfer-encoding" in self.headers or (bool(length) and length.strip("0") != "")
        self.status = 500


class Gate:
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
        """Screen one HTTP request, pass it on to the app when it passes, and record it in the metrics."""
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
        return error_response(
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
            return error_response(404, "not_found", f"no such endpoint: {short(path, 100)!r} holds control characters"), receive
        declared = exchange.headers.get("content-length")
        if declared is not None and not declared.strip().isdigit():
            return error_response(400, "bad_request", f"invalid Content-Length header {short(declared, 40)!r}"), receive
        if scope["method"] not in BODY_METHODS or is_open(path):
            return None, _no_body(receive)  # never read: nothing here takes one
        if self.service.read_only and path in WRITE_PATHS:
            return self._read_only(path), receive
        if declared is not None and int(declared) > self.limits.max_body_bytes:
            return self._too_large(declared.strip()), receive
        body = await self._read_body(receive, exchange)
        if isinstance(body, JSONResponse):
            return body, receive
        refusal = self._check_body(scope["method"], exchange.headers.get("content-type"), body)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return refusal, replay

    async def _read_body(self, receive: Receive, exchange: _Exchange) -> bytes | JSONResponse:
        """The whole body, within the size limit and the read timeout; or the refusal."""
        limit = self.limits.max_body_bytes
        body = bytearray()
        more = True
        timeout = self.limits.read_timeout_s
        deadline = asyncio.get_running_loop().time() + timeout
        while more:
            try:
                message = await asyncio.wait_for(receive(), deadline - asyncio.get_running_loop().time())
            except TimeoutError:
                return error_response(
                    408,
                    "request_timeout",
                    f"the request body did not arrive within {timeout:g} s ({len(body)} bytes came); "
                    "send it at once, or raise `dedup serve --read-timeout`",
                )
            if message["type"] == "http.disconnect":
                exchange.unread = False
                return error_response(400, "bad_request", "client disconnected")
            body += message.get("body", b"")
            more = bool(message.get("more_body"))
            if len(body) > limit:
                return self._too_large(f"more than {len(body)}")
        exchange.unread = False
        return bytes(body)

    def _authorize(self, scope: Scope) -> JSONResponse | None:
        assert self.token is not None
        value = b""
        for key, header in scope.get("headers", []):
            if key.lower() == b"authorization":
                value = header
        scheme, _, given = value.partition(b" ")
        challenge = {"WWW-Authenticate": "Bearer"}
        if not value or scheme.lower() != b"bearer":
            return error_response(
                401,
                "unauthorized",
                "this service needs a token: send the header 'Authorization: Bearer TOKEN'",
                headers=challenge,
            )
        if not hmac.compare_digest(given.strip(), self.token):
            return error_response(401, "unauthorized", "the bearer token is not valid", headers=challenge)
        return None

    def _read_only(self, path: str) -> JSONResponse:
        return error_response(
            403,
            "read_only",
            f"this service serves its {self.service.kind} read-only (`dedup serve --read-only`): {path} is refused; "
            "send adds to the writer",
        )

    def _too_large(self, size: str) -> JSONResponse:
        return error_response(
            413,
            "too_large",
            f"request body of {short(size, 40)} bytes is over the limit of {self.limits.max_body_bytes} bytes "
            "(split the batch, or raise the limit with `dedup serve --max-body-mb`)",
        )

    @staticmethod
    def _check_body(method: str, content_type: str | None, body: bytes) -> JSONResponse | None:
        if method not in ("POST", "PUT", "PATCH"):
            return None
        if not body.strip():
            return error_response(400, "bad_request", "the request body is empty: send a JSON object")
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            return error_response(
                415,
                "unsupported_media_type",
                f"the body must be JSON sent with 'Content-Type: application/json', got {short(media or 'none', 80)!r}",
            )
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return error_response(
                400, "bad_request", f"the body is not valid UTF-8: byte {body[exc.start : exc.start + 1]!r} at offset {exc.start}"
            )
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            return error_response(400, "bad_request", f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        except RecursionError:
            return error_response(400, "bad_request", "the JSON is nested too deeply")
        except ValueError as exc:  # e.g. an integer with more digits than Python converts
            return error_response(400, "bad_request", f"malformed JSON: {short(str(exc), 200)}")
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
