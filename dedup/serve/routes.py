"""The endpoints of the HTTP service; :func:`add_routes` registers them on the app.

Each handler reaches the service through :class:`Api` (the shared detector and the limits, kept
in ``app.state.api``). Handlers are plain functions: FastAPI runs them in its thread pool, so
embedding never blocks the server. The gate in front (:mod:`dedup.serve.gate`) has already
checked the token and that any body is JSON within limits; here the body is validated against
its schema (:mod:`dedup.serve.schemas`) and the limits on its content are applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, NoReturn

from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as Path_
from fastapi.responses import PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from dedup.browse.stories import StoryBook, StoryFilter
from dedup.browse.views import embedded_view, pair_view, rules_view, story_view, verdict_view
from dedup.browse.web import PAGE_HEADERS, asset
from dedup.config import Config
from dedup.embedding.embed import article_passages
from dedup.io import parse_record
from dedup.serve.prometheus import CONTENT_TYPE, metrics_text
from dedup.serve.schemas import AddRequest, ArticleIn, CheckRequest, ClusterRequest, ErrorBody, short
from dedup.serve.shared import ServiceLimits, SharedDetector, check_batch
from dedup.types import Article, EmbeddedArticle, PartialDate, Verdict

__all__ = ["Api", "add_routes"]


class Api:
    """The service and its limits, as the handlers use them: batches within limits, verdicts out.

    Args:
        service: The shared detector the endpoints read and write.
        limits: What one request may ask (``max_batch``, ``max_request_chars``, ``max_top``).

    """

    def __init__(self, service: SharedDetector, limits: ServiceLimits) -> None:
        self.service = service
        self.limits = limits

    def batch(self, items: list[ArticleIn]) -> list[Article]:
        """The articles of a request, within ``max_batch`` and ``max_request_chars`` (413 beyond)."""
        limits = self.limits
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
        return _articles(items, self.service.config)

    def top_of(self, top: int) -> int:
        """``top``, within ``max_top`` (422 beyond)."""
        if top > self.limits.max_top:
            raise StarletteHTTPException(422, f"top must be at most {self.limits.max_top}, got {top}")
        return top

    def verdicts_out(self, verdicts: Sequence[Verdict], articles: Sequence[Article], explain: bool) -> list[dict[str, Any]]:
        """The verdicts as JSON; with ``explain``, with both articles' passages."""
        if not explain:
            return [v.to_dict() for v in verdicts]
        chars = self.service.config.max_passage_chars
        rules = rules_view(self.service.config)
        return [
            verdict_view(v, a, article_passages(a, chars), self.stored_now, rules)
            for v, a in zip(verdicts, articles, strict=True)
        ]

    def stored_now(self, article_id: str) -> EmbeddedArticle | None:
        """A stored article, or None when it is gone (replaced or never stored)."""
        try:
            return self.service.stored(article_id)
        except KeyError:
            return None


async def _api(request: Request) -> Api:
    api: Api = request.app.state.api
    return api


ApiDep = Annotated[Api, Depends(_api)]
ArticleId = Annotated[str, Query(min_length=1, max_length=512)]


