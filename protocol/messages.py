"""Push and reconcile envelopes: parsing of the JSON bodies both sides exchange.

Table push:   {machineId?, localUpdates: [{eventId, record}], cursor? | lastSync?, table?}
Batch push:   {machineId?, events: [{eventId, table, record}], cursor?}   (atomic)
Single event: {type: "product_updated", timestamp?, data: {...} | [{...}, ...], event_id}  (the seed's)
Bootstrap:    {machineId, localUpdates: [{eventId, record}]}                (the seed's)
Every body may also carry `tenantId` (see tenancy.py); reconcile bodies: reconcile_messages.py.

The live socket (`/api/sync/ws`) also carries batch pushes, once its hello says so
(`{"type": "hello", "cursor", "tenantId", "timestamp", "push": true, "database": <id>}`):
  client → server  {type: "push", id, machineId?, events, cursor?, tenantId?}
                   `id`: the client's request id (an integer, or a string of at most 128
                   characters); the other fields are exactly a batch push's body. `type` and
                   `id` come first, so even a message too large to parse is answered (413).
  server → client  {type: "pushed", id, status, body}
                   `status` and `body`: what `POST /api/sync/batch` answers the same body with
                   the same key and shop (200 and its answer; 400, 401, 403, 409, 413, 422,
                   503 and their error bodies). The push acts for the socket's shop only.
A client sends a push only to a hello that offered them, and only while the database the
hello names is the one it syncs with; no reply (socket closed, timeout) means "unknown
outcome", as a lost HTTP reply: the events go again and the server's receipts apply them
once. Notices (`changes`, `command`) go on in between, unchanged.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal, overload

from .errors import ProtocolError
from .records import CONTROL_CHARS, Change, Op, parse_change, parse_id
from .schema import ENTITIES, ID_MAX_LENGTH, TABLES, Table
from .timefmt import parse_ms

MAX_EVENTS = 5000
# The `type` of a push on the live socket, and of its reply (see above).
SOCKET_PUSH = "push"
SOCKET_PUSHED = "pushed"


@dataclass
class PushItem:
    """One pushed event: its id, and either the parsed change or why it is invalid."""

    event_id: str | None
    change: Change | None
    error: ProtocolError | None = None
    record_id: str | None = None
    table: str | None = None


def table_named(name: object) -> Table:
    table = TABLES.get(name) if isinstance(name, str) else None
    if table is None:
        raise ProtocolError(
            "unknown_table",
            f"unknown table '{str(name)[:40]}' (expected one of: {', '.join(TABLES)})",
            status=404,
        )
    return table


def parse_event_id(value: object) -> str:
    if value is None or value == "":
        raise ProtocolError("missing_event_id", "eventId: required (a UUID per event)")
    if not isinstance(value, str):
        raise ProtocolError("invalid_event_id", "eventId: expected a string")
    if len(value) > ID_MAX_LENGTH or CONTROL_CHARS.search(value):
        raise ProtocolError(
            "invalid_event_id", f"eventId: at most {ID_MAX_LENGTH} printable characters"
        )
    return value


@overload
def parse_machine_id(value: object, *, required: Literal[True]) -> str: ...
@overload
def parse_machine_id(value: object, *, required: bool = False) -> str | None: ...
def parse_machine_id(value: object, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise ProtocolError("missing_machine_id", "machineId: required")
        return None
    if not isinstance(value, str) or len(value) > ID_MAX_LENGTH or CONTROL_CHARS.search(value):
        raise ProtocolError(
            "invalid_machine_id", f"machineId: a string of at most {ID_MAX_LENGTH} characters"
        )
    return value


def parse_cursor(value: object, name: str = "cursor") -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ProtocolError(
            "invalid_cursor", f"{name}: expected a non-negative integer", status=400
        )
    try:
        cursor = int(value)
    except ValueError:
        raise ProtocolError(
            "invalid_cursor", f"{name}: expected a non-negative integer", status=400
        ) from None
    if cursor < 0:
        raise ProtocolError(
            "invalid_cursor", f"{name}: expected a non-negative integer", status=400
        )
    return cursor


def _object(body: object, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ProtocolError("invalid_body", f"{what}: expected a JSON object")
    return body


def _item(table: Table, raw: object, *, with_table: bool = False) -> PushItem:
    """Per-event validation: an invalid event becomes a PushItem carrying its error."""
    event_id = None
    table_name = table.name if table else None
    record = None
    try:
        raw = _object(raw, "event")
        record = raw.get("record")
        event_id = parse_event_id(raw.get("eventId", raw.get("event_id")))
        if with_table:
            table = table_named(raw.get("table"))
            table_name = table.name
        edited_at = parse_ms(raw["timestamp"]) if raw.get("timestamp") is not None else None
        change = parse_change(table, record, edited_at=edited_at)
        return PushItem(event_id, change, record_id=change.id, table=table_name)
    except ProtocolError as exc:
        # A refusal for any reason (even a missing eventId) names the record's id, if valid.
        return PushItem(event_id, None, exc, record_id=_record_id(record), table=table_name)


def _record_id(record: object) -> str | None:
    if isinstance(record, dict) and record.get("id") is not None:
        try:
            return parse_id(record["id"])
        except ProtocolError:
            return None
    return None


def _events_list(body: dict[str, Any], key: str) -> list[Any]:
    items = body.get(key)
    if not isinstance(items, list):
        raise ProtocolError("invalid_body", f"{key}: expected a list of events")
    if len(items) > MAX_EVENTS:
        raise ProtocolError(
            "too_many_events", f"{key}: at most {MAX_EVENTS} events per request", status=413
        )
    return items


@dataclass
class TablePush:
    """`POST /api/sync/{table}`: our agents' form carries a `cursor` (the answer pages the
    changes after it); the seed's carries `lastSync` (its own clock) or nothing."""

    machine_id: str | None
    items: list[PushItem]
    cursor: int | None
    last_sync: int | None


