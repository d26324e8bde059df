"""Push and reconcile envelopes: parsing of the JSON bodies both sides exchange.

Table push:   {machineId?, localUpdates: [{eventId, record}], cursor?}
Batch push:   {machineId?, events: [{eventId, table, record}], cursor?}   (atomic)
Single event: {type: "product_updated", timestamp?, data: {...}, event_id}  (the seed's)
Reconcile:    {machineId, clientSummary: {table: {count, latestUpdatedAt?, checksum?}}, cursor?}
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from .errors import ProtocolError
from .records import CONTROL_CHARS, Change, Op, parse_change, parse_id
from .schema import ENTITIES, ID_MAX_LENGTH, TABLES, Table
from .timefmt import parse_ms

MAX_EVENTS = 5000


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
        raise ProtocolError("invalid_event_id", f"eventId: at most {ID_MAX_LENGTH} printable characters")
    return value


def parse_machine_id(value: object, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise ProtocolError("missing_machine_id", "machineId: required")
        return None
    if not isinstance(value, str) or len(value) > ID_MAX_LENGTH or CONTROL_CHARS.search(value):
        raise ProtocolError("invalid_machine_id", f"machineId: a string of at most {ID_MAX_LENGTH} characters")
    return value


def parse_cursor(value: object, name: str = "cursor") -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ProtocolError("invalid_cursor", f"{name}: expected a non-negative integer", status=400)
    try:
        cursor = int(value)
    except ValueError:
        raise ProtocolError("invalid_cursor", f"{name}: expected a non-negative integer", status=400) from None
    if cursor < 0:
        raise ProtocolError("invalid_cursor", f"{name}: expected a non-negative integer", status=400)
    return cursor


def _object(body: object, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ProtocolError("invalid_body", f"{what}: expected a JSON object")
    return body


def _item(table: Table, raw: object, *, with_table: bool = False) -> PushItem:
    """Per-event validation: an invalid event becomes a PushItem carrying its error."""
    event_id = None
    record_id = None
    table_name = table.name if table else None
    try:
        raw = _object(raw, "event")
        # The record's id first: a refusal for any reason (even a missing eventId) names it.
        record = raw.get("record")
        if isinstance(record, dict) and record.get("id") is not None:
            try:
                record_id = parse_id(record["id"])
            except ProtocolError:
                record_id = None
        event_id = parse_event_id(raw.get("eventId", raw.get("event_id")))
        if with_table:
            table = table_named(raw.get("table"))
            table_name = table.name
        edited_at = parse_ms(raw["timestamp"]) if raw.get("timestamp") is not None else None
        change = parse_change(table, record, edited_at=edited_at)
        return PushItem(event_id, change, record_id=change.id, table=table_name)
    except ProtocolError as exc:
        return PushItem(event_id, None, exc, record_id=record_id, table=table_name)


def _events_list(body: dict[str, Any], key: str) -> list[Any]:
    items = body.get(key)
    if not isinstance(items, list):
        raise ProtocolError("invalid_body", f"{key}: expected a list of events")
    if len(items) > MAX_EVENTS:
        raise ProtocolError("too_many_events", f"{key}: at most {MAX_EVENTS} events per request", status=413)
    return items


def parse_table_push(table_name: str, body: object) -> tuple[str | None, list[PushItem], int | None]:
    table = table_named(table_name)
    body = _object(body, "body")
    machine_id = parse_machine_id(body.get("machineId"))
    cursor = parse_cursor(body.get("cursor"))
    items = [_item(table, raw) for raw in _events_list(body, "localUpdates")]
    return machine_id, items, cursor


def parse_batch_push(body: object) -> tuple[str | None, list[PushItem], int | None]:
    body = _object(body, "body")
    machine_id = parse_machine_id(body.get("machineId"))
    cursor = parse_cursor(body.get("cursor"))
    items = [_item(None, raw, with_table=True) for raw in _events_list(body, "events")]  # type: ignore[arg-type]
    return machine_id, items, cursor


_TYPE_OPS = {"created": Op.UPSERT, "updated": Op.UPSERT, "upserted": Op.UPSERT, "deleted": Op.DELETE,
             "incremented": Op.INCREMENT}


def parse_single_event(body: object) -> tuple[str | None, PushItem]:
    """The seed's `POST /api/sync`: `{type: "<entity>_<created|updated|deleted>", data, event_id}`.

    Without `event_id` the server makes one up, so such an event is not protected against
    retries; the seed's guide asks clients to always send one.
    """
    body = _object(body, "body")
    kind = body.get("type")
    if not isinstance(kind, str) or "_" not in kind:
        raise ProtocolError("invalid_type", "type: expected '<entity>_<created|updated|deleted>', e.g. product_updated")
    entity, _, action = kind.rpartition("_")
    table = ENTITIES.get(entity)
    if table is None:
        raise ProtocolError("unknown_table", f"type: unknown entity '{entity[:40]}' (product, order, order_item, supply)")
    op = _TYPE_OPS.get(action)
    if op is None:
        raise ProtocolError("unknown_operation", f"type: unknown operation '{action[:40]}' (created, updated, deleted)")
    data = body.get("data")
    if not isinstance(data, dict):
        raise ProtocolError("invalid_record", "data: expected the record as a JSON object")
    record = dict(data)
    if record.get("id") is None:
        for alias in (f"{entity}Id", f"{entity}_id", "id"):
            if body.get(alias) is not None:
                record["id"] = body[alias]
                break
    if op is Op.DELETE:
        record = {"id": record.get("id"), "_op": "delete"}
    elif op is Op.INCREMENT:
        record["_op"] = "increment"
    raw_event_id = body.get("event_id", body.get("eventId"))
    event_id = parse_event_id(raw_event_id) if raw_event_id is not None else str(uuid.uuid4())
    edited_at = parse_ms(body["timestamp"]) if body.get("timestamp") is not None else None
    change = parse_change(table, record, edited_at=edited_at)
    machine_id = parse_machine_id(body.get("machineId"))
    return machine_id, PushItem(event_id, change, record_id=change.id, table=table.name)


def parse_reconcile(body: object) -> tuple[str, dict[str, dict[str, Any]], int | None]:
    body = _object(body, "body")
    machine_id = parse_machine_id(body.get("machineId"), required=True)
    raw = body.get("clientSummary")
    if isinstance(raw, list):  # the server's own list shape is accepted too
        entries = {}
        for e in raw:
            e = _object(e, "clientSummary[]")
            name = table_named(e.get("table")).name
            if name in entries:  # a dict cannot repeat a key, a list can: refuse, never keep one silently
                raise ProtocolError("invalid_summary", f"clientSummary: {name} given twice")
            entries[name] = {k: v for k, v in e.items() if k != "table"}
        raw = entries
    if not isinstance(raw, dict) or not raw:
        raise ProtocolError("invalid_summary", "clientSummary: expected {table: {count, latestUpdatedAt, checksum?}}")
    summary: dict[str, dict[str, Any]] = {}
    for name, entry in raw.items():
        table = table_named(name)
        entry = _object(entry, f"clientSummary.{name}")
        count = entry.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ProtocolError("invalid_summary", f"clientSummary.{name}.count: expected a non-negative integer")
        clean: dict[str, Any] = {"count": count}
        if "latestUpdatedAt" in entry:
            latest = entry["latestUpdatedAt"]
            if latest is not None:
                parse_ms(latest, f"clientSummary.{name}.latestUpdatedAt")
            clean["latestUpdatedAt"] = latest
        checksum = entry.get("checksum")
        if checksum is not None:
            if not isinstance(checksum, str) or len(checksum) > 64:
                raise ProtocolError("invalid_summary", f"clientSummary.{name}.checksum: expected a hex string")
            clean["checksum"] = checksum
        summary[table.name] = clean
    return machine_id, summary, parse_cursor(body.get("cursor"))
