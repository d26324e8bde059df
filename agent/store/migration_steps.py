"""The frozen building blocks of the agent store's migrations: add columns to a view table,
create a view table, give view tables their change times, recompute the rows' digests.

A migration names what it changes with frozen names and kinds (`("cost_price", "decimal",
0)`), never with today's models, so it does the same on every store whatever the code
becomes. Adding a column to a synchronised table is then one declaration in
protocol/schema.py plus a migration calling `add_view_columns`; adding a table is a
declaration plus `create_view_table`. The models and the views' SQL follow
protocol/schema.py by themselves.

Every helper runs in the migration's transaction (SQLite's DDL is transactional): a failing
migration leaves nothing half done.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import peewee as pw

from protocol import TABLES, ProtocolError, dumps, loads, row_digest, to_iso
from protocol.extras import canonical_json, from_canonical
from protocol.records import check_bounds, coerce
from protocol.schema import Field, Kind

log = logging.getLogger(__name__)

# SQLite column types per kind of field. Frozen: a migration written today must create the
# same column in ten years. Decimals are canonical text (NUMERIC affinity would make them
# floats), booleans 0/1, JSON canonical text, timestamps epoch milliseconds.
KIND_TYPES: dict[str, str] = {
    "text": "TEXT",
    "decimal": "TEXT",
    "integer": "INTEGER",
    "timestamp": "INTEGER",
    "boolean": "INTEGER",
    "json": "TEXT",
}

# (column name, kind, the value the rows already there get: None, or the schema's default;
# a JSON default is given as its JSON text)
Column = tuple[str, str, Any]

# Rows per round of the helpers that rewrite rows: bounded memory whatever the store's size.
_PAGE = 2000


def q(name: str) -> str:
    """An SQL identifier, double-quoted."""
    return '"' + name.replace('"', '""') + '"'


def literal(kind: str, value: Any) -> str:
    """A default as an SQL literal of its column's type."""
    if value is None:
        return "NULL"
    if kind == "boolean":
        return "1" if value else "0"
    if kind in ("integer", "timestamp"):
        return str(int(value))
    text = str(Decimal(value)) if kind == "decimal" else str(value)
    return "'" + text.replace("'", "''") + "'"


def add_change_times(db: pw.Database, table: str, now: int) -> None:
    """Give a view table `extra` (its rows' undeclared fields, canonical JSON) and
    `changed_at` (the local time of a row's last write, indexed); the rows already there
    get `now`: when they last changed is not known, so a front end reading by `lastSync`
    gets each of them once more rather than miss one."""
    db.execute_sql(f"ALTER TABLE {q(table)} ADD COLUMN extra TEXT")
    db.execute_sql(
        f"ALTER TABLE {q(table)} ADD COLUMN changed_at INTEGER NOT NULL DEFAULT {int(now)}"
    )
    db.execute_sql(f"CREATE INDEX {q(table + '_changed_at')} ON {q(table)} (changed_at)")


def add_view_columns(
    db: pw.Database, table: str, columns: Sequence[Column], *, recompute: bool = True
) -> None:
    """Add nullable columns to a view table, as the server's migration adds them to its
    table: the rows already there get each one's default, and so do the server's rows this
    store mirrors (`server_rows`), so a view rebuilt from them later agrees with the server.

    A field that a front end sent before it was declared was kept as an undeclared field:
    its values move into the new column. A non-null default or a moved value changes the
    rows' content, so their digests are recomputed (unless `recompute` is False: the caller
    recomputes once at its end).
    """
    moved = 0
    for name, kind, default in columns:
        sql_default = literal(kind, default)
        suffix = "" if sql_default == "NULL" else f" DEFAULT {sql_default}"
        db.execute_sql(f"ALTER TABLE {q(table)} ADD COLUMN {q(name)} {KIND_TYPES[kind]}{suffix}")
        moved += promote_extras(db, table, name)
        fill_shadows(db, table, name, kind, default)
    if recompute and (moved or any(default is not None for _, _, default in columns)):
        recompute_digests(db, table)


def create_view_table(db: pw.Database, table: str, columns: Sequence[tuple[str, str]]) -> None:
    """A new view table: id, updated_at, the fields `[(column, kind), ...]`, the digest
    halves, `extra` and `changed_at`; indexed by changed_at (and created_at if it has one)."""
    defs = ["id VARCHAR(128) NOT NULL PRIMARY KEY", "updated_at INTEGER NOT NULL"]
    defs += [f"{q(name)} {KIND_TYPES[kind]}" for name, kind in columns]
    defs += [
        "digest_hi INTEGER NOT NULL DEFAULT 0",
        "digest_lo INTEGER NOT NULL DEFAULT 0",
        "extra TEXT",
        "changed_at INTEGER NOT NULL DEFAULT 0",
    ]
    db.execute_sql(f"CREATE TABLE {q(table)} ({', '.join(defs)})")
    for column in ("created_at", "changed_at"):
        if column == "changed_at" or any(name == column for name, _ in columns):
            db.execute_sql(f"CREATE INDEX {q(f'{table}_{column}')} ON {q(table)} ({column})")


