"""The API's documentation pages, offline: Swagger UI at ``/docs``, ReDoc at ``/redoc``.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they are blank without a
network. These pages are FastAPI's (:func:`fastapi.openapi.docs.get_swagger_ui_html`,
:func:`~fastapi.openapi.docs.get_redoc_html`) pointed at local copies of the scripts and the
style sheet, served under ``/static/docs/``. The copies come from the ``fastapi-offline``
package (installed with ``dedup[serve]``), which ships Swagger UI's and ReDoc's dist files
and nothing else we use. The pages' Content-Security-Policy allows this origin only, so
a page cannot reach the internet even if a script tried (no CDN, no Google fonts, no
Swagger validator badge).

ReDoc's script draws a "by Redocly" logo from ``cdn.redoc.ly`` in its menu, whatever its
options; the served copy has that one address replaced by an empty ``data:`` image (the logo
then hides itself), so the page makes no request outside this origin.

Without ``fastapi-offline``, ``/docs`` and ``/redoc`` answer a short page saying how to
install it; ``/openapi.json`` is served either way.
"""

from __future__ import annotations

import functools
import importlib.util
from importlib import resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["ASSET_PREFIX", "DOCS_CSP", "add_docs_routes", "docs_asset"]

#: Where the pages' scripts and style sheet are served (an open prefix: no token needed).
ASSET_PREFIX = "/static/docs"

_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}

#: Only this origin: FastAPI's pages hold one inline script (Swagger UI's settings); ReDoc runs a worker from a blob.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

#: The one remote address in ReDoc's script (its menu's logo) and what the served copy has instead.
_REDOC_LOGO = (b"https://cdn.redoc.ly/redoc/logo-mini.svg", b"data:,")

_HEADERS = {"Content-Security-Policy": DOCS_CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

_MISSING = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>dedup API docs</title></head>
<body><h1>The API docs need fastapi-offline</h1>
<p>The documentation pages are served from local copies of Swagger UI and ReDoc, which come with the
<code>fastapi-offline</code> package: <code>pip install 'dedup[serve]'</code>. Nothing is loaded from the internet.</p>
<p>The OpenAPI document itself is at <a href="/openapi.json">/openapi.json</a>.</p></body></html>
"""


def have_assets() -> bool:
    """Whether the local Swagger UI and ReDoc files are installed (``fastapi-offline``)."""
    return importlib.util.find_spec("fastapi_offline") is not None


@functools.cache
def docs_asset(name: str) -> tuple[bytes, str]:
    """One of the pages' files, its bytes and media type (KeyError for another name, or when not installed)."""
    if name not in _ASSETS or not have_assets():
        raise KeyError(name)
    body = resources.files("fastapi_offline").joinpath("static", name).read_bytes()
    if name == "redoc.standalone.js":
        body = body.replace(*_REDOC_LOGO)
    return body, _ASSETS[name]


def add_docs_routes(app: FastAPI) -> None:
    """Register ``/docs``, ``/redoc``, Swagger UI's OAuth2 redirect page and the assets on ``app``.

    ``app`` must have been built with ``docs_url=None, redoc_url=None`` (FastAPI's CDN pages off).
    """
    title = app.title
    openapi_url = app.openapi_url or "/openapi.json"
    redirect = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    def swagger() -> HTMLResponse:
        if not have_assets():
            return HTMLResponse(_MISSING, headers=_HEADERS)
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            oauth2_redirect_url=redirect,
            swagger_js_url=f"{ASSET_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSET_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{ASSET_PREFIX}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
        )
        page.headers.update(_HEADERS)
        return page

    def redoc() -> HTMLResponse:
        if not have_assets():
            return HTMLResponse(_MISSING, headers=_HEADERS)
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{ASSET_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSET_PREFIX}/favicon.png",
            with_google_fonts=False,
        )
        page.headers.update(_HEADERS)
        return page

    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    def asset(name: str) -> Response:
        try:
            body, media = docs_asset(name)
        except KeyError:
            raise StarletteHTTPException(404, f"no such file: {ASSET_PREFIX}/{name[:100]}") from None
        return Response(body, media_type=media, headers={"Cache-Control": "max-age=86400", "X-Content-Type-Options": "nosniff"})

    app.add_api_route("/docs", swagger, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route("/redoc", redoc, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route(redirect, oauth2_redirect, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route(ASSET_PREFIX + "/{name}", asset, methods=["GET", "HEAD"], include_in_schema=False)
