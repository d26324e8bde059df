"""Reconcile routes: the server's summary, a client's comparison (logged), the history, and
the per-bucket checksums and rows that narrow a difference down."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Query, Request
from fastapi.responses import Response

from protocol import TABLE_NAMES, ProtocolError, now_ms, to_iso
from protocol import jsonschema as js
from protocol.messages import parse_machine_id, parse_reconcile, table_named
from protocol.vocabulary import ReconcileStatus
from webapi import json_body, ok

from .deps import protected_router, service_of
from .openapi import PROTECTED, WITH_BODY, documented

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
                "timestamp": js.iso_schema(),
            }
        ),
        *PROTECTED,
        summary="The server's per-table summaries and the head they describe",
    ),
)
def reconcile_summary(request: Request) -> Response:
    summary, head, _ = service_of(request).summary()
    return ok(serverSummary=summary, cursor=head, timestamp=to_iso(now_ms()))


@router.post(
    "/sync/reconcile",
    **documented(
        js.success_schema(js.reconcile_answer_properties()),
        *PROTECTED,
        *WITH_BODY,
        404,
        body=js.reconcile_schema(),
        summary="Compare a client's summaries: consistent, divergent or retry (logged)",
    ),
)
def reconcile(request: Request, body: Any = Depends(json_body)) -> Response:
    machine_id, client_summary, cursor = parse_reconcile(body)
    result = service_of(request).reconcile(machine_id, client_summary, cursor)
    return ok(**result, timestamp=to_iso(now_ms()))


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
    request: Request,
    limit: int = Query(50, ge=1, le=1000),
    machineId: str | None = None,
    onlyInconsistent: bool = False,
) -> Response:
    data = service_of(request).history(
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
def reconcile_buckets(request: Request, table: str = TableQuery) -> Response:
    return ok(**service_of(request).buckets(table_named(table).name))


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
    request: Request,
    table: str = TableQuery,
    buckets: str = Query(description="comma-separated bucket numbers, 0 to 255"),
) -> Response:
    try:
        wanted = sorted({int(b) for b in buckets.split(",") if b.strip()})
    except ValueError:
        raise ProtocolError(
            "invalid_buckets", "buckets: expected comma-separated numbers", status=400
        ) from None
    if not wanted or any(not 0 <= b < 256 for b in wanted):
        raise ProtocolError("invalid_buckets", "buckets: numbers from 0 to 255", status=400)
    return ok(**service_of(request).bucket_rows(table_named(table).name, wanted))
