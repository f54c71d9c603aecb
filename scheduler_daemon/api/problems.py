"""Every error the API answers with, as RFC 9457 problem details (application/problem+json).

The verbs raise the same errors for every face; here each becomes a status (404 not found,
409 conflict, 412 stale version, 422 bad input, 503 database unavailable) and names the field
as a JSON body spells it. Nothing internal reaches a client: an unexpected error is logged
with its traceback and answered with a bare 500.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from scheduler_daemon.db.engine import database_condition
from scheduler_daemon.errors import (
    ConflictError,
    DatabaseUnavailableError,
    FieldError,
    InputError,
    NotFoundError,
    SchemaAheadError,
    SchemaOutOfDateError,
)

log = structlog.get_logger("scheduler_daemon.api")

MEDIA_TYPE = "application/problem+json"

# How a JSON body or query spells the fields the verbs name (scheduler_daemon.management);
# the others are spelled as the verbs spell them.
API_FIELDS: Mapping[str, str] = {"cron": "spec", "paused_until": "until"}

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid input",
    428: "Precondition required",
    500: "Internal error",
    503: "Service unavailable",
}


class ApiError(Exception):
    """An answer the API gives on purpose that no verb raises (auth, versions, sizes)."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})
        super().__init__(detail)


def problem(
    status: int,
    detail: str,
    *,
    request: Request | None = None,
    errors: Sequence[Mapping[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": None if request is None else request.url.path,
        "errors": [jsonable_encoder(dict(error)) for error in errors],
    }
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _safe(value: object) -> object:
    """A value the client sent, as JSON can carry it."""
    try:
        return jsonable_encoder(value)
    except (TypeError, ValueError):
        return repr(value)


def field_problem(exc: FieldError) -> dict[str, Any]:
    field = API_FIELDS.get(exc.field, exc.field)
    return {"field": field, "value": _safe(exc.value), "message": exc.message}


def _status(exc: InputError, request: Request) -> int:
    if isinstance(exc, NotFoundError):
        # What the path names is not found; a reference in the body or the query that names
        # nothing is a bad field of a request whose target exists.
        return 404 if str(exc.value) in request.path_params.values() else 422
    if isinstance(exc, ConflictError):
        return 409
    return 422


async def _input_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InputError)
    if isinstance(exc, FieldError):
        error = field_problem(exc)
        detail = f"{error['field']}: {exc.message}"
        return problem(_status(exc, request), detail, request=request, errors=[error])
    return problem(_status(exc, request), str(exc), request=request)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return problem(exc.status, exc.detail, request=request, headers=exc.headers)


def _location(loc: Sequence[int | str]) -> str:
    """``("body", "spec")`` → ``spec``; ``("query", "limit")`` → ``limit``."""
    parts = [str(part) for part in loc[1:]] if len(loc) > 1 else [str(part) for part in loc]
    return ".".join(parts) or "body"


# Pydantic's words for a body that is not a JSON object, and what to do about it instead.
_NOT_AN_OBJECT = {"model_attributes_type", "dict_type", "model_type"}


def _field_problem(error: Mapping[str, Any]) -> dict[str, Any]:
    loc = tuple(error.get("loc", ()))
    kind = error.get("type")
    if kind == "json_invalid":
        context = error.get("ctx") or {}
        reason = context.get("error", "not valid JSON")
        return {"field": "body", "value": None, "message": f"the body is not JSON: {reason}"}
    if loc == ("body",) and kind in _NOT_AN_OBJECT:
        message = "the body must be a JSON object, sent with Content-Type: application/json"
        return {"field": "body", "value": _safe(error.get("input")), "message": message}
    message = str(error.get("msg", "invalid"))
    if kind in {"datetime_from_date_parsing", "datetime_parsing", "datetime_type"}:
        message += "; write an ISO 8601 time with its UTC offset, e.g. 2027-03-14T09:00:00Z"
    return {"field": _location(loc), "value": _safe(error.get("input")), "message": message}


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_field_problem(error) for error in exc.errors()]
    detail = "; ".join(f"{error['field']}: {error['message']}" for error in errors)
    return problem(422, detail or "invalid request", request=request, errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), **_allowed_methods(request)}
    return problem(exc.status_code, str(exc.detail), request=request, headers=headers)


def _allowed_methods(request: Request) -> dict[str, str]:
    """Allow: the methods the document gives the request's path. FastAPI's own names only
    those of the first route whose path matched (POST alone for /schedules, which has GET)."""
    path = request.scope["path"].removeprefix(request.scope.get("root_path", ""))
    methods = {
        method.upper()
        for template, operations in request.app.openapi()["paths"].items()
        if compile_path(template)[0].match(path)
        for method in operations
    }
    return {"Allow": ", ".join(sorted(methods))} if methods else {}


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    return problem(503, str(exc), request=request, headers={"Retry-After": "5"})


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    condition = database_condition(exc)
    if condition is not None:
        detail = f"the database did not run the request: {condition}"
        return problem(503, detail, request=request, headers={"Retry-After": "5"})
    return await _unexpected(request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error", path=request.url.path, exc_info=exc)
    detail = "an internal error occurred; the server's log has the details"
    return problem(500, detail, request=request)


def install(app: FastAPI) -> None:
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    for unavailable in (DatabaseUnavailableError, SchemaOutOfDateError, SchemaAheadError):
        app.add_exception_handler(unavailable, _unavailable)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
