"""Bad input on the agent's loopback API gets the same clear 4xx as on the server (the one
envelope of protocol/envelope.py) and stores nothing."""

from __future__ import annotations

import pytest

from tests.agent_e2e.conftest import push

BAD_BODIES = {
    "lone surrogate": b'{"localUpdates": [{"eventId": "e1", "record": {"id": "x", "name": "a\\ud800"}}]}',
    "surrogate key": b'{"localUpdates": [{"eventId": "e1", "record": {"id": "x", "\\udc00": 1}}]}',
    "malformed": b'{"localUpdates": [',
    "empty": b"",
    "deep": b"[" * 50_000 + b"]" * 50_000,
}


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
def test_bad_bodies_get_the_servers_4xx_on_both(server, agent_factory, name):
    agent = agent_factory(server, "caixa-1")
    body = BAD_BODIES[name]
    for base in (agent, server):
        with base.client() as c:
            r = c.post(
                "/api/sync/products", content=body, headers={"content-type": "application/json"}
            )
        assert r.status_code == 400, (base, name, r.text)
        assert r.json()["success"] is False and r.json()["code"] == "invalid_json"
    assert agent.status()["pending"] == 0
    assert agent.get("/api/products")["products"] == []


def test_an_oversized_body_is_413_on_the_agent(server, agent_factory):
    agent = agent_factory(server, "caixa-1")
    body = b'{"localUpdates": [], "pad": "' + b"x" * (5 * 1024 * 1024 + 10) + b'"}'
    with agent.client() as c:
        r = c.post("/api/sync/products", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "body_too_large"
    push(agent, "products", {"id": "ok", "name": "Still works"})
    assert agent.get("/api/products/ok")["record"]["name"] == "Still works"
