"""Two shops on one server, through the seed's client: `x-tenant-id`, `tenantId` in the
query and in the body keep them apart, on the server (both backends) and through each
shop's PDV (issue 10, section 3)."""

from __future__ import annotations

import httpx
import pytest

from tests.agent_e2e.conftest import describe
from tests.seedclient import SeedClient, SeedClientError, summary_of

from .conftest import ALL_TABLES, agent_settled, server_live, wait_until
from .shop import product, supply, uid


def test_two_shops_on_one_server_never_see_each_other(servers, database_url):
    server = servers.start(database_url)
    shop_a = SeedClient(server.url, "caixa-1", tenant_id="loja-a")
    shop_b = SeedClient(server.url, "caixa-1", tenant_id="loja-b")  # same machine name
    same_id = uid("bolo")
    assert shop_a.sync("products", [product(id=same_id, name="Bolo da loja A")])["conflicts"] == []
    only_b = product(name="Só na loja B")
    shop_b.sync("products", [product(id=same_id, name="Bolo da loja B"), only_b])

    shop_a.fetch("products")
    shop_b.fetch("products")
    assert {r["name"] for r in shop_a.rows("products").values()} == {"Bolo da loja A"}
    assert {r["name"] for r in shop_b.rows("products").values()} == {
        "Bolo da loja B",
        "Só na loja B",
    }
    # No shop named: the default shop, which has neither.
    assert SeedClient(server.url, "caixa-9").fetch("products") == []

    # Each place alone names the shop: the header, the query, the body.
    with httpx.Client(base_url=server.url, timeout=30) as c:
        by_header = c.get("/api/sync/products", headers={"x-tenant-id": "loja-a"}).json()
        by_query = c.get("/api/sync/products", params={"tenantId": "loja-b"}).json()
        assert {r["name"] for r in by_header["data"]} == {"Bolo da loja A"}
        assert by_query["count"] == 2
        by_body = c.post(
            "/api/sync/supplies",
            json={
                "machineId": "caixa-1",
                "tenantId": "loja-b",
                "localUpdates": [{"eventId": uid("ev"), "record": supply()}],
            },
        )
        assert by_body.status_code == 200, by_body.text
        assert len(server_live(server.url, "supplies", tenant="loja-b")) == 1
        assert server_live(server.url, "supplies", tenant="loja-a") == {}

        # Places that disagree, a record of another shop, bad shop ids: 400, nothing stored.
        refused = [
            c.post(
                "/api/sync/products",
                headers={"x-tenant-id": "loja-a"},
                json={"machineId": "caixa-1", "tenantId": "loja-b", "localUpdates": [_ev()]},
            ),
            c.post(
                "/api/sync/products",
                headers={"x-tenant-id": "loja-a"},
                json={"machineId": "caixa-1", "localUpdates": [_ev(tenantId="loja-b")]},
            ),
            *(
                c.post(
                    "/api/sync/products",
                    headers={"x-tenant-id": bad},
                    json={"machineId": "caixa-1", "localUpdates": [_ev()]},
                )
                for bad in ("x" * 65, "loja a", "loja/1", "loja;drop", "")
            ),
            c.get("/api/sync/products", params={"tenantId": "ç"}),
        ]
    for r in refused:
        assert r.status_code == 400, r.text
        assert r.json()["code"] in ("tenant_mismatch", "invalid_tenant"), r.text
    for tenant in ("loja-a", "loja-b", None):
        names = {p["name"] for p in server_live(server.url, "products", tenant=tenant).values()}
        assert "Recusado" not in names

    # Reconcile, diagnostics and bootstrap are per shop too.
    for shop in (shop_a, shop_b):
        for table in ALL_TABLES:
            shop.fetch(table)
        shop.get_client_summary = lambda shop=shop: shop.summary(ALL_TABLES)
        assert shop.reconcile_now()["isConsistent"] is True
    with httpx.Client(base_url=server.url, timeout=30) as c:
        diag_a = c.get("/api/sync/diagnostics", headers={"x-tenant-id": "loja-a"}).json()
        diag_b = c.get("/api/sync/diagnostics", params={"tenantId": "loja-b"}).json()
    assert diag_a["tenantId"] == "loja-a" and diag_a["diagnostics"]["products"]["total"] == 1
    assert diag_b["tenantId"] == "loja-b" and diag_b["diagnostics"]["products"]["total"] == 2
    recipes = [{"id": uid("ficha"), "name": "Receita"}]
    assert shop_a.bootstrap("technical_sheets", recipes)["bootstrapped"] is True
    # Loja B's table is still empty and never bootstrapped: its own bootstrap goes in.
    assert shop_b.bootstrap("technical_sheets", recipes)["bootstrapped"] is True
    assert shop_b.bootstrap("technical_sheets", recipes)["reason"] == "already_completed"
    assert summary_of(shop_a.fetch("technical_sheets"))["count"] == 1


def _ev(**record) -> dict:
    return {"eventId": uid("ev"), "record": {"id": uid("p"), "name": "Recusado", **record}}


def test_two_shops_through_their_pdvs(sqlite_server, agent_factory):
    server = sqlite_server
    pdv_a = agent_factory(server, "caixa-a", env={"SYNC_TENANT_ID": "loja-a"})
    pdv_b = agent_factory(server, "caixa-b", env={"SYNC_TENANT_ID": "loja-b"})
    front_a = SeedClient(pdv_a.url, "front-a", tenant_id="loja-a")
    front_b = SeedClient(pdv_b.url, "front-b", tenant_id="loja-b")
    same_id = uid("bolo")
    assert front_a.sync("products", [product(id=same_id, name="Bolo A")])["conflicts"] == []
    assert front_b.sync("products", [product(id=same_id, name="Bolo B")])["conflicts"] == []
    for pdv, shop in ((pdv_a, "loja-a"), (pdv_b, "loja-b")):
        wait_until(
            lambda pdv=pdv, shop=shop: agent_settled(pdv, server.url, shop),
            message=lambda: describe([pdv_a, pdv_b]),
        )
    assert {r["name"] for r in server_live(server.url, "products", "loja-a").values()} == {"Bolo A"}
    assert {r["name"] for r in server_live(server.url, "products", "loja-b").values()} == {"Bolo B"}
    assert server_live(server.url, "products") == {}  # the default shop has nothing
    front_a.fetch("products")
    assert [r["name"] for r in front_a.rows("products").values()] == ["Bolo A"]
    assert [r["name"] for r in pdv_b.rows("products").values()] == ["Bolo B"]
    # A front end that names no shop talks to its PDV's shop.
    assert [r["name"] for r in SeedClient(pdv_b.url, "front-x").fetch("products")] == ["Bolo B"]

    # A front end naming another shop is refused by the PDV: 403, nothing stored.
    wrong = SeedClient(pdv_a.url, "front-y", tenant_id="loja-b", retry_attempts=0)
    with pytest.raises(SeedClientError) as refused:
        wrong.sync("products", [product(name="Da loja errada")])
    assert refused.value.status == 403 and refused.value.code == "tenant_mismatch"
    with pytest.raises(SeedClientError):
        wrong.fetch("products")
    assert {r["name"] for r in pdv_a.rows("products").values()} == {"Bolo A"}
