"""One translation of errors to HTTP statuses, and one JSON shape for all of them.

``STATUS`` maps the error tree (``releasegate.errors``) to statuses as ``cli/_errors.py``
maps it to exit codes: the nearest class in an error's MRO decides. Every error body is
``{"ok": false, "status": N, "error": "message", "hint": "..." | null, "errors": [...]}``;
``errors`` lists the fields at fault (``{"field", "message", "index"}``), one per rejected
record or invalid field. The statuses:

- 400 a body that is not JSON, or bad input the services refuse (a too-short id, an
  unknown environment); 422 JSON of the wrong shape or types (a missing field, a string
  where a number belongs, a run record the ingest parser rejects) or a workflow, suite or
  policy document with a field at fault (named in ``errors``). Both write nothing.
- 401 no usable token, 403 a role too low (each audited as ``access.refused``).
- 404 an unknown workflow, version, decision or route; 405 a wrong method.
- 409 the answer is no (a promotion refused, a self-approval, a stale alias).
- 413 a body over the server's limit. 503 the store cannot be used (unreachable, busy,
  an outdated schema), or something the request needs is missing here (a model runtime
  that does not answer, an optional dependency, a pilot eval to plan from: the CLI's
  ``PrerequisiteError``, exit 2). 500 a bug: a generic message, the traceback only in the log.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from releasegate.errors import (
    ForbiddenError,
    InputError,
    ManifestError,
    NotFoundError,
    PolicyError,
    PrerequisiteError,
    RefusedError,
    ReleasegateError,
    SchemaOutdatedError,
    StoreError,
    SuiteError,
    UnauthorizedError,
    nearest,
)

log = logging.getLogger("releasegate.server")
INTERNAL = "internal error; the server log has the details"


class ValidationFailed(InputError):
    """A body of the right syntax but the wrong shape (422), with every field at fault."""

    def __init__(self, message: str, errors: list[Any], *, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.errors = errors


class BodyTooLarge(InputError):
    """A request body over the server's limit (413)."""


STATUS: dict[type[ReleasegateError], int] = {
    ValidationFailed: 422,
    ManifestError: 422,
    SuiteError: 422,
    PolicyError: 422,
    BodyTooLarge: 413,
    InputError: 400,
    NotFoundError: 404,
    RefusedError: 409,
    UnauthorizedError: 401,
    ForbiddenError: 403,
    StoreError: 503,
    SchemaOutdatedError: 503,
    PrerequisiteError: 503,
}


def status_of(exc: ReleasegateError) -> int:
    """The HTTP status ``exc`` answers with (``STATUS``, by its nearest class)."""
    return nearest(STATUS, exc, 500)


class FieldError(BaseModel):
    field: str | None = None
    message: str
    index: int | None = None


class ErrorBody(BaseModel):
    """The one shape of every error response."""

    ok: bool = False
    status: int
    error: str
    hint: str | None = None
    errors: list[FieldError] = []


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "Malformed JSON or bad input; nothing written"),
        (401, "No usable API token (audited)"),
        (403, "The token's role is too low (audited)"),
        (404, "Unknown workflow, version or environment"),
        (413, "Body over the server's limit; nothing written"),
        (422, "JSON of the wrong shape or types; nothing written"),
        (503, "The store cannot be used now, or a prerequisite is missing here"),
    )
}


def error_response(
    status: int, message: str, *, hint: str | None = None, errors: list[FieldError] | None = None
) -> JSONResponse:
    body = ErrorBody(status=status, error=message, hint=hint, errors=errors or [])
    return JSONResponse(body.model_dump(), status_code=status)


def error_body(exc: ReleasegateError) -> ErrorBody:
    """The error shape of a ``ReleasegateError``, by the one table (a bug: the generic
    message, logged)."""
    status = status_of(exc)
    if status == 500:
        log.error("releasegate server: %s", exc)
        return ErrorBody(status=500, error=INTERNAL)
    errors: list[FieldError] = []
    if isinstance(exc, ValidationFailed):
        errors = list(exc.errors)
    elif isinstance(exc, InputError) and exc.field:
        errors.append(FieldError(field=exc.field, message=exc.reason))
    return ErrorBody(status=status, error=exc.message, hint=exc.hint, errors=errors)


def respond(exc: ReleasegateError) -> JSONResponse:
    """The error response of a ``ReleasegateError``, by the one table."""
    body = error_body(exc)
    return JSONResponse(body.model_dump(), status_code=body.status)


def install(app: FastAPI) -> None:
    """Route every error through ``respond``: ours, FastAPI's validation, routing, bugs."""

    async def on_ours(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ReleasegateError)
        return respond(exc)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        found = [_field_error(e) for e in exc.errors()]
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return error_response(400, "malformed JSON body", errors=found)
        return error_response(
            422,
            f"{len(found)} invalid field(s): "
            + "; ".join(f"{e.field}: {e.message}" for e in found),
            errors=found,
        )

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        text = {404: "no such endpoint", 405: "method not allowed here"}.get(
            exc.status_code, str(exc.detail)
        )
        return error_response(exc.status_code, text)

    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        rid = getattr(request.state, "request_id", None)
        log.error(
            "releasegate server: unexpected error in %s %s (request %s)",
            request.method,
            request.url.path,
            rid,
            exc_info=exc,
        )
        return error_response(500, INTERNAL)

    app.add_exception_handler(ReleasegateError, on_ours)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_bug)


def _field_error(e: Any) -> FieldError:
    loc = [str(p) for p in e.get("loc", ()) if p != "body"]
    return FieldError(field=".".join(loc) or "body", message=str(e.get("msg", "invalid")))
