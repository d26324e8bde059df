"""JSON Schemas of the records of each table, derived from its declaration in
protocol/schema.py: as a client pushes them, and as the server sends them."""

from __future__ import annotations

from ..extras import EXTRA_MAX_KEYS
from ..records import Op
from ..schema import TABLES, Table
from .values import Schema, field_schema, id_schema, iso_schema, timestamp_schema, wire_field_schema


def record_schema(table: Table, *, id_required: bool = True) -> Schema:
    """A record pushed to `table`: a patch (only the fields it carries change), a delete
    (`_op: delete`, or `_deleted: true`) or an increment of a counter (`_op: increment`)."""
    properties: Schema = {
        "id": id_schema(),
        "_op": {"type": "string", "enum": [op.value for op in Op]},
        "_deleted": {"type": "boolean"},
        "updatedAt": {
            "anyOf": [timestamp_schema(), {"type": "null"}],
            "description": "the edit time; last writer wins by it (the server's clock caps it)",
        },
    }
    properties["tenantId"] = {
        "type": ["string", "null"],
        "description": "must be the request's shop",
    }
    properties["eventId"] = {"type": ["string", "null"]}
    for f in table.fields:
        properties[f.name] = field_schema(f)
    schema: Schema = {
        "title": f"{table.name} record",
        "type": "object",
        "properties": properties,
        # Fields nobody declared are kept with the record (protocol/extras.py), bounded.
        "additionalProperties": True,
        "maxProperties": len(properties) + EXTRA_MAX_KEYS,
    }
    if id_required:
        schema["required"] = ["id"]
    return schema


def wire_record_schema(table: Table, *, tombstone: bool = True) -> Schema:
    """A record of `table` as the server sends it: every field, or (`tombstone`) a deleted
    record's `{id, _deleted: true, updatedAt}`."""
    live: Schema = {
        "title": f"{table.name} record",
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            **{f.name: wire_field_schema(f) for f in table.fields},
            "updatedAt": iso_schema(),
        },
        "required": ["id", *table.field_names, "updatedAt"],
        "additionalProperties": True,  # the fields nobody declared, as they were written
    }
    if not tombstone:
        return live
    return {"title": f"{table.name} record or tombstone", "anyOf": [live, tombstone_schema()]}


def tombstone_schema() -> Schema:
    return {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "_deleted": {"const": True},
            "updatedAt": iso_schema(),
        },
        "required": ["id", "_deleted", "updatedAt"],
        "additionalProperties": False,
    }


def any_wire_record_schema() -> Schema:
    return {"anyOf": [wire_record_schema(t) for t in TABLES.values()]}
