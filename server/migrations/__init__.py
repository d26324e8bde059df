"""Numbered, atomic schema migrations of the server database.

Each migration describes the tables with frozen names and column types, never with today's
model classes, so an old database upgrades the same way whatever the code looks like now
(steps.py: the frozen helpers a new column or table needs). Before migrating a SQLite file
that already has data, a copy is taken next to it.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import peewee as pw

from protocol import now_ms

from ..db import is_postgres
from .m0001_m0002 import m0001_initial, m0002_database_identity
from .m0003_shops import m0003_shops
from .m0004_panel import m0004_panel

log = logging.getLogger(__name__)


# (version, name, function). Append only; never edit a migration that has shipped.
MIGRATIONS: list[tuple[int, str, Callable[[pw.Database], None]]] = [
    (1, "initial", m0001_initial),
    (2, "database_identity", m0002_database_identity),
    (3, "shops", m0003_shops),
    (4, "panel", m0004_panel),
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