def _field_of(table: str, column: str) -> Field | None:
    """The field today's schema declares for `column` (None: not declared)."""
    t = TABLES.get(table)
    if t is None:
        return None
    return next((f for f in t.fields if _column_name(f.name) == column), None)


def _column_name(wire_name: str) -> str:
    # Frozen here (as agent/store/models.column_name): camelCase -> snake_case.
    return "".join("_" + c.lower() if c.isupper() else c for c in wire_name)


def _pages(db: pw.Database, sql: str, args: tuple[Any, ...] = ()) -> Iterator[list[tuple]]:
    """The rows of the query `sql` (its first column a unique key named `k`; `args` are its
    own parameters) in pages by that key."""
    last: Any = None
    while True:
        after = "" if last is None else " WHERE k > ?"
        rows = db.execute_sql(
            f"SELECT * FROM ({sql}){after} ORDER BY k LIMIT {_PAGE}",
            args + (() if last is None else (last,)),
        ).fetchall()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def promote_extras(db: pw.Database, table: str, column: str) -> int:
    """Move the undeclared field that `column` now declares out of each view row's `extra`
    into the column. A value the declared kind refuses stays where it was (nothing is ever
    dropped) and is logged. Returns the number of rows changed."""
    f = _field_of(table, column)
    if f is None:
        return 0
    pattern = "%" + canonical_json(f.name) + "%"  # a prefilter: the exact test is below
    moved = 0
    for rows in _pages(db, f"SELECT id AS k, extra FROM {q(table)} WHERE extra LIKE ?", (pattern,)):
        updates = []
        for row_id, text in rows:
            extra = from_canonical(text)
            if f.name not in extra:
                continue
            try:
                value = check_bounds(f, coerce(f, extra[f.name]))
            except ProtocolError as exc:
                log.warning(
                    "%s %s: %s kept as an undeclared field (%s)", table, row_id, f.name, exc
                )
                continue
            del extra[f.name]
            updates.append((_stored(f, value), canonical_json(extra) if extra else None, row_id))
        if updates:
            db.cursor().executemany(
                f"UPDATE {q(table)} SET {q(column)} = ?, extra = ? WHERE id = ?", updates
            )
            moved += len(updates)
    return moved


def _stored(f: Field, value: Any) -> Any:
    """A field's Python value as its view column stores it."""
    if value is None:
        return None
    if f.kind is Kind.DECIMAL:
        return str(value)
    if f.kind is Kind.BOOLEAN:
        return int(bool(value))
    if f.kind is Kind.JSON:
        return canonical_json(value)
    return value


def fill_shadows(db: pw.Database, table: str, column: str, kind: str, default: Any) -> int:
    """The server's rows this store mirrors (`server_rows`, wire records) get the new
    field's default where they lack it, as the server's migration gave it to them (without
    a change the agent would pull). Returns the number of records changed."""
    f = _field_of(table, column)
    if f is None or default is None:
        return 0
    value = _wire_value(kind, default)
    changed = 0
    for rows in _pages(
        db,
        "SELECT row_id AS k, data FROM server_rows WHERE table_name = ? AND deleted = 0",
        (table,),
    ):
        updates = []
        for row_id, data in rows:
            record = loads(data)
            if f.name not in record:
                record[f.name] = value
                updates.append((dumps(record), table, row_id))
        if updates:
            db.cursor().executemany(
                "UPDATE server_rows SET data = ? WHERE table_name = ? AND row_id = ?", updates
            )
            changed += len(updates)
    return changed


def _wire_value(kind: str, default: Any) -> Any:
    """A frozen default as a wire record carries it."""
    if kind == "decimal":
        return Decimal(str(default))
    if kind == "boolean":
        return bool(default)
    if kind == "json":
        return from_canonical(str(default))
    if kind == "timestamp":
        return to_iso(int(default))
    if kind == "integer":
        return int(default)
    return str(default)


def recompute_digests(db: pw.Database, table: str) -> int:
    """Store each view row's digest as protocol.row_digest computes it today over the row as
    read back, undeclared fields included. Columns the schema declares but the table does
    not have yet are null, which the digest leaves out, so this is right at any step of the
    migrations. Returns the number of rows."""
    t = TABLES[table]
    present = [r[1] for r in db.execute_sql(f"PRAGMA table_info({q(table)})").fetchall()]
    fields = [(f, _column_name(f.name)) for f in t.fields if _column_name(f.name) in present]
    extra = "extra" if "extra" in present else "NULL"
    columns = ", ".join(["id AS k", "updated_at", extra, *(q(col) for _, col in fields)])
    done = 0
    for rows in _pages(db, f"SELECT {columns} FROM {q(table)}"):
        updates = []
        for values in rows:
            row: dict[str, Any] = {"id": values[0], "updatedAt": values[1]}
            row["_extra"] = from_canonical(values[2]) if values[2] else {}
            for (f, _), value in zip(fields, values[3:], strict=True):
                if value is not None and f.kind is Kind.JSON:
                    value = from_canonical(value)
                row[f.name] = value
            digest = row_digest(t, row)
            updates.append((digest >> 32, digest & 0xFFFFFFFF, values[0]))
        db.cursor().executemany(
            f"UPDATE {q(table)} SET digest_hi = ?, digest_lo = ? WHERE id = ?", updates
        )
        done += len(rows)
    return done
