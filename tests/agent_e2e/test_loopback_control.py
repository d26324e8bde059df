"""The agent's control routes read their optional body with the one envelope: a bad body is
a clear 400 and starts nothing (no reconcile is run or logged)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"strategy": "\\ud800"}', "invalid_json"),
        (b'{"strategy": ', "invalid_json"),
        (b'{"strategy": "everything"}', "invalid_strategy"),
        (b'{"strategy": ["full_resync"]}', "invalid_strategy"),
    ],
)
def test_a_bad_reconcile_body_is_400_and_reconciles_nothing(server, agent_factory, body, code):
    agent = agent_factory(server, "caixa-1")
    with agent.client() as c:
        r = c.post(
            "/api/sync/reconcile", content=body, headers={"content-type": "application/json"}
        )
    assert r.status_code == 400 and r.json()["code"] == code, r.text
    assert agent.get("/api/sync/reconcile/history")["data"] == []


def test_reconcile_takes_its_strategy_from_an_optional_body(server, agent_factory):
    agent = agent_factory(server, "caixa-1")  # configured: refresh_mismatched
    assert agent.post("/api/sync/reconcile")["strategy"] == "refresh_mismatched"
    assert agent.post("/api/sync/reconcile", {"strategy": "none"})["strategy"] == "none"
    assert agent.post("/api/sync/reconcile", {"other": 1})["strategy"] == "refresh_mismatched"
    logged = agent.get("/api/sync/reconcile/history")["data"]
    assert [e["strategy"] for e in logged] == ["refresh_mismatched", "none", "refresh_mismatched"]


@pytest.mark.parametrize("action", ["retry", "discard"])
def test_an_unknown_dead_letter_is_404(server, agent_factory, action):
    agent = agent_factory(server, "caixa-1")
    body = agent.post(f"/api/sync/dead/no-such-event/{action}", expect=404)
    assert body == {
        "success": False,
        "error": "no dead letter with this eventId",
        "code": "not_found",
    }
