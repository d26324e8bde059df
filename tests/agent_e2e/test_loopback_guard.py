"""The agent's loopback API against the PDV's own browser: a web site open on the PDV must not
change or read the shop's data through the agent (cross-site POST, DNS rebinding), while the
POS front end served by this PC (or an origin the shop lists) works, CORS included."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.agent_e2e.conftest import push, server_rows, wait_until


def raw(
    agent, method: str, path: str, *, headers: dict[str, str], content: str | None = None
) -> httpx.Response:
    with agent.client() as c:
        return c.request(method, path, headers=headers, content=content)


@pytest.fixture
def shop(server, agent_factory):
    agent = agent_factory(server, "caixa-1", env={"SYNC_CORS_ORIGINS": "http://192.168.1.50:3000"})
    push(agent, "products", {"id": "bolo", "name": "Bolo", "price": "30.00"})
    wait_until(lambda: "bolo" in server_rows(server, "products"))
    return server, agent


def test_a_web_site_cannot_change_data_through_the_agent(shop):
    server, agent = shop
    # A "simple" cross-site request: text/plain, so the browser sends it without a preflight.
    body = json.dumps(
        {"type": "product_updated", "data": {"id": "bolo", "price": "0.00"}, "event_id": "evil-1"}
    )
    for origin in ("http://evil.example", "https://localhost.evil.example", "null"):
        r = raw(
            agent,
            "POST",
            "/api/sync",
            content=body,
            headers={"Origin": origin, "Content-Type": "text/plain;charset=UTF-8"},
        )
        assert r.status_code == 403, (origin, r.text)
        assert r.json()["code"] == "forbidden_origin" and r.json()["success"] is False
    r = raw(agent, "DELETE", "/api/products/bolo", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    assert float(agent.get("/api/products/bolo")["record"]["price"]) == 30.0
    assert agent.status()["pending"] == 0
    assert float(server_rows(server, "products")["bolo"]["price"]) == 30.0


def test_a_dns_rebinding_page_cannot_read_the_agent(shop):
    _, agent = shop
    r = raw(
        agent, "GET", "/api/orders", headers={"Host": f"evil.example:{agent.url.rsplit(':', 1)[1]}"}
    )
    assert r.status_code == 403 and r.json()["code"] == "forbidden_host"
    for host in ("127.0.0.1", "localhost:4000", "[::1]:4000"):
        assert raw(agent, "GET", "/api/sync/status", headers={"Host": host}).status_code == 200, (
            host
        )


@pytest.mark.parametrize(
    "origin", ["http://localhost:3000", "http://127.0.0.1:5173", "http://192.168.1.50:3000"]
)
def test_the_pos_front_end_works_from_the_browser(shop, origin):
    server, agent = shop
    preflight = raw(
        agent,
        "OPTIONS",
        "/api/products",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "content-type" in preflight.headers["access-control-allow-headers"].lower()

    r = raw(
        agent,
        "POST",
        "/api/products",
        headers={"Origin": origin, "Content-Type": "application/json"},
        content=json.dumps({"id": f"p-{origin[-4:]}", "name": "Sonho", "price": "4.00"}),
    )
    assert r.status_code in (200, 201), r.text
    assert r.headers["access-control-allow-origin"] == origin
    wait_until(lambda: f"p-{origin[-4:]}" in server_rows(server, "products"))


def test_programs_without_an_origin_are_not_browsers_and_work(shop):
    _, agent = shop
    r = raw(
        agent,
        "POST",
        "/api/products",
        headers={"Content-Type": "application/json"},
        content=json.dumps({"id": "pao", "name": "Pão", "price": "0.75"}),
    )
    assert r.status_code in (200, 201) and "access-control-allow-origin" not in r.headers
