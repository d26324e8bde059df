"""`install_metrics(app)`: one registry per app, the scrape-time collector over the app's
database and hub, the timing middleware and the `/metrics` route."""

from __future__ import annotations

from fastapi import FastAPI

from ..api import pull, push
from .pdvs import PdvCollector
from .registry import ServerMetrics
from .route import router
from .timing import RequestTiming


def install_metrics(app: FastAPI) -> ServerMetrics:
    state = app.state.sync  # server.app.ServerState
    metrics = ServerMetrics()
    metrics.registry.register(
        PdvCollector(state.service, state.hub, state.settings.metrics.max_pdvs)
    )
    app.state.metrics = metrics
    app.add_middleware(
        RequestTiming,
        by_module={push.__name__: metrics.push_seconds, pull.__name__: metrics.pull_seconds},
    )
    app.include_router(router)
    return metrics
