"""HTTP and WebSocket routes: thin wrappers that parse, call the service and shape the reply.

Response shapes and field names follow the seed's setup guide.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, WebSocket
from fastapi.responses import JSONResponse, Response

from protocol import TABLES, ProtocolError, now_ms, parse_ms, to_iso
from protocol.messages import (
    PushItem,
    parse_batch_push,
    parse_cursor,
    parse_event_id,
    parse_machine_id,
    parse_reconcile,
    parse_sync_events,
    parse_table_push,
    table_named,
)
from protocol.records import parse_change, parse_id
from webapi import WireResponse, json_body, ok

log = logging.getLogger(__name__)

# How often a live socket's key is checked again (revocations reach sockets within this
# plus the key cache's 3 s).
KEY_RECHECK_SECONDS = 5.0


# The seed's collection routes and the table each one serves.
COLLECTIONS = {
    "products": "products",
    "orders": "orders",
    "supplies": "supplies",
    "order_items": "order_items",
}


def build_router(state) -> APIRouter:  # state: server.app.ServerState
    service = state.service

    def require_key(request: Request) -> None:
        principal = state.keys.verify(request.headers.get("x-api-key"))
        if principal is None:
            raise ProtocolError("unauthorized", "missing or invalid x-api-key", status=401)
        request.state.principal = principal

    async def machine_binding(request: Request) -> None:
        """A machine key speaks only for its machine: its stats, cursor and tombstone
        collection are that machine's, so it may not push or pull as another one."""
        principal = getattr(request.state, "principal", None)
        if principal is None or principal.kind != "machine":
            return
        claimed = {request.query_params.get("machineId")}
        if request.method in ("POST", "PUT", "PATCH"):
            try:  # the route parses (and reports) the body itself; only machineId matters here
                body = json.loads(await request.body() or b"null")
            except ValueError:
                body = None
            if isinstance(body, dict):
                claimed.add(body.get("machineId"))
        claimed -= {None, ""}
        if any(str(c) != principal.machine_id for c in claimed):
            raise ProtocolError(
                "machine_key_mismatch",
                f"this key belongs to machine {principal.machine_id}; machineId must match",
                status=403,
            )

    public = APIRouter()
    api = APIRouter(prefix="/api", dependencies=[Depends(require_key), Depends(machine_binding)])

    @public.get("/health")
    def health() -> Response:
        info = {"database": state.db_info.backend, "version": _version()}
        try:
            service.ping()
        except Exception as exc:  # any failure to reach the database is "unavailable"
            return JSONResponse(
                {
                    "status": "error",
                    **info,
                    "databaseConnected": False,
                    "error": type(exc).__name__,
                },
                status_code=503,
            )
        return JSONResponse(
            {"status": "ok", **info, "databaseConnected": True, "timestamp": to_iso(now_ms())}
        )

    # -- the seed's single event ---------------------------------------------------------

    @api.post("/sync")
    def sync_single(body: Any = Depends(json_body)) -> Response:
        # `data` is one record, or a list (the seed's client example): one event per record,
        # applied all or nothing, event ids derived from `event_id` (protocol.list_event_id).
        machine_id, items = parse_sync_events(body)
        results, head = service.push(machine_id, items, atomic_batch=len(items) > 1)
        refused = [r for r in results if r["status"] == "rejected"]
        if refused:
            raise ProtocolError(
                refused[0].get("reason", "rejected"), refused[0].get("error", "rejected")
            )
        if len(items) > 1:
            return ok(
                synced_at=to_iso(now_ms()),
                event_ids=[i.event_id for i in items],
                synced=len(items),
                duplicate=all(r.get("duplicate") for r in results),
                results=results,
                cursor=head,
            )
        item, result = items[0], results[0]
        return ok(
            synced_at=to_iso(now_ms()),
            event_id=item.event_id,
            status=result["status"],
            duplicate=bool(result.get("duplicate")),
            result=result,
            cursor=head,
        )

    # -- atomic multi-table batch ------------------------------------------------------

    @api.post("/sync/batch")
    def sync_batch(body: Any = Depends(json_body)) -> Response:
        machine_id, items, cursor = parse_batch_push(body)
        if cursor:
            service.check_cursor(cursor, machine_id)  # before applying anything
        results, head = service.push(machine_id, items, atomic_batch=True)
        reply: dict[str, Any] = {
            "results": results,
            "conflicts": [_conflict(r) for r in results if r["status"] != "applied"],
            "cursor": head,
            "timestamp": to_iso(now_ms()),
        }
        if cursor is not None:
            reply["changes"] = service.changes(cursor, machine_id=machine_id)
        return ok(**reply)

    @api.get("/sync/changes")
    def all_changes(
        since: str = "0", limit: int = Query(500, ge=1), machineId: str | None = None
    ) -> Response:
        page = service.changes(
            parse_cursor(since, "since") or 0, limit, machine_id=parse_machine_id(machineId)
        )
        return ok(**page, timestamp=to_iso(now_ms()))

    # -- reconcile ---------------------------------------------------------------------

    @api.get("/sync/reconcile")
    def reconcile_summary() -> Response:
        summary, head, _ = service.summary()
        return ok(serverSummary=summary, cursor=head, timestamp=to_iso(now_ms()))

    @api.post("/sync/reconcile")
    def reconcile(body: Any = Depends(json_body)) -> Response:
        machine_id, client_summary, cursor = parse_reconcile(body)
        result = service.reconcile(machine_id, client_summary, cursor)
        return ok(**result, timestamp=to_iso(now_ms()))

    @api.get("/sync/reconcile/history")
    def reconcile_history(
        limit: int = Query(50, ge=1, le=1000),
        machineId: str | None = None,
        onlyInconsistent: bool = False,
    ) -> Response:
        data = service.history(
            limit=limit, machine_id=parse_machine_id(machineId), only_inconsistent=onlyInconsistent
        )
        return ok(count=len(data), data=data)

    @api.get("/sync/reconcile/buckets")
    def reconcile_buckets(table: str) -> Response:
        return ok(**service.buckets(table_named(table).name))

    @api.get("/sync/reconcile/rows")
    def reconcile_rows(table: str, buckets: str) -> Response:
        try:
            wanted = sorted({int(b) for b in buckets.split(",") if b.strip()})
        except ValueError:
            raise ProtocolError(
                "invalid_buckets", "buckets: expected comma-separated numbers", status=400
            ) from None
        if not wanted or any(not 0 <= b < 256 for b in wanted):
            raise ProtocolError("invalid_buckets", "buckets: numbers from 0 to 255", status=400)
        return ok(**service.bucket_rows(table_named(table).name, wanted))

    # -- per-table push and pull -------------------------------------------------------

    @api.get("/sync/{table}")
    def pull(
        table: str, since: str = "0", limit: int = Query(500, ge=1), machineId: str | None = None
    ) -> Response:
        name = table_named(table).name
        page = service.pull(
            name, parse_cursor(since, "since") or 0, limit, machine_id=parse_machine_id(machineId)
        )
        return ok(**page, timestamp=to_iso(now_ms()))

    @api.post("/sync/{table}")
    def push(table: str, body: Any = Depends(json_body)) -> Response:
        machine_id, items, cursor = parse_table_push(table, body)
        if cursor:
            service.check_cursor(cursor, machine_id)  # before applying anything
        results, head, page = service.push_and_pull(
            table_named(table).name, machine_id, items, cursor or 0
        )
        return ok(
            synced=page["synced"],
            conflicts=[_conflict(r) for r in results if r["status"] != "applied"],
            results=results,
            cursor=page["cursor"],
            hasMore=page["hasMore"],
            timestamp=to_iso(now_ms()),
        )

    # -- the seed's collection reads, and writes through the same service -------------

    @api.get("/products")
    def list_products() -> Response:
        return ok(products=service.list_live("products"))

    @api.get("/supplies")
    def list_supplies() -> Response:
        return ok(supplies=service.list_live("supplies"))

    @api.get("/order_items")
    def list_order_items(order_id: str | None = None) -> Response:
        items = service.list_live("order_items")
        if order_id is not None:
            items = [i for i in items if i["order_id"] == order_id]
        return ok(order_items=items)

    @api.get("/orders")
    def list_orders(start_date: str | None = None, end_date: str | None = None) -> Response:
        lo, hi = parse_day_range(start_date, end_date)
        orders = service.list_live("orders", created_from=lo, created_to=hi)
        return ok(orders=orders, total=len(orders))

    def _write(
        collection: str, record: dict[str, Any], event_id: str | None, machine_id: str | None
    ) -> Response:
        table = table_named(COLLECTIONS[collection])
        change = parse_change(table, record)
        item = PushItem(
            event_id or str(uuid.uuid4()), change, record_id=change.id, table=table.name
        )
        results, head = service.push(machine_id, [item])
        result = results[0]
        if result["status"] == "rejected":
            raise ProtocolError(
                result.get("reason", "rejected"),
                result.get("error", "rejected"),
                status=404 if result.get("reason") == "unknown_record" else 422,
            )
        if result["status"] == "skipped_stale":
            return WireResponse(
                {
                    "success": False,
                    **_conflict(result),
                    "code": "conflict",
                    "error": "a newer edit of this record exists",
                },
                status_code=409,
            )
        current = service.get_live(table.name, change.id)
        return ok(result=result, cursor=head, record=current)

    def _record_from(body: Any) -> tuple[dict[str, Any], str | None, str | None]:
        if not isinstance(body, dict):
            raise ProtocolError("invalid_body", "body: expected a JSON object")
        if isinstance(body.get("record"), dict):
            record = dict(body["record"])
        else:
            record = {k: v for k, v in body.items() if k not in ("eventId", "machineId")}
        event_id = parse_event_id(body["eventId"]) if body.get("eventId") is not None else None
        return record, event_id, parse_machine_id(body.get("machineId"))

    for collection in COLLECTIONS:
        _collection_routes(api, collection, service, _write, _record_from)

    router = APIRouter()
    router.include_router(public)
    router.include_router(api)

    @router.websocket("/api/sync/ws")
    async def live(ws: WebSocket) -> None:
        key = (
            ws.headers.get("x-api-key")
            or ws.query_params.get("apiKey")
            or ws.query_params.get("key")
        )
        # Accept before refusing: a close sent before the handshake completes reaches the
        # client as a bare HTTP 403, and the agent could not tell "bad key" (4401) from
        # "database down, retry" (1013).
        try:
            principal = await asyncio.to_thread(state.keys.verify, key)
        except Exception as exc:
            log.warning("live: cannot check the key, database unavailable (%s)", type(exc).__name__)
            await ws.accept()
            await ws.close(code=1013, reason="database unavailable; retry later")
            return
        await ws.accept()
        if principal is None:
            await ws.close(code=4401, reason="missing or invalid x-api-key")
            return
        machine_id = ws.query_params.get("machineId")
        if principal.kind == "machine" and machine_id and machine_id != principal.machine_id:
            await ws.close(code=4403, reason="this key belongs to another machine")
            return

        async def hello() -> dict[str, Any]:
            head = await asyncio.to_thread(service.head)
            return {"cursor": head, "timestamp": to_iso(now_ms())}

        async def recheck_key() -> None:
            # A revoked key (or a first machine key making keys required) must not keep
            # receiving changes on a socket opened before.
            while True:
                await asyncio.sleep(KEY_RECHECK_SECONDS)
                try:
                    still = await asyncio.to_thread(state.keys.verify, key)
                except Exception:  # database unavailable: the next check decides
                    continue
                if still is None:
                    await ws.close(code=4401, reason="the key was revoked")
                    return

        watchdog = asyncio.create_task(recheck_key()) if principal.kind != "master" else None
        try:
            await state.hub.serve(ws, machine_id, hello)
        finally:
            if watchdog is not None:
                watchdog.cancel()

    @api.get("/stats")
    def stats() -> Response:
        data = service.stats()
        data["liveClients"] = state.hub.count
        data["liveMachines"] = state.hub.machines()
        data["startedAt"] = to_iso(state.started_at)
        data["database"] = state.db_info.backend
        return ok(**data)

    return router


