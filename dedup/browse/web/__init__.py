"""The story browser's files: one HTML page, a style sheet and plain scripts, no build step.

``dedup serve`` serves ``index.html`` at ``/`` and the others under ``/static/``
(:mod:`dedup.serve.http`); the static report (:mod:`dedup.browse.report`) inlines ``style.css``,
``render.js`` and ``report.js``. Nothing is fetched from elsewhere: the page works offline.

* ``render.js``: DOM builders shared by the page and the report (a verdict's two columns
  with aligned passages highlighted, a story's members by language). Every piece of text
  goes in as a text node, never as HTML, so an article holding ``<script>`` shows as text.
* ``app.js``: the page: Check, Stories, Story and Article views, the token.
* ``report.js``: the static report, which reads its data from a JSON block in the file.
"""

from __future__ import annotations

import functools
from importlib import resources

__all__ = ["CONTENT_SECURITY_POLICY", "PAGE_HEADERS", "SERVED", "asset", "source"]

#: Files served by ``dedup serve``, with their media types.
SERVED = {
    "index.html": "text/html; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "render.js": "text/javascript; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
}

#: Only this origin's scripts, styles and requests; no inline script, no frames, no plugins.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

#: Headers of the page and its assets.
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@functools.cache
def source(name: str) -> str:
    """The text of one of the files in this folder (raises KeyError for another name)."""
    if name not in SERVED and name != "report.js":
        raise KeyError(name)
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def asset(name: str) -> tuple[bytes, str]:
    """A served file's bytes and media type (raises KeyError for a file that is not served)."""
    if name not in SERVED:
        raise KeyError(name)
    return source(name).encode("utf-8"), SERVED[name]
