"""JSON Schemas (2020-12, as OpenAPI 3.1 takes them) of the wire contract, derived from the
table declarations in `schema.py`: a column added there changes every schema that carries
its table's records, with no other edit.

Framework-free: both HTTP apps put these in their OpenAPI documents (request bodies through
`openapi_extra`, answers through `responses`), while their routes keep reading bodies with
`envelope.decode_body` and the parsers of `messages.py` (the precise error codes, exact
Decimals). The schemas describe what those parsers accept; the parsers stay the judges.

Every function returns a new dict, so a caller may extend it (the agent adds its own keys).
"""

from __future__ import annotations

from typing import Any

from .records import Op
from .schema import DECIMAL_DIGITS, ID_MAX_LENGTH, TABLES, Field, Kind, Table
from .vocabulary import ReconcileStatus, Resolution, ResultStatus

Schema = dict[str, Any]

# The instants `timefmt.parse_ms` accepts (2000-01-01 to 2100-01-01), as epoch ms.
MIN_EPOCH_MS = 946_684_800_000
MAX_EPOCH_MS = 4_102_444_800_000
# The seed's single-event route (`messages._TYPE_OPS`): `<entity>_<action>`.
SINGLE_EVENT_ACTIONS = ("created", "updated", "upserted", "deleted", "incremented")
MAX_EVENTS = 5000

_NO_CONTROL = "^[^\\u0000-\\u001f]*$"


# -- values -----------------------------------------------------------------------------------


def timestamp_schema() -> Schema:
    """A timestamp received: an ISO 8601 string (naive means UTC) or epoch milliseconds."""
    return {
        "anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "integer", "minimum": MIN_EPOCH_MS, "maximum": MAX_EPOCH_MS},
        ],
        "description": "ISO 8601 (UTC when naive) or epoch milliseconds, 2000 to 2100",
    }


def iso_schema(*, nullable: bool = False) -> Schema:
    """A timestamp sent: `2026-02-11T18:00:00.000Z`."""
    return {"type": ["string", "null"] if nullable else "string", "format": "date-time"}


def id_schema() -> Schema:
    """A record id received: a non-empty string (or a number, read as its text)."""
    return {
        "anyOf": [
            {
                "type": "string",
                "minLength": 1,
                "maxLength": ID_MAX_LENGTH,
                "pattern": "^[^\\u0000-\\u001f]*[^\\s\\u0000-\\u001f][^\\u0000-\\u001f]*$",
            },
            {"type": "integer"},
        ]
    }


def event_id_schema() -> Schema:
    """A client-generated event id (a UUID is expected; any short printable text is taken)."""
    return {"type": "string", "minLength": 1, "maxLength": ID_MAX_LENGTH, "pattern": _NO_CONTROL}


def machine_id_schema(*, required: bool = False) -> Schema:
    text = {"type": "string", "maxLength": ID_MAX_LENGTH, "pattern": _NO_CONTROL}
    return text if required else {"anyOf": [text, {"type": "null"}]}


def cursor_schema() -> Schema:
    """A cursor received: a sequence number, or its decimal text."""
    return {
        "anyOf": [
            {"type": "integer", "minimum": 0},
            {"type": "string", "pattern": "^\\s*\\+?[0-9]+\\s*$"},
            {"type": "null"},
        ]
    }


def field_schema(f: Field) -> Schema:
    """One field of a record received (a write: values within the field's bounds)."""
    if f.kind is Kind.TEXT:
        schema: Schema = {"type": "string", "maxLength": f.max_length}
    elif f.kind is Kind.TIMESTAMP:
        schema = timestamp_schema()
    else:
        number: Schema = {"type": "integer" if f.kind is Kind.INTEGER else "number"}
        if f.positive:
            number["exclusiveMinimum"] = 0
        elif f.non_negative:
            number["minimum"] = 0
        schema = {
            "anyOf": [number, {"type": "string", "pattern": "^\\s*[-+]?[0-9]+(\\.[0-9]+)?\\s*$"}],
            "description": _number_words(f),
        }
    if f.counter:
        return schema  # a stock counter is never null
    return {"anyOf": [schema, {"type": "null"}]}


def _number_words(f: Field) -> str:
    if f.kind is Kind.INTEGER:
        return "a whole number, as a JSON number or its text"
    return (
        f"an exact decimal, at most {f.scale} digits after the point and {DECIMAL_DIGITS} in "
        "all, as a JSON number or its text (never rounded)"
    )


def wire_field_schema(f: Field) -> Schema:
    """One field of a record sent: decimals as exact JSON numbers, timestamps as ISO text."""
    if f.kind is Kind.TEXT:
        return {"type": ["string", "null"]}
    if f.kind is Kind.TIMESTAMP:
        return iso_schema(nullable=True)
    kind = "integer" if f.kind is Kind.INTEGER else "number"
    return {"type": kind} if f.counter else {"type": [kind, "null"]}


