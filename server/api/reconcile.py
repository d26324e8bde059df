"""Reconcile routes: the server's summary, a client's comparison (logged), the history, and
the per-bucket checksums and rows that narrow a difference down; each of one shop."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Query
from fastapi.responses import Response

from protocol import TABLE_NAMES, ProtocolError, now_ms, to_iso
from protocol import jsonschema as js
from protocol.jsonschema import seed as seed_js
from protocol.messages import parse_machine_id, table_named
from protocol.reconcile_messages import parse_reconcile
from protocol.vocabulary import ReconcileStatus
from webapi import json_body, ok

from ..service import SyncService
from .deps import protected_router
from .openapi import PROTECTED, WITH_BODY, documented
from .shops import body_shop_service, shop_service

router = protected_router()

TableQuery = Query(
    description="a synchronised table", json_schema_extra={"enum": list(TABLE_NAMES)}
)


@router.get(
    "/sync/reconcile",
    **documented(
        js.success_schema(
            {
                "serverSummary": {"type": "array", "items": js.server_summary_schema()},
                "cursor": {"type": "integer"},
                "tenantId": seed_js.tenant_schema(),
                "timestamp": js.iso_schema(),
            }
        ),
        *PROTECTED,
        summary="The server's per-table summaries and the head they describe",
    ),
)
def reconcile_summary(service: SyncService = Depends(shop_service)) -> Response:
    summary, head, _ = service.summary()
    return ok(
        serverSummary=summary, cursor=head, tenantId=service.tenant, timestamp=to_iso(now_ms())
    )


@router.post(
    "/sync/reconcile",
    **documented(
        js.success_schema(
            {**js.reconcile_answer_properties(), "tenantId": seed_js.tenant_schema()}
        ),
        *PROTECTED,
        *WITH_BODY,
        body=seed_js.seed_reconcile_schema(),
        summary="Compare a client's summaries: consistent, divergent or retry (logged)",
    ),
)
def reconcile(
    body: Any = Depends(json_body), service: SyncService = Depends(body_shop_service)
) -> Response:
    asked = parse_reconcile(body)
    result = service.reconcile(asked.machine_id, asked.summary, asked.cursor)
    return ok(**result, tenantId=service.tenant, timestamp=to_iso(now_ms()))


def _history_answer() -> js.Schema:
    entry = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "machine_id": {"type": "string"},
            "is_consistent": {"type": "boolean"},
            "status": {
                "type": "string",
                "enum": [
                    s.value
                    for s in (
                        ReconcileStatus.CONSISTENT,
                        ReconcileStatus.DIVERGENT,
                        ReconcileStatus.RETRY,
                    )
                ],
            },
            "mismatches_count": {"type": "integer"},
            "mismatches": {"type": "array", "items": js.mismatch_schema()},
            "cursor": {"type": "integer"},
            "created_at": js.iso_schema(),
        },
        "required": [
            "id",
            "machine_id",
            "is_consistent",
            "status",
            "mismatches_count",
            "mismatches",
            "cursor",
            "created_at",
        ],
    }
    return js.success_schema(
        {"count": {"type": "integer"}, "data": {"type": "array", "items": entry}}
    )


@router.get(
    "/sync/reconcile/history",
    **documented(_history_answer(), *PROTECTED, 422, summary="The reconcile log, newest first"),
)
def reconcile_history(
    limit: int = Query(50, ge=1, le=1000),
    machineId: str | None = None,
    onlyInconsistent: bool = False,
    service: SyncService = Depends(shop_service),
) -> Response:
    data = service.history(
        limit=limit, machine_id=parse_machine_id(machineId), only_inconsistent=onlyInconsistent
    )
    return ok(count=len(data), data=data)


@router.get(
    "/sync/reconcile/buckets",
    **documented(
        js.success_schema(
            {
                "table": {"type": "string"},
                "buckets": js.bucket_summaries_schema(),
                "cursor": {"type": "integer"},
            }
        ),
        *PROTECTED,
        404,
        422,
        summary="Per-bucket counts and checksums of a table's live rows",
    ),
)
def reconcile_buckets(
    table: str = TableQuery, service: SyncService = Depends(shop_service)
) -> Response:
    return ok(**service.buckets(table_named(table).name))


@router.get(
    "/sync/reconcile/rows",
    **documented(
        js.success_schema(
            {
                "table": {"type": "string"},
                "buckets": {"type": "array", "items": {"type": "integer"}},
                "rows": {"type": "array", "items": js.any_wire_record_schema()},
                "cursor": {"type": "integer"},
            }
        ),
        *PROTECTED,
        400,
        404,
        422,
        summary="The live rows of some buckets of a table",
    ),
)
def reconcile_rows(
    table: str = TableQuery,
    buckets: str = Query(description="comma-separated bucket numbers, 0 to 255"),
    service: SyncService = Depends(shop_service),
) -> Response:
    try:
        wanted = sorted({int(b) for b in buckets.split(",") if b.strip()})
    except ValueError:
        raise ProtocolError(
            "invalid_buckets", "buckets: expected comma-separated numbers", status=400
        ) from None
    if not wanted or any(not 0 <= b < 256 for b in wanted):
        raise ProtocolError("invalid_buckets", "buckets: numbers from 0 to 255", status=400)
    return ok(**service.bucket_rows(table_named(table).name, wanted))
