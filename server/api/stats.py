"""`GET /api/stats`: one shop's sync counters, its known machines and its live connections."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request
from fastapi.responses import Response

from protocol import to_iso
from webapi import ok

from ..service import SyncService
from .deps import protected_router, state_of
from .openapi import PROTECTED, documented, stats_schema
from .shops import shop_service

router = protected_router()


@router.get("/stats", **documented(stats_schema(), *PROTECTED, summary="Counters and machines"))
def stats(request: Request, service: SyncService = Depends(shop_service)) -> Response:
    state = state_of(request)
    answer: dict[str, Any] = {**service.stats(), "tenantId": service.tenant}
    return ok(
        **answer,
        liveClients=state.hub.count(service.tenant),
        liveMachines=state.hub.machines(service.tenant),
        startedAt=to_iso(state.started_at),
        database=state.db_info.backend,
    )
