"""Service-level fixtures: a SyncService over a real database (SQLite file or PostgreSQL),
built the way `server.app.ServerState` builds it, with a clock the test controls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from protocol import parse_ms
from protocol.messages import parse_batch_push, parse_table_push
from server.db import bind_models, connect_database
from server.migrations import migrate
from server.service import SyncService

# Far enough in the future that every edit time a test writes is in the past of the server.
T0 = parse_ms("2030-01-01T12:00:00.000Z")


class Clock:
    """The server clock of a test: epoch ms, moved by hand."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> int:
        self.now += ms
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service_factory(tmp_path):
    """`service_factory(url, clock=None)`: a migrated SyncService; closed at teardown."""
    dbs: list[Any] = []

    def make(url: str | None, clock=None) -> SyncService:
        db, _ = connect_database(url, Path(tmp_path))
        dbs.append(db)
        migrate(db)
        kwargs = {"clock": clock} if clock is not None else {}
        return SyncService(bind_models(db), **kwargs)

    yield make
    for db in dbs:
        db.close_all()


@pytest.fixture
def service(service_factory, database_url, clock) -> SyncService:
    """A SyncService on a fresh database, once per backend, on the test's clock."""
    return service_factory(database_url, clock)


# -- helpers shared by the service tests -------------------------------------------------

_counter = iter(range(1, 10**9))


def new_event_id() -> str:
    return f"ev-{next(_counter):09d}"


def push(
    svc: SyncService,
    table: str,
    *records: dict,
    machine: str | None = "caixa-1",
    event_ids: list[str] | None = None,
) -> tuple[list[dict], int]:
    """Push records of one table through the real parser, as POST /api/sync/{table} does."""
    body = {
        "machineId": machine,
        "localUpdates": [
            {"eventId": event_ids[i] if event_ids else new_event_id(), "record": r}
            for i, r in enumerate(records)
        ],
    }
    request = parse_table_push(table, body)
    return svc.push(request.machine_id, request.items)


def push_one(svc: SyncService, table: str, record: dict, **kw) -> dict:
    results, _ = push(svc, table, record, **kw)
    assert len(results) == 1
    return results[0]


def push_batch(
    svc: SyncService,
    *events: tuple[str, dict] | tuple[str, dict, str],
    machine: str | None = "caixa-1",
) -> tuple[list[dict], int]:
    """An atomic multi-table batch, as POST /api/sync/batch does: events are (table, record[, eventId])."""
    body = {
        "machineId": machine,
        "events": [
            {"eventId": e[2] if len(e) > 2 else new_event_id(), "table": e[0], "record": e[1]}
            for e in events
        ],
    }
    machine_id, items, _ = parse_batch_push(body)
    return svc.push(machine_id, items, atomic_batch=True)


def pull_all(
    svc: SyncService, table: str, since: int = 0, limit: int = 500, machine: str | None = None
) -> tuple[list[dict], int]:
    """Every change of `table` after `since`, following the pages (bounded)."""
    out: list[dict] = []
    cursor = since
    for _ in range(10_000):
        page = svc.pull(table, cursor, limit, machine_id=machine)
        out += page["synced"]
        assert page["cursor"] >= cursor
        cursor = page["cursor"]
        if not page["hasMore"]:
            return out, cursor
    raise AssertionError("paging did not end")


def live_by_id(svc: SyncService, table: str) -> dict[str, dict]:
    return {r["id"]: r for r in svc.list_live(table)}
