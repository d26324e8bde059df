"""The loopback API serves ONE shop, the agent's: a front end naming another (query, the
seed's `x-tenant-id` header, the body's `tenantId`, a record's own `tenantId`) is refused
with 403 `tenant_mismatch` and nothing is stored; a shop id that is not one is 400."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.agentproc import AgentProcess


def event(record: dict) -> dict:
    return {"eventId": str(uuid.uuid4()), "record": record}


def call(agent: AgentProcess, method: str, path: str, **kw) -> httpx.Response:
    with agent.client() as c:
        return c.request(method, path, **kw)


ANOTHER_SHOP = [
    ("GET", "/api/sync/products", {"params": {"tenantId": "loja-b"}}),
    ("GET", "/api/products", {"headers": {"x-tenant-id": "loja-b"}}),
    ("GET", "/api/sync/diagnostics", {"params": {"tenantId": "loja-b"}}),
    (
        "POST",
        "/api/sync/products",
        {"json": {"tenantId": "loja-b", "localUpdates": [event({"id": "x", "name": "B"})]}},
    ),
    (
        "POST",
        "/api/sync/products",
        {"json": {"localUpdates": [event({"id": "x", "name": "B", "tenantId": "loja-b"})]}},
    ),
    (
        "POST",
        "/api/sync/batch",
        {"json": {"events": [{**event({"id": "x", "tenantId": "loja-b"}), "table": "orders"}]}},
    ),
    ("POST", "/api/products", {"json": {"id": "x", "name": "B", "tenantId": "loja-b"}}),
    (
        "POST",
        "/api/sync/bootstrap/products",
        {"json": {"machineId": "f", "tenantId": "loja-b", "localUpdates": [{"id": "x"}]}},
    ),
    (
        "POST",
        "/api/sync/reconcile",
        {"json": {"machineId": "f", "clientSummary": {}}, "headers": {"x-tenant-id": "loja-b"}},
    ),
]


@pytest.mark.parametrize(("method", "path", "kw"), ANOTHER_SHOP, ids=lambda v: str(v)[:40])
def test_another_shop_is_refused_and_nothing_is_stored(server, agent_factory, method, path, kw):
    agent = agent_factory(server, "caixa-a", env={"SYNC_TENANT_ID": "loja-a"})
    r = call(agent, method, path, **kw)
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "tenant_mismatch" and "loja-a" in r.json()["error"]
    assert agent.status()["pending"] == 0 and agent.rows("products") == {}


def test_its_own_shop_and_no_shop_are_served(server, agent_factory):
    agent = agent_factory(server, "caixa-a", env={"SYNC_TENANT_ID": "loja-a"})
    own = {"x-tenant-id": "loja-a"}
    body = {"tenantId": "loja-a", "localUpdates": [event({"id": "p1", "tenantId": "loja-a"})]}
    assert call(agent, "POST", "/api/sync/products", json=body, headers=own).status_code == 200
    assert (
        call(agent, "GET", "/api/sync/products", params={"tenantId": "loja-a"}).json()["count"] == 1
    )
    diagnostics = call(agent, "GET", "/api/sync/diagnostics").json()
    assert diagnostics["tenantId"] == "loja-a"
    assert "tenantId" not in agent.rows("products")["p1"]  # a meta key, never stored


@pytest.mark.parametrize("bad", ["", " ", "loja a", "x" * 65, "loja/1", 5])
def test_a_bad_shop_id_is_400(server, agent_factory, bad):
    agent = agent_factory(server, "caixa-1")
    if isinstance(bad, str):
        r = call(agent, "GET", "/api/sync/products", params={"tenantId": bad})
        assert r.status_code == 400 and r.json()["code"] == "invalid_tenant", r.text
        if bad == bad.strip():  # (a header cannot be blank-padded on the wire)
            r = call(agent, "GET", "/api/products", headers={"x-tenant-id": bad})
            assert r.status_code == 400 and r.json()["code"] == "invalid_tenant", r.text
    body = {"tenantId": bad, "localUpdates": [event({"id": "x"})]}
    r = call(agent, "POST", "/api/sync/products", json=body)
    assert r.status_code == 400 and r.json()["code"] == "invalid_tenant", r.text
    assert agent.rows("products") == {}


def test_an_agent_of_the_default_shop_refuses_a_named_one(server, agent_factory):
    agent = agent_factory(server, "caixa-1")
    assert call(agent, "GET", "/api/products", params={"tenantId": "default"}).status_code == 200
    r = call(agent, "GET", "/api/products", params={"tenantId": "loja-x"})
    assert r.status_code == 403 and r.json()["code"] == "tenant_mismatch"
