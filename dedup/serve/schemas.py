"""What the HTTP service reads and writes: the request bodies (pydantic) and the one error body.

Every 4xx and 5xx is :class:`ErrorBody`, ``{"error": CODE, "detail": MESSAGE, "errors": [...]}``,
built by :func:`error_response`; :data:`HTTP_CODES` names the code of each status.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dedup.errors import InputError
from dedup.io import parse_record

__all__ = [
    "HTTP_CODES",
    "AddRequest",
    "ArticleIn",
    "CheckRequest",
    "ClusterRequest",
    "ErrorBody",
    "error_response",
    "short",
]


class ArticleIn(BaseModel):
    """One article: the very record a JSONL line holds, checked by the same validator.

    :func:`dedup.io.parse_record` validates it (the one record schema): ``id`` is a string or an
    integer (``7`` is the id ``"7"``); ``title``, ``text``, ``date``, ``lang``, ``source`` and
    ``url`` are strings or null; any other field is kept in ``extra`` and returned by
    ``GET /article``. So a pipeline can post its JSONL lines as they are, and both ways give
    the same article. After validation the model holds the normalised record: ``id`` a
    string, the unknown fields (and those of an ``extra`` object) in ``extra``.
    """

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"examples": [{"id": 7, "title": "Talks in Hanoi", "date": "2025-01-12", "feed": "wire"}]},
    )

    id: Annotated[str | int, Field(description="unique id: a non-empty string, or an integer (read as its decimal string)")]
    title: str | None = None
    text: str | None = None
    date: Annotated[str | None, Field(description="YYYY, YYYY-MM or YYYY-MM-DD (or an ISO datetime)")] = None
    lang: Annotated[str | None, Field(description="ISO 639-1; detected when missing")] = None
    source: str | None = None
    url: str | None = None
    extra: Annotated[
        dict[str, Any], Field(description="more fields, kept and returned; any unknown top-level field goes here too")
    ] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _one_schema(cls, data: object) -> object:
        """Validate with the JSONL reader's :func:`~dedup.io.parse_record`; return the normalised record."""
        if not isinstance(data, dict):
            raise ValueError(f"an article must be a JSON object, got {type(data).__name__}")
        try:
            article = parse_record(data, source="article", line=None, detect_lang=False, max_chars=sys.maxsize)
        except InputError as exc:
            raise ValueError(exc.reason) from None
        return article.to_record()  # the service detects a missing language and applies its limits


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


#: The ``error`` code of each status the service answers with.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "read_only",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "unavailable",
}


def error_response(
    status: int, code: str, detail: str, errors: list[dict[str, str]] | None = None, *, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An :class:`ErrorBody` response."""
    return JSONResponse({"error": code, "detail": detail, "errors": errors or []}, status_code=status, headers=headers)


def short(text: str, limit: int = 300) -> str:
    """``text``, cut to ``limit`` characters (with ``...``) to quote a client's input in a message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
