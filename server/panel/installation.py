"""`install_panel(app)`: the panel on the server's app — templates, static files, routes."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from . import live, routes
from .auth import install_auth
from .rendering import STATIC_DIR, STATIC_PREFIX, build_environment


def install_panel(app: FastAPI) -> None:
    """Mount the panel under /painel (no OpenAPI: it is a web page, not the sync API)."""
    app.state.panel_templates = build_environment()
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="panel-static")
    app.state.panel_streams = live.PanelStreams()
    app.include_router(routes.router)
    app.include_router(live.router)
    install_auth(app)  # the login and logout routes, and the security headers
