"""Every error as an RFC 9457 `application/problem+json` answer, registered in one place.

A problem names the bad field (a path into the request body, or a parameter's name) and, in a
batch, the index of the feature at fault:

    {"type": "urn:truce:problem:invalid-geometry", "title": "Invalid geometry", "status": 422,
     "detail": "features/3/geometry/coordinates: latitude 95.2 is out of range [-90, 90]",
     "instance": "/reports", "field": "features/3/geometry/coordinates", "index": 3}

Status codes: 400 for a request that cannot be read (not JSON, a bad parameter or cursor), 422 for
a body that is JSON but not acceptable, 401/403 for keys and roles, 404, 409, 413 for bodies over
the limits, 415 for a body that is not JSON (by its Content-Type) or in a coding other than gzip.
When the storage fails, the answer names the cause (its `cause` member) and says when
to retry (`Retry-After`): 507 when the disk is full, 503 when the database is read-only, locked
or failing. Anything else is a bug: a 500 problem that says nothing about the inside, while the
traceback goes to the server's log.

Every 5xx problem and every 413 carries `Connection: close`: the server closes the connection
cleanly after the answer (rather than a client reusing a connection whose request body was not
read, or retrying at once on a server that cannot serve it).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.api.responses import ProblemResponse, dumps
from app.errors import (
    Forbidden,
    InvalidInput,
    InvalidJSON,
    InvalidParameter,
    PayloadTooLarge,
    TruceError,
    Unauthorized,
    UnknownZone,
    UnsupportedMediaType,
)
from app.store import BadCursor, Conflict, NotFound, StoreError
from app.store.base import StorageFull, Unavailable

__all__ = [
    "STATUS",
    "closing_headers",
    "problem",
    "problem_body",
    "register_error_handlers",
    "status_of",
]

log = logging.getLogger("truce.api")

#: Status code per error class; a class not listed takes the code of its nearest listed base.
STATUS: dict[type[Exception], int] = {
    InvalidJSON: 400,
    InvalidParameter: 400,
    BadCursor: 400,
    InvalidInput: 422,
    Unauthorized: 401,
    Forbidden: 403,
    UnknownZone: 404,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    StorageFull: 507,
    Unavailable: 503,
    StoreError: 500,
    TruceError: 500,
}

_PROBLEM_BASE = "urn:truce:problem:"
AUTHENTICATE = 'ApiKey header="X-API-Key"'


def status_of(exc: Exception) -> int:
    """The status code for an error, by its class's nearest entry in `STATUS`."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def _slug(name: str) -> str:
    """ "InvalidGeometry" -> "invalid-geometry", "InvalidJSON" -> "invalid-json"."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", name).lower()


def problem_body(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    type_: str = "about:blank",
    instance: str | None = None,
    field: str | None = None,
    index: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The members of a problem; `title` defaults to the status phrase."""
    return {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail or HTTPStatus(status).description,
        "instance": instance,
        "field": field,
        "index": index,
        **extra,
    }


def problem(
    status: int, *, headers: dict[str, str] | None = None, **members: Any
) -> ProblemResponse:
    """A problem+json response (see `problem_body` for the members)."""
    return ProblemResponse(dumps(problem_body(status, **members)), status, headers=headers)


def truce_problem(exc: TruceError, instance: str | None) -> ProblemResponse:
    """The answer to a `TruceError`."""
    status = status_of(exc)
    headers = closing_headers(status)
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = AUTHENTICATE
    if status == 500:
        # An error class with no status of its own is a bug: say nothing of the inside.
        log.error("unexpected %s: %s", type(exc).__name__, exc.detail)
        return problem(status, headers=headers, instance=instance)
    extra: dict[str, Any] = {}
    if isinstance(exc, Unavailable):
        headers["Retry-After"] = str(exc.retry_after)
        extra["cause"] = exc.cause
        log.warning("storage unavailable (%s) on %s: %s", exc.cause, instance, exc.detail)
    return problem(
        status,
        headers=headers,
        type_=getattr(exc, "problem_type", None) or _PROBLEM_BASE + _slug(type(exc).__name__),
        title=exc.title,
        detail=exc.detail,
        instance=instance,
        field=exc.field,
        index=exc.index,
        **extra,
    )


def closing_headers(status: int) -> dict[str, str]:
    """`Connection: close` for a 5xx or a 413 answer (see the module docstring), else nothing."""
    return {"Connection": "close"} if status >= 500 or status == 413 else {}


def _field(loc: Sequence[Any]) -> str:
    """FastAPI's error location ("query", "limit") as a field name ("limit")."""
    parts = [str(part) for part in loc]
    if parts and parts[0] in ("query", "path", "header", "cookie", "body"):
        parts = parts[1:]
    return "/".join(parts)


async def _on_truce_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TruceError)
    return truce_problem(exc, request.url.path)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    # Pydantic's complaints about parameters: the request cannot be read, hence 400.
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _field(error.get("loc", ())), "detail": str(error.get("msg", "invalid"))}
        for error in exc.errors()
    ]
    first = errors[0] if errors else {"field": "", "detail": "invalid request"}
    return problem(
        400,
        type_=_PROBLEM_BASE + "invalid-parameter",
        title=InvalidParameter.title,
        detail=f"{first['field']}: {first['detail']}" if first["field"] else first["detail"],
        instance=request.url.path,
        field=first["field"] or None,
        errors=errors,
    )


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail
    if exc.status_code == 404 and detail == HTTPStatus.NOT_FOUND.phrase:
        detail = f"no such resource: {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return problem(
        exc.status_code,
        headers=dict(exc.headers or {}),
        detail=str(detail),
        instance=request.url.path,
    )


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # Starlette logs the traceback after this answer is sent; the client learns nothing inside.
    return problem(500, headers=closing_headers(500), instance=request.url.path)


def register_error_handlers(app: FastAPI) -> None:
    """Answer every error with problem+json."""
    app.add_exception_handler(TruceError, _on_truce_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
