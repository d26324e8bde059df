"""The store file's migrations: a fresh file, a copy before migrating, a failing
migration, a file newer than the agent."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent.store import migrations
from agent.store.store import Store
from tests.agent.store.conftest import T0, ch


def _versions(path: Path) -> list[int]:
    con = sqlite3.connect(str(path))
    try:
        return [v for (v,) in con.execute("SELECT version FROM schema_version ORDER BY version")]
    finally:
        con.close()


def test_fresh_file_migrates_to_the_latest_version_and_reopening_does_not_migrate(tmp_path):
    path = tmp_path / "agent.db"
    Store(path).close()
    assert _versions(path) == [1, 2, 3] == list(range(1, migrations.LATEST + 1))
    s = Store(path)
    try:
        assert migrations.migrate(s.db) == []
    finally:
        s.close()
    assert _versions(path) == [1, 2, 3]
    assert list(tmp_path.glob("*.bak")) == []  # nothing to copy when nothing migrates


def test_a_copy_is_taken_before_a_future_migration(tmp_path, monkeypatch):
    path = tmp_path / "agent.db"
    s = Store(path)
    s.write([("e1", ch("products", {"id": "p1", "name": "antes"}))], T0)
    s.close()

    copy = migrations._copy_before(path, 3)
    assert copy.name.startswith("agent.db.before-v4-") and copy.name.endswith(".bak")
    con = sqlite3.connect(str(copy))
    try:
        assert con.execute("SELECT name FROM products WHERE id = 'p1'").fetchone() == ("antes",)
    finally:
        con.close()
    copy.unlink()

    def m0004(db):
        db.execute_sql("ALTER TABLE products ADD COLUMN barcode TEXT")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, (4, "barcode", m0004)])
    monkeypatch.setattr(migrations, "LATEST", 4)
    s = Store(path)
    s.close()
    assert _versions(path) == [1, 2, 3, 4]
    [backup] = tmp_path.glob("agent.db.before-v4-*.bak")
    assert _versions(backup) == [1, 2, 3]
    con = sqlite3.connect(str(backup))
    try:
        assert con.execute("SELECT name FROM products WHERE id = 'p1'").fetchone() == ("antes",)
    finally:
        con.close()


def test_a_failing_migration_changes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "agent.db"
    Store(path).close()

    def broken(db):
        db.execute_sql("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("boom")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, (4, "broken", broken)])
    monkeypatch.setattr(migrations, "LATEST", 4)
    with pytest.raises(RuntimeError, match="boom"):
        Store(path)
    assert _versions(path) == [1, 2, 3]
    con = sqlite3.connect(str(path))
    try:
        assert (
            con.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchone()
            is None
        )
    finally:
        con.close()


def test_a_store_newer_than_the_agent_is_refused(tmp_path):
    path = tmp_path / "agent.db"
    Store(path).close()
    con = sqlite3.connect(str(path))
    with con:
        con.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (99, 'future', 0)"
        )
    con.close()
    with pytest.raises(RuntimeError, match="newer"):
        Store(path)
