"""The seed's front-end helpers on the loopback API, served from the local store: the
bootstrap that fills a table empty here with a front end's records
(`POST /api/sync/bootstrap/{table}`), and the diagnostics of what each table holds
(`GET /api/sync/diagnostics`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response

from protocol import to_iso
from protocol.messages import parse_bootstrap, table_named
from protocol.vocabulary import LocalWriteStatus
from webapi import json_body, ok

from . import openapi as doc
from .deps import EngineDep, StoreDep
from .shop import ShopDep, own_items
from .writes import conflict, rejected

router = APIRouter()


@router.get("/api/sync/diagnostics", **doc.diagnostics())
def diagnostics(store: StoreDep, engine: EngineDep, shop: ShopDep) -> Response:
    return ok(tenantId=shop, diagnostics=store.diagnostics(), timestamp=to_iso(engine.now()))


@router.post("/api/sync/bootstrap/{table}", **doc.bootstrap())
def bootstrap(
    table: Annotated[str, Path(json_schema_extra=doc.table_param())],
    store: StoreDep,
    engine: EngineDep,
    shop: ShopDep,
    body: Any = Depends(json_body),
) -> Response:
    request = parse_bootstrap(table, body)
    own_items(engine, body, request.items)
    # Unlike a POS write (stamped on receipt), each record keeps its own `updatedAt` as
    # its edit time: a bootstrap carries old data, which must lose to newer edits.
    valid = [(i.event_id, i.change) for i in request.items if i.event_id and i.change]
    answer = store.bootstrap(table_named(table).name, valid, engine.now())
    if "reason" in answer:
        return ok(bootstrapped=False, reason=answer["reason"], timestamp=to_iso(engine.now()))
    if answer.get("processed"):
        engine.local_write_done()
    refused = [r for r in answer.get("results", []) if r["status"] == LocalWriteStatus.REJECTED]
    invalid = [rejected(i) for i in request.items if i.error is not None]
    return ok(
        bootstrapped=answer["bootstrapped"],
        processed=answer.get("processed", 0),
        conflicts=[conflict(r) for r in (*invalid, *refused)],
        timestamp=to_iso(engine.now()),
    )
