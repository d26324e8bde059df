"""JSON Schemas of the answers: `{success: true, ...}` bodies, push results, pages of
changes, summaries, and the one error shape."""

from __future__ import annotations

from ..schema import TABLES
from ..vocabulary import ReconcileStatus, Resolution, ResultStatus
from .tables import any_wire_record_schema, wire_record_schema
from .values import Schema, iso_schema


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
    """One table that differs: the reason in the original server's words (checksum.py),
    `client: null` when the client did not summarise it, `checksumMismatch` when the
    checksum differs too."""
    return {
        "type": "object",
        "properties": {
            "table": {"type": "string"},
            "reason": {"type": "string"},
            "server": server_summary_schema(),
            "client": {"type": ["object", "null"]},
            "checksumMismatch": {"type": "boolean"},
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
