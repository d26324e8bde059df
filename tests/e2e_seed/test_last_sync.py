"""The seed's `lastSync` is the client's own clock: a clock an hour off either way, and a
writer that commits after a client's fetch a change time taken before it, never make the
client miss a change (issue 10, section 1). Against the server (both backends) and an agent.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from protocol import now_ms, parse_ms
from protocol.messages import parse_table_push
from server.db import bind_models, connect_database
from server.migrations import migrate
from server.service import SyncService
from tests.seedclient import SeedClient, parse_iso, skewed

from .conftest import Target, agent_settled, server_live, server_push, wait_until
from .shop import product, uid

HOUR = timedelta(hours=1)


@pytest.mark.parametrize("offset", [HOUR, -HOUR], ids=["ahead", "behind"])
def test_a_client_clock_an_hour_off_never_misses_a_change(target: Target, offset: timedelta):
    reader = target.client("front-relogio", clock=skewed(offset))
    # Another front end, its clock off the other way, writes through the same target.
    writer = target.client("front-caixa", clock=skewed(-offset))
    kept = product(name="Pão de forma")
    target.write_elsewhere("products", kept)
    reader.fetch("products")
    created: list[str] = []
    for n in range(4):
        fresh = product(name=f"Novo {n}")
        created.append(fresh["id"])
        changes: list[dict[str, Any]] = [fresh, {"id": kept["id"], "name": f"Pão de forma {n}"}]
        if n == 2:
            changes.append({"id": created[0], "_op": "delete"})
        target.write_elsewhere("products", *changes)
        writer.sync("products", [product(name=f"Do caixa {n}")])
        target.settle()

        before = datetime.now(UTC)
        reader.fetch("products")
        assert reader.rows("products") == target.truth("products"), f"round {n}"
        # What it sends next time is its own clock, an hour off.
        stamp = parse_iso(reader.last_sync["products"])
        assert stamp is not None and abs(stamp - (before + offset)) < timedelta(minutes=1)
    assert created[0] not in reader.rows("products")
    assert reader.rows("products")[kept["id"]]["name"] == "Pão de forma 3"


# -- late commits -------------------------------------------------------------------------


def late_writer(database_url: str, data_dir: Path, late_ms: int) -> SyncService:
    """A second server process's service on the same database whose commits land `late_ms`
    after it took their change time: its clock runs that far behind (a writer that took
    its time, then waited that long before committing)."""
    db, _ = connect_database(database_url, data_dir)
    migrate(db)  # already done by the real server: nothing to apply
    return SyncService(bind_models(db), clock=lambda: now_ms() - late_ms)


def push_through(service: SyncService, table: str, *records: dict[str, Any]) -> list[dict]:
    body = {
        "machineId": "caixa-lento",
        "localUpdates": [{"eventId": uid("ev"), "record": r} for r in records],
    }
    parsed = parse_table_push(table, body)
    with service.connection():
        results, _ = service.push(parsed.machine_id, parsed.items)
    assert all(r["status"] == "applied" for r in results), results
    return results


def test_a_commit_made_late_by_another_server_process_reaches_the_next_fetch(
    servers, database_url, tmp_path
):
    """Ten minutes between a change's time and its commit, from another process on the same
    database: the client fetched in between, and still gets it next time."""
    server = servers.start(database_url)
    doomed = product(name="Vai sumir")
    server_push(server.url, "products", doomed)
    client = SeedClient(server.url, "front-1")
    client.fetch("products")
    time.sleep(0.05)  # the client's lastSync is now after the late change's time...
    slow = late_writer(database_url, tmp_path / "late", late_ms=10 * 60_000)
    try:
        arrived = product(name="Chegou tarde")
        push_through(slow, "products", arrived, {"id": doomed["id"], "_op": "delete"})
    finally:
        slow.db.close_all()
    # ...and the commit is after its fetch: the next fetch still carries both changes.
    client.fetch("products")
    assert set(client.rows("products")) == {arrived["id"]}
    assert client.rows("products") == server_live(server.url, "products")


@pytest.mark.postgres
def test_a_server_push_held_past_a_fetch_reaches_the_next_fetch(servers, pg_url):
    """A real push through the server takes its change time, then waits on row locks that
    another connection holds while a client fetches; once it commits, the client's next
    fetch (with its own clock's lastSync, later than the change time) carries it."""
    server = servers.start(pg_url)
    edited, doomed = product(name="Antes"), product(name="Vai sumir")
    server_push(server.url, "products", edited, doomed)
    client = SeedClient(server.url, "front-1")
    client.fetch("products")

    pushed = hold_rows_during(
        pg_url,
        [edited["id"], doomed["id"]],
        push=lambda: server_push(
            server.url,
            "products",
            {"id": edited["id"], "name": "Depois"},
            {"id": doomed["id"], "_op": "delete"},
            machine_id="caixa-lento",
        ),
        meanwhile=lambda: client.fetch("products"),
    )
    # While the push waited, the client saw the old rows and moved its lastSync on.
    assert client.rows("products")[edited["id"]]["name"] == "Antes"
    assert_late(pg_url, edited["id"], client.last_sync["products"])
    assert pushed
    client.fetch("products")
    assert set(client.rows("products")) == {edited["id"]}
    assert client.rows("products")[edited["id"]]["name"] == "Depois"


@pytest.mark.postgres
def test_a_late_server_commit_reaches_a_client_of_an_agent(servers, pg_url, agent_factory):
    """The same held push, seen through an agent's loopback API."""
    server = servers.start(pg_url)
    agent = agent_factory(server, "pdv-1")
    edited = product(name="Antes")
    server_push(server.url, "products", edited)
    wait_until(lambda: agent_settled(agent, server.url))
    client = SeedClient(agent.url, "front-1")
    client.fetch("products")
    hold_rows_during(
        pg_url,
        [edited["id"]],
        push=lambda: server_push(
            server.url, "products", {"id": edited["id"], "name": "Depois"}, machine_id="lento"
        ),
        meanwhile=lambda: client.fetch("products"),
    )
    assert client.rows("products")[edited["id"]]["name"] == "Antes"
    wait_until(lambda: agent_settled(agent, server.url))
    client.fetch("products")
    assert client.rows("products")[edited["id"]]["name"] == "Depois"


def test_an_agent_write_held_past_a_fetch_reaches_the_next_fetch(sqlite_server, agent_factory):
    """On the agent: a pulled change whose local write waits on the store's write lock
    (held by another connection) while a client reads the loopback API; the client's next
    fetch carries it. (The agent takes a row's change time once it holds the write lock, so
    a writer held outside cannot commit late there; what is left is the window of its own
    transaction, which the overlap covers as on the server.)"""
    server = sqlite_server
    agent = agent_factory(server, "pdv-1")
    edited = product(name="Antes")
    server_push(server.url, "products", edited)
    wait_until(lambda: agent_settled(agent, server.url))
    client = SeedClient(agent.url, "front-1")
    client.fetch("products")

    store = agent.data_dir / "agent.db"
    lock = sqlite3.connect(store, timeout=1, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")  # the agent's next write waits for this
        server_push(server.url, "products", {"id": edited["id"], "name": "Depois"})
        time.sleep(1.0)  # the agent heard of it and is waiting to write it
        client.fetch("products")
        assert client.rows("products")[edited["id"]]["name"] == "Antes"
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    wait_until(lambda: agent_settled(agent, server.url))
    client.fetch("products")
    assert client.rows("products")[edited["id"]]["name"] == "Depois"


# -- helpers ------------------------------------------------------------------------------


def hold_rows_during(
    pg_url: str, row_ids: list[str], *, push: Callable[[], Any], meanwhile: Callable[[], Any]
) -> Any:
    """Lock `row_ids` of products in a transaction of our own, run `push` in a thread until
    PostgreSQL shows it waiting on our lock, run `meanwhile`, then release; `push`'s value."""
    import psycopg

    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = push()
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller's thread
            outcome["error"] = exc

    with (
        psycopg.connect(pg_url, autocommit=False) as holder,
        psycopg.connect(pg_url, autocommit=True) as watcher,
    ):
        holder.execute(
            "SELECT id FROM products WHERE id = ANY(%s) FOR UPDATE", [row_ids]
        ).fetchall()
        pusher = threading.Thread(target=run, daemon=True)
        pusher.start()

        def waiting() -> bool:
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            ).fetchone()
            return bool(row and row[0] > 0)

        wait_until(waiting, timeout=15, message="the push never waited on the held rows")
        try:
            meanwhile()
        finally:
            holder.rollback()
        pusher.join(30)
    assert not pusher.is_alive(), "the push did not finish once the rows were released"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def assert_late(pg_url: str, row_id: str, last_sync: str) -> None:
    """The precondition of a late commit: the row's change time (the server's clock when its
    push took it) is before the lastSync the client sent after that push began."""
    import psycopg

    with psycopg.connect(pg_url) as c:
        row = c.execute("SELECT changed_at FROM products WHERE id = %s", [row_id]).fetchone()
    assert row is not None
    assert int(row[0]) < parse_ms(last_sync), (
        f"not a late commit: changed_at {row[0]} >= the client's lastSync {last_sync} "
        f"({parse_ms(last_sync)}): the push took its change time after the wait"
    )