def parse_table_push(table_name: str, body: object) -> TablePush:
    table = table_named(table_name)
    body = _object(body, "body")
    if body.get("table") is not None and body["table"] != table.name:
        raise ProtocolError(
            "table_mismatch",
            f"table: the body names {str(body['table'])[:40]!r}, the path {table.name!r}",
            status=400,
        )
    return TablePush(
        machine_id=parse_machine_id(body.get("machineId")),
        items=[_item(table, raw) for raw in _events_list(body, "localUpdates")],
        cursor=parse_cursor(body.get("cursor")),
        last_sync=parse_last_sync(body.get("lastSync")),
    )


# A read by `lastSync` returns what changed from this long before it: one hour for a client
# clock running ahead, one for a commit that became visible late (server and agent alike).
LASTSYNC_OVERLAP_MS = 2 * 3_600_000


def parse_last_sync(value: object) -> int | None:
    """The seed's `lastSync`: when its client last synced, on ITS clock (ISO or epoch ms)."""
    if value is None or value == "":
        return None
    try:
        return parse_ms(value, "lastSync")
    except ProtocolError as exc:
        raise ProtocolError(exc.code, exc.message, status=400) from None


# A bootstrap fills an empty table with a front end's whole table in one request.
MAX_BOOTSTRAP_EVENTS = 50_000


@dataclass
class Bootstrap:
    """`POST /api/sync/bootstrap/{table}`: `{machineId, tenantId?, localUpdates}`."""

    machine_id: str
    items: list[PushItem]


def parse_bootstrap(table_name: str, body: object) -> Bootstrap:
    table = table_named(table_name)
    body = _object(body, "body")
    machine_id = parse_machine_id(body.get("machineId"), required=True)
    raw = body.get("localUpdates", [])
    if not isinstance(raw, list):
        raise ProtocolError("invalid_body", "localUpdates: expected a list of records")
    if len(raw) > MAX_BOOTSTRAP_EVENTS:
        raise ProtocolError(
            "too_many_events",
            f"localUpdates: at most {MAX_BOOTSTRAP_EVENTS} records per bootstrap",
            status=413,
        )
    return Bootstrap(machine_id, [_item(table, _envelope(update, table.name)) for update in raw])


def _envelope(update: object, table: str) -> object:
    """The seed's `{eventId, record}`, or a bare record carrying its own `eventId` (or none:
    then the bootstrap event's id is derived from the record, so a repeated bootstrap of
    the same records is recognised)."""
    if isinstance(update, dict) and isinstance(update.get("record"), dict):
        return update
    if isinstance(update, dict):
        event_id = update.get("eventId")
        if event_id is None:
            event_id = str(
                uuid.uuid5(_LIST_EVENT_NAMESPACE, f"bootstrap\n{table}\n{update.get('id')}")
            )
        return {"eventId": event_id, "record": update}
    return update


def parse_batch_push(body: object) -> tuple[str | None, list[PushItem], int | None]:
    body = _object(body, "body")
    machine_id = parse_machine_id(body.get("machineId"))
    cursor = parse_cursor(body.get("cursor"))
    items = [_item(None, raw, with_table=True) for raw in _events_list(body, "events")]  # type: ignore[arg-type]
    return machine_id, items, cursor


_TYPE_OPS = {
    "created": Op.UPSERT,
    "updated": Op.UPSERT,
    "upserted": Op.UPSERT,
    "deleted": Op.DELETE,
    "incremented": Op.INCREMENT,
}


# Event ids of the records of a list-valued `data`: derived from the request's `event_id` and
# the record's position, so a retried request maps onto the same events (idempotent).
_LIST_EVENT_NAMESPACE = uuid.UUID("6f1d3c2a-5b7e-4e0f-9a51-2c8d7e4b9f30")


