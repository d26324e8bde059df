"""Validation of incoming records and their canonical wire form.

A record carries its table's declared fields and, kept as they came, any fields nobody
declared (see extras.py). A record pushed by a client is one of three operations on one row:
- upsert (the default): a patch, only the fields it carries change;
- `{"id", "_op": "delete"}`: a tombstone;
- `{"id", "_op": "increment", "<counter>": n}`: a commutative change of a stock counter.
`parse_change` turns the JSON object into a `Change` or raises `ProtocolError`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from .errors import ProtocolError
from .extras import META_KEYS, from_canonical, json_default, json_value, parse_extras
from .schema import DECIMAL_DIGITS, ID_MAX_LENGTH, Field, Kind, Table
from .timefmt import parse_ms, to_iso


class Op(str, Enum):
    UPSERT = "upsert"
    DELETE = "delete"
    INCREMENT = "increment"


@dataclass
class Change:
    table: Table
    id: str
    op: Op
    values: dict[str, Any] = field(default_factory=dict)  # upsert: new values; increment: deltas
    edited_at: int | None = None  # client's edit time (epoch ms), None when it did not say
    extra: dict[str, Any] = field(default_factory=dict)  # upsert: undeclared fields it carries
    tenant: str | None = None  # the record's own `tenantId`, if it named one (never stored)


# ASCII control characters, refused in ids: one C-speed scan, not a Python loop per character.
CONTROL_CHARS = re.compile(r"[\x00-\x1f]")


def parse_id(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ProtocolError("invalid_id", "id: expected a non-empty string")
    text = str(value)
    if not text.strip():
        raise ProtocolError("missing_id", "id: must not be empty")
    if len(text) > ID_MAX_LENGTH:
        raise ProtocolError("invalid_id", f"id: longer than {ID_MAX_LENGTH} characters")
    if CONTROL_CHARS.search(text):
        raise ProtocolError("invalid_id", "id: control characters are not allowed")
    return text


def coerce(f: Field, value: object) -> Any:
    """One field's JSON value -> its Python value, or ProtocolError naming the field."""
    if value is None:
        if f.counter:
            raise ProtocolError("invalid_value", f"{f.name}: a stock counter cannot be null")
        return None
    if f.kind is Kind.TEXT:
        if not isinstance(value, str):
            raise ProtocolError("invalid_type", f"{f.name}: expected a string")
        if len(value) > f.max_length:
            raise ProtocolError("invalid_value", f"{f.name}: longer than {f.max_length} characters")
        if "\x00" in value:
            raise ProtocolError("invalid_value", f"{f.name}: NUL characters are not allowed")
        return value
    if f.kind is Kind.INTEGER:
        if type(value) is int and -(2**53) < value < 2**53:  # the usual case, as _number ends
            return value
        number = _number(f, value)
        if number != number.to_integral_value():
            raise ProtocolError("invalid_value", f"{f.name}: expected a whole number")
        if abs(number) >= 2**53:
            raise ProtocolError("invalid_value", f"{f.name}: out of range")
        return int(number)
    if f.kind is Kind.DECIMAL:
        return quantize(f, _number(f, value))
    if f.kind is Kind.TIMESTAMP:
        return parse_ms(value, f.name)
    if f.kind is Kind.BOOLEAN:
        return _boolean(f, value)
    if f.kind is Kind.JSON:
        return json_value(value, f.name, f.max_length)
    raise AssertionError(f.kind)  # pragma: no cover - schema kinds are closed


# The quantum of each scale (Decimal('0.0001') for 4), made once.
_EXPONENTS: dict[int, Decimal] = {}


def quantize(f: Field, number: Decimal) -> Decimal:
    """Exact value at the field's scale; refuses silent rounding."""
    exp = _EXPONENTS.get(f.scale) or _EXPONENTS.setdefault(f.scale, Decimal(1).scaleb(-f.scale))
    try:
        q = number.quantize(exp)
    except InvalidOperation:
        raise ProtocolError("invalid_value", f"{f.name}: out of range") from None
    if q != number:
        raise ProtocolError(
            "invalid_value", f"{f.name}: at most {f.scale} digits after the decimal point"
        )
    if len(q.as_tuple().digits) > DECIMAL_DIGITS:
        raise ProtocolError("invalid_value", f"{f.name}: more than {DECIMAL_DIGITS} digits")
    return q


