"""Numbered, atomic migrations of the agent's store. The file is copied before upgrading.

Migrations name frozen tables and columns; they never use today's model classes. Their
building blocks (add columns, create a view table, recompute digests) are the frozen
helpers of `migration_steps.py`: adding a column is one declaration in protocol/schema.py
plus a migration here that calls `add_view_columns` with the column's frozen name, kind and
default (the README's "Adding a column").
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import peewee as pw

from protocol import now_ms, schema_v3

from .migration_steps import (
    add_change_times,
    add_view_columns,
    create_view_table,
    recompute_digests,
)

log = logging.getLogger(__name__)

_VIEW_DDL = {
    "products": "name TEXT, description TEXT, price TEXT, category TEXT, image_url_id TEXT, "
    "stock_quantity INTEGER, created_at INTEGER",
    "orders": "customer_name TEXT, total TEXT, status TEXT, created_at INTEGER",
    "order_items": "order_id TEXT, product_id TEXT, quantity TEXT, price TEXT, created_at INTEGER",
    "supplies": "name TEXT, stock TEXT, unit TEXT, cost_per_unit TEXT, created_at INTEGER",
}


def m0001_initial(db: pw.Database) -> None:
    for table, columns in _VIEW_DDL.items():
        db.execute_sql(
            f'CREATE TABLE "{table}" (id VARCHAR(128) NOT NULL PRIMARY KEY, '
            f"updated_at INTEGER NOT NULL, {columns})"
        )
        db.execute_sql(f'CREATE INDEX "{table}_created_at" ON "{table}" (created_at)')
    db.execute_sql(
        "CREATE TABLE server_rows (table_name VARCHAR(32) NOT NULL, row_id VARCHAR(128) NOT NULL, "
        "data TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL, "
        "PRIMARY KEY (table_name, row_id))"
    )
    db.execute_sql(
        "CREATE TABLE outbox (id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "
        "event_id VARCHAR(128) NOT NULL UNIQUE, table_name VARCHAR(32) NOT NULL, "
        "record_id VARCHAR(128) NOT NULL, op VARCHAR(16) NOT NULL, payload TEXT NOT NULL, "
        "group_id VARCHAR(128), state VARCHAR(8) NOT NULL DEFAULT 'pending', "
        "created_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, "
        "next_attempt_at INTEGER NOT NULL DEFAULT 0, last_error TEXT, sent_at INTEGER, result TEXT)"
    )
    db.execute_sql("CREATE INDEX outbox_state ON outbox (state)")
    db.execute_sql(
        "CREATE INDEX outbox_table_name_record_id_state ON outbox (table_name, record_id, state)"
    )
    db.execute_sql(
        "CREATE TABLE sync_state (key VARCHAR(64) NOT NULL PRIMARY KEY, value TEXT NOT NULL)"
    )
    db.execute_sql(
        "CREATE TABLE reconcile_log (id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "
        "created_at INTEGER NOT NULL, status VARCHAR(16) NOT NULL, is_consistent INTEGER NOT NULL, "
        "strategy VARCHAR(32) NOT NULL, mismatches TEXT NOT NULL, repair TEXT, "
        "server_log_id INTEGER, error TEXT)"
    )


def m0002_row_digests(db: pw.Database) -> None:
    """Every view row keeps its reconcile digest, so the summary is one aggregate query per
    table instead of a digest computed per row on every reconcile. The unsigned 64-bit digest
    is kept as two unsigned 32-bit halves: SQLite's integer SUM of either never overflows,
    and (sum(hi) << 32) + sum(lo) modulo 2**64 is the table's checksum.

    The digests of the rows already there are computed here, from the v1 columns, with the
    protocol's own `row_digest`. A later migration that changes what a digest covers (a new
    field, a new digest function) must compute them again the same way.
    """
    from decimal import Decimal

    from protocol import TABLES, row_digest

    for table in _VIEW_DDL:
        t = TABLES[table]
        db.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN digest_hi INTEGER NOT NULL DEFAULT 0')
        db.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN digest_lo INTEGER NOT NULL DEFAULT 0')
        present = {r[1] for r in db.execute_sql(f'PRAGMA table_info("{table}")').fetchall()}
        # wire name -> v1 column (camelCase -> snake_case), and whether it holds a decimal
        fields = [
            (
                f.name,
                "".join("_" + c.lower() if c.isupper() else c for c in f.name),
                f.kind.value == "decimal",
            )
            for f in t.fields
        ]
        fields = [(name, col, dec) for name, col, dec in fields if col in present]
        columns = ", ".join(f'"{col}"' for _, col, _ in fields)
        params = []
        for values in db.execute_sql(f'SELECT id, updated_at, {columns} FROM "{table}"').fetchall():
            row: dict = {"id": values[0], "updatedAt": values[1]}
            for (name, _, dec), v in zip(fields, values[2:], strict=True):
                row[name] = Decimal(str(v)) if dec and v is not None else v
            digest = row_digest(t, row)
            params.append((digest >> 32, digest & 0xFFFFFFFF, values[0]))
        if params:
            db.cursor().executemany(
                f'UPDATE "{table}" SET digest_hi = ?, digest_lo = ? WHERE id = ?', params
            )


# Migration 3: the seed's columns, each existing row getting the value the server's migration
# 0003 gives it (one frozen list for both: protocol/schema_v3.py).
M0003_COLUMNS = schema_v3.NEW_COLUMNS
M0003_TECHNICAL_SHEETS = schema_v3.TECHNICAL_SHEETS


def m0003_whole_schema(db: pw.Database) -> None:
    """The whole shop schema, fields nobody declared, and what the seed's reads by
    `lastSync` need: every view table gets `extra` and `changed_at` and the seed's columns
    (the server's rows this store mirrors get their defaults too); the technical_sheets
    view; `view_tombstones`, the view rows that disappeared lately. Every digest is
    recomputed (digest v2: non-null fields and extras)."""
    now = now_ms()
    for table in _VIEW_DDL:
        add_change_times(db, table, now)
        add_view_columns(db, table, M0003_COLUMNS.get(table, []), recompute=False)
    create_view_table(db, "technical_sheets", M0003_TECHNICAL_SHEETS)
    db.execute_sql(
        "CREATE TABLE view_tombstones (table_name VARCHAR(32) NOT NULL, "
        "row_id VARCHAR(128) NOT NULL, changed_at INTEGER NOT NULL, "
        "PRIMARY KEY (table_name, row_id))"
    )
    db.execute_sql("CREATE INDEX view_tombstones_changed_at ON view_tombstones (changed_at)")
    for table in _VIEW_DDL:
        recompute_digests(db, table)


MIGRATIONS: list[tuple[int, str, Callable[[pw.Database], None]]] = [
    (1, "initial", m0001_initial),
    (2, "row digests", m0002_row_digests),
    (3, "whole shop schema", m0003_whole_schema),
]
LATEST = MIGRATIONS[-1][0]


def current_version(db: pw.Database) -> int:
    if "schema_version" not in db.get_tables():
        return 0
    return int(db.execute_sql("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)


def _copy_before(path: Path, version: int) -> Path:
    target = path.with_name(f"{path.name}.before-v{version + 1}-{now_ms()}.bak")
    src = sqlite3.connect(str(path))
    try:
        dst = sqlite3.connect(str(target))
        with dst:
            src.backup(dst)
        dst.close()
    finally:
        src.close()
    return target


def migrate(db: pw.Database) -> list[int]:
    db.execute_sql(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
        "name VARCHAR(100) NOT NULL, applied_at INTEGER NOT NULL)"
    )
    version = current_version(db)
    if version > LATEST:
        raise RuntimeError(f"local store schema v{version} is newer than this agent (v{LATEST})")
    pending = [m for m in MIGRATIONS if m[0] > version]
    if pending and version > 0 and db.database != ":memory:":
        copy = _copy_before(Path(db.database), version)
        log.info("copied the local store to %s before migrating", copy)
    applied = []
    for number, name, func in pending:
        with db.atomic():
            func(db)
            db.execute_sql(
                "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                (number, name, now_ms()),
            )
        applied.append(number)
    return applied
