"""The agent's own controls on the loopback API: health, sync status, "sync now", "reconcile
now" (or, with the seed's `clientSummary`, a front end's summary compared with this store)
and its history, the outbox, and the dead letters the manager retries or discards."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from protocol import ProtocolError, to_iso
from protocol.reconcile_messages import parse_reconcile
from protocol.vocabulary import DivergenceStrategy, choices
from webapi import ok

from ..store.outbox import OutboxEvent
from . import openapi as doc
from .deps import EngineDep, OptionalBody, StoreDep
from .shop import ShopDep, own_body

router = APIRouter()

_STRATEGIES = tuple(DivergenceStrategy)


@router.get("/health", **doc.health())
def health(engine: EngineDep) -> Response:
    return JSONResponse({"status": "ok", "role": "agent", "machineId": engine.config.machine_id})


@router.get("/api/sync/status", **doc.status())
def status(engine: EngineDep) -> Response:
    return ok(**engine.status())


@router.post("/api/sync/now", **doc.sync_now())
def sync_now(engine: EngineDep) -> Response:
    try:
        return ok(**engine.sync_now())
    except concurrent.futures.TimeoutError:
        # The cycle goes on in the engine; the caller is told it is still running, not that
        # the agent broke.
        raise ProtocolError(
            "sync_busy",
            "the sync cycle did not finish in time (a reconcile or a slow server); "
            "it goes on in the background",
            status=503,
        ) from None


@router.post("/api/sync/reconcile", **doc.reconcile())
async def reconcile(
    store: StoreDep, engine: EngineDep, shop: ShopDep, body: OptionalBody
) -> Response:
    own_body(engine, body)
    if isinstance(body, dict) and "clientSummary" in body:
        # The seed's client: its summary against this store, the local store standing in
        # for the server (logged here; nothing is repaired: the front end re-fetches).
        asked = parse_reconcile(body)
        compared = store.compare_summary(asked.summary, engine.now())
        return ok(**compared, tenantId=shop, timestamp=to_iso(engine.now()))
    # Otherwise `{"strategy": ...}` (optional) overrides the configured divergence strategy.
    strategy = body.get("strategy") if isinstance(body, dict) else None
    if strategy is not None and strategy not in _STRATEGIES:
        raise ProtocolError(
            "invalid_strategy", f"strategy: one of {choices(DivergenceStrategy)}", status=400
        )
    chosen = DivergenceStrategy(strategy) if strategy is not None else None
    result = await asyncio.wrap_future(engine.reconcile_async(chosen))
    return ok(**result)


@router.get("/api/sync/reconcile/history", **doc.reconcile_history())
def history(store: StoreDep, limit: int = 50) -> Response:
    return ok(data=store.reconcile_history(max(1, min(limit, 500))))


@router.get("/api/sync/outbox", **doc.outbox())
def outbox(store: StoreDep) -> Response:
    return ok(
        pending=[_event_view(e) for e in store.pending_events()],
        dead=[_event_view(e) for e in store.dead_letters()],
    )


@router.post("/api/sync/dead/{event_id}/retry", **doc.dead_letter("retry"))
def retry_dead(event_id: str, engine: EngineDep) -> Response:
    if not engine.retry_dead(event_id):
        raise ProtocolError("not_found", "no dead letter with this eventId", status=404)
    return ok()


@router.post("/api/sync/dead/{event_id}/discard", **doc.dead_letter("discard"))
def discard_dead(event_id: str, engine: EngineDep) -> Response:
    if not engine.discard_dead(event_id):
        raise ProtocolError("not_found", "no dead letter with this eventId", status=404)
    return ok()


def _event_view(e: OutboxEvent) -> dict[str, Any]:
    return {
        "eventId": e.event_id,
        "table": e.table,
        "id": e.record_id,
        "op": e.op,
        "createdAt": to_iso(e.created_at),
        "attempts": e.attempts,
        "lastError": e.last_error,
    }
