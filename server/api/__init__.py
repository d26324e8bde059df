"""The server's HTTP and WebSocket routes, one module-level router per concept; thin
wrappers that parse, call the sync service and shape the answer (the seed's field names).

`include_routes(app)` wires them in the order their paths need: literal `/api/sync/...`
paths before `/api/sync/{table}`.
"""

from __future__ import annotations

from fastapi import FastAPI

from . import collections, health, live, pull, push, reconcile, reports, seed, stats
from .openapi import install_openapi


def include_routes(app: FastAPI) -> None:
    # The literal /sync/... paths (bootstrap, diagnostics, reconcile, batch, changes) before
    # the {table} routes: /sync/diagnostics is not a table.
    for module in (health, seed, reconcile, reports, push, pull, collections, stats, live):
        app.include_router(module.router)
    install_openapi(app)


__all__ = ["include_routes"]
