"""The PostgreSQL pool (server/pool.py): a connection given back moments ago is handed out
without a liveness round trip; one idle for longer is checked, and a dead one replaced; a
dead connection handed out unchecked fails its statement as a database error (503 on the
wire), and is not given back to the pool."""

from __future__ import annotations

from pathlib import Path

import peewee as pw
import psycopg
import pytest

from server import pool
from server.db import connect_database

pytestmark = pytest.mark.postgres


@pytest.fixture
def db(pg_url, tmp_path):
    database, _ = connect_database(pg_url, Path(tmp_path))
    assert isinstance(database, pool.PooledPostgres)
    yield database
    database.close_all()


def _backend_pid(db) -> int:
    with db.connection_context():
        return int(db.execute_sql("SELECT pg_backend_pid()").fetchone()[0])


def _terminate(pg_url: str, pid: int) -> None:
    with psycopg.connect(pg_url, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (pid,))


def _checks(db, monkeypatch) -> list[object]:
    """The liveness checks peewee's pool makes from now on."""
    calls: list[object] = []
    check = db._adapter.is_connection_closed

    def counting(conn):
        calls.append(conn)
        return check(conn)

    monkeypatch.setattr(db._adapter, "is_connection_closed", counting)
    return calls


def test_a_connection_given_back_moments_ago_is_reused_unchecked(db, monkeypatch) -> None:
    pid = _backend_pid(db)
    checks = _checks(db, monkeypatch)
    assert _backend_pid(db) == pid and _backend_pid(db) == pid
    assert checks == []


def test_an_idle_connection_is_checked_and_a_dead_one_replaced(db, pg_url, monkeypatch) -> None:
    monkeypatch.setattr(pool, "FRESH_SECONDS", 0.0)  # every idle connection is "old"
    pid = _backend_pid(db)
    checks = _checks(db, monkeypatch)
    _terminate(pg_url, pid)
    assert _backend_pid(db) != pid  # the check saw it dead: a new connection, no error
    assert len(checks) == 1


def test_a_dead_connection_handed_out_unchecked_fails_once(db, pg_url) -> None:
    pid = _backend_pid(db)
    _terminate(pg_url, pid)
    with pytest.raises((pw.OperationalError, pw.InterfaceError)), db.connection_context():
        db.execute_sql("SELECT 1").fetchone()
    assert _backend_pid(db) != pid  # not given back: the next request gets a new one
