"""Pull routes: every table's changes by one cursor (`GET /api/sync/changes`) and one
table's (`GET /api/sync/{table}`)."""

from __future__ import annotations

from fastapi import Query, Request
from fastapi.responses import Response

from protocol import jsonschema as js
from protocol import now_ms, to_iso
from protocol.messages import parse_cursor, parse_machine_id, table_named
from webapi import ok

from .deps import protected_router, service_of
from .openapi import PROTECTED, documented
from .push import TablePath

router = protected_router()

# Query parameters: `since` as text, parsed by the protocol (400 invalid_cursor, as the
# body's cursor); a bad `limit` is FastAPI's 422 invalid_request.
Since = Query("0", description="the cursor of the last page read (0: from the start)")
Limit = Query(500, ge=1, description="page size (at most 5000)")
MachineId = Query(None, description="the pulling machine: its cursor is recorded")


@router.get(
    "/sync/changes",
    **documented(
        js.success_schema({**js.changes_page_schema()["properties"], "timestamp": js.iso_schema()}),
        *PROTECTED,
        400,
        409,
        422,
        summary="Every table's changes after `since`, in sequence order",
    ),
)
def all_changes(
    request: Request, since: str = Since, limit: int = Limit, machineId: str | None = MachineId
) -> Response:
    page = service_of(request).changes(
        parse_cursor(since, "since") or 0, limit, machine_id=parse_machine_id(machineId)
    )
    return ok(**page, timestamp=to_iso(now_ms()))


@router.get(
    "/sync/{table}",
    **documented(
        js.success_schema({**js.table_page_properties(), "timestamp": js.iso_schema()}),
        *PROTECTED,
        400,
        404,
        409,
        422,
        summary="One table's changes after `since`, oldest first",
    ),
)
def pull(
    request: Request,
    table: str = TablePath,
    since: str = Since,
    limit: int = Limit,
    machineId: str | None = MachineId,
) -> Response:
    name = table_named(table).name
    page = service_of(request).pull(
        name, parse_cursor(since, "since") or 0, limit, machine_id=parse_machine_id(machineId)
    )
    return ok(**page, timestamp=to_iso(now_ms()))