def add_routes(app: FastAPI) -> None:
    """Register the endpoints on ``app``, in the order the OpenAPI document lists them.

    Each one is added as a plain route of the app (not through an included router), so the
    gate finds it by path for its per-endpoint metrics whatever the FastAPI version.
    """
    missing: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}}
    invalid: dict[int | str, dict[str, Any]] = {422: {"model": ErrorBody}}
    app.add_api_route("/health", health, methods=["GET"], tags=["service"])
    app.add_api_route(
        "/metrics",
        metrics,
        methods=["GET"],
        tags=["service"],
        response_class=PlainTextResponse,
        responses={200: {"content": {CONTENT_TYPE: {}}, "description": "The Prometheus text format"}},
    )
    app.add_api_route("/metrics.json", metrics_json, methods=["GET"], tags=["service"])
    app.add_api_route("/check", check, methods=["POST"], tags=["articles"])
    app.add_api_route("/add", add, methods=["POST"], tags=["articles"])
    app.add_api_route("/check-and-add", check_and_add, methods=["POST"], tags=["articles"])
    app.add_api_route("/article", article, methods=["GET"], tags=["articles"], responses=missing)
    app.add_api_route("/story", story, methods=["GET"], tags=["stories"], responses=missing)
    app.add_api_route("/cluster", cluster, methods=["POST"], tags=["stories"])
    app.add_api_route("/", page, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route("/static/{name}", static, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route("/stories", stories, methods=["GET"], tags=["stories"], responses=invalid)
    app.add_api_route("/stories/{story_id}", one_story, methods=["GET"], tags=["stories"], responses=missing)
    app.add_api_route("/neighbours", neighbours, methods=["GET"], tags=["stories"], responses=missing)
    app.add_api_route("/evidence", evidence, methods=["GET"], tags=["stories"], responses=missing)


# ----------------------------------------------------------------- service and articles
def health(api: ApiDep) -> dict[str, Any]:
    """Liveness: the service answers and its store is readable. Never needs the token.

    Also says what is served: ``kind`` (``store`` or ``archive``) and ``read_only``
    (a replica that refuses writes), so a load balancer can route writes to the writer.
    """
    service = api.service
    return {
        "status": "ok",
        "articles": len(service),
        "generation": service.generation,
        "model": service.config.model,
        "kind": service.kind,
        "read_only": service.read_only,
    }


def metrics(api: ApiDep) -> Response:
    """The counters of ``/metrics.json`` in the Prometheus text format, for scrapers."""
    return Response(metrics_text(metrics_json(api)), media_type=CONTENT_TYPE)


def metrics_json(api: ApiDep) -> dict[str, Any]:
    """Requests, articles checked/added/duplicate, latency percentiles per endpoint, store size."""
    service = api.service
    return {**service.metrics.snapshot(), "store": {"articles": len(service), "generation": service.generation}}


def check(body: CheckRequest, api: ApiDep) -> dict[str, Any]:
    """Is each article a duplicate of a stored one? Nothing is stored."""
    articles = api.batch(body.articles)
    verdicts = api.service.check(articles, top=api.top_of(body.top))
    return {"verdicts": api.verdicts_out(verdicts, articles, body.explain)}


def add(body: AddRequest, api: ApiDep) -> dict[str, Any]:
    """Store articles, atomically: all of them or none. Same id and content again: unchanged."""
    report = api.service.add(api.batch(body.articles), replace=body.replace)
    return {
        "added": list(report.added),
        "unchanged": list(report.unchanged),
        "replaced": list(report.replaced),
        "total": len(api.service),
    }


def check_and_add(body: CheckRequest, api: ApiDep) -> dict[str, Any]:
    """Check each article, then store it; later articles are checked against earlier ones."""
    articles = api.batch(body.articles)
    result = api.service.check_and_add(articles, top=api.top_of(body.top))
    return {
        "verdicts": api.verdicts_out(result.verdicts, articles, body.explain),
        "added": list(result.report.added),
        "unchanged": list(result.report.unchanged),
        "total": len(api.service),
    }


def article(id: ArticleId, api: ApiDep) -> dict[str, Any]:
    """One stored article."""
    try:
        return api.service.get(id).to_dict()
    except KeyError:
        _not_stored(id)


def story(id: ArticleId, api: ApiDep) -> dict[str, Any]:
    """The story of a stored article: it and the stored articles clustered with it."""
    try:
        found, articles = api.service.story(id)
    except KeyError:
        _not_stored(id)
    return {"story": found.to_dict(), "articles": [a.to_dict() for a in articles]}


def cluster(body: ClusterRequest, api: ApiDep) -> dict[str, Any]:
    """Group a batch into stories (with ``with_store``, stored articles join in)."""
    result = api.service.cluster(api.batch(body.articles), with_store=body.with_store)
    return {
        "stories": [s.to_dict() for s in result.stories],
        "labels": result.labels,
        "edges": [{"a": a, "b": b, "score": round(s, 4)} for a, b, s in result.edges],
    }


# --------------------------------------------------------------------- the story browser
def page() -> Response:
    """The story browser (no data in it: it asks the endpoints below, with the token)."""
    return _asset_response("index.html")


def static(name: str) -> Response:
    """The page's script and style sheet."""
    return _asset_response(name)


def stories(
    api: ApiDep,
    date_from: Annotated[str | None, Query(max_length=40, description="YYYY[-MM[-DD]]: stories reaching this date")] = None,
    date_to: Annotated[str | None, Query(max_length=40, description="YYYY[-MM[-DD]]: stories starting by this date")] = None,
    lang: Annotated[str | None, Query(min_length=1, max_length=16, description="stories with an article in it")] = None,
    min_size: Annotated[int, Query(ge=1, le=1_000_000, description="stories with at least this many articles")] = 1,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """The stored articles clustered into stories (kept until the next commit), newest first, filtered, paged."""
    where = StoryFilter(_date("date_from", date_from), _date("date_to", date_to), (lang or "").lower() or None, min_size)
    book = api.service.stories()
    found = book.page(where, offset=offset, limit=limit)
    return {
        **_book_head(book, api),
        "total": found.total,
        "offset": found.offset,
        "limit": found.limit,
        "stories": [story_view(book, s) for s in found.stories],
    }


def one_story(story_id: Annotated[str, Path_(max_length=100)], api: ApiDep) -> dict[str, Any]:
    """One story of ``/stories``: its members and the verified pairs that link them."""
    book = api.service.stories()
    try:
        found = book.story(story_id)
    except KeyError:
        raise StarletteHTTPException(
            404,
            f"no story {short(story_id, 100)!r} in the stories of store generation {book.generation} "
            "(story ids change when the store does: list /stories again)",
        ) from None
    return {**_book_head(book, api), "story": story_view(book, found)}


def neighbours(
    id: ArticleId,
    api: ApiDep,
    top: Annotated[int, Query(ge=0, description="near misses to list besides the duplicates")] = 5,
) -> dict[str, Any]:
    """A stored article: its story (as in ``/stories``) and its nearest stored articles, with evidence."""
    try:
        item, verdict = api.service.neighbours(id, top=api.top_of(top))
        book = api.service.stories()
        found = book.story_of(id)
    except KeyError:
        _not_stored(id)
    return {
        **_book_head(book, api),
        "article": embedded_view(item),
        "story": story_view(book, found),
        "verdict": verdict_view(verdict, item.article, item.passages, api.stored_now, rules_view(api.service.config)),
    }


def evidence(
    a: Annotated[str, Query(min_length=1, max_length=512, description="the first article (the query side)")],
    b: Annotated[str, Query(min_length=1, max_length=512, description="the second article")],
    api: ApiDep,
) -> dict[str, Any]:
    """The verifier's decision on two stored articles, with both articles' passages (a story link)."""
    for article_id in (a, b):
        try:
            api.service.stored(article_id)
        except KeyError:
            _not_stored(article_id)
    first, second, match = api.service.evidence(a, b)
    return pair_view(first, second, match, rules_view(api.service.config))


# ------------------------------------------------------------------------------- helpers
def _articles(items: list[ArticleIn], config: Config) -> list[Article]:
    articles = []
    for position, item in enumerate(items):
        record: dict[str, Any] = {**item.extra, **item.model_dump(exclude={"extra"})}
        articles.append(parse_record(record, source=f"articles[{position}]", line=None, max_chars=config.max_article_chars))
    check_batch(articles)
    return articles


def _not_stored(article_id: str) -> NoReturn:
    raise StarletteHTTPException(404, f"no stored article with id {short(article_id, 100)!r}") from None


def _asset_response(name: str) -> Response:
    try:
        body, media = asset(name)
    except KeyError:
        raise StarletteHTTPException(404, f"no such file: /static/{short(name, 100)}") from None
    return Response(body, media_type=media, headers=PAGE_HEADERS)


def _date(name: str, value: str | None) -> PartialDate | None:
    if value is None or not value.strip():
        return None
    try:
        return PartialDate.parse(value)
    except ValueError as exc:
        raise StarletteHTTPException(422, f"{name}: {exc}") from None


def _book_head(book: StoryBook, api: Api) -> dict[str, Any]:
    return {
        "rules": rules_view(api.service.config),
        "generation": book.generation,
        "articles": len(book.articles),
        "clustered_in_s": round(book.seconds, 3),
        "langs": list(book.langs),
    }
