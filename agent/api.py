"""The loopback API the POS front end talks to, on 127.0.0.1 only.

The same routes and shapes as the server for data, served from the local store so the POS
keeps selling while the server or the network is down; plus the agent's own status,
"sync now" and "reconcile now". A write is answered only after it is committed locally.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from protocol import ProtocolError, parse_ms, to_iso
from protocol.envelope import decode_body
from protocol.messages import (
    PushItem,
    parse_batch_push,
    parse_event_id,
    parse_sync_events,
    parse_table_push,
    table_named,
)
from protocol.records import parse_change, parse_id
from webapi import install_error_handlers, json_body, ok

from .store.store import Store
from .sync.engine import STRATEGIES, Engine

MAX_BODY_BYTES = 5 * 1024 * 1024
COLLECTIONS = ("products", "orders", "order_items", "supplies")


def create_local_app(store: Store, engine: Engine) -> FastAPI:
    app = FastAPI(title="PDV Sync agent (loopback)", docs_url=None, redoc_url=None)
    install_error_handlers(app, not_done="nothing was stored")
    app.state.max_body_bytes = MAX_BODY_BYTES
    api = APIRouter()

    def write(
        items: list[PushItem], *, atomic: bool, group_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Valid items are committed (view + outbox); invalid ones are reported, not stored."""
        if atomic:
            bad = [i for i in items if i.error is not None]
            if bad:
                raise ProtocolError(
                    "invalid_batch",
                    "the batch has invalid events; nothing was stored",
                    invalid=[_rejected(i) for i in bad],
                )
        valid = [(i.event_id, i.change) for i in items if i.change is not None]
        for _, change in valid:
            # The POS runs on this machine's clock; the engine's corrected clock stamps edits.
            change.edited_at = None
        stored = store.write(valid, engine.now(), group_id=group_id, atomic=atomic) if valid else []
        engine.local_write_done()
        by_event = {r["eventId"]: r for r in stored}
        return [by_event[i.event_id] if i.change is not None else _rejected(i) for i in items]

    @api.get("/health")
    def health() -> Response:
        return JSONResponse(
            {"status": "ok", "role": "agent", "machineId": engine.config.machine_id}
        )

    @api.post("/api/sync/batch")
    def batch(body: Any = Depends(json_body)) -> Response:
        _, items, _ = parse_batch_push(body)
        results = write(items, atomic=True, group_id=str(uuid.uuid4()))
        return ok(
            results=results,
            conflicts=[r for r in results if r["status"] == "rejected"],
            timestamp=to_iso(engine.now()),
        )

    @api.post("/api/sync")
    def single(body: Any = Depends(json_body)) -> Response:
        _, items = parse_sync_events(
            body
        )  # `data` one record or a list (the seed's client example)
        if len(items) > 1:
            results = write(items, atomic=True, group_id=str(uuid.uuid4()))
            return ok(
                synced_at=to_iso(engine.now()),
                event_ids=[i.event_id for i in items],
                synced=len(items),
                results=results,
            )
        item = items[0]
        result = write([item], atomic=True)[0]
        return ok(
            synced_at=to_iso(engine.now()),
            event_id=item.event_id,
            status=result["status"],
            result=result,
        )

    @api.get("/api/sync/status")
    def status() -> Response:
        return ok(**engine.status())

    @api.post("/api/sync/now")
    def sync_now() -> Response:
        return ok(**engine.sync_now())

    @api.post("/api/sync/reconcile")
    async def reconcile(request: Request) -> Response:
        raw = await request.body()
        strategy = None
        if raw.strip():
            body = decode_body(raw, max_bytes=MAX_BODY_BYTES)
            strategy = body.get("strategy") if isinstance(body, dict) else None
            if strategy is not None and strategy not in STRATEGIES:
                raise ProtocolError(
                    "invalid_strategy", f"strategy: one of {', '.join(STRATEGIES)}", status=400
                )
        future = engine.reconcile_async(strategy)
        import asyncio

        result = await asyncio.wrap_future(future)
        return ok(**result)

    @api.get("/api/sync/reconcile/history")
    def history(limit: int = 50) -> Response:
        return ok(data=store.reconcile_history(max(1, min(limit, 500))))

    @api.get("/api/sync/outbox")
    def outbox() -> Response:
        def view(e):
            return {
                "eventId": e.event_id,
                "table": e.table,
                "id": e.record_id,
                "op": e.op,
                "createdAt": to_iso(e.created_at),
                "attempts": e.attempts,
                "lastError": e.last_error,
            }

        return ok(
            pending=[view(e) for e in store.pending_events()],
            dead=[view(e) for e in store.dead_letters()],
        )

    @api.post("/api/sync/dead/{event_id}/retry")
    def retry_dead(event_id: str) -> Response:
        if not engine.retry_dead(event_id):
            raise ProtocolError("not_found", "no dead letter with this eventId", status=404)
        return ok()

    @api.post("/api/sync/dead/{event_id}/discard")
    def discard_dead(event_id: str) -> Response:
        if not engine.discard_dead(event_id):
            raise ProtocolError("not_found", "no dead letter with this eventId", status=404)
        return ok()

    @api.post("/api/sync/{table}")
    def push(table: str, body: Any = Depends(json_body)) -> Response:
        _, items, _ = parse_table_push(table, body)
        results = write(items, atomic=False)
        name = table_named(table).name
        ids = sorted({r["id"] for r in results if r.get("id") and r["status"] != "rejected"})
        synced = store.get_many(name, ids)
        return ok(
            synced=synced,
            conflicts=[_conflict(r) for r in results if r["status"] == "rejected"],
            results=results,
            cursor=store.cursor,
            hasMore=False,
            timestamp=to_iso(engine.now()),
        )

    @api.get("/api/products")
    def products() -> Response:
        return ok(products=store.list("products"))

    @api.get("/api/supplies")
    def supplies() -> Response:
        return ok(supplies=store.list("supplies"))

    @api.get("/api/order_items")
    def order_items(order_id: str | None = None) -> Response:
        items = store.list("order_items")
        return ok(order_items=[i for i in items if order_id is None or i["order_id"] == order_id])

    @api.get("/api/orders")
    def orders(start_date: str | None = None, end_date: str | None = None) -> Response:
        lo, hi = _day_range(start_date, end_date)
        found = store.list("orders", created_from=lo, created_to=hi)
        return ok(orders=found, total=len(found))

    for collection in COLLECTIONS:
        _collection_routes(api, collection, store, write)

    app.include_router(api)
    return app


