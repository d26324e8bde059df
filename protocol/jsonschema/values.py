"""JSON Schemas of single values received and sent: timestamps, ids, cursors, fields."""

from __future__ import annotations

from typing import Any

from ..extras import JSON_MAX_DEPTH
from ..schema import DECIMAL_DIGITS, ID_MAX_LENGTH, Field, Kind

Schema = dict[str, Any]

# The instants `timefmt.parse_ms` accepts (2000-01-01 to 2100-01-01), as epoch ms.
MIN_EPOCH_MS = 946_684_800_000
MAX_EPOCH_MS = 4_102_444_800_000

_NO_CONTROL = "^[^\\u0000-\\u001f]*$"


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
    elif f.kind is Kind.BOOLEAN:
        schema = {
            "anyOf": [
                {"type": "boolean"},
                {"type": "integer", "enum": [0, 1]},
                {"type": "string", "enum": ["true", "false", "1", "0", "sim", "nao", "não"]},
            ]
        }
    elif f.kind is Kind.JSON:
        schema = {
            "description": f"any JSON value, at most {f.max_length} bytes, nested at most "
            f"{JSON_MAX_DEPTH} deep"
        }
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
    if f.kind is Kind.BOOLEAN:
        return {"type": ["boolean", "null"]}
    if f.kind is Kind.JSON:
        return {"description": "any JSON value, as it was written"}
    kind = "integer" if f.kind is Kind.INTEGER else "number"
    return {"type": kind} if f.counter else {"type": [kind, "null"]}
