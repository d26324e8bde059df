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


def _error(status: int, code: str, message: str, **details: Any) -> JSONResponse:
    return JSONResponse(error_body(code, message, **details), status_code=status)


def install_error_handlers(app: FastAPI, *, not_done: str = "the change was not applied") -> None:
    """`not_done` ends every failure's message: what the failure did not do."""

    @app.exception_handler(ProtocolError)
    async def protocol_error(request: Request, exc: ProtocolError) -> JSONResponse:
        return JSONResponse(exc.to_json(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in e.get("loc", ())[1:]), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        first = details[0] if details else {"field": "", "message": "invalid request"}
        return _error(
            422, "invalid_request", f"{first['field']}: {first['message']}", details=details
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body(_HTTP_CODES.get(exc.status_code, "http_error"), str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(pw.OperationalError)
    @app.exception_handler(pw.InterfaceError)
    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        log.error("database unavailable: %s", type(exc).__name__)
        return _error(503, "database_unavailable", "the database is unavailable; retry later")

    @app.exception_handler(pw.DataError)
    @app.exception_handler(OverflowError)
    async def out_of_range(request: Request, exc: Exception) -> JSONResponse:
        # The database refused a value; the transaction rolled back, nothing was applied.
        log.warning(
            "value refused by the database on %s %s: %s",
            request.method,
            request.url.path,
            type(exc).__name__,
        )
        return _error(
            422,
            "value_out_of_range",
            f"a value is out of the range the database can store; {not_done}",
        )

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # The client closed the connection before its body arrived (a PDV losing the network
        # mid-request): nothing was read, so nothing was applied. Not a server error.
        log.info("client disconnected during %s %s", request.method, request.url.path)
        return _error(400, "client_disconnected", f"the request body did not arrive; {not_done}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal_error", f"internal error; {not_done}")
