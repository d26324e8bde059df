"""Fields nobody declared travel losslessly: written on one PDV's loopback API or on the
server, they reach every other PDV equal, through live notices and through pulls, are
covered by the reconcile checksum, and a patch of one of them keeps the others (issue 10,
section 2)."""

from __future__ import annotations

from typing import Any

import httpx

from protocol.checksum import combine, row_digest
from protocol.records import from_wire
from protocol.schema import TABLES
from tests.agent_e2e.conftest import describe, push
from tests.agentproc import AgentProcess
from tests.seedclient import SeedClient

from .conftest import agent_settled, assert_carries, server_live, server_push, wait_until
from .shop import product

# The front end's own fields, of every JSON kind.
EXTRAS: dict[str, Any] = {
    "barcode": "7891234567895",
    "tags": ["doce", "festa", "sem lactose"],
    "nutrition": {"kcal": 250, "gluten": True, "porcao": "60 g", "alergicos": ["ovo"]},
    "peso": 0.45,
    "destaque": False,
    "fornecedorId": None,
}


def checksum_on_server(server_url: str, table: str) -> str:
    with httpx.Client(base_url=server_url, timeout=30) as c:
        r = c.get("/api/sync/reconcile")
    assert r.status_code == 200, r.text
    return next(s["checksum"] for s in r.json()["serverSummary"] if s["table"] == table)


def consistent(agent: AgentProcess) -> bool:
    result = agent.post("/api/sync/reconcile", {"strategy": "none"})
    return result["isConsistent"] is True and result["status"] == "consistent"


def test_undeclared_fields_reach_every_pdv_equal(sqlite_server, agent_factory):
    server = sqlite_server
    # Polling once a minute: while live, what A writes reaches B by the live notice alone.
    slow = {"SYNC_INTERVAL_MS": "60000"}
    a, b = agent_factory.many(server, ["caixa-a", "caixa-b"], env=slow)
    wait_until(lambda: a.status()["live"] and b.status()["live"], message=lambda: describe([a, b]))

    from_pdv = product(name="Bolo de pote", **EXTRAS)
    written = push(a, "products", from_pdv)
    assert written["results"][0]["status"] == "accepted", written
    assert_carries("products", from_pdv, a.rows("products")[from_pdv["id"]])
    from_server = product(name="Torta", ficha={"versao": 3, "passos": [1, 2]}, cor="azul")
    server_push(server.url, "products", from_server)

    ids = {from_pdv["id"], from_server["id"]}
    wait_until(lambda: ids <= set(b.rows("products")), message=lambda: describe([a, b]))
    # A third PDV, started now, gets them by pulling from the start.
    c = agent_factory(server, "caixa-c")
    for agent in (a, b, c):
        wait_until(
            lambda agent=agent: agent_settled(agent, server.url),
            message=lambda: describe([a, b, c]),
        )
    on_server = server_live(server.url, "products")
    for record in (from_pdv, from_server):
        assert_carries("products", record, on_server[record["id"]])
        for agent in (a, b, c):
            # Whole records equal: declared fields, undeclared fields, updatedAt.
            assert agent.rows("products")[record["id"]] == on_server[record["id"]], agent.machine_id
    # The seed's read on a PDV returns them too.
    front = SeedClient(b.url, "front-b")
    front.fetch("products")
    assert_carries("products", from_pdv, front.rows("products")[from_pdv["id"]])

    # The checksum covers them: the server's is the digest of the rows with their extras
    # (and not the one without), and every PDV's reconcile agrees with it.
    table = TABLES["products"]
    rows = [from_wire(table, r) for r in on_server.values()]
    assert checksum_on_server(server.url, "products") == combine(row_digest(table, r) for r in rows)
    bare = [{**r, "_extra": {}} for r in rows]
    assert checksum_on_server(server.url, "products") != combine(row_digest(table, r) for r in bare)
    assert all(consistent(agent) for agent in (a, b, c))

    # A patch of one undeclared field, on another PDV, keeps the others everywhere.
    patched = push(b, "products", {"id": from_pdv["id"], "barcode": "0000000000000"})
    assert patched["results"][0]["status"] == "accepted", patched

    def patched_everywhere() -> bool:
        return all(
            ag.rows("products")[from_pdv["id"]].get("barcode") == "0000000000000"
            for ag in (a, b, c)
        )

    wait_until(patched_everywhere, message=lambda: describe([a, b, c]))
    for agent in (a, b, c):
        wait_until(
            lambda agent=agent: agent_settled(agent, server.url),
            message=lambda: describe([a, b, c]),
        )
    expected = {**from_pdv, "barcode": "0000000000000"}
    on_server = server_live(server.url, "products")
    assert_carries("products", expected, on_server[from_pdv["id"]])
    for agent in (a, b, c):
        assert agent.rows("products")[from_pdv["id"]] == on_server[from_pdv["id"]]
    assert all(consistent(agent) for agent in (a, b, c))