def _collection_routes(api: APIRouter, collection: str, service, write, record_from) -> None:
    table = COLLECTIONS[collection]

    @api.get(f"/{collection}/{{row_id}}")
    def get_one(row_id: str) -> Response:
        record = service.get_live(table, parse_id(row_id))
        if record is None:
            raise ProtocolError("not_found", f"{collection}/{row_id[:60]} not found", status=404)
        return ok(record=record)

    @api.post(f"/{collection}")
    def create(body: Any = Depends(json_body)) -> Response:
        record, event_id, machine_id = record_from(body)
        if record.get("id") is None:
            record["id"] = str(uuid.uuid4())
        return write(collection, record, event_id, machine_id)

    # Two routes, not one with two methods: each needs its own OpenAPI operation id.
    @api.put(f"/{collection}/{{row_id}}")
    @api.patch(f"/{collection}/{{row_id}}")
    def update(row_id: str, body: Any = Depends(json_body)) -> Response:
        record, event_id, machine_id = record_from(body)
        if record.get("id") is not None and str(record["id"]) != row_id:
            raise ProtocolError("id_mismatch", "id in the body differs from the URL", status=400)
        record["id"] = row_id
        if service.get_live(table, parse_id(row_id)) is None:
            raise ProtocolError("not_found", f"{collection}/{row_id[:60]} not found", status=404)
        return write(collection, record, event_id, machine_id)

    @api.delete(f"/{collection}/{{row_id}}")
    def delete(row_id: str, eventId: str | None = None) -> Response:
        if service.get_live(table, parse_id(row_id)) is None:
            raise ProtocolError("not_found", f"{collection}/{row_id[:60]} not found", status=404)
        event_id = parse_event_id(eventId) if eventId is not None else None
        return write(collection, {"id": row_id, "_op": "delete"}, event_id, None)


def _conflict(result: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in result.items() if k not in ("status",)}
    out.setdefault("resolution", result["status"])
    return out


def parse_day_range(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    """`start_date=2024-01-01&end_date=2024-01-31` -> inclusive epoch-ms bounds (UTC days)."""
    lo = hi = None
    if start:
        lo = (
            parse_ms(start.strip()[:10] + "T00:00:00Z", "start_date")
            if len(start.strip()) == 10
            else parse_ms(start, "start_date")
        )
    if end:
        hi = (
            parse_ms(end.strip()[:10] + "T23:59:59.999Z", "end_date")
            if len(end.strip()) == 10
            else parse_ms(end, "end_date")
        )
    if lo is not None and hi is not None and lo > hi:
        raise ProtocolError("invalid_date_range", "start_date is after end_date", status=400)
    return lo, hi


def _version() -> str:
    from . import __version__

    return __version__


__all__ = ["build_router", "TABLES"]
