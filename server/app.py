"""`create_app(settings)`: the FastAPI application, built on demand with no import-time state."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import Any

import peewee as pw
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from protocol import ProtocolError, now_ms

from . import __version__
from .auth import KeyStore
from .db import DatabaseInfo, bind_models, connect_database, parse_database_url
from .hub import LiveHub, PgListener
from .identity import DatabaseIdentity, read_database_id
from .limits import BodySizeLimit
from .migrations import migrate
from .routes import build_router
from .service import NOTIFY_CHANNEL, SyncService
from .settings import Settings

log = logging.getLogger(__name__)


class ServerState:
    """Everything a running app holds; reachable as `app.state.sync`."""

    def __init__(self, settings: Settings, clock=now_ms) -> None:
        self.settings = settings
        self.db, self.db_info = connect_database(settings.database_url, settings.data_dir)
        self.models = bind_models(self.db)
        self.hub = LiveHub()
        self.service = SyncService(self.models, clock=clock, on_commit=self.hub.publish_threadsafe)
        self.keys = KeyStore(self.models, settings.api_secret_key)
        self.listener: PgListener | None = None
        self.started_at = now_ms()
        self.database_id: str | None = None  # read after the migrations (server/identity.py)

    @property
    def info(self) -> DatabaseInfo:
        return self.db_info


def create_app(settings: Settings | None = None, *, clock=now_ms) -> FastAPI:
    settings = settings or Settings.load()
    state = ServerState(settings, clock=clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await asyncio.to_thread(migrate, state.db)
        state.database_id = await asyncio.to_thread(read_database_id, state.db)
        state.hub.bind_loop(asyncio.get_running_loop())
        if state.db_info.backend == "postgresql":
            _, conninfo = parse_database_url(settings.database_url, settings.data_dir)
            conninfo["dbname"] = conninfo.pop("database")
            state.listener = PgListener(conninfo, NOTIFY_CHANNEL, state.hub)
            state.listener.start()
            # "Sync ready" must mean live: wait (bounded) until this process LISTENs, or a
            # commit made by another process right after start-up would go unannounced.
            if not await asyncio.to_thread(state.listener.connected.wait, 10):
                log.warning("live notifications: not listening yet; clients fall back to polling")
        try:
            yield
        finally:
            if state.listener:
                await asyncio.to_thread(state.listener.stop)
            state.db.close_all()

    app = FastAPI(
        title="PDV Sync server",
        version=__version__,
        lifespan=lifespan,
        docs_url=None if settings.production else "/docs",
        redoc_url=None,
        openapi_url=None if settings.production else "/openapi.json",
    )
    app.state.sync = state
    _install_error_handlers(app)
    origins = list(settings.cors_origins) or ([] if settings.production else ["*"])
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["content-type", "x-api-key"],
        )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(DatabaseIdentity, current=lambda: state.database_id)
    app.include_router(build_router(state))
    return app


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"success": False, "error": message, "code": code, **extra}, status_code=status
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProtocolError)
    async def protocol_error(request: Request, exc: ProtocolError):
        return JSONResponse(exc.to_json(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        details = [
            {"field": ".".join(str(p) for p in e.get("loc", ())[1:]), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        first = details[0] if details else {"field": "", "message": "invalid request"}
        return _error(
            422, "invalid_request", f"{first['field']}: {first['message']}", details=details
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        codes = {
            404: "not_found",
            405: "method_not_allowed",
            401: "unauthorized",
            413: "body_too_large",
        }
        return JSONResponse(
            {
                "success": False,
                "error": str(exc.detail),
                "code": codes.get(exc.status_code, "http_error"),
            },
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(pw.OperationalError)
    @app.exception_handler(pw.InterfaceError)
    async def database_down(request: Request, exc: Exception):
        log.error("database unavailable: %s", type(exc).__name__)
        return _error(503, "database_unavailable", "the database is unavailable; retry later")

    @app.exception_handler(pw.DataError)
    @app.exception_handler(OverflowError)
    async def out_of_range(request: Request, exc: Exception):
        # The database refused a value (e.g. a stock counter incremented past its column's
        # range); the transaction rolled back, so nothing was applied.
        log.warning(
            "value refused by the database on %s %s: %s",
            request.method,
            request.url.path,
            type(exc).__name__,
        )
        return _error(
            422,
            "value_out_of_range",
            "a value is out of the range the database can store; nothing was applied",
        )

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, exc: ClientDisconnect):
        # The client closed the connection before its body arrived (a PDV losing the network
        # mid-request): nothing was read, so nothing was applied. Not a server error.
        log.info("client disconnected during %s %s", request.method, request.url.path)
        return _error(
            400, "client_disconnected", "the request body did not arrive; nothing was applied"
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal_error", "internal error; the change was not applied")
