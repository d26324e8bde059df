"""JSON Schemas of the request bodies: table push, batch push, the seed's single event,
reconcile and the collection writes."""

from __future__ import annotations

from ..messages import MAX_EVENTS
from ..schema import TABLES, Table
from .tables import record_schema
from .values import (
    Schema,
    cursor_schema,
    event_id_schema,
    id_schema,
    machine_id_schema,
    timestamp_schema,
)

# The seed's single-event route (`messages._TYPE_OPS`): `<entity>_<action>`.
SINGLE_EVENT_ACTIONS = ("created", "updated", "upserted", "deleted", "incremented")


def table_push_schema(table: Table | None = None) -> Schema:
    """`POST /api/sync/{table}`: `{machineId?, localUpdates: [{eventId, record}], cursor?}`.
    Without a table: the records of any table (the route's table is a path parameter)."""
    record = (
        record_schema(table)
        if table is not None
        else {"anyOf": [record_schema(t) for t in TABLES.values()]}
    )
    event = {
        "type": "object",
        "properties": {
            "eventId": event_id_schema(),
            "record": record,
            "timestamp": timestamp_schema(),
        },
        "required": ["eventId", "record"],
    }
    return {
        "title": "table push",
        "type": "object",
        "properties": {
            "machineId": machine_id_schema(),
            "localUpdates": {"type": "array", "items": event, "maxItems": MAX_EVENTS},
            "cursor": cursor_schema(),
        },
        "required": ["localUpdates"],
    }


def batch_push_schema() -> Schema:
    """`POST /api/sync/batch`: events of several tables, applied all or nothing."""
    events = [
        {
            "type": "object",
            "properties": {
                "eventId": event_id_schema(),
                "table": {"const": t.name},
                "record": record_schema(t),
                "timestamp": timestamp_schema(),
            },
            "required": ["eventId", "table", "record"],
        }
        for t in TABLES.values()
    ]
    return {
        "title": "batch push",
        "type": "object",
        "properties": {
            "machineId": machine_id_schema(),
            "events": {"type": "array", "items": {"anyOf": events}, "maxItems": MAX_EVENTS},
            "cursor": cursor_schema(),
        },
        "required": ["events"],
    }


def single_event_schema() -> Schema:
    """`POST /api/sync` (the seed's): `{type: "product_updated", data, event_id}`; `data` is
    one record or a list of them (one event each, all or nothing)."""
    variants = []
    for t in TABLES.values():
        record = record_schema(t, id_required=False)
        variants.append(
            {
                "type": "object",
                "properties": {
                    "type": {
                        "type": "string",
                        "enum": [f"{t.entity}_{a}" for a in SINGLE_EVENT_ACTIONS],
                    },
                    "data": {
                        "anyOf": [
                            record,
                            {
                                "type": "array",
                                "items": record_schema(t, id_required=False),
                                "minItems": 1,
                                "maxItems": MAX_EVENTS,
                            },
                        ]
                    },
                    "event_id": event_id_schema(),
                    "eventId": event_id_schema(),
                    "timestamp": timestamp_schema(),
                    "machineId": machine_id_schema(),
                    f"{t.entity}Id": id_schema(),
                },
                "required": ["type", "data"],
            }
        )
    return {"title": "single event", "anyOf": variants}


def client_summary_schema() -> Schema:
    """One table's summary as a client computes it."""
    return {
        "type": "object",
        "properties": {
            "count": {"type": "integer", "minimum": 0},
            "latestUpdatedAt": {"anyOf": [timestamp_schema(), {"type": "null"}]},
            "checksum": {"type": "string", "maxLength": 64},
        },
        "required": ["count"],
    }


def reconcile_schema() -> Schema:
    """`POST /api/sync/reconcile`: a client's per-table summaries to compare."""
    by_table = {
        "type": "object",
        "properties": {name: client_summary_schema() for name in TABLES},
        "additionalProperties": False,
        "minProperties": 1,
    }
    as_list = {
        "type": "array",
        "items": {
            **client_summary_schema(),
            "properties": {
                "table": {"type": "string", "enum": list(TABLES)},
                **client_summary_schema()["properties"],
            },
            "required": ["table", "count"],
        },
        "minItems": 1,
    }
    return {
        "title": "reconcile",
        "type": "object",
        "properties": {
            "machineId": machine_id_schema(required=True),
            "clientSummary": {"anyOf": [by_table, as_list]},
            "cursor": cursor_schema(),
        },
        "required": ["machineId", "clientSummary"],
    }


def collection_write_schema(table: Table, *, id_required: bool = False) -> Schema:
    """`POST/PUT/PATCH /api/<collection>`: the record itself, or `{record, eventId?}`."""
    bare = record_schema(table, id_required=id_required)
    bare["properties"]["eventId"] = event_id_schema()
    bare["properties"]["machineId"] = machine_id_schema()
    wrapped = {
        "type": "object",
        "properties": {
            "record": record_schema(table, id_required=id_required),
            "eventId": event_id_schema(),
            "machineId": machine_id_schema(),
        },
        "required": ["record"],
    }
    return {"title": f"{table.name} write", "anyOf": [wrapped, bare]}


def request_body(schema: Schema, description: str = "") -> Schema:
    """An OpenAPI `requestBody` object (for `openapi_extra={"requestBody": ...}`)."""
    body: Schema = {"required": True, "content": {"application/json": {"schema": schema}}}
    if description:
        body["description"] = description
    return body
