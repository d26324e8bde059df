"""PDV reports and the panel's commands, end to end: real agent processes and a real server
process. The test reads the panel's cards and asks for commands through the sync service on
the server's own database, as the panel's pages do (on PostgreSQL NOTIFY carries a command
to the server process holding the PDV's socket; on SQLite the command waits for the PDV's
next connect or report)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from protocol.version import __version__
from server.db import bind_models, connect_database
from server.service import SyncService
from tests.agent_e2e.conftest import push, sale, server_head, wait_until


@pytest.fixture
def panel_service(tmp_path):
    """`panel_service(server)`: a SyncService on that server's database."""
    dbs = []

    def open_(server) -> SyncService:
        url = server.database_url
        db, _ = connect_database(url, Path(tmp_path))
        dbs.append(db)
        return SyncService(bind_models(db))

    yield open_
    for db in dbs:
        db.close_all()


def cards(service: SyncService) -> dict[str, dict]:
    return {c["machineId"]: c for c in service.pdv_snapshot(int(time.time() * 1000))}


def test_reports_arrive_and_follow_each_pdvs_state(
    servers, database_url, agent_factory, panel_service
):
    server = servers.start(database_url)
    panel = panel_service(server)
    a = agent_factory(server, "caixa-1")
    b = agent_factory(server, "caixa-2")

    def both_synced() -> bool:
        seen = cards(panel)
        return all(
            m in seen and seen[m]["state"] == "synced" and seen[m]["live"]
            for m in ("caixa-1", "caixa-2")
        )

    wait_until(both_synced, 30, message=lambda: str(cards(panel)))
    card = cards(panel)["caixa-1"]
    assert card["version"] == __version__ and card["hostname"]
    assert card["lag"] == 0 and card["pending"] == 0 and card["deadLetters"] == 0
    push(a, "products", {"id": "p-1", "name": "Pão", "stock_quantity": 10})
    wait_until(lambda: a.status()["pending"] == 0, 30)
    # The server goes away: the PDV keeps its sale and, once back, tells the panel at once.
    server.kill()
    sale(a, "o-1", [("p-1", 1)])
    wait_until(lambda: a.status()["state"] == "offline", 30)
    server = servers.restart(server)
    wait_until(lambda: a.status()["pending"] == 0, 30)
    head = server_head(server)
    wait_until(lambda: cards(panel)["caixa-1"]["cursor"] == head, 15)
    # The other PDV hears the sale and reports its new cursor too (lag 0 again).
    wait_until(lambda: cards(panel)["caixa-2"]["cursor"] == head, 40)
    assert b.status()["cursor"] == head and cards(panel)["caixa-2"]["lag"] == 0


@pytest.mark.postgres
def test_a_command_reaches_a_connected_pdv_over_its_socket(
    servers, pg_url, agent_factory, panel_service
):
    # Two server processes on one PostgreSQL: the PDV is connected to one of them.
    server = servers.start(pg_url)
    other = servers.start(pg_url)
    panel = panel_service(other)
    a = agent_factory(server, "caixa-1")
    wait_until(lambda: cards(panel).get("caixa-1", {}).get("live"), 30)
    wait_until(lambda: a.status()["live"], 30)
    reported = cards(panel)["caixa-1"]["reportedAt"]
    asked = time.monotonic()
    (command_id,) = panel.request_reconcile("caixa-1", "full_resync", "ana")

    def finished() -> dict | None:
        return cards(panel)["caixa-1"]["lastCommand"]

    done = wait_until(finished, 25)
    # Well before the next scheduled report (30 s after the last): it came over the socket,
    # ran at once, and its result was reported at once.
    assert time.monotonic() - asked < 25
    assert cards(panel)["caixa-1"]["reportedAt"] - reported < 30_000
    assert done["id"] == command_id and done["result"]["status"] == "consistent"
    assert done["result"]["reconcile"]["strategy"] == "full_resync"
    assert cards(panel)["caixa-1"]["pendingCommand"] is None
    last = a.status()["lastReconcile"]
    assert last["strategy"] == "full_resync" and last["status"] == "consistent"


def test_a_command_for_an_offline_pdv_runs_when_it_returns(
    servers, database_url, agent_factory, panel_service
):
    server = servers.start(database_url)
    panel = panel_service(server)
    a = agent_factory(server, "caixa-1")
    wait_until(lambda: cards(panel).get("caixa-1", {}).get("state") == "synced", 30)
    a.stop()
    (command_id,) = panel.request_reconcile("caixa-1", "refresh_mismatched", "ana")
    waiting = cards(panel)["caixa-1"]["pendingCommand"]
    assert waiting["id"] == command_id and waiting["deliveredAt"] is None
    time.sleep(0.5)
    assert cards(panel)["caixa-1"]["pendingCommand"]["deliveredAt"] is None
    a.restart()
    done = wait_until(lambda: cards(panel)["caixa-1"]["lastCommand"], 40)
    assert done["id"] == command_id and done["result"]["status"] == "consistent"
    assert cards(panel)["caixa-1"]["pendingCommand"] is None
    # Run once: a restart does not run it again.
    history = len(a.get("/api/sync/reconcile/history")["data"])
    a.restart()
    wait_until(lambda: cards(panel)["caixa-1"]["state"] == "synced", 30)
    time.sleep(2)
    assert len(a.get("/api/sync/reconcile/history")["data"]) == history