def _number(f: Field, value: object) -> Decimal:
    if isinstance(value, bool):
        raise ProtocolError("invalid_type", f"{f.name}: expected a number")
    if isinstance(value, (int, Decimal)):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))  # the shortest text that round-trips, as JS prints it
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ProtocolError(
                "invalid_type", f"{f.name}: '{value[:40]}' is not a number"
            ) from None
    else:
        raise ProtocolError("invalid_type", f"{f.name}: expected a number")
    if not number.is_finite():
        raise ProtocolError("invalid_value", f"{f.name}: must be a finite number")
    if number and not -40 <= number.adjusted() <= 40:  # 1e999999999: any arithmetic would overflow
        raise ProtocolError("invalid_value", f"{f.name}: out of range")
    return number


_TRUE = {"true", "1", "sim"}
_FALSE = {"false", "0", "nao", "não"}


def _boolean(f: Field, value: object) -> bool:
    """true/false; also 1/0 and their text, as spreadsheets and older front ends send them."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ProtocolError("invalid_type", f"{f.name}: expected true or false")


def parse_op(record: dict[str, Any]) -> Op:
    raw = record.get("_op")
    if raw is None:
        return Op.DELETE if record.get("_deleted") is True else Op.UPSERT
    try:
        return Op(raw)
    except ValueError:
        raise ProtocolError(
            "unknown_operation",
            f"_op: unknown operation {str(raw)[:40]!r} (expected upsert, delete or increment)",
        ) from None


def parse_change(table: Table, record: object, *, edited_at: int | None = None) -> Change:
    """Validate one pushed record of `table`. `edited_at` is the envelope's time, if any."""
    if not isinstance(record, dict):
        raise ProtocolError("invalid_record", "record: expected a JSON object")
    if record.get("id") is None:
        raise ProtocolError("missing_id", "record: 'id' is required")
    row_id = parse_id(record["id"])
    op = parse_op(record)
    if record.get("updatedAt") is not None:
        edited_at = parse_ms(record["updatedAt"], "updatedAt")
    known = table.field_names
    change = Change(table, row_id, op, edited_at=edited_at, tenant=_record_tenant(record))
    if op is Op.DELETE:
        return change
    if op is Op.INCREMENT:
        fields = {k: v for k, v in record.items() if k in known}
        odd = [str(k)[:40] for k in record if k not in META_KEYS and k not in known]
        if odd:
            raise ProtocolError(
                "invalid_increment",
                f"increment: only {', '.join(table.counters) or 'counters'} (not {', '.join(sorted(odd)[:5])})",
            )
        if not table.counters:
            raise ProtocolError("unknown_operation", f"{table.name}: has no counter to increment")
        for name, value in fields.items():
            f = table.field(name)
            if not f.counter:
                raise ProtocolError(
                    "invalid_increment",
                    f"{name}: only {', '.join(table.counters)} can be incremented",
                )
            change.values[name] = coerce(f, value)
        if not change.values:
            raise ProtocolError(
                "invalid_increment", f"increment: give a delta for {', '.join(table.counters)}"
            )
        return change
    # An upsert: every declared field it carries, in the record's order (the first bad one
    # is the one named), then its undeclared fields. One pass over the record, each field's
    # checks looked up once: this runs for every field of every pushed record.
    by_name = _fields_of(table)
    values = change.values
    undeclared = False
    for name, value in record.items():
        declared = by_name.get(name)
        if declared is None:
            undeclared = undeclared or name not in META_KEYS
            continue
        value = coerce(declared, value)
        if value is not None and (declared.positive or declared.non_negative):
            value = check_bounds(declared, value)
        values[name] = value
    if undeclared:
        change.extra = parse_extras(record, known)
    return change


_FIELDS: dict[int, tuple[Table, dict[str, Field]]] = {}


def _fields_of(table: Table) -> dict[str, Field]:
    """`{name: Field}` of a table's declared fields (tables are immutable: cached by
    identity, the table kept with its entry so its id is never reused)."""
    found = _FIELDS.get(id(table))
    if found is None:
        found = _FIELDS[id(table)] = (table, {f.name: f for f in table.fields})
    return found[1]


def _record_tenant(record: dict[str, Any]) -> str | None:
    value = record.get("tenantId")
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ProtocolError(
            "invalid_tenant", "tenantId: expected the shop's id as text", status=400
        )
    return value.strip()


