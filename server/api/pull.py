"""Pull routes: every table's changes by one cursor (`GET /api/sync/changes`) and one
table's (`GET /api/sync/{table}`): by cursor (`since`, our agents) or, without one, the
seed's read (`lastSync`, the front end's own clock)."""

from __future__ import annotations

from fastapi import Depends, Query
from fastapi.responses import Response

from protocol import jsonschema as js
from protocol import now_ms, to_iso
from protocol.jsonschema import seed as seed_js
from protocol.messages import parse_cursor, parse_last_sync, parse_machine_id, table_named
from webapi import ok, ok_items

from ..service import SyncService
from .deps import protected_router
from .openapi import PROTECTED, documented
from .push import TablePath
from .shops import shop_service

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
    since: str = Since,
    limit: int = Limit,
    machineId: str | None = MachineId,
    service: SyncService = Depends(shop_service),
) -> Response:
    page = service.changes(
        parse_cursor(since, "since") or 0, limit, machine_id=parse_machine_id(machineId)
    )
    return ok(**page, timestamp=to_iso(now_ms()))


@router.get(
    "/sync/{table}",
    **documented(
        {
            "anyOf": [
                js.success_schema({**js.table_page_properties(), "timestamp": js.iso_schema()}),
                seed_js.since_answer_schema(),
            ]
        },
        *PROTECTED,
        400,
        404,
        409,
        422,
        summary="One table's changes after `since`, oldest first; without `since`, the "
        "seed's read: every live row, or (`lastSync`) what changed since then",
    ),
)
def pull(
    table: str = TablePath,
    since: str | None = Query(
        None, description="the cursor of the last page read (0: from the start)"
    ),
    limit: int = Limit,
    machineId: str | None = MachineId,
    lastSync: str | None = Query(
        None,
        description="without `since`: when the client last read (its own clock, ISO 8601 or "
        "epoch ms); every row and deletion changed at or after it (minus a safety margin) "
        "is returned, duplicates included",
    ),
    service: SyncService = Depends(shop_service),
) -> Response:
    name = table_named(table).name
    machine_id = parse_machine_id(machineId)  # checked on both forms
    if since is None:  # the seed's read (its client never sends a cursor)
        last_sync = parse_last_sync(_query_instant(lastSync))
        if last_sync is None:  # every live row: kept serialised (server/listcache.py)
            rows = service.live_by_seq(name)
            return ok_items("data", rows.items_json, count=rows.count, timestamp=to_iso(now_ms()))
        data = service.fetch_since(name, last_sync)
        return ok(data=data, count=len(data), timestamp=to_iso(now_ms()))
    page = service.pull(name, parse_cursor(since, "since") or 0, limit, machine_id=machine_id)
    return ok(**page, timestamp=to_iso(now_ms()))


def _query_instant(text: str | None) -> str | int | None:
    """A timestamp from a query, where everything is text: digits alone are epoch
    milliseconds (a bounded number of them; longer is out of range, and refused as text)."""
    if text is not None and text.isascii() and text.isdigit() and len(text) <= 16:
        return int(text)
    return text
