"""A REAL agent's whole-table reads, kept serialised in its process (agent/store/listcache.py),
answer byte for byte what the uncached store reads give from its database file at that
moment: after local writes, a sale, patches, deletes, and rows pulled from the server."""

from __future__ import annotations

import uuid

from agent.store.store import Store
from protocol.envelope import encode
from tests.agent_e2e.conftest import describe, push, sale, wait_until
from tests.agentproc import AgentProcess
from tests.serverproc import ServerProcess


def settled(agent: AgentProcess, server: ServerProcess) -> bool:
    with server.client() as c:
        head = c.get("/api/stats").json()["cursor"]
    s = agent.status()
    return s["pending"] == 0 and s["online"] is True and s["cursor"] == head


def elsewhere(server: ServerProcess, table: str, *records: dict) -> None:
    """Another PDV writes straight to the server."""
    body = {
        "machineId": "outro-pdv",
        "cursor": 0,
        "localUpdates": [{"eventId": str(uuid.uuid4()), "record": r} for r in records],
    }
    with server.client() as c:
        assert c.post(f"/api/sync/{table}", json=body).status_code == 200


def same_as_store(agent: AgentProcess) -> None:
    """Each list read of the agent == the uncached read of its store file, now."""
    store = Store(agent.data_dir / "agent.db")
    try:
        with agent.client() as c:
            for table in ("products", "orders", "order_items", "supplies", "technical_sheets"):
                rows = store.list(table)
                more = {"total": len(rows)} if table == "orders" else {}
                got = c.get(f"/api/{table}").content
                assert got == encode({"success": True, table: rows, **more}), table
                rows = store.since(table, None)
                whole = encode({"success": True, "data": rows, "count": len(rows)})
                got = c.get(f"/api/sync/{table}").content
                assert got.startswith(whole[:-1] + b',"timestamp":"'), table
            items = [i for i in store.list("order_items") if i["order_id"] == "v1"]
            got = c.get("/api/order_items", params={"order_id": "v1"}).content
            assert got == encode({"success": True, "order_items": items})
    finally:
        store.close()


def test_list_reads_are_the_store_bytes_through_local_and_pulled_changes(server, agent_factory):
    agent = agent_factory(server, "caixa-1")
    products = [
        {"id": f"p{i:03d}", "name": f"Pão {i} ☕", "price": f"{i}.50", "stock_quantity": 20}
        for i in range(60)
    ]
    push(agent, "products", *products, {"id": "x1", "name": "Com extra", "sabor": "milho"})
    sale(agent, "v1", [("p001", 2), ("p002", 1)])
    same_as_store(agent)  # before the server has them: the POS's own writes
    wait_until(lambda: settled(agent, server), message=lambda: describe([agent]))
    same_as_store(agent)

    push(agent, "products", {"id": "p003", "price": "7.77"}, {"id": "p004", "_op": "delete"})
    elsewhere(
        server,
        "products",
        {"id": "a-de-fora", "name": "Outro PDV"},
        {"id": "p005", "name": "Renomeado"},
    )
    elsewhere(server, "supplies", {"id": "s1", "name": "Farinha", "stock": "3.250"})
    wait_until(lambda: settled(agent, server), message=lambda: describe([agent]))
    same_as_store(agent)
