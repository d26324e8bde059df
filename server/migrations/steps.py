"""The frozen building blocks of migrations: add columns, create a synchronised table, make
a table's key lead with the shop, recompute the rows' digests.

A migration names what it changes with frozen names and kinds (`("cost_price", "decimal",
0)`), never with today's models, so it does the same on every database whatever the code
becomes. Adding a column to a synchronised table is then one declaration in
protocol/schema.py plus a migration calling `add_columns`; adding a table is a declaration
plus `create_data_table`. The server's models follow protocol/schema.py by themselves.

Each helper runs in the migration's transaction (SQLite and PostgreSQL alike: their DDL is
transactional), so a failing migration leaves nothing half done.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import peewee as pw

from protocol import TABLES, ProtocolError, bucket_of, row_digest, to_signed
from protocol.extras import canonical_json, from_canonical
from protocol.records import check_bounds, coerce
from protocol.schema import Field, Kind

from ..db import column_name, is_postgres

log = logging.getLogger(__name__)

# Column types per kind of field: (SQLite, PostgreSQL). Frozen: a migration written today
# must create the same column in ten years. Decimals are exact (canonical text on SQLite,
# whose NUMERIC affinity would make them floats); JSON is canonical text on both.
KIND_TYPES: dict[str, tuple[str, str]] = {
    "text": ("TEXT", "TEXT"),
    "decimal": ("TEXT", "NUMERIC(18,4)"),
    "integer": ("BIGINT", "BIGINT"),
    "timestamp": ("BIGINT", "BIGINT"),  # epoch milliseconds
    "boolean": ("INTEGER", "BOOLEAN"),
    "json": ("TEXT", "TEXT"),
}

# The columns every synchronised table has besides its fields, as migration 0003 left them
# (the key is (tenant_id, id)).
_META_V3: tuple[tuple[str, str, str], ...] = (
    # name, SQLite type, PostgreSQL type
    ("tenant_id", "VARCHAR(64) NOT NULL", "VARCHAR(64) NOT NULL"),
    ("id", "VARCHAR(128) NOT NULL", "VARCHAR(128) NOT NULL"),
    ("updated_at", "BIGINT NOT NULL", "BIGINT NOT NULL"),
    ("lww_at", "BIGINT NOT NULL", "BIGINT NOT NULL"),
    ("deleted", "INTEGER NOT NULL", "BOOLEAN NOT NULL"),
    ("seq", "BIGINT NOT NULL", "BIGINT NOT NULL"),
    ("digest", "BIGINT NOT NULL", "BIGINT NOT NULL"),
    ("bucket", "SMALLINT NOT NULL", "SMALLINT NOT NULL"),
    ("changed_at", "BIGINT NOT NULL", "BIGINT NOT NULL"),
    ("extra", "TEXT", "TEXT"),
)

Column = tuple[str, str, Any]  # (column name, kind, default for the rows already there)


def q(name: str) -> str:
    """An SQL identifier, double-quoted."""
    return '"' + name.replace('"', '""') + '"'


def column_type(db: pw.Database, kind: str) -> str:
    sqlite, postgres = KIND_TYPES[kind]
    return postgres if is_postgres(db) else sqlite


def literal(db: pw.Database, kind: str, value: Any) -> str:
    """A default as an SQL literal of its column's type (values are the schema's own:
    booleans, integers, texts; a JSON default is given as its JSON text)."""
    if value is None:
        return "NULL"
    if kind == "boolean":
        if is_postgres(db):
            return "TRUE" if value else "FALSE"
        return "1" if value else "0"
    if kind in ("integer", "timestamp"):
        return str(int(value))
    if kind == "decimal":
        text = str(Decimal(value))
        return text if is_postgres(db) else _quoted(text)
    return _quoted(str(value))  # text, json


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def add_columns(
    db: pw.Database, table: str, columns: Sequence[Column], *, recompute: bool = True
) -> None:
    """Add nullable columns to `table`; the rows already there get each one's default.

    A field that a front end sent before this server declared it was kept with its record
    as an undeclared field (`extra`): its values move into the new column, so each row
    carries it once, as the declared field it now is.

    A non-null default or a moved value changes the content of existing rows, so their
    digests are recomputed (unless `recompute` is False: the caller recomputes once at its
    end). A column without a default (NULL everywhere) changes no digest.
    """
    moved = 0
    for name, kind, default in columns:
        add_column(db, table, name, column_type(db, kind), literal(db, kind, default))
        moved += promote_extras(db, table, name)
    if recompute and (moved or any(default is not None for _, _, default in columns)):
        recompute_digests(db, table)


def add_column(db: pw.Database, table: str, name: str, sql_type: str, default: str) -> None:
    """One column; existing rows get `default` (an SQL literal, or "NULL"). The column keeps
    no default of its own on PostgreSQL (the code writes every column); SQLite cannot drop
    one, and there it is harmless for the same reason."""
    if default == "NULL":
        db.execute_sql(f"ALTER TABLE {q(table)} ADD COLUMN {q(name)} {sql_type}")
        return
    # ADD COLUMN ... DEFAULT is a change of the catalogue only (PostgreSQL 11+, SQLite):
    # no rewrite of a big table.
    db.execute_sql(f"ALTER TABLE {q(table)} ADD COLUMN {q(name)} {sql_type} DEFAULT {default}")
    if is_postgres(db):
        db.execute_sql(f"ALTER TABLE {q(table)} ALTER COLUMN {q(name)} DROP DEFAULT")


def create_data_table(db: pw.Database, table: str, columns: Sequence[tuple[str, str]]) -> None:
    """A new synchronised table: the meta columns, the fields `[(column, kind), ...]`, its key
    (tenant_id, id) and its indexes (see `data_indexes`)."""
    pg = is_postgres(db)
    defs = [f"{q(name)} {pg_type if pg else lite}" for name, lite, pg_type in _META_V3]
    defs += [f"{q(name)} {column_type(db, kind)}" for name, kind in columns]
    db.execute_sql(f"CREATE TABLE {q(table)} ({', '.join(defs)}, PRIMARY KEY (tenant_id, id))")
    data_indexes(db, table)


def data_indexes(db: pw.Database, table: str, *extra: str) -> None:
    """A synchronised table's indexes, each leading with the shop: (tenant_id, seq) for
    pulls by cursor, (tenant_id, changed_at) for the seed's reads by time, and one per
    column of `extra` (e.g. orders by created_at)."""
    for cols in (("seq",), ("changed_at",), *((c,) for c in extra)):
        create_index(db, table, ("tenant_id", *cols))


def create_index(db: pw.Database, table: str, columns: Sequence[str]) -> None:
    name = f"{table}_{'_'.join(columns)}"
    db.execute_sql(f"CREATE INDEX {q(name)} ON {q(table)} ({', '.join(q(c) for c in columns)})")


def lead_with_tenant(
    db: pw.Database,
    table: str,
    key: Sequence[str],
    *,
    fill: str = "'default'",
    drop_indexes: Iterable[str] = (),
) -> None:
    """Give `table` a `tenant_id` column (existing rows: the SQL expression `fill`, the
    default shop unless told) and make its primary key (tenant_id, *key).

    SQLite cannot change a primary key: the table is rebuilt (create, copy, drop, rename),
    which drops its indexes too. PostgreSQL alters it in place; `drop_indexes` are the old
    indexes to drop there. The caller creates the new indexes afterwards.
    """
    if is_postgres(db):
        add_column(db, table, "tenant_id", "VARCHAR(64) NOT NULL", "'default'")
        if fill != "'default'":
            db.execute_sql(f"UPDATE {q(table)} SET tenant_id = {fill}")
        (constraint,) = db.execute_sql(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'",
            (q(table),),
        ).fetchone()
        db.execute_sql(f"ALTER TABLE {q(table)} DROP CONSTRAINT {q(constraint)}")
        keys = ", ".join(q(c) for c in ("tenant_id", *key))
        db.execute_sql(f"ALTER TABLE {q(table)} ADD PRIMARY KEY ({keys})")
        for index in drop_indexes:
            db.execute_sql(f"DROP INDEX IF EXISTS {q(index)}")
        return
    # PRAGMA table_info: (cid, name, type, notnull, default, pk)
    old = db.execute_sql(f"PRAGMA table_info({q(table)})").fetchall()
    names = [row[1] for row in old]
    defs = ['"tenant_id" VARCHAR(64) NOT NULL']
    defs += [f"{q(row[1])} {row[2]}{' NOT NULL' if row[3] else ''}" for row in old]
    keys = ", ".join(q(c) for c in ("tenant_id", *key))
    new = f"{table}__rekeyed"
    cols = ", ".join(q(n) for n in names)
    db.execute_sql(f"CREATE TABLE {q(new)} ({', '.join(defs)}, PRIMARY KEY ({keys}))")
    db.execute_sql(
        f"INSERT INTO {q(new)} (tenant_id, {cols}) SELECT {fill}, {cols} FROM {q(table)}"
    )
    db.execute_sql(f"DROP TABLE {q(table)}")
    db.execute_sql(f"ALTER TABLE {q(new)} RENAME TO {q(table)}")


# Rows per round of `recompute_digests` and `promote_extras`: bounded memory whatever the
# table's size.
_PAGE = 2000


def _pages(
    db: pw.Database, table: str, columns: str, where: str = "", where_args: tuple[Any, ...] = ()
) -> Iterator[list[dict]]:
    """The rows of `table` (`columns`, with tenant_id and id) in pages, by key."""
    p = db.param
    last: tuple[str, str] | None = None
    cond = f"({where})" if where else "1 = 1"
    while True:
        after = "" if last is None else f" AND (tenant_id > {p} OR (tenant_id = {p} AND id > {p}))"
        args = where_args + (() if last is None else (last[0], last[0], last[1]))
        cursor = db.execute_sql(
            f"SELECT {columns} FROM {q(table)} WHERE {cond}{after} "
            f"ORDER BY tenant_id, id LIMIT {_PAGE}",
            args,
        )
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
        if not rows:
            return
        yield rows
        last = (rows[-1]["tenant_id"], rows[-1]["id"])


def promote_extras(db: pw.Database, table_name: str, column: str) -> int:
    """Move the undeclared field that `column` now declares out of each row's `extra` into
    the column. A value the declared kind refuses stays where it was (nothing is ever
    dropped) and is logged. Returns the number of rows changed."""
    table = TABLES.get(table_name)
    f = next((f for f in table.fields if column_name(f.name) == column), None) if table else None
    if f is None:  # not declared (yet): nothing can have been carried under its name
        return 0
    if "extra" not in {c.name for c in db.get_columns(table_name)}:  # before migration 0003
        return 0
    p = db.param
    moved = 0
    # A prefilter (the exact test is below): canonical JSON writes the key as "name".
    pattern = "%" + canonical_json(f.name) + "%"
    for rows in _pages(db, table_name, "tenant_id, id, extra", f"extra LIKE {p}", (pattern,)):
        updates = []
        for row in rows:
            extra = from_canonical(row["extra"])
            if f.name not in extra:
                continue
            try:
                value = check_bounds(f, coerce(f, extra[f.name]))
            except ProtocolError as exc:
                log.warning(
                    "%s %s: %s kept as an undeclared field (%s)", table_name, row["id"], f.name, exc
                )
                continue
            del extra[f.name]
            updates.append(
                (
                    _stored(db, f, value),
                    canonical_json(extra) if extra else None,
                    row["tenant_id"],
                    row["id"],
                )
            )
        if updates:
            db.cursor().executemany(
                f"UPDATE {q(table_name)} SET {q(column)} = {p}, extra = {p} "
                f"WHERE tenant_id = {p} AND id = {p}",
                updates,
            )
            moved += len(updates)
    return moved


def _stored(db: pw.Database, f: Field, value: Any) -> Any:
    """A field's Python value as its column stores it (see server/db.py's field types)."""
    if value is None:
        return None
    if f.kind is Kind.DECIMAL:
        return value if is_postgres(db) else str(value)
    if f.kind is Kind.JSON:
        return canonical_json(value)
    return value


def recompute_digests(db: pw.Database, table_name: str) -> int:
    """Store each row's digest (and bucket) as protocol.row_digest computes it today over
    the row as read back, undeclared fields included; tombstones digest 0. Returns the
    number of rows. Columns the schema declares but the table does not have yet are null,
    which the digest leaves out, so this is right at any step of the migrations."""
    table = TABLES[table_name]
    fields = {column_name(f.name): f for f in table.fields}
    p = db.param
    done = 0
    for rows in _pages(db, table_name, "*"):
        updates = []
        for stored in rows:
            digest = 0
            if not stored["deleted"]:
                row: dict[str, Any] = {"id": stored["id"], "updatedAt": stored["updated_at"]}
                for column, f in fields.items():
                    value = stored.get(column)
                    if value is not None and f.kind is Kind.JSON:
                        value = from_canonical(value)
                    row[f.name] = value
                row["_extra"] = from_canonical(stored["extra"]) if stored.get("extra") else {}
                digest = to_signed(row_digest(table, row))
            updates.append((digest, bucket_of(stored["id"]), stored["tenant_id"], stored["id"]))
        db.cursor().executemany(
            f"UPDATE {q(table_name)} SET digest = {p}, bucket = {p} "
            f"WHERE tenant_id = {p} AND id = {p}",
            updates,
        )
        done += len(rows)
    return done
