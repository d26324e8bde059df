"""`GET /api/stats`: the sync counters, the known machines and the live connections."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from protocol import to_iso
from webapi import ok

from .deps import protected_router, state_of
from .openapi import PROTECTED, documented, stats_schema

router = protected_router()


@router.get("/stats", **documented(stats_schema(), *PROTECTED, summary="Counters and machines"))
def stats(request: Request) -> Response:
    state = state_of(request)
    return ok(
        **state.service.stats(),
        liveClients=state.hub.count,
        liveMachines=state.hub.machines(),
        startedAt=to_iso(state.started_at),
        database=state.db_info.backend,
    )
