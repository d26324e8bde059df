"""Free-form JSON in records: the values of JSON fields (a recipe's components) and the fields
nobody declared (`extras`), kept with their record, bounded, in one canonical form.

A front end evolves faster than the servers it talks to: a field this version does not know
is never a reason to refuse or drop a record. It travels with the record (`_extra` in a
stored row, flat in the wire record), is returned by every read and covered by the reconcile
checksum. Bounds keep one record from carrying a megabyte of anything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .errors import ProtocolError

# Keys a record carries besides its table's fields, handled by the protocol itself. A
# `tenantId` names the shop (checked against the request's, never stored); an `eventId` is
# the seed client's idempotency key left inside a record (never part of the record).
META_KEYS = frozenset({"id", "_op", "_deleted", "updatedAt", "tenantId", "eventId"})

EXTRA_MAX_KEYS = 64
EXTRA_KEY_MAX_LENGTH = 64
EXTRA_MAX_BYTES = 16 * 1024  # of the canonical JSON of a record's extras, all of them
JSON_MAX_DEPTH = 16


def json_default(value: object) -> object:
    """`json.dumps(default=)` for Decimals: exact JSON numbers. A DECIMAL field carries at most
    15 significant digits (schema.DECIMAL_DIGITS), so the float's shortest repr is exactly
    those digits. The exponent is a letter for NaN and infinities: only a finite integral
    value written without a fractional part becomes a JSON integer."""
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        integral = value == value.to_integral_value()
        return (
            int(value) if integral and isinstance(exponent, int) and exponent >= 0 else float(value)
        )
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def canonical_json(value: Any) -> str:
    """One text per JSON value: sorted keys, no spaces, exact integers, Decimals as numbers.
    What is stored, what checksums digest, and so what both sides compare."""
    return json.dumps(
        value, default=json_default, ensure_ascii=False, separators=(",", ":"), sort_keys=True
    )


def from_canonical(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def json_value(value: Any, name: str, max_bytes: int) -> Any:
    """A JSON value as it will be kept: canonical (Decimals normalised the way they are sent
    back), nested at most JSON_MAX_DEPTH deep, at most `max_bytes` of canonical text."""
    _check_depth(value, name)
    text = canonical_json(value)
    if len(text.encode("utf-8")) > max_bytes:
        raise ProtocolError(
            "value_too_large", f"{name}: more than {max_bytes} bytes of JSON", status=422
        )
    return from_canonical(text)


def _check_depth(value: Any, name: str) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
            if any(not isinstance(k, str) for k in item):
                raise ProtocolError("invalid_value", f"{name}: JSON object keys must be text")
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > JSON_MAX_DEPTH:
            raise ProtocolError(
                "invalid_value", f"{name}: JSON nested deeper than {JSON_MAX_DEPTH} levels"
            )
        stack.extend((child, depth + 1) for child in children)


def parse_extras(record: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    """The fields of a received record that neither its table nor the protocol declares."""
    extras: dict[str, Any] = {}
    for key, value in record.items():
        if key in META_KEYS or key in known:
            continue
        if not isinstance(key, str) or not key or len(key) > EXTRA_KEY_MAX_LENGTH:
            raise ProtocolError(
                "invalid_field_name",
                f"field names are 1 to {EXTRA_KEY_MAX_LENGTH} characters: {str(key)[:40]!r}",
            )
        if any(ord(c) < 32 for c in key):
            raise ProtocolError(
                "invalid_field_name", f"field name {key[:40]!r} has control characters"
            )
        _check_depth(value, key)
        extras[key] = value
    if extras:
        check_extras(extras)
        return from_canonical(canonical_json(extras))
    return extras


def check_extras(extras: Mapping[str, Any]) -> None:
    """The bounds on one record's undeclared fields (all of them, after a patch too)."""
    if len(extras) > EXTRA_MAX_KEYS:
        raise ProtocolError(
            "extra_too_large",
            f"a record may carry at most {EXTRA_MAX_KEYS} undeclared fields (got {len(extras)})",
        )
    size = len(canonical_json(extras).encode("utf-8"))
    if size > EXTRA_MAX_BYTES:
        raise ProtocolError(
            "extra_too_large",
            f"undeclared fields of a record: at most {EXTRA_MAX_BYTES} bytes of JSON (got {size})",
        )
