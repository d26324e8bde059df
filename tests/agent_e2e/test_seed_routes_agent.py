"""The seed's routes on a REAL agent's loopback API, served from its local store (issue 10,
section 1): reads by `lastSync` with deletions, the push answering `synced` by the same
rule, the bootstrap of a table empty here (and why not), diagnostics, and reconcile with the
front end's `clientSummary` (without one it still reconciles with the server)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from tests.agent_e2e.conftest import describe, push, server_rows, wait_until
from tests.agentproc import AgentProcess
from tests.seedclient import SeedClient, iso, parse_iso, summary_of
from tests.serverproc import ServerProcess

TABLES = ("products", "orders", "order_items", "supplies", "technical_sheets")


def settled(agent: AgentProcess, server: ServerProcess) -> bool:
    with server.client() as c:
        head = c.get("/api/stats").json()["cursor"]
    s = agent.status()
    return s["pending"] == 0 and s["online"] is True and s["cursor"] == head


def elsewhere(server: ServerProcess, table: str, *records: dict) -> None:
    """Another PDV writes straight to the server (our agents' protocol)."""
    body = {
        "machineId": "outro-pdv",
        "cursor": 0,
        "localUpdates": [{"eventId": str(uuid.uuid4()), "record": r} for r in records],
    }
    with server.client() as c:
        r = c.post(f"/api/sync/{table}", json=body)
    assert r.status_code == 200 and all(x["status"] == "applied" for x in r.json()["results"])


def get(agent: AgentProcess, path: str, **params) -> httpx.Response:
    with agent.client() as c:
        return c.get(path, params=params)


def test_reads_by_last_sync_bring_changes_and_deletions_from_anywhere(server, agent_factory):
    agent = agent_factory(server, "caixa-1")
    elsewhere(server, "products", {"id": "p1", "name": "Pão"}, {"id": "p2", "name": "Bolo"})
    wait_until(lambda: settled(agent, server), message=lambda: describe([agent]))

    first = get(agent, "/api/sync/products").json()
    assert first["success"] is True and first["count"] == 2 and first["timestamp"]
    assert {r["id"] for r in first["data"]} == {"p1", "p2"}
    read_at = iso(datetime.now(UTC))

    # Changed since: a local write, a pulled edit, a pulled deletion, a local deletion.
    push(agent, "products", {"id": "p3", "name": "Broa"})
    elsewhere(server, "products", {"id": "p1", "name": "Pão (6 un)"}, {"id": "p2", "_op": "delete"})
    wait_until(lambda: settled(agent, server), message=lambda: describe([agent]))
    push(agent, "products", {"id": "p3", "_op": "delete"})
    answer = get(agent, "/api/sync/products", lastSync=read_at).json()
    got = {r["id"]: r for r in answer["data"]}
    assert answer["count"] == len(answer["data"])
    assert got["p1"]["name"] == "Pão (6 un)"
    for gone in ("p2", "p3"):
        assert set(got[gone]) == {"id", "_deleted", "updatedAt"} and got[gone]["_deleted"] is True
    # Without lastSync: the live rows only, as the POS sees them.
    assert [r["id"] for r in get(agent, "/api/sync/products").json()["data"]] == ["p1"]
    # Epoch milliseconds are a lastSync too; a bad one is 400; an unknown table 404.
    ms = int(parse_iso(read_at).timestamp() * 1000)
    assert get(agent, "/api/sync/products", lastSync=str(ms)).json()["data"] == answer["data"]
    bad = get(agent, "/api/sync/products", lastSync="ontem")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_timestamp"
    assert get(agent, "/api/sync/clientes").status_code == 404


def test_the_seed_push_answers_synced_by_the_last_sync_rule(server, agent_factory):
    agent = agent_factory(server, "caixa-1")
    elsewhere(server, "products", {"id": "antigo", "name": "Já existia"})
    wait_until(lambda: settled(agent, server), message=lambda: describe([agent]))
    client = SeedClient(agent.url, "front-1")

    body = client.sync("products", [{"id": "novo", "name": "Novo", "corDaEmbalagem": "azul"}])
    assert body["conflicts"] == [] and [r["status"] for r in body["results"]] == ["accepted"]
    # No lastSync yet: every live row, this write included (undeclared field and all).
    assert {r["id"] for r in body["synced"]} == {"antigo", "novo"}
    assert client.rows("products")["novo"]["corDaEmbalagem"] == "azul"
    assert "cursor" not in body and body["timestamp"]
    # With lastSync: what changed since (minus the 2 h safety margin), not the whole table.
    # (Once pushed and pulled back, nothing changes here any more.)
    wait_until(lambda: settled(agent, server), message=lambda: describe([agent]))
    client.last_sync["products"] = iso(datetime.now(UTC) + timedelta(hours=2))
    body = client.sync("products", [{"id": "outro", "name": "Outro"}])
    assert [r["id"] for r in body["synced"]] == ["outro"]
    # Our agents' own form (a cursor) still answers a page of the rows written.
    paged = agent.post(
        "/api/sync/products",
        {"cursor": 0, "localUpdates": [{"eventId": str(uuid.uuid4()), "record": {"id": "x"}}]},
    )
    assert [r["id"] for r in paged["synced"]] == ["x"] and paged["hasMore"] is False
    wait_until(lambda: settled(agent, server), message=lambda: describe([agent]))
    assert server_rows(server, "products")["novo"]["corDaEmbalagem"] == "azul"


def test_bootstrap_fills_a_table_empty_here_once_keeping_edit_times(server, agent_factory):
    agent = agent_factory(server, "caixa-1")
    elsewhere(server, "supplies", {"id": "s1", "name": "Farinha"})
    wait_until(lambda: settled(agent, server), message=lambda: describe([agent]))
    old = iso(datetime.now(UTC) - timedelta(days=30))
    recipes = [
        {
            "id": f"t{n}",
            "name": f"Receita {n}",
            "components": [{"supplyId": "s1"}],
            "updatedAt": old,
        }
        for n in range(3)
    ]
    front = SeedClient(agent.url, "front-1")
    answer = front.bootstrap("technical_sheets", recipes)
    assert answer["bootstrapped"] is True and answer["processed"] == 3, answer
    assert answer["conflicts"] == [] and answer["timestamp"]
    assert front.bootstrap("technical_sheets", recipes[:1]) | {"timestamp": None} == {
        "success": True,
        "bootstrapped": False,
        "reason": "already_completed",
        "timestamp": None,
    }
    refused = front.bootstrap("supplies", [{"id": "s2", "name": "Açúcar"}])
    assert refused["bootstrapped"] is False and refused["reason"] == "server_not_empty"

    wait_until(lambda: settled(agent, server), message=lambda: describe([agent]))
    on_server = server_rows(server, "technical_sheets")
    assert set(on_server) == {"t0", "t1", "t2"}
    # Old data keeps its own edit time on the server too: a newer edit made elsewhere wins.
    assert all(parse_iso(r["updatedAt"]) == parse_iso(old) for r in on_server.values())
    assert set(server_rows(server, "supplies")) == {"s1"}
    assert agent.rows("technical_sheets")["t1"]["components"] == [{"supplyId": "s1"}]


def test_a_bootstrap_waits_until_the_agent_has_reached_the_server(agent_factory):
    agent = agent_factory("http://127.0.0.1:9", "caixa-sem-rede")  # no server there
    answer = SeedClient(agent.url, "front-1").bootstrap("products", [{"id": "p1", "name": "Pão"}])
    assert answer["bootstrapped"] is False and answer["reason"] == "not_synced_yet"
    assert agent.rows("products") == {} and agent.status()["pending"] == 0


def test_diagnostics_of_what_the_pos_sees(server, agent_factory):
    agent = agent_factory(server, "caixa-1")
    push(agent, "products", {"id": "p1", "name": "Pão", "category": ""}, {"id": "p2", "price": 1})
    body = get(agent, "/api/sync/diagnostics").json()
    assert body["success"] is True and body["tenantId"] == "default" and body["timestamp"]
    products = body["diagnostics"]["products"]
    assert products["total"] == 2 and products["missingByField"]["category"] == 2
    assert products["missingByField"]["name"] == 1 and products["missingByField"]["price"] == 1
    assert set(body["diagnostics"]) == set(TABLES)


def test_reconcile_with_a_client_summary_compares_it_with_the_store(server, agent_factory):
    agent = agent_factory(server, "caixa-1")
    elsewhere(server, "products", {"id": "p1", "name": "Pão"}, {"id": "p2", "name": "Bolo"})
    wait_until(lambda: settled(agent, server), message=lambda: describe([agent]))
    front = SeedClient(agent.url, "front-1", divergence_strategy="none")
    for table in TABLES:
        front.fetch(table)
    front.get_client_summary = lambda: {t: summary_of(list(front.rows(t).values())) for t in TABLES}
    result = front.reconcile_now()
    assert result["isConsistent"] is True and result["mismatches"] == []
    assert [s["table"] for s in result["serverSummary"]] == list(TABLES)
    assert result["tenantId"] == "default"

    front.get_client_summary = lambda: {"products": {"count": 1}}
    result = front.reconcile_now()
    reasons = {m["table"]: m["reason"] for m in result["mismatches"]}
    assert reasons["products"] == "count_mismatch"
    assert {reasons[t] for t in TABLES if t != "products"} == {"missing_client_table"}
    history = agent.get("/api/sync/reconcile/history")["data"]
    assert [(h["strategy"], h["status"]) for h in history[:2]] == [
        ("client", "divergent"),
        ("client", "consistent"),
    ]
    # Without a clientSummary: a reconcile of this store with the server, as before.
    forced = agent.post("/api/sync/reconcile", {"strategy": "none"})
    assert forced["status"] == "consistent" and forced["strategy"] == "none"
    bad = agent.post(
        "/api/sync/reconcile", {"machineId": "f", "clientSummary": {"products": 3}}, expect=422
    )
    assert bad["code"] == "invalid_summary"
