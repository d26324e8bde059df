"""One error shape for every failure of both apps, and its description in the OpenAPI
document.

Every exception becomes `{success: false, error, code, ...}`: a ProtocolError keeps its own
status (bad input, 4xx), FastAPI's own validation is 422 `invalid_request`, a database that
cannot be reached is 503, a value the database refuses is 422; anything unexpected is logged
and answered 500 (a bug to fix: the tests and the API fuzz assert it never happens).
"""

from __future__ import annotations

import logging
from typing import Any

import peewee as pw
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from protocol import ProtocolError
from protocol.errors import error_body

log = logging.getLogger("webapi")

_HTTP_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}
# What a failure did not do, at the end of its message (an app may say otherwise).
NOT_DONE = "the change was not applied"


class ErrorBody(BaseModel):
    """`{success: false, error, code}`; some codes add details (`invalid`, `resyncRequired`)."""

    model_config = ConfigDict(extra="allow")
    success: bool = False
    error: str
    code: str


ERROR_STATUSES: dict[int, str] = {
    400: "Malformed request: bad JSON, bad query parameter, lone surrogate",
    401: "Missing or invalid x-api-key",
    403: "Key of another machine or shop, or a forbidden origin/host",
    404: "Unknown table, route or record",
    409: "Conflict: resync required, database changed, newer edit",
    413: "Body over the size limit, or too many events in one request",
    422: "Invalid record or envelope; nothing was applied",
    503: "Database unavailable; retry later",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each status it really returns, with the error body."""
    return {
        status: {"model": ErrorBody, "description": ERROR_STATUSES[status]} for status in statuses
    }


def error_answer(
    exc: Exception, *, not_done: str = NOT_DONE, where: str = ""
) -> tuple[int, dict[str, Any]]:
    """The status and JSON body an exception is answered with: what the HTTP handlers
    answer, and what the server's live socket answers a push with (server/api/live_push.py).
    `not_done` ends every failure's message: what the failure did not do; `where` names the
    request in the logs."""
    if isinstance(exc, ProtocolError):
        return exc.status, exc.to_json()
    if isinstance(exc, RequestValidationError):
        details = [
            {"field": ".".join(str(p) for p in e.get("loc", ())[1:]), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        first = details[0] if details else {"field": "", "message": "invalid request"}
        return 422, error_body(
            "invalid_request", f"{first['field']}: {first['message']}", details=details
        )
    if isinstance(exc, StarletteHTTPException):
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return exc.status_code, error_body(code, str(exc.detail))
    if isinstance(exc, (pw.OperationalError, pw.InterfaceError)):
        log.error("database unavailable: %s", type(exc).__name__)
        return 503, error_body("database_unavailable", "the database is unavailable; retry later")
    if isinstance(exc, (pw.DataError, OverflowError)):
        # The database refused a value; the transaction rolled back, nothing was applied.
        log.warning("value refused by the database on %s: %s", where, type(exc).__name__)
        return 422, error_body(
            "value_out_of_range",
            f"a value is out of the range the database can store; {not_done}",
        )
    if isinstance(exc, ClientDisconnect):
        # The client closed the connection before its body arrived (a PDV losing the network
        # mid-request): nothing was read, so nothing was applied. Not a server error.
        log.info("client disconnected during %s", where)
        return 400, error_body(
            "client_disconnected", f"the request body did not arrive; {not_done}"
        )
    log.error("unexpected error on %s", where, exc_info=exc)
    return 500, error_body("internal_error", f"internal error; {not_done}")


# The exceptions `error_answer` tells apart; `Exception`: everything else (500).
_HANDLED: tuple[type[Exception], ...] = (
    ProtocolError,
    RequestValidationError,
    StarletteHTTPException,
    pw.OperationalError,
    pw.InterfaceError,
    pw.DataError,
    OverflowError,
    ClientDisconnect,
    Exception,
)


def install_error_handlers(app: FastAPI, *, not_done: str = NOT_DONE) -> None:
    """Every exception of `app`'s routes answered by `error_answer`."""

    async def answer(request: Request, exc: Exception) -> JSONResponse:
        status, body = error_answer(
            exc, not_done=not_done, where=f"{request.method} {request.url.path}"
        )
        headers = exc.headers if isinstance(exc, StarletteHTTPException) else None
        return JSONResponse(body, status_code=status, headers=headers)

    for kind in _HANDLED:
        app.add_exception_handler(kind, answer)
