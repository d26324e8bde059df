"""Backup and restore of the server database: pg_dump/psql/pg_restore on PostgreSQL, the
online backup API on SQLite. The seed's `npm run db:backup` / `db:restore`.

A restore replaces the whole database with the backup, in one transaction: it is refused when
the database already holds synchronised data, unless forced. Backups are written to a
temporary name first, so an interrupted backup never leaves a truncated file that looks good.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import peewee as pw

from .db import bind_models, connect_database, parse_database_url
from .migrations import LATEST, migrate
from .pgtools import (
    VERIFY_SCRIPT,
    BackupError,
    backup_postgres,
    drop_script,
    find_pg_tool,
    run_tool,
)
from .restored import RESTORE_GAP as RESTORE_GAP  # where the CLI and tests read it
from .restored import Before, has_identity, open_gaps, state_before
from .settings import Settings

BACKUP_DIR = Path("backups")
# Tables whose rows are the shop's synchronised data (a restore over them needs --force).
SYNC_TABLES = ("products", "orders", "order_items", "supplies", "technical_sheets", "sync_events")

_SQLITE_MAGIC = b"SQLite format 3\x00"
_CUSTOM_MAGIC = b"PGDMP"
_PLAIN_MARK = b"PostgreSQL database dump"


# -- public API --------------------------------------------------------------------------


def backup(settings: Settings, file: str | Path | None = None) -> Path:
    """Write a backup of the configured database and return its path.

    Without `file`: `backups/pdvsync-YYYYMMDD-HHMMSS.sql` (PostgreSQL) or `.db` (SQLite),
    relative to the working directory. A file name ending in `.dump` gets a custom-format
    PostgreSQL dump (for pg_restore) instead of plain SQL.
    """
    backend, conn = _parse(settings)
    path = Path(file) if file else default_backup_path(backend)
    if path.is_dir():
        raise BackupError(f"{path} is a folder: give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        if backend == "sqlite":
            _backup_sqlite(Path(conn["path"]), partial)
        else:
            backup_postgres(conn, partial, custom=path.suffix.lower() == ".dump")
        os.replace(partial, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return path


def restore(settings: Settings, file: str | Path, force: bool = False) -> None:
    """Replace the configured database with the backup in `file`.

    Refused when the database already has synchronised data, unless `force`. The backup is
    checked before anything is touched; an older schema is upgraded afterwards.
    """
    backend, conn = _parse(settings)
    path = Path(file)
    if not path.exists():
        raise BackupError(f"{path}: no such file")
    if path.is_dir():
        raise BackupError(f"{path} is a folder, not a backup file")
    kind = sniff(path)
    if backend == "sqlite":
        if kind in ("sql", "custom"):
            raise BackupError(
                f"{path}: {_describe(kind)}; this server uses SQLite and needs a .db backup"
            )
        if kind != "sqlite":
            raise BackupError(f"{path}: not a SQLite database (expected a PDV Sync .db backup)")
        _restore_sqlite(settings, path, Path(conn["path"]), force)
    else:
        if kind == "sqlite":
            raise BackupError(
                f"{path}: a SQLite backup; this server uses PostgreSQL and needs a pg_dump file"
            )
        if kind not in ("sql", "custom"):
            raise BackupError(f"{path}: {_describe(kind)}")
        _restore_postgres(settings, conn, path, kind, force)


def default_backup_path(backend: str, now: datetime | None = None) -> Path:
    """`backups/pdvsync-YYYYMMDD-HHMMSS.<sql|db>`, never the name of an existing file."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    ext = ".db" if backend == "sqlite" else ".sql"
    path = BACKUP_DIR / f"pdvsync-{stamp}{ext}"
    n = 1
    while path.exists():  # two backups within one second
        n += 1
        path = BACKUP_DIR / f"pdvsync-{stamp}-{n}{ext}"
    return path