def list_event_id(event_id: str, index: int) -> str:
    """The event id of record `index` of a request whose `data` is a list."""
    return str(uuid.uuid5(_LIST_EVENT_NAMESPACE, f"{event_id}\n{index}"))


def _single_header(
    body: object,
) -> tuple[dict[str, Any], str, Table, Op, str, int | None, str | None]:
    """The envelope of `POST /api/sync`, validated: everything but `data`."""
    body = _object(body, "body")
    kind = body.get("type")
    if not isinstance(kind, str) or "_" not in kind:
        raise ProtocolError(
            "invalid_type",
            "type: expected '<entity>_<created|updated|deleted>', e.g. product_updated",
        )
    entity, _, action = kind.rpartition("_")
    table = ENTITIES.get(entity)
    if table is None:
        raise ProtocolError(
            "unknown_table",
            f"type: unknown entity '{entity[:40]}' (product, order, order_item, supply)",
        )
    op = _TYPE_OPS.get(action)
    if op is None:
        raise ProtocolError(
            "unknown_operation",
            f"type: unknown operation '{action[:40]}' (created, updated, deleted)",
        )
    raw_event_id = body.get("event_id", body.get("eventId"))
    event_id = parse_event_id(raw_event_id) if raw_event_id is not None else str(uuid.uuid4())
    edited_at = parse_ms(body["timestamp"]) if body.get("timestamp") is not None else None
    machine_id = parse_machine_id(body.get("machineId"))
    return body, entity, table, op, event_id, edited_at, machine_id


def _single_change(
    body: dict[str, Any],
    entity: str,
    table: Table,
    op: Op,
    data: dict[str, Any],
    edited_at: int | None,
    *,
    alias_id: bool,
) -> Change:
    record = dict(data)
    if record.get("id") is None and alias_id:
        for alias in (f"{entity}Id", f"{entity}_id", "id"):
            if body.get(alias) is not None:
                record["id"] = body[alias]
                break
    if op is Op.DELETE:
        record = {"id": record.get("id"), "_op": "delete"}
    elif op is Op.INCREMENT:
        record["_op"] = "increment"
    return parse_change(table, record, edited_at=edited_at)


def parse_single_event(body: object) -> tuple[str | None, PushItem]:
    """The seed's `POST /api/sync`: `{type: "<entity>_<created|updated|deleted>", data, event_id}`.

    Without `event_id` the server makes one up, so such an event is not protected against
    retries; the seed's guide asks clients to always send one. `data` must be one record
    here; `parse_sync_events` also takes a list.
    """
    body, entity, table, op, event_id, edited_at, machine_id = _single_header(body)
    data = body.get("data")
    if not isinstance(data, dict):
        raise ProtocolError("invalid_record", "data: expected the record as a JSON object")
    change = _single_change(body, entity, table, op, data, edited_at, alias_id=True)
    return machine_id, PushItem(event_id, change, record_id=change.id, table=table.name)


def parse_sync_events(body: object) -> tuple[str | None, list[PushItem]]:
    """`POST /api/sync` with `data` one record or, as the seed's client example sends
    (`{type: 'product_updated', productId: '123', data: novosProdutos}`), a list of them.

    A list gives one event per record, all of the same type and timestamp; record i's
    event id is `list_event_id(event_id, i)`, so a retried request changes nothing. Each
    record carries its own `id`; only a one-record list may take it from `productId`
    (`orderId`, ...), which names one record, never several.
    Any invalid record refuses the request (ProtocolError naming `data[i]`); callers apply
    the items atomically, so a list is all or nothing, like one event.
    """
    body, entity, table, op, event_id, edited_at, machine_id = _single_header(body)
    data = body.get("data")
    if isinstance(data, dict):
        change = _single_change(body, entity, table, op, data, edited_at, alias_id=True)
        return machine_id, [PushItem(event_id, change, record_id=change.id, table=table.name)]
    if not isinstance(data, list):
        raise ProtocolError(
            "invalid_record", "data: expected the record as a JSON object, or a list of records"
        )
    if not data:
        raise ProtocolError("invalid_record", "data: an empty list (nothing to sync)")
    if len(data) > MAX_EVENTS:
        raise ProtocolError(
            "too_many_events", f"data: at most {MAX_EVENTS} records per request", status=413
        )
    items: list[PushItem] = []
    for i, record in enumerate(data):
        try:
            if not isinstance(record, dict):
                raise ProtocolError("invalid_record", "expected the record as a JSON object")
            change = _single_change(
                body, entity, table, op, record, edited_at, alias_id=len(data) == 1
            )
        except ProtocolError as exc:
            raise ProtocolError(
                exc.code, f"data[{i}]: {exc.message}", status=exc.status, **exc.details
            ) from None
        items.append(
            PushItem(list_event_id(event_id, i), change, record_id=change.id, table=table.name)
        )
    return machine_id, items
