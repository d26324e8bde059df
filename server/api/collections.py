"""The seed's collection routes (`/api/products`, `/api/orders`, ...): plain reads of one
shop's live rows, and writes that go through the same push as every sync client's."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from protocol import TABLE_NAMES, ProtocolError, Table, parse_ms
from protocol import jsonschema as js
from protocol.jsonschema import seed as seed_js
from protocol.messages import PushItem, parse_event_id, parse_machine_id, table_named
from protocol.records import parse_change, parse_id
from protocol.tenancy import check_record_tenant
from protocol.vocabulary import ResultStatus
from webapi import WireResponse, json_body, ok, ok_items

from ..metrics.registry import EventCounter, event_counter
from ..push import PushResult
from ..service import SyncService
from .deps import protected_router
from .openapi import PROTECTED, WITH_BODY, documented
from .push import conflict
from .shops import body_shop_service, shop_service

router = protected_router()

# The collection routes, each serving the table of the same name: every declared table, so a
# table added to protocol/schema.py gets its routes with no edit here. Orders and their
# items have their own list routes (by days, by order); the others the plain list.
COLLECTIONS = tuple(TABLE_NAMES)
_OWN_LIST = ("orders", "order_items")


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


def _live_list(key: str, table: Table, **more: js.Schema) -> js.Schema:
    return js.success_schema(
        {key: {"type": "array", "items": js.wire_record_schema(table, tombstone=False)}, **more}
    )


def _list_route(router: APIRouter, table: Table) -> None:
    """`GET /api/<table>`: every live row of the shop's table, `{<table>: [...]}`."""

    @router.get(
        f"/{table.name}",
        name=f"list_{table.name}",
        **documented(_live_list(table.name, table), *PROTECTED),
    )
    def list_rows(service: SyncService = Depends(shop_service)) -> Response:
        return ok_items(table.name, service.live_listing(table.name).items_json)


@router.get(
    "/order_items",
    **documented(_live_list("order_items", table_named("order_items")), *PROTECTED),
)
def list_order_items(
    order_id: str | None = None, service: SyncService = Depends(shop_service)
) -> Response:
    return ok_items(
        "order_items", service.live_listing("order_items", order_id=order_id).items_json
    )


@router.get(
    "/orders",
    **documented(
        _live_list("orders", table_named("orders"), total={"type": "integer"}),
        *PROTECTED,
        400,
        422,
        summary="Orders, newest first, optionally of a range of days (UTC, inclusive)",
    ),
)
def list_orders(
    start_date: str | None = Query(None, description="YYYY-MM-DD or an ISO 8601 instant"),
    end_date: str | None = Query(None, description="YYYY-MM-DD or an ISO 8601 instant"),
    service: SyncService = Depends(shop_service),
) -> Response:
    lo, hi = parse_day_range(start_date, end_date)
    orders = service.live_listing("orders", created_from=lo, created_to=hi)
    return ok_items("orders", orders.items_json, total=orders.count)


def _write(
    service: SyncService,
    table: Table,
    record: dict[str, Any],
    event_id: str | None,
    machine_id: str | None,
    count: EventCounter,
) -> Response:
    try:
        change = parse_change(table, record)
    except ProtocolError:
        refused: PushResult = {
            "id": None,
            "eventId": event_id,
            "table": table.name,
            "status": ResultStatus.REJECTED,
        }
        count(service.tenant, [refused])
        raise
    check_record_tenant(change.tenant, service.tenant)
    item = PushItem(event_id or str(uuid.uuid4()), change, record_id=change.id, table=table.name)
    results, head = service.push(machine_id, [item])
    count(service.tenant, results)  # /metrics: a collection write is an event like any other
    result = results[0]
    if result["status"] == ResultStatus.REJECTED:
        raise ProtocolError(
            result.get("reason", "rejected"),
            result.get("error", "rejected"),
            status=404 if result.get("reason") == "unknown_record" else 422,
        )
    if result["status"] == ResultStatus.STALE:
        return WireResponse(
            {
                "success": False,
                **conflict(result),
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


def _must_exist(service: SyncService, table: Table, row_id: str) -> None:
    if service.get_live(table.name, parse_id(row_id)) is None:
        raise ProtocolError("not_found", f"{table.name}/{row_id[:60]} not found", status=404)


def _collection_routes(router: APIRouter, table: Table) -> None:
    """GET one, POST, PUT, PATCH and DELETE of one collection."""
    collection = table.name
    record_answer = js.success_schema({"record": js.wire_record_schema(table, tombstone=False)})
    write_answer = js.success_schema(
        {
            "result": js.push_result_schema(),
            "cursor": {"type": "integer"},
            "record": {"anyOf": [js.wire_record_schema(table, tombstone=False), {"type": "null"}]},
        }
    )

    @router.get(
        f"/{collection}/{{row_id}}",
        name=f"get_{collection}",
        **documented(record_answer, *PROTECTED, 404, 422),
    )
    def get_one(row_id: str, service: SyncService = Depends(shop_service)) -> Response:
        record = service.get_live(table.name, parse_id(row_id))
        if record is None:
            raise ProtocolError("not_found", f"{collection}/{row_id[:60]} not found", status=404)
        return ok(record=record)

    @router.post(
        f"/{collection}",
        name=f"create_{collection}",
        **documented(
            write_answer,
            *PROTECTED,
            *WITH_BODY,
            409,
            body=seed_js.with_tenant(js.collection_write_schema(table)),
        ),
    )
    def create(
        body: Any = Depends(json_body),
        service: SyncService = Depends(body_shop_service),
        count: EventCounter = Depends(event_counter),
    ) -> Response:
        record, event_id, machine_id = _record_from(body)
        if record.get("id") is None:
            record["id"] = str(uuid.uuid4())
        return _write(service, table, record, event_id, machine_id, count)

    def update(
        row_id: str,
        body: Any = Depends(json_body),
        service: SyncService = Depends(body_shop_service),
        count: EventCounter = Depends(event_counter),
    ) -> Response:
        record, event_id, machine_id = _record_from(body)
        if record.get("id") is not None and str(record["id"]) != row_id:
            raise ProtocolError("id_mismatch", "id in the body differs from the URL", status=400)
        record["id"] = row_id
        _must_exist(service, table, row_id)
        return _write(service, table, record, event_id, machine_id, count)

    # Two routes, not one with two methods: each needs its own OpenAPI operation id.
    update_docs = documented(
        write_answer,
        *PROTECTED,
        *WITH_BODY,
        404,
        409,
        body=seed_js.with_tenant(js.collection_write_schema(table)),
    )
    router.put(f"/{collection}/{{row_id}}", name=f"replace_{collection}", **update_docs)(update)
    router.patch(f"/{collection}/{{row_id}}", name=f"update_{collection}", **update_docs)(update)

    @router.delete(
        f"/{collection}/{{row_id}}",
        name=f"delete_{collection}",
        **documented(write_answer, *PROTECTED, 404, 422),
    )
    def delete(
        row_id: str,
        eventId: str | None = None,
        service: SyncService = Depends(shop_service),
        count: EventCounter = Depends(event_counter),
    ) -> Response:
        _must_exist(service, table, row_id)
        event_id = parse_event_id(eventId) if eventId is not None else None
        return _write(service, table, {"id": row_id, "_op": "delete"}, event_id, None, count)


for _name in COLLECTIONS:
    if _name not in _OWN_LIST:
        _list_route(router, table_named(_name))
    _collection_routes(router, table_named(_name))
