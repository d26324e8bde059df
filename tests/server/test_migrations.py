"""Schema migrations: the latest schema on an empty database, idempotent re-runs, data kept,
SQLite copies. The upgrade of a populated v2 database: test_upgrade_v2.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import peewee as pw
import pytest

from server import migrations
from server.db import bind_models, connect_database
from server.identity import read_database_id
from server.migrations import LATEST, current_version, migrate
from server.service import SyncService
from tests.server.conftest import live_by_id, push_one

V1_TABLES = {
    "products",
    "orders",
    "order_items",
    "supplies",
    "sync_state",
    "sync_events",
    "sync_machines",
    "reconcile_log",
    "api_keys",
    "schema_version",
}
V3_TABLES = V1_TABLES | {"technical_sheets", "bootstrap_state"}
V4_TABLES = V3_TABLES | {
    "pdv_reports",
    "pdv_report_history",
    "pdv_sockets",
    "pdv_commands",
    "event_minutes",
    "admins",
    "admin_sessions",
    "login_failures",
}


@pytest.fixture
def open_db(tmp_path):
    dbs: list[pw.Database] = []

    def open_(url: str) -> pw.Database:
        db, _ = connect_database(url, Path(tmp_path))
        dbs.append(db)
        return db

    yield open_
    for db in dbs:
        db.close_all()


def test_an_empty_database_gets_the_latest_schema_and_a_rerun_applies_nothing(
    database_url, open_db
):
    db = open_db(database_url)
    with db.connection_context():
        assert current_version(db) == 0
    assert migrate(db) == [1, 2, 3, 4] and LATEST == 4
    with db.connection_context():
        assert current_version(db) == 4
        assert set(db.get_tables()) >= V4_TABLES
        rows = db.execute_sql(
            "SELECT version, name FROM schema_version ORDER BY version"
        ).fetchall()
        assert [tuple(r) for r in rows] == [
            (1, "initial"),
            (2, "database_identity"),
            (3, "shops"),
            (4, "panel"),
        ]
        state = db.execute_sql("SELECT tenant_id, key, value FROM sync_state").fetchall()
        # The default shop's sequence; the database's identity under the reserved shop ''.
        assert sorted((t, k) for t, k, _ in state) == [("", "database_id"), ("default", "seq")]
        assert dict(((t, k), v) for t, k, v in state)[("default", "seq")] == 0
    identity = read_database_id(db)
    assert len(identity) == 16 and int(identity, 16) > 0
    assert migrate(db) == []
    assert migrate(open_db(database_url)) == []  # another process starting later
    assert read_database_id(open_db(database_url)) == identity  # the identity is made once


def test_each_database_has_its_own_identity(tmp_path, open_db):
    one, two = open_db(f"sqlite:///{tmp_path / 'a.db'}"), open_db(f"sqlite:///{tmp_path / 'b.db'}")
    migrate(one)
    migrate(two)
    assert read_database_id(one) != read_database_id(two)


def test_a_v1_database_gets_an_identity_and_keeps_its_data(tmp_path, open_db, monkeypatch):
    db = open_db(f"sqlite:///{tmp_path / 'old.db'}")
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
    monkeypatch.setattr(migrations, "LATEST", 1)
    migrate(db)
    with db.connection_context():  # a row as the v1 server stored it
        db.execute_sql(
            "INSERT INTO products (id, name, updated_at, lww_at, deleted, seq, digest, bucket) "
            "VALUES ('p1', 'Pão', 1, 1, 0, 1, 0, 0)"
        )
        db.execute_sql("UPDATE sync_state SET value = 1 WHERE key = 'seq'")
    monkeypatch.undo()
    assert migrate(db) == [2, 3, 4]
    assert len(read_database_id(db)) == 16
    assert live_by_id(SyncService(bind_models(db)), "products")["p1"]["name"] == "Pão"


def test_data_survives_a_second_migrate(database_url, open_db, tmp_path):
    db = open_db(database_url)
    migrate(db)
    svc = SyncService(bind_models(db))
    push_one(svc, "products", {"id": "p1", "name": "Pão", "price": "0.50", "stock_quantity": 3})
    svc.reconcile("caixa-1", {"products": {"count": 1}}, None)
    db.close_all()

    db2 = open_db(database_url)
    assert migrate(db2) == []
    svc2 = SyncService(bind_models(db2))
    assert live_by_id(svc2, "products")["p1"]["name"] == "Pão"
    assert svc2.head() == 1 and len(svc2.history()) == 1
    # A repeated event is still recognised after the restart.
    assert (
        push_one(svc2, "products", {"id": "p1", "name": "x"}, event_ids=["fresh"])["status"]
        == "applied"
    )


def test_a_database_newer_than_the_server_is_refused(database_url, open_db):
    db = open_db(database_url)
    migrate(db)
    with db.connection_context():
        db.execute_sql(
            f"INSERT INTO schema_version (version, name, applied_at) VALUES ({LATEST + 1}, 'future', 0)"
        )
    with pytest.raises(RuntimeError, match="newer than this server"):
        migrate(db)


NEXT = LATEST + 1


def _add_next(monkeypatch) -> None:
    """A future migration: a new nullable column, the way a real one would add one."""

    def m_next(db: pw.Database) -> None:
        db.execute_sql("ALTER TABLE products ADD COLUMN barcode TEXT")

    monkeypatch.setattr(
        migrations, "MIGRATIONS", [*migrations.MIGRATIONS, (NEXT, "barcode", m_next)]
    )
    monkeypatch.setattr(migrations, "LATEST", NEXT)


def test_a_future_migration_keeps_the_data(database_url, open_db, monkeypatch):
    db = open_db(database_url)
    migrate(db)
    push_one(SyncService(bind_models(db)), "products", {"id": "p1", "name": "Pão"})
    _add_next(monkeypatch)
    assert migrate(db) == [NEXT]
    with db.connection_context():
        assert current_version(db) == NEXT
        assert db.execute_sql("SELECT name, barcode FROM products").fetchall() == [("Pão", None)]
    assert migrate(db) == []


def test_a_failing_migration_changes_nothing(database_url, open_db, monkeypatch):
    db = open_db(database_url)
    migrate(db)

    def broken(db: pw.Database) -> None:
        db.execute_sql("CREATE TABLE half_done (id INTEGER)")
        db.execute_sql("SELECT * FROM no_such_table")

    monkeypatch.setattr(
        migrations, "MIGRATIONS", [*migrations.MIGRATIONS, (NEXT, "broken", broken)]
    )
    monkeypatch.setattr(migrations, "LATEST", NEXT)
    with pytest.raises(pw.DatabaseError):
        migrate(db)
    with db.connection_context():
        assert current_version(db) == LATEST
        assert "half_done" not in db.get_tables()


def test_sqlite_with_data_is_copied_before_a_migration(tmp_path, open_db, monkeypatch):
    path = tmp_path / "pdv.db"
    db = open_db(f"sqlite:///{path}")
    migrate(db)
    assert not list(tmp_path.glob("pdv.db.*.bak"))  # an empty database: nothing to keep
    push_one(SyncService(bind_models(db)), "products", {"id": "p1", "name": "Pão"})
    _add_next(monkeypatch)
    assert migrate(db) == [NEXT]

    copies = list(tmp_path.glob(f"pdv.db.before-v{NEXT}-*.bak"))
    assert len(copies) == 1
    with sqlite3.connect(copies[0]) as copy:
        assert copy.execute("SELECT id, name FROM products").fetchall() == [("p1", "Pão")]
        assert copy.execute("SELECT MAX(version) FROM schema_version").fetchone() == (LATEST,)
    copy.close()


def test_backup_sqlite_copies_committed_data(tmp_path, open_db):
    path = tmp_path / "pdv.db"
    db = open_db(f"sqlite:///{path}")
    migrate(db)
    svc = SyncService(bind_models(db))
    push_one(svc, "products", {"id": "p1", "name": "Pão"})
    with db.connection_context():  # held open, in WAL mode: the copy must still see the commit
        target = migrations._backup_sqlite(db, 1)
    assert (
        target is not None
        and target.parent == tmp_path
        and target.name.startswith("pdv.db.before-v2-")
    )
    with sqlite3.connect(target) as copy:
        assert copy.execute("SELECT name FROM products").fetchall() == [("Pão",)]
    copy.close()


def test_backup_sqlite_of_a_missing_file_is_none(tmp_path):
    db = pw.SqliteDatabase(str(tmp_path / "absent.db"))
    assert migrations._backup_sqlite(db, 1) is None


@pytest.mark.postgres
def test_concurrent_migrations_on_postgresql_apply_once(pg_url, open_db):
    from concurrent.futures import ThreadPoolExecutor

    dbs = [open_db(pg_url) for _ in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        applied = [f.result(timeout=60) for f in [pool.submit(migrate, db) for db in dbs]]
    assert sorted(applied) == [[], [], [], [1, 2, 3, 4]]
