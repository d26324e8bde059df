"""The POS's writes on the loopback API: the seed's sync pushes (`/api/sync`, `/api/sync/batch`,
`/api/sync/{table}`) and the collections' create/update/delete. Each write is answered only
once it is committed locally (view row + outbox event), then the engine is woken to push it.
Writes naming another shop than the agent's are refused whole (agent/api/shop.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response

from protocol import ProtocolError, to_iso
from protocol.messages import (
    PushItem,
    parse_batch_push,
    parse_event_id,
    parse_sync_events,
    parse_table_push,
    table_named,
)
from protocol.records import parse_change
from protocol.schema import Table
from protocol.vocabulary import LocalWriteStatus
from webapi import json_body, ok

from ..store.store import Store
from ..sync.engine import Engine
from . import openapi as doc
from .deps import EngineDep, StoreDep
from .reads import COLLECTIONS, must_exist
from .shop import ShopDep, own_changes, own_items

# One write's answer: the store's `WriteResult`, or the refusal of an invalid item.
Result = Mapping[str, Any]

router = APIRouter()


def write_local(
    store: Store,
    engine: Engine,
    items: Sequence[PushItem],
    *,
    atomic: bool,
    group_id: str | None = None,
) -> list[Result]:
    """Valid items are committed (view + outbox); invalid ones are reported, not stored.
    `atomic`: one invalid item refuses them all (422 `invalid_batch`), nothing stored."""
    if atomic:
        bad = [i for i in items if i.error is not None]
        if bad:
            raise ProtocolError(
                "invalid_batch",
                "the batch has invalid events; nothing was stored",
                invalid=[rejected(i) for i in bad],
            )
    valid = [(i.event_id, i.change) for i in items if i.event_id and i.change is not None]
    for _, change in valid:
        # The POS runs on this machine's clock; the engine's corrected clock stamps edits.
        # (The seed's bootstrap, agent/api/seed.py, is the one write that keeps them.)
        change.edited_at = None
    stored = store.write(valid, engine.now(), group_id=group_id, atomic=atomic) if valid else []
    engine.local_write_done()
    by_event = {r["eventId"]: r for r in stored}
    return [
        by_event[i.event_id] if i.event_id and i.change is not None else rejected(i) for i in items
    ]


def _is_rejected(result: Result) -> bool:
    return bool(result["status"] == LocalWriteStatus.REJECTED)


# -- the seed's sync pushes ---------------------------------------------------------------


@router.post("/api/sync/batch", **doc.batch_push())
def batch(
    store: StoreDep, engine: EngineDep, _shop: ShopDep, body: Any = Depends(json_body)
) -> Response:
    _, items, _ = parse_batch_push(body)
    own_items(engine, body, items)
    results = write_local(store, engine, items, atomic=True, group_id=str(uuid.uuid4()))
    return ok(
        results=results,
        conflicts=[r for r in results if _is_rejected(r)],
        timestamp=to_iso(engine.now()),
    )


@router.post("/api/sync", **doc.single_push())
def single(
    store: StoreDep, engine: EngineDep, _shop: ShopDep, body: Any = Depends(json_body)
) -> Response:
    _, items = parse_sync_events(body)  # `data` one record or a list (the seed's client example)
    own_items(engine, body, items)
    if len(items) > 1:
        results = write_local(store, engine, items, atomic=True, group_id=str(uuid.uuid4()))
        return ok(
            synced_at=to_iso(engine.now()),
            event_ids=[i.event_id for i in items],
            synced=len(items),
            results=results,
        )
    item = items[0]
    result = write_local(store, engine, [item], atomic=True)[0]
    return ok(
        synced_at=to_iso(engine.now()),
        event_id=item.event_id,
        status=result["status"],
        result=result,
    )


@router.post("/api/sync/{table}", **doc.table_push())
def push(
    table: Annotated[str, Path(json_schema_extra=doc.table_param())],
    store: StoreDep,
    engine: EngineDep,
    _shop: ShopDep,
    body: Any = Depends(json_body),
) -> Response:
    request = parse_table_push(table, body)
    own_items(engine, body, request.items)
    results = write_local(store, engine, request.items, atomic=False)
    name = table_named(table).name
    written = {
        "conflicts": [conflict(r) for r in results if _is_rejected(r)],
        "results": results,
        "timestamp": to_iso(engine.now()),
    }
    if request.cursor is None:
        # The seed's client: the table by its `lastSync` (its own clock; without one, every
        # live row), as the server answers it, its own writes included.
        return ok(synced=store.since(name, request.last_sync), **written)
    ids = sorted({r["id"] for r in results if r.get("id") and not _is_rejected(r)})
    return ok(synced=store.get_many(name, ids), cursor=store.cursor, hasMore=False, **written)


# -- the collections: create, update, delete ------------------------------------------------


def _record_from(body: Any) -> tuple[dict[str, Any], str]:
    """`{record, eventId?}` or the record itself (its `eventId`/`machineId` set aside)."""
    if not isinstance(body, dict):
        raise ProtocolError("invalid_body", "body: expected a JSON object")
    record = (
        dict(body["record"])
        if isinstance(body.get("record"), dict)
        else {k: v for k, v in body.items() if k not in ("eventId", "machineId")}
    )
    event_id = (
        parse_event_id(body["eventId"]) if body.get("eventId") is not None else str(uuid.uuid4())
    )
    return record, event_id


def _write_one(
    store: Store, engine: Engine, table: Table, record: dict[str, Any], event_id: str
) -> Response:
    change = parse_change(table, record)
    own_changes(engine, [change])
    item = PushItem(event_id, change, record_id=change.id, table=table.name)
    result = write_local(store, engine, [item], atomic=True)[0]
    return ok(result=result, record=store.get(table.name, change.id))


def _collection_routes(collection: str) -> None:
    table = table_named(collection)

    @router.post(f"/api/{collection}", **doc.create(table))
    def create(
        store: StoreDep, engine: EngineDep, _shop: ShopDep, body: Any = Depends(json_body)
    ) -> Response:
        record, event_id = _record_from(body)
        record.setdefault("id", str(uuid.uuid4()))
        return _write_one(store, engine, table, record, event_id)

    def update(
        row_id: str,
        store: StoreDep,
        engine: EngineDep,
        _shop: ShopDep,
        body: Any = Depends(json_body),
    ) -> Response:
        record, event_id = _record_from(body)
        if record.get("id") is not None and str(record["id"]) != row_id:
            raise ProtocolError("id_mismatch", "id in the body differs from the URL", status=400)
        must_exist(store, table, collection, row_id)
        record["id"] = row_id
        return _write_one(store, engine, table, record, event_id)

    # PUT and PATCH are the same write; two routes, so each method has its own OpenAPI
    # operation (one route with both methods would give them one operationId).
    router.put(f"/api/{collection}/{{row_id}}", **doc.update(table))(update)
    router.patch(f"/api/{collection}/{{row_id}}", **doc.update(table))(update)

    @router.delete(f"/api/{collection}/{{row_id}}", **doc.delete(table))
    def delete(
        row_id: str,
        store: StoreDep,
        engine: EngineDep,
        _shop: ShopDep,
        eventId: str | None = None,
    ) -> Response:
        must_exist(store, table, collection, row_id)
        event_id = parse_event_id(eventId) if eventId else str(uuid.uuid4())
        return _write_one(store, engine, table, {"id": row_id, "_op": "delete"}, event_id)


for _collection in COLLECTIONS:
    _collection_routes(_collection)


def rejected(item: PushItem) -> dict[str, Any]:
    """An item refused before it reached the store (invalid), as a write result."""
    assert item.error is not None
    return {
        "eventId": item.event_id,
        "id": item.record_id,
        "table": item.table,
        "status": LocalWriteStatus.REJECTED,
        "reason": item.error.code,
        "error": item.error.message,
    }


def conflict(result: Result) -> dict[str, Any]:
    """A refused write in the seed's words (`resolution: rejected`)."""
    return {**{k: v for k, v in result.items() if k != "status"}, "resolution": result["status"]}
