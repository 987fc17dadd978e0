"""What the HTTP service reads and writes: the request bodies (pydantic) and the one error body.

Every 4xx and 5xx is :class:`ErrorBody`, ``{"error": CODE, "detail": MESSAGE, "errors": [...]}``,
built by :func:`error_response`; :data:`HTTP_CODES` names the code of each status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from dedup.io import KNOWN_FIELDS

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