def check_bounds(f: Field, value: Any) -> Any:
    """A written value within its field's bounds (a price is not negative, a quantity is
    above zero), or ProtocolError naming the field. Increment deltas are not values: a
    negative delta is a sale. Rows read back (`from_wire`) are not checked, so a row stored
    before a bound existed never stops a pull."""
    if value is None:
        return value
    if f.positive and value <= 0:
        raise ProtocolError("invalid_value", f"{f.name}: must be greater than 0 (got {value})")
    if f.non_negative and value < 0:
        raise ProtocolError("invalid_value", f"{f.name}: must not be negative (got {value})")
    return value


def default_row(table: Table, row_id: str) -> dict[str, Any]:
    """A new row before its first patch: every field at its default, no undeclared fields."""
    row: dict[str, Any] = {"id": row_id}
    shared, fresh = _defaults_of(table)
    row.update(shared)
    for f in fresh:
        row[f.name] = default_value(f)
    row["_extra"] = {}
    return row


_DEFAULTS: dict[int, tuple[Table, dict[str, Any], tuple[Field, ...]]] = {}


def _defaults_of(table: Table) -> tuple[dict[str, Any], tuple[Field, ...]]:
    """A table's immutable defaults (None, numbers, text, Decimal: shared by every new row,
    in field order), and the fields whose default must be made afresh (JSON: mutable)."""
    found = _DEFAULTS.get(id(table))
    if found is None:
        mutable = tuple(f for f in table.fields if f.kind is Kind.JSON and f.default is not None)
        shared = {f.name: default_value(f) for f in table.fields}
        found = _DEFAULTS[id(table)] = (table, shared, mutable)
    return found[1], found[2]


def default_value(f: Field) -> Any:
    """A field's default as a Python value (a fresh one: JSON defaults are mutable)."""
    if f.default is None:
        return None
    if f.kind is Kind.DECIMAL:
        return Decimal(f.default)
    if f.kind is Kind.JSON:
        return from_canonical(str(f.default))
    return f.default


def to_wire(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """A stored row (Python values) -> its JSON-ready wire record; tombstones stay minimal."""
    if row.get("_deleted"):
        return {"id": row["id"], "_deleted": True, "updatedAt": to_iso(row["updatedAt"])}
    out: dict[str, Any] = {"id": row["id"]}
    for f in table.fields:
        value = row.get(f.name)
        if value is not None and f.kind is Kind.TIMESTAMP:
            value = to_iso(value)
        out[f.name] = value
    extra = row.get("_extra")
    if extra:
        # Never over a declared field: a value sent before its column was declared that did
        # not fit the column stays undeclared, and must not pass for the column's value.
        out.update((k, v) for k, v in extra.items() if k not in out and k not in META_KEYS)
    out["updatedAt"] = to_iso(row["updatedAt"])
    return out


def from_wire(table: Table, record: dict[str, Any]) -> dict[str, Any]:
    """A wire record received from the other side -> the row dict `to_wire` came from."""
    row: dict[str, Any] = {
        "id": parse_id(record["id"]),
        "updatedAt": parse_ms(record["updatedAt"], "updatedAt"),
    }
    if record.get("_deleted"):
        row["_deleted"] = True
        return row
    row["_deleted"] = False
    for f in table.fields:
        row[f.name] = coerce(f, record.get(f.name)) if record.get(f.name) is not None else None
        if row[f.name] is None and f.counter:
            row[f.name] = default_value(f)
    row["_extra"] = parse_extras(record, table.field_names)
    return row


def dumps(obj: Any) -> str:
    """JSON text of a wire message; Decimals become exact JSON numbers."""
    return _WIRE_JSON.encode(obj)


def dumps_with(obj: dict[str, Any], **encoded: str) -> str:
    """`dumps(obj)` with more members whose values are JSON text already (a stored record,
    events encoded earlier), put in as they are instead of parsed and encoded again."""
    text = dumps(obj)
    if not encoded:
        return text
    more = ",".join(f"{dumps(name)}:{value}" for name, value in encoded.items())
    return f"{text[:-1]},{more}}}" if obj else f"{{{more}}}"


# Built once: `json.dumps` with options builds a new encoder on every call (every answer,
# every stored receipt). Its `encode` keeps no state between calls.
_WIRE_JSON = json.JSONEncoder(default=json_default, ensure_ascii=False, separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    """Parse a wire message; JSON numbers with a fraction become Decimal, never float."""
    return json.loads(text, parse_float=Decimal)
