"""Push routes: the seed's single event (`POST /api/sync`), the atomic multi-table batch
(`POST /api/sync/batch`) and the per-table push that answers with the pull after it
(`POST /api/sync/{table}`: after `cursor` for our agents, by `lastSync` for the seed's
client). Every route acts for the shop the request names (shops.py)."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Path, Request
from fastapi.responses import Response

from protocol import TABLE_NAMES, ProtocolError, now_ms, to_iso
from protocol import jsonschema as js
from protocol.jsonschema import seed as seed_js
from protocol.messages import parse_batch_push, parse_sync_events, parse_table_push, table_named
from protocol.vocabulary import ResultStatus
from webapi import json_body, ok

from ..metrics.registry import ServerMetrics, metrics_of
from ..service import PushResult, SyncService
from .deps import protected_router
from .openapi import PROTECTED, WITH_BODY, documented
from .shops import body_shop_service, own_records

router = protected_router()

# The `{table}` of a sync route: any other name is answered 404 unknown_table.
TablePath = Path(description="a synchronised table", json_schema_extra={"enum": list(TABLE_NAMES)})


def conflict(result: PushResult) -> dict[str, Any]:
    """A result that did not apply, as `conflicts[]` lists it: without `status`, with its
    `resolution`."""
    out: dict[str, Any] = {k: v for k, v in result.items() if k != "status"}
    out.setdefault("resolution", result["status"])
    return out


def _single_answer() -> js.Schema:
    one = js.success_schema(
        {
            "synced_at": js.iso_schema(),
            "event_id": {"type": "string"},
            "status": {"type": "string", "enum": [s.value for s in ResultStatus]},
            "duplicate": {"type": "boolean"},
            "result": js.push_result_schema(),
            "cursor": {"type": "integer"},
        }
    )
    many = js.success_schema(
        {
            "synced_at": js.iso_schema(),
            "event_ids": {"type": "array", "items": {"type": "string"}},
            "synced": {"type": "integer"},
            "duplicate": {"type": "boolean"},
            "results": {"type": "array", "items": js.push_result_schema()},
            "cursor": {"type": "integer"},
        }
    )
    return {"anyOf": [one, many]}


@router.post(
    "/sync",
    **documented(
        _single_answer(),
        *PROTECTED,
        *WITH_BODY,
        body=seed_js.with_tenant(js.single_event_schema()),
        summary="The seed's single event: one record, or a list applied all or nothing",
    ),
)
def sync_single(
    request: Request,
    body: Any = Depends(json_body),
    service: SyncService = Depends(body_shop_service),
) -> Response:
    # `data` is one record, or a list (the seed's client example): one event per record,
    # applied all or nothing, event ids derived from `event_id` (protocol.list_event_id).
    machine_id, items = parse_sync_events(body)
    own_records(items, service.tenant)
    with metrics_of(request).counting(service.tenant) as count:
        results, head = service.push(machine_id, items, atomic_batch=len(items) > 1)
        count(results)
    refused = [r for r in results if r["status"] == ResultStatus.REJECTED]
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


def _batch_answer() -> js.Schema:
    return js.success_schema(
        {
            "results": {"type": "array", "items": js.push_result_schema()},
            "conflicts": {"type": "array", "items": js.conflict_schema()},
            "cursor": {"type": "integer"},
            "timestamp": js.iso_schema(),
            "changes": js.changes_page_schema(),
        },
        required=["results", "conflicts", "cursor", "timestamp"],
    )


@router.post(
    "/sync/batch",
    **documented(
        _batch_answer(),
        *PROTECTED,
        *WITH_BODY,
        409,
        body=seed_js.with_tenant(js.batch_push_schema()),
        summary="Events of several tables, applied all or nothing (a sale)",
    ),
)
def sync_batch(
    request: Request,
    body: Any = Depends(json_body),
    service: SyncService = Depends(body_shop_service),
) -> Response:
    return ok(**batch_push(service, metrics_of(request), body))


def batch_push(service: SyncService, metrics: ServerMetrics, body: Any) -> dict[str, Any]:
    """`POST /api/sync/batch` without HTTP: the body's events applied all or nothing for the
    shop of `service`, counted in `metrics`; the answer's fields after `success`. The live
    socket's push (server/api/live_push.py) runs this too. Blocking: call it from a worker
    thread. Raises what the route answers as an error (ProtocolError, database errors)."""
    machine_id, items, cursor = parse_batch_push(body)
    own_records(items, service.tenant)
    page = None
    with metrics.counting(service.tenant) as count:
        # `cursor` refused (409) before anything is applied
        if cursor is None:
            results, head = service.push(machine_id, items, atomic_batch=True)
        else:
            results, head, page = service.push_and_changes(machine_id, items, cursor)
        count(results)
    reply: dict[str, Any] = {
        "results": results,
        "conflicts": [conflict(r) for r in results if r["status"] != ResultStatus.APPLIED],
        "cursor": head,
        "timestamp": to_iso(now_ms()),
    }
    if page is not None:
        reply["changes"] = page
    return reply


def _table_answer() -> js.Schema:
    return js.success_schema(
        {
            **js.table_page_properties(),
            "conflicts": {"type": "array", "items": js.conflict_schema()},
            "results": {"type": "array", "items": js.push_result_schema()},
            "timestamp": js.iso_schema(),
        }
    )


@router.post(
    "/sync/{table}",
    **documented(
        _table_answer(),
        *PROTECTED,
        *WITH_BODY,
        404,
        409,
        body=seed_js.table_sync_schema(),
        summary="Push one table's events, then pull its changes after `cursor`; without "
        "`cursor`, the seed's sync: every live row, or (`lastSync`) what changed since then",
    ),
)
def push(
    http: Request,
    table: str = TablePath,
    body: Any = Depends(json_body),
    service: SyncService = Depends(body_shop_service),
) -> Response:
    name = table_named(table).name
    request = parse_table_push(name, body)
    own_records(request.items, service.tenant)
    count = metrics_of(http).count_events
    if request.cursor is None:  # the seed's client: no cursor, `lastSync` on its own clock
        results, head, records = service.push_and_fetch(
            name, request.machine_id, request.items, request.last_sync
        )
        count(service.tenant, results)
        return ok(
            synced=records,
            conflicts=[conflict(r) for r in results if r["status"] != ResultStatus.APPLIED],
            results=results,
            cursor=head,
            hasMore=False,
            timestamp=to_iso(now_ms()),
        )
    # `cursor` refused (409) before anything is applied
    results, head, page = service.push_and_pull(
        name, request.machine_id, request.items, request.cursor
    )
    count(service.tenant, results)
    return ok(
        synced=page["synced"],
        conflicts=[conflict(r) for r in results if r["status"] != ResultStatus.APPLIED],
        results=results,
        cursor=page["cursor"],
        hasMore=page["hasMore"],
        timestamp=to_iso(now_ms()),
    )
