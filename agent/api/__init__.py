"""The loopback API the POS front end talks to, on 127.0.0.1 only.

The same routes and shapes as the server for data, served from the local store so the POS
keeps selling while the server or the network is down; plus the agent's own status,
"sync now" and "reconcile now". A write is answered only after it is committed locally.

Routers by concept: `control` (the agent's own routes), `watch` (the long-poll on the store's
changes), `seed` (the seed's bootstrap and diagnostics), `reads`, `writes`; `openapi`
describes them; `deps` hands them the store and the engine from the app's state; `shop`
refuses a front end naming another shop.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI

from webapi import install_error_handlers

from ..store.store import Store
from ..sync.engine import Engine
from . import control, openapi, reads, seed, watch, writes

MAX_BODY_BYTES = 5 * 1024 * 1024


def create_local_app(store: Store, engine: Engine) -> FastAPI:
    # /openapi.json stays served: the app listens on loopback only, behind LoopbackGuard.
    app = FastAPI(title="PDV Sync agent (loopback)", docs_url=None, redoc_url=None)
    install_error_handlers(app, not_done="nothing was stored")
    app.state.max_body_bytes = MAX_BODY_BYTES
    app.state.store = store
    app.state.engine = engine
    app.state.watch = watch.Waiters(store.changes)
    # Order matters: `/api/sync/{table}` (reads, writes) must not shadow `/api/sync/now`,
    # `/api/sync/reconcile`, `/api/sync/status` (control), `/api/sync/watch` nor
    # `/api/sync/diagnostics` (seed).
    app.include_router(control.router)
    app.include_router(watch.router)
    app.include_router(seed.router)
    app.include_router(reads.router)
    app.include_router(writes.router)
    openapi.install(app)
    _resolve_routes(app.router.routes)
    return app


def _resolve_routes(routes: Iterable[Any]) -> None:
    """FastAPI (0.16x) resolves an included router's routes (a pydantic adapter for each
    parameter) on the first request that reaches it: about 0.15 s that the POS's first
    sale would wait, in the middle of its request. Done here, once, at start. Where a
    FastAPI version has no such lazy step, nothing to do."""
    for route in routes:
        resolve = getattr(route, "effective_candidates", None)
        if callable(resolve):
            _resolve_routes(resolve())


__all__ = ["MAX_BODY_BYTES", "create_local_app"]
