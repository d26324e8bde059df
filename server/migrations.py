"""Numbered, atomic schema migrations of the server database.

Each migration describes the tables with frozen names and column types, never with today's
model classes, so an old database upgrades the same way whatever the code looks like now.
Before migrating a SQLite file that already has data, a copy is taken next to it.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path

import peewee as pw

from protocol import now_ms

from .db import ExactDecimalField, is_postgres

log = logging.getLogger(__name__)


def _frozen(db: pw.Database, name: str, columns: dict[str, pw.Field]) -> type[pw.Model]:
    meta = type("Meta", (), {"database": db, "table_name": name})
    return type(f"Frozen_{name}", (pw.Model,), {**columns, "Meta": meta})


def _data_table(db: pw.Database, name: str, fields: dict[str, pw.Field]) -> type[pw.Model]:
    columns: dict[str, pw.Field] = {
        "id": pw.CharField(max_length=128, primary_key=True),
        "updated_at": pw.BigIntegerField(),
        "lww_at": pw.BigIntegerField(),
        "deleted": pw.BooleanField(default=False),
        "seq": pw.BigIntegerField(index=True),
        "digest": pw.BigIntegerField(default=0),
        "bucket": pw.SmallIntegerField(default=0),
    }
    columns.update(fields)
    return _frozen(db, name, columns)


def _text(index: bool = False) -> pw.Field:
    return pw.TextField(null=True, index=index)


def _dec() -> pw.Field:
    return ExactDecimalField(null=True)


def _int(index: bool = False) -> pw.Field:
    return pw.BigIntegerField(null=True, index=index)


def m0001_initial(db: pw.Database) -> None:
    tables = [
        _data_table(
            db,
            "products",
            {
                "name": _text(),
                "description": _text(),
                "price": _dec(),
                "category": _text(),
                "image_url_id": _text(),
                "stock_quantity": _int(),
                "created_at": _int(),
            },
        ),
        _data_table(
            db,
            "orders",
            {
                "customer_name": _text(),
                "total": _dec(),
                "status": _text(),
                "created_at": _int(index=True),
            },
        ),
        _data_table(
            db,
            "order_items",
            {
                "order_id": _text(index=True),
                "product_id": _text(),
                "quantity": _dec(),
                "price": _dec(),
                "created_at": _int(),
            },
        ),
        _data_table(
            db,
            "supplies",
            {
                "name": _text(),
                "stock": _dec(),
                "unit": _text(),
                "cost_per_unit": _dec(),
                "created_at": _int(),
            },
        ),
        _frozen(
            db,
            "sync_state",
            {
                "key": pw.CharField(max_length=64, primary_key=True),
                "value": pw.BigIntegerField(default=0),
            },
        ),
        _frozen(
            db,
            "sync_events",
            {
                "event_id": pw.CharField(max_length=128, primary_key=True),
                "machine_id": pw.CharField(max_length=128, null=True),
                "table_name": pw.CharField(max_length=32),
                "record_id": pw.CharField(max_length=128),
                "status": pw.CharField(max_length=32),
                "result": pw.TextField(),
                "seq": pw.BigIntegerField(null=True),
                "created_at": pw.BigIntegerField(index=True),
            },
        ),
        _frozen(
            db,
            "sync_machines",
            {
                "machine_id": pw.CharField(max_length=128, primary_key=True),
                "first_seen": pw.BigIntegerField(),
                "last_seen": pw.BigIntegerField(),
                "cursor": pw.BigIntegerField(default=0),
                "events_pushed": pw.BigIntegerField(default=0),
            },
        ),
        _frozen(
            db,
            "reconcile_log",
            {
                "id": pw.AutoField(),
                "machine_id": pw.CharField(max_length=128, index=True),
                "status": pw.CharField(max_length=16),
                "is_consistent": pw.BooleanField(),
                "mismatches_count": pw.IntegerField(),
                "mismatches": pw.TextField(),
                "client_summary": pw.TextField(),
                "server_summary": pw.TextField(),
                "cursor": pw.BigIntegerField(),
                "created_at": pw.BigIntegerField(index=True),
            },
        ),
        _frozen(
            db,
            "api_keys",
            {
                "id": pw.AutoField(),
                "machine_id": pw.CharField(max_length=128),
                "key_hash": pw.CharField(max_length=64, unique=True),
                "prefix": pw.CharField(max_length=16),
                "created_at": pw.BigIntegerField(),
                "revoked_at": pw.BigIntegerField(null=True),
            },
        ),
    ]
    db.create_tables(tables, safe=False)
    db.execute_sql("INSERT INTO sync_state (key, value) VALUES ('seq', 0)")


def m0002_database_identity(db: pw.Database) -> None:
    """A random identity for this database, kept by backups and restores. A cursor only means
    something for the database that issued it: agents remember the identity with their cursor
    and stop, instead of following, when the server comes back on another database (a lost
    `.env` falling back to an empty SQLite file, a replaced server PC)."""
    p = db.param
    db.execute_sql(
        f"INSERT INTO sync_state (key, value) VALUES ('database_id', {p})", (secrets.randbits(62),)
    )


# (version, name, function). Append only; never edit a migration that has shipped.
MIGRATIONS: list[tuple[int, str, Callable[[pw.Database], None]]] = [
    (1, "initial", m0001_initial),
    (2, "database_identity", m0002_database_identity),
]
LATEST = MIGRATIONS[-1][0]

_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version "
    "(version INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL, applied_at BIGINT NOT NULL)"
)


def current_version(db: pw.Database) -> int:
    if "schema_version" not in db.get_tables():
        return 0
    row = db.execute_sql("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def _backup_sqlite(db: pw.Database, version: int) -> Path | None:
    path = Path(db.database)
    if not path.exists() or path.stat().st_size == 0:
        return None
    target = path.with_name(f"{path.name}.before-v{version + 1}-{now_ms()}.bak")
    src = sqlite3.connect(str(path))
    try:
        dst = sqlite3.connect(str(target))
        try:
            src.backup(dst)
        finally:
            dst.close()  # also when the copy fails: an unclosed connection leaks a file handle
    finally:
        src.close()
    return target


def migrate(db: pw.Database) -> list[int]:
    """Apply the pending migrations, each in its own transaction. Returns the versions applied."""
    applied: list[int] = []
    with db.connection_context():
        if is_postgres(db):
            # Two server processes starting together must not both migrate.
            db.execute_sql("SELECT pg_advisory_lock(7355608)")
        try:
            db.execute_sql(_VERSION_TABLE)
            version = current_version(db)
            if version > LATEST:
                raise RuntimeError(
                    f"database schema v{version} is newer than this server (v{LATEST}): upgrade the server"
                )
            pending = [m for m in MIGRATIONS if m[0] > version]
            if pending and not is_postgres(db) and version > 0:
                copy = _backup_sqlite(db, version)
                if copy:
                    log.info("copied the database to %s before migrating", copy)
            for number, name, func in pending:
                with db.atomic():
                    func(db)
                    p = db.param
                    db.execute_sql(
                        f"INSERT INTO schema_version (version, name, applied_at) VALUES ({p}, {p}, {p})",
                        (number, name, now_ms()),
                    )
                log.info("applied migration %04d_%s", number, name)
                applied.append(number)
        finally:
            if is_postgres(db):
                db.execute_sql("SELECT pg_advisory_unlock(7355608)")
    return applied