# -- records ----------------------------------------------------------------------------------


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
    for f in table.fields:
        properties[f.name] = field_schema(f)
    schema: Schema = {
        "title": f"{table.name} record",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
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
        "additionalProperties": False,
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


# -- request envelopes --------------------------------------------------------------------------


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


# -- answers ------------------------------------------------------------------------------------


def success_schema(properties: Schema, required: list[str] | None = None) -> Schema:
    """`{success: true, ...}` with these properties (all required unless `required` says)."""
    return {
        "type": "object",
        "properties": {"success": {"const": True}, **properties},
        "required": ["success", *(required if required is not None else properties)],
    }


def push_result_schema() -> Schema:
    """One event's result (`results[]`): applied (with its `seq`), skipped_stale or rejected."""
    return {
        "type": "object",
        "properties": {
            "eventId": {"type": ["string", "null"]},
            "id": {"type": ["string", "null"]},
            "table": {"type": ["string", "null"]},
            "status": {"type": "string", "enum": [s.value for s in ResultStatus]},
            "resolution": {"type": "string", "enum": [r.value for r in Resolution]},
            "seq": {"type": "integer"},
            "reason": {"type": "string"},
            "error": {"type": "string"},
            "warning": {"type": "string"},
            "serverUpdatedAt": iso_schema(),
            "clientUpdatedAt": iso_schema(),
            "duplicate": {"type": "boolean"},
        },
        "required": ["eventId", "id", "table", "status"],
    }


def conflict_schema() -> Schema:
    """A result that did not apply (`conflicts[]`): the result with its `resolution`."""
    schema = push_result_schema()
    del schema["properties"]["status"]
    schema["required"] = ["eventId", "id", "table", "resolution"]
    return schema


def changes_page_schema() -> Schema:
    """`{changes: [{table, seq, record}], cursor, hasMore}`: every table, in sequence order."""
    change = {
        "anyOf": [
            {
                "type": "object",
                "properties": {
                    "table": {"const": t.name},
                    "seq": {"type": "integer"},
                    "record": wire_record_schema(t),
                },
                "required": ["table", "seq", "record"],
            }
            for t in TABLES.values()
        ]
    }
    return {
        "type": "object",
        "properties": {
            "changes": {"type": "array", "items": change},
            "cursor": {"type": "integer", "minimum": 0},
            "hasMore": {"type": "boolean"},
        },
        "required": ["changes", "cursor", "hasMore"],
    }


def table_page_properties() -> Schema:
    """`synced` (wire records of the table), `cursor`, `hasMore`."""
    return {
        "synced": {"type": "array", "items": any_wire_record_schema()},
        "cursor": {"type": "integer", "minimum": 0},
        "hasMore": {"type": "boolean"},
    }


def server_summary_schema() -> Schema:
    """One table's summary as the server computes it."""
    return {
        "type": "object",
        "properties": {
            "table": {"type": "string", "enum": list(TABLES)},
            "count": {"type": "integer", "minimum": 0},
            "latestUpdatedAt": iso_schema(nullable=True),
            "checksum": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
        },
        "required": ["table", "count", "latestUpdatedAt", "checksum"],
    }


def mismatch_schema() -> Schema:
    return {
        "type": "object",
        "properties": {
            "table": {"type": "string"},
            "reason": {"type": "string"},
            "server": server_summary_schema(),
            "client": {"type": "object"},
        },
        "required": ["table", "reason", "server", "client"],
    }


def reconcile_answer_properties() -> Schema:
    return {
        "isConsistent": {"type": "boolean"},
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
        "retry": {"type": "boolean"},
        "mismatches": {"type": "array", "items": mismatch_schema()},
        "serverSummary": {"type": "array", "items": server_summary_schema()},
        "cursor": {"type": "integer"},
        "id": {"type": "integer"},
        "timestamp": iso_schema(),
    }


def bucket_summaries_schema() -> Schema:
    """`{"<bucket>": {count, checksum}}` of the buckets that have live rows."""
    return {
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "properties": {"count": {"type": "integer"}, "checksum": {"type": "string"}},
            "required": ["count", "checksum"],
        },
    }


def error_schema() -> Schema:
    """`{success: false, error, code, ...details}`: every failure of both apps."""
    return {
        "type": "object",
        "properties": {
            "success": {"const": False},
            "error": {"type": "string"},
            "code": {"type": "string"},
        },
        "required": ["success", "error", "code"],
    }


def json_content(schema: Schema, description: str = "Success") -> Schema:
    """An OpenAPI response object with a JSON body (for a route's `responses={200: ...}`)."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}
