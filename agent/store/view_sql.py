"""View rows as SQLite stores them: the per-table statements (INSERT OR REPLACE, SELECT) and
the conversions the peewee models would apply, kept as plain SQL because building these
queries through peewee cost more than SQLite's work on the hot paths (agent/store/views.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from protocol import TABLES, Field, Kind, row_digest
from protocol.extras import canonical_json, from_canonical
from protocol.merge import Row

from .models import column_name


def _text(value: Any) -> Any:
    return None if value is None else str(value)


def _integer(value: Any) -> Any:
    return None if value is None else int(value)


def _decimal_text(value: Any) -> Any:
    return None if value is None else str(Decimal(value))  # as models.DecimalText stores it


def _decimal_of(value: Any) -> Decimal:
    return Decimal(str(value))  # as models.DecimalText reads it


def _boolean_int(value: Any) -> Any:
    return None if value is None else int(bool(value))  # as peewee's BooleanField stores it


def _json_text(value: Any) -> Any:
    return None if value is None else canonical_json(value)  # as models.JsonText stores it


_TO_DB: dict[Kind, Callable[[Any], Any]] = {
    Kind.TEXT: _text,
    Kind.DECIMAL: _decimal_text,
    Kind.INTEGER: _integer,
    Kind.TIMESTAMP: _integer,
    Kind.BOOLEAN: _boolean_int,
    Kind.JSON: _json_text,
}
# How a column's value is read back (None: as SQLite gives it).
_FROM_DB: dict[Kind, Callable[[Any], Any]] = {
    Kind.DECIMAL: _decimal_of,
    Kind.BOOLEAN: bool,
    Kind.JSON: from_canonical,
}


def _to_db(f: Field) -> Callable[[Any], Any]:
    """A field's to-database conversion. A decimal is stored at its field's scale, the form
    the server's rows come back in ("0.00", not a default's "0"): the view row a POS write
    stores is then the very row the acknowledgement brings back, and is not written again."""
    if f.kind is not Kind.DECIMAL:
        return _TO_DB[f.kind]
    form = f".{f.scale}f"

    def decimal_at_scale(value: Any) -> Any:
        return None if value is None else format(Decimal(value), form)

    return decimal_at_scale


def _insert_sql(name: str) -> str:
    t = TABLES[name]
    cols = [
        "id",
        "updated_at",
        *(column_name(f.name) for f in t.fields),
        "extra",
        "changed_at",
        "digest_hi",
        "digest_lo",
    ]
    return (
        f'INSERT OR REPLACE INTO "{name}" ({", ".join(cols)}) VALUES ({", ".join("?" * len(cols))})'
    )


Converters = list[tuple[str, Callable[[Any], Any] | None]]

# Per view table: its INSERT OR REPLACE, and (field, to-database conversion) per column, as
# the peewee models store them (see models._view_model).
VIEW_INSERT: dict[str, str] = {name: _insert_sql(name) for name in TABLES}
_VIEW_CONVERT: dict[str, list[tuple[str, Callable[[Any], Any]]]] = {
    name: [(f.name, _to_db(f)) for f in t.fields] for name, t in TABLES.items()
}
# Per view table: its SELECT (id, updated_at, fields, extra, changed_at), and (field,
# from-database conversion) per field.
VIEW_SELECT: dict[str, tuple[str, Converters]] = {
    name: (
        f"SELECT id, updated_at, {', '.join(column_name(f.name) for f in t.fields)}, "
        f'extra, changed_at FROM "{name}"',
        [(f.name, _FROM_DB.get(f.kind)) for f in t.fields],
    )
    for name, t in TABLES.items()
}
# Per view table: the columns `_stored` gives, as stored (no conversion).
VIEW_STORED_SELECT: dict[str, str] = {
    name: f"SELECT id, updated_at, {', '.join(column_name(f.name) for f in t.fields)}, "
    f'extra FROM "{name}"'
    for name, t in TABLES.items()
}
# Per view table: its JSON fields, stored as text but digested as the values they hold.
_JSON_FIELDS: dict[str, list[str]] = {
    name: [f.name for f in t.fields if f.kind is Kind.JSON] for name, t in TABLES.items()
}


def row_of(convert: Converters, values: Sequence[Any]) -> Row:
    """A row of a `VIEW_SELECT` query -> the store's row dict."""
    row: Row = {"id": values[0], "updatedAt": values[1]}
    for (name, conv), value in zip(convert, values[2:-2], strict=True):
        row[name] = value if value is None or conv is None else conv(value)
    extra = values[-2]
    row["_extra"] = from_canonical(extra) if extra else {}
    return row


def marks(chunk: Sequence[Any]) -> str:
    """The `?, ?, ...` of an `IN (...)` of `chunk`."""
    return ", ".join("?" * len(chunk))


def _stored(table: str, row_id: str, row: Row) -> tuple[Row, str | None]:
    """A view row's column values as SQLite stores them (id, updated_at, fields), and its
    undeclared fields as their stored text."""
    stored: Row = {"id": row_id, "updatedAt": int(row["updatedAt"])}
    for name, conv in _VIEW_CONVERT[table]:
        stored[name] = conv(row.get(name))
    extra = row.get("_extra")
    return stored, canonical_json(extra) if extra else None


def stored_values(table: str, row_id: str, row: Row) -> tuple[Any, ...]:
    """The values of a `VIEW_STORED_SELECT` row that would hold this row."""
    stored, extra_text = _stored(table, row_id, row)
    return (*stored.values(), extra_text)


def view_values(table: str, row_id: str, row: Row, changed_at: int) -> tuple[Any, ...]:
    """The column values of a view row, its digest last. The digest is computed from the
    values as stored (what a read gives back), so it always matches the row on disk."""
    t = TABLES[table]
    stored, extra_text = _stored(table, row_id, row)
    read_back = stored
    if extra_text is not None or _JSON_FIELDS[table]:
        read_back = dict(stored)
        for name in _JSON_FIELDS[table]:
            if read_back[name] is not None:
                read_back[name] = from_canonical(read_back[name])
        if extra_text is not None:
            read_back["_extra"] = from_canonical(extra_text)
    digest = row_digest(t, read_back)
    return (*stored.values(), extra_text, changed_at, digest >> 32, digest & 0xFFFFFFFF)


def from_view(row: dict[str, Any]) -> Row:
    """A view row as read by peewee -> the store's row dict (updatedAt, `_extra`, no digest
    nor change time)."""
    row["updatedAt"] = row.pop("updated_at")
    row["_extra"] = row.pop("extra") or {}
    del row["digest_hi"], row["digest_lo"], row["changed_at"]
    return row
