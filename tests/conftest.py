"""Shared fixtures: a real PostgreSQL cluster for the session, databases per test on both
backends, and real server processes on 127.0.0.1."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from tests.pgcluster import PgCluster, PostgresUnavailable
from tests.serverproc import ServerProcess

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REQUIRE_POSTGRES = os.environ.get("PDVSYNC_REQUIRE_POSTGRES") == "1"
_db_counter = itertools.count(1)


def _start_cluster() -> PgCluster:
    """A throwaway PostgreSQL; skips the test without one (fails it in CI)."""
    try:
        return PgCluster().start()
    except PostgresUnavailable as exc:
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL is required here (PDVSYNC_REQUIRE_POSTGRES=1): {exc}")
        pytest.skip(f"PostgreSQL not available: {exc}")


@pytest.fixture(scope="session")
def pg_cluster():
    """One throwaway PostgreSQL for the whole session."""
    cluster = _start_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def own_pg_cluster():
    """A PostgreSQL of the test's own, which it may stop (the database going down)."""
    cluster = _start_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return pg_cluster.createdb(f"t{os.getpid()}_{next(_db_counter)}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str | None:
    """Runs a test once on SQLite (a fresh file) and once on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'server.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def server_factory(tmp_path):
    """Start real server processes: `server_factory(database_url=..., env={...})`."""
    started: list[ServerProcess] = []

    def start(
        database_url: str | None = None, env: dict[str, str] | None = None, **kw
    ) -> ServerProcess:
        data_dir = Path(tmp_path) / f"server{len(started)}"
        proc = ServerProcess(data_dir, database_url=database_url, env=env, **kw).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


@pytest.fixture
def live_server(server_factory, database_url):
    """A real server on 127.0.0.1, once per backend."""
    return server_factory(database_url=database_url)
