"""Fields nobody declared are lossless from one PDV's front end to another's (issue 10,
section 2): written through agent A's loopback API, kept by the server, pulled by agent B,
read back by B's front end exactly; patched key by key on B and seen on A; covered by the
reconcile checksum (every store agrees with the server)."""

from __future__ import annotations

from decimal import Decimal

from tests.agent_e2e.conftest import describe, server_rows, wait_until
from tests.agentproc import AgentProcess
from tests.seedclient import SeedClient
from tests.serverproc import ServerProcess


def settled(agent: AgentProcess, server: ServerProcess) -> bool:
    with server.client() as c:
        head = c.get("/api/stats").json()["cursor"]
    s = agent.status()
    return s["pending"] == 0 and s["online"] is True and s["cursor"] == head


def consistent(agent: AgentProcess) -> bool:
    return agent.post("/api/sync/reconcile", {"strategy": "none"})["isConsistent"] is True


def test_undeclared_fields_go_from_one_front_end_to_another_unchanged(server, agent_factory):
    a, b = agent_factory.many(server, ["caixa-a", "caixa-b"])
    front_a, front_b = SeedClient(a.url, "front-a"), SeedClient(b.url, "front-b")
    product = {
        "id": "p1",
        "name": "Bolo de pote",
        "price": 12.5,
        "isActive": True,
        "barcode": "7891234567895",
        "tags": ["doce", "festa"],
        "nutricao": {"kcal": 320, "porcao": "150 g", "alergenos": ["leite", "ovo"]},
        "destaque": False,
        "nota": 4.75,
    }
    recipe = {
        "id": "t1",
        "name": "Massa de pão de mel",
        "components": [{"supplyId": "s1", "quantity": 0.25, "unit": "kg"}],
        "rendimento": {"unidades": 24},
    }
    body = front_a.sync("products", [product])
    assert body["conflicts"] == [], body
    assert front_a.sync("technical_sheets", [recipe])["conflicts"] == []
    for agent in (a, b):
        wait_until(lambda agent=agent: settled(agent, server), message=lambda: describe([a, b]))

    on_server = server_rows(server, "products")["p1"]
    front_b.fetch("products")
    front_b.fetch("technical_sheets")
    seen = front_b.rows("products")["p1"]
    assert seen == on_server == a.rows("products")["p1"] == b.rows("products")["p1"]
    for key in ("barcode", "tags", "nutricao", "destaque"):
        assert seen[key] == product[key], key
    assert Decimal(str(seen["nota"])) == Decimal("4.75")
    sheet = front_b.rows("technical_sheets")["t1"]
    assert sheet["rendimento"] == {"unidades": 24}
    assert sheet["components"] == [{"supplyId": "s1", "quantity": 0.25, "unit": "kg"}]

    # B's front end patches one undeclared field: the others stay, and A sees it.
    front_b.sync("products", [{"id": "p1", "tags": ["salgado"], "lote": "L-7"}])
    for agent in (a, b):
        wait_until(lambda agent=agent: settled(agent, server), message=lambda: describe([a, b]))
    front_a.fetch("products")
    patched = front_a.rows("products")["p1"]
    assert (patched["tags"], patched["lote"], patched["barcode"]) == (
        ["salgado"],
        "L-7",
        "7891234567895",
    )
    assert patched == b.rows("products")["p1"] == server_rows(server, "products")["p1"]
    # The checksum covers them: every store agrees with the server.
    assert consistent(a) and consistent(b), describe([a, b])