def _collection_routes(api: APIRouter, collection: str, store: Store, write) -> None:
    table = table_named(collection)

    def record_from(body: Any) -> tuple[dict[str, Any], str]:
        if not isinstance(body, dict):
            raise ProtocolError("invalid_body", "body: expected a JSON object")
        record = (
            dict(body["record"])
            if isinstance(body.get("record"), dict)
            else {k: v for k, v in body.items() if k not in ("eventId", "machineId")}
        )
        event_id = (
            parse_event_id(body["eventId"])
            if body.get("eventId") is not None
            else str(uuid.uuid4())
        )
        return record, event_id

    def one(record: dict[str, Any], event_id: str) -> Response:
        change = parse_change(table, record)
        result = write(
            [PushItem(event_id, change, record_id=change.id, table=table.name)], atomic=True
        )[0]
        return ok(result=result, record=store.get(table.name, change.id))

    def must_exist(row_id: str) -> None:
        if store.get(table.name, parse_id(row_id)) is None:
            raise ProtocolError("not_found", f"{collection}/{row_id[:60]} not found", status=404)

    @api.get(f"/api/{collection}/{{row_id}}")
    def get_one(row_id: str) -> Response:
        must_exist(row_id)
        return ok(record=store.get(table.name, row_id))

    @api.post(f"/api/{collection}")
    def create(body: Any = Depends(json_body)) -> Response:
        record, event_id = record_from(body)
        record.setdefault("id", str(uuid.uuid4()))
        return one(record, event_id)

    @api.api_route(f"/api/{collection}/{{row_id}}", methods=["PUT", "PATCH"])
    def update(row_id: str, body: Any = Depends(json_body)) -> Response:
        record, event_id = record_from(body)
        if record.get("id") is not None and str(record["id"]) != row_id:
            raise ProtocolError("id_mismatch", "id in the body differs from the URL", status=400)
        must_exist(row_id)
        record["id"] = row_id
        return one(record, event_id)

    @api.delete(f"/api/{collection}/{{row_id}}")
    def delete(row_id: str, eventId: str | None = None) -> Response:
        must_exist(row_id)
        return one(
            {"id": row_id, "_op": "delete"},
            parse_event_id(eventId) if eventId else str(uuid.uuid4()),
        )


def _rejected(item: PushItem) -> dict[str, Any]:
    assert item.error is not None
    return {
        "eventId": item.event_id,
        "id": item.record_id,
        "table": item.table,
        "status": "rejected",
        "reason": item.error.code,
        "error": item.error.message,
    }


def _conflict(result: dict[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in result.items() if k != "status"}, "resolution": result["status"]}


def _day_range(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    def bound(text: str | None, suffix: str, name: str) -> int | None:
        if not text:
            return None
        text = text.strip()
        return parse_ms(text + suffix if len(text) == 10 else text, name)

    lo = bound(start, "T00:00:00Z", "start_date")
    hi = bound(end, "T23:59:59.999Z", "end_date")
    if lo is not None and hi is not None and lo > hi:
        raise ProtocolError("invalid_date_range", "start_date is after end_date", status=400)
    return lo, hi
