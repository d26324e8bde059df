"""`GET /health`: open to anyone (no key), says whether the database answers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from protocol import jsonschema as js
from protocol import now_ms, to_iso
from protocol.version import __version__

from .deps import state_of
from .openapi import health_schema

router = APIRouter()


@router.get(
    "/health",
    response_class=JSONResponse,
    responses={
        200: js.json_content(health_schema(up=True)),
        503: js.json_content(health_schema(up=False), "The database does not answer"),
    },
)
def health(request: Request) -> Response:
    state = state_of(request)
    info = {"database": state.db_info.backend, "version": __version__}
    try:
        state.service.ping()
    except Exception as exc:  # any failure to reach the database is "unavailable"
        return JSONResponse(
            {
                "status": "error",
                **info,
                "databaseConnected": False,
                "error": type(exc).__name__,
            },
            status_code=503,
        )
    return JSONResponse(
        {"status": "ok", **info, "databaseConnected": True, "timestamp": to_iso(now_ms())}
    )