def sniff(path: Path) -> str:
    """What a backup file is: "sqlite", "custom" (pg_dump -Fc), "sql" (pg_dump plain),
    "gzip" or "unknown"."""
    with open(path, "rb") as f:
        head = f.read(8192)
    if head.startswith(_SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(_CUSTOM_MAGIC):
        return "custom"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if _PLAIN_MARK in head:
        return "sql"
    return "unknown"


def _describe(kind: str) -> str:
    return {
        "sqlite": "a SQLite backup",
        "custom": "a PostgreSQL custom-format dump",
        "sql": "a PostgreSQL SQL dump",
        "gzip": "a compressed file: decompress it first",
        "unknown": "not a PDV Sync backup (expected a pg_dump .sql or custom dump, or a SQLite .db)",
    }[kind]


def _parse(settings: Settings) -> tuple[str, dict[str, Any]]:
    try:
        return parse_database_url(settings.database_url, settings.data_dir)
    except ValueError as exc:
        raise BackupError(str(exc)) from None


# -- checks on the target database --------------------------------------------------------


@contextlib.contextmanager
def _open(settings: Settings) -> Iterator[pw.Database]:
    db, info = connect_database(settings.database_url, settings.data_dir)
    try:
        try:
            db.connect(reuse_if_open=True)
        except pw.OperationalError as exc:
            raise BackupError(
                f"cannot connect to the database {info.location}: {_first_line(exc)}"
            ) from None
        try:
            yield db
        finally:
            db.close()
    finally:
        db.close_all()


def synchronised_tables(db: pw.Database) -> list[str]:
    """The tables of SYNC_TABLES that hold at least one row."""
    existing = set(db.get_tables())
    return [
        t
        for t in SYNC_TABLES
        if t in existing and db.execute_sql(f"SELECT 1 FROM {t} LIMIT 1").fetchone()
    ]


def _refuse_if_data(tables: list[str], where: str, force: bool) -> None:
    if tables and not force:
        raise BackupError(
            f"{where} already has synchronised data ({', '.join(tables)}): a restore would replace it. "
            "Take a backup of it first, then re-run with --force to overwrite it"
        )


def _state_before(settings: Settings) -> Before:
    """The replaced database's identity and sequence heads, if it had them (any schema)."""
    try:
        with _open(settings) as db:
            return state_before(db)
    except (BackupError, pw.DatabaseError):
        return Before()


def _migrate_restored(settings: Settings, before: Before) -> None:
    """Upgrade the restored schema, then make the restore visible to clients (restored.py)."""
    with _open(settings) as db:
        had_identity = has_identity(db)
        try:
            migrate(db)
        except RuntimeError as exc:  # a schema newer than this server
            raise BackupError(f"restored, but {exc}") from None
        open_gaps(db, before, had_identity=had_identity)


# -- SQLite ---------------------------------------------------------------------------------


def _sqlite_uri(path: Path, mode: str) -> str:
    return f"{path.resolve().as_uri()}?mode={mode}"


def _backup_sqlite(source: Path, target: Path) -> None:
    if not source.is_file():
        raise BackupError(f"no database at {source} (check DATA_DIR or DATABASE_URL)")
    try:
        with (
            contextlib.closing(
                sqlite3.connect(_sqlite_uri(source, "rw"), uri=True, timeout=30)
            ) as src,
            contextlib.closing(sqlite3.connect(str(target))) as dst,
        ):
            src.backup(dst)
            # One self-contained file: no -wal next to it.
            dst.execute("PRAGMA journal_mode=DELETE").fetchone()
            check = dst.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite backup of {source} failed: {exc}") from None
    if check != "ok":
        raise BackupError(f"SQLite backup of {source} failed its integrity check: {check}")


def _check_sqlite_backup(path: Path) -> None:
    try:
        with contextlib.closing(sqlite3.connect(_sqlite_uri(path, "ro"), uri=True)) as con:
            tables = {
                r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            if "schema_version" not in tables:
                raise BackupError(
                    f"{path}: a SQLite database, but not a PDV Sync backup (no schema_version table)"
                )
            version = con.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
            check = con.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.Error as exc:
        raise BackupError(f"{path}: unreadable SQLite file ({exc})") from None
    if check != "ok":
        raise BackupError(f"{path}: damaged SQLite file ({check})")
    if version > LATEST:
        raise BackupError(
            f"{path}: schema v{version} is newer than this server (v{LATEST}): upgrade the server first"
        )


def _restore_sqlite(settings: Settings, path: Path, target: Path, force: bool) -> None:
    _check_sqlite_backup(path)
    if target.exists() and target.resolve() == path.resolve():
        raise BackupError(f"{path} is the live database itself")
    before = Before()
    if target.exists():
        with _open(settings) as db:
            _refuse_if_data(synchronised_tables(db), str(target), force)
        before = _state_before(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            contextlib.closing(sqlite3.connect(_sqlite_uri(path, "ro"), uri=True)) as src,
            contextlib.closing(sqlite3.connect(str(target), timeout=30)) as dst,
        ):
            # One step: the destination is replaced in a single write transaction.
            src.backup(dst)
    except sqlite3.Error as exc:
        raise BackupError(f"restore into {target} failed, nothing was changed: {exc}") from None
    _migrate_restored(settings, before)


# -- PostgreSQL -----------------------------------------------------------------------------


def _restore_postgres(
    settings: Settings, conn: dict[str, Any], path: Path, kind: str, force: bool
) -> None:
    psql = find_pg_tool("psql")
    pg_restore = find_pg_tool("pg_restore") if kind == "custom" else None
    with _open(settings) as db:
        _refuse_if_data(synchronised_tables(db), f"database {conn['database']}", force)
        ours = [m._meta.table_name for m in bind_models(db).all()]
    before = _state_before(settings)
    with tempfile.TemporaryDirectory(prefix="pdvsync-restore-") as tmp:
        script = path
        if pg_restore:
            # To SQL first: the whole dump is read and checked before the database is touched,
            # and the drop, the data and the check then run in one psql transaction.
            script = Path(tmp) / "dump.sql"
            run_tool(
                [pg_restore, "--no-owner", "--no-privileges", "--file", str(script), str(path)],
                conn,
                f"{path}: pg_restore cannot read it",
            )
        drop = Path(tmp) / "drop.sql"
        drop.write_text(drop_script(ours), encoding="utf-8")
        verify = Path(tmp) / "verify.sql"
        verify.write_text(VERIFY_SCRIPT, encoding="utf-8")
        run_tool(
            [
                psql,
                "-X",
                "-q",
                "--no-password",
                "-v",
                "ON_ERROR_STOP=1",
                "--single-transaction",
                "-f",
                str(drop),
                "-f",
                str(script),
                "-f",
                str(verify),
            ],
            conn,
            "restore failed, nothing was changed",
        )
    _migrate_restored(settings, before)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
