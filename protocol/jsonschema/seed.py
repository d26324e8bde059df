"""JSON Schemas of what the seed's own front end exchanges beyond our agents' protocol: the
shop (tenant) any request may name, the `lastSync` read and push, the bootstrap of an empty
table, the diagnostics and its reconcile body."""

from __future__ import annotations

import copy

from ..messages import MAX_BOOTSTRAP_EVENTS
from ..schema import TABLES
from ..tenancy import TENANT_MAX_LENGTH
from .answers import conflict_schema, success_schema
from .envelopes import client_summary_schema, table_push_schema
from .tables import any_wire_record_schema, record_schema
from .values import (
    Schema,
    cursor_schema,
    event_id_schema,
    iso_schema,
    machine_id_schema,
    timestamp_schema,
)

# The reasons a bootstrap did not fill the table (the original server's words).
BOOTSTRAP_REASONS = ("already_completed", "locked_by_other_machine", "server_not_empty")


def tenant_schema() -> Schema:
    """A shop's id as it is sent (protocol/tenancy.py)."""
    return {
        "type": "string",
        "pattern": f"^[A-Za-z0-9._-]{{1,{TENANT_MAX_LENGTH}}}$",
        "description": "the shop (tenant); none means the default shop",
    }


def with_tenant(body: Schema) -> Schema:
    """A request body schema that may also name its shop (`tenantId`), every variant of it."""
    body = copy.deepcopy(body)
    for variant in body.get("anyOf", [body]):
        variant.setdefault("properties", {})["tenantId"] = {
            "anyOf": [tenant_schema(), {"type": "null"}]
        }
    return body


def table_sync_schema() -> Schema:
    """`POST /api/sync/{table}`: our agents' table push (`cursor`), or the seed's
    `{table, lastSync, machineId, tenantId, localUpdates}`."""
    body = with_tenant(table_push_schema())
    body["properties"]["table"] = {"type": "string", "enum": list(TABLES)}
    body["properties"]["lastSync"] = {
        "anyOf": [timestamp_schema(), {"type": "null"}],
        "description": "without `cursor`: when the client last synced, on its own clock",
    }
    return body


def since_answer_schema() -> Schema:
    """`GET /api/sync/{table}` without a cursor: `{success, data, count, timestamp}`, the
    deletions as `{id, _deleted: true, updatedAt}`."""
    return success_schema(
        {
            "data": {"type": "array", "items": any_wire_record_schema()},
            "count": {"type": "integer", "minimum": 0},
            "timestamp": iso_schema(),
        }
    )


def bootstrap_schema() -> Schema:
    """`POST /api/sync/bootstrap/{table}`: `{machineId, tenantId?, localUpdates}`, each
    update `{eventId, record}` or a bare record (with its own `eventId`, or none)."""
    records = [record_schema(t) for t in TABLES.values()]
    wrapped = {
        "type": "object",
        "properties": {"eventId": event_id_schema(), "record": {"anyOf": records}},
        "required": ["eventId", "record"],
    }
    return with_tenant(
        {
            "title": "bootstrap",
            "type": "object",
            "properties": {
                "machineId": machine_id_schema(required=True),
                "localUpdates": {
                    "type": "array",
                    "items": {"anyOf": [wrapped, *records]},
                    "maxItems": MAX_BOOTSTRAP_EVENTS,
                },
            },
            "required": ["machineId"],
        }
    )


def bootstrap_answer_schema() -> Schema:
    """Filled (`bootstrapped`, `processed`, `conflicts`), or not, and why (`reason`)."""
    done = success_schema(
        {
            "bootstrapped": {"type": "boolean"},
            "processed": {"type": "integer", "minimum": 0},
            "conflicts": {"type": "array", "items": conflict_schema()},
            "timestamp": iso_schema(),
        }
    )
    refused = success_schema(
        {
            "bootstrapped": {"const": False},
            "reason": {"type": "string", "enum": list(BOOTSTRAP_REASONS)},
            "timestamp": iso_schema(),
        }
    )
    return {"anyOf": [done, refused]}


def diagnostics_answer_schema() -> Schema:
    """`GET /api/sync/diagnostics`: per table, its live rows, the newest edit, and how many
    rows lack each field the front end expects (null or empty text)."""
    per_table = {
        t.name: {
            "type": "object",
            "properties": {
                "total": {"type": "integer", "minimum": 0},
                "latestUpdatedAt": iso_schema(nullable=True),
                "missingByField": {
                    "type": "object",
                    "properties": {f: {"type": "integer", "minimum": 0} for f in t.expected},
                    "required": list(t.expected),
                },
            },
            "required": ["total", "latestUpdatedAt", "missingByField"],
        }
        for t in TABLES.values()
    }
    return success_schema(
        {
            "tenantId": tenant_schema(),
            "diagnostics": {"type": "object", "properties": per_table, "required": list(TABLES)},
            "timestamp": iso_schema(),
        }
    )


def seed_reconcile_schema() -> Schema:
    """`POST /api/sync/reconcile` as the parser takes it (protocol/reconcile_messages.py):
    any tables (unknown ones ignored, missing ones compared as absent), `count` optional."""
    entry = client_summary_schema()
    entry.pop("required", None)
    listed = copy.deepcopy(entry)
    listed["properties"] = {"table": {"type": "string"}, **listed["properties"]}
    listed["required"] = ["table"]
    return with_tenant(
        {
            "title": "reconcile",
            "type": "object",
            "properties": {
                "machineId": machine_id_schema(required=True),
                "clientSummary": {
                    "anyOf": [
                        {"type": "object", "additionalProperties": entry},
                        {"type": "array", "items": listed},
                    ]
                },
                "cursor": cursor_schema(),
            },
            "required": ["machineId", "clientSummary"],
        }
    )
