"""`create_app(settings)`: the FastAPI application, built on demand with no import-time state."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from protocol import now_ms
from protocol.tenancy import TENANT_HEADER
from webapi import install_error_handlers

from . import __version__
from .api import include_routes
from .auth import KeyStore
from .commands import COMMANDS_CHANNEL
from .db import DatabaseInfo, bind_models, connect_database, parse_database_url
from .hub import LiveHub, PgListener
from .identity import DatabaseIdentity, read_database_id
from .limits import BodySizeLimit
from .metrics.install import install_metrics
from .migrations import migrate
from .panel.installation import install_panel
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
        self.service = SyncService(
            self.models,
            clock=clock,
            on_commit=self.hub.publish_threadsafe,
            on_command=self.hub.notice_threadsafe,
        )
        self.hub.on_delivered = lambda tenant, ids: self.service.scoped(tenant).mark_delivered(ids)
        self.hub.on_socket = lambda tenant, machine, opened: self.service.scoped(
            tenant
        ).socket_changed(machine, opened)
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
            state.listener = PgListener(
                conninfo, NOTIFY_CHANNEL, state.hub, commands_channel=COMMANDS_CHANNEL
            )
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
    install_error_handlers(app)
    app.state.max_body_bytes = settings.max_body_bytes
    origins = list(settings.cors_origins) or ([] if settings.production else ["*"])
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["content-type", "x-api-key", TENANT_HEADER],
        )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(DatabaseIdentity, current=lambda: state.database_id)
    include_routes(app)
    install_metrics(app)  # /metrics, and the push/pull timing middleware
    install_panel(app)  # /painel: the manager's pages
    return app
