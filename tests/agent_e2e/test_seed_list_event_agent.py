"""The seed's client example through a real agent's loopback API: `data` a list of products."""

from __future__ import annotations

from tests.agent_e2e.conftest import server_rows, wait_until


def test_the_agent_takes_a_list_in_data_and_syncs_each_record(server, agent_factory):
    agent = agent_factory(server, "caixa-1")
    body = {
        "type": "product_updated",
        "productId": "123",
        "event_id": "lote-1",
        "data": [{"id": "123", "name": "Bolo2"}, {"id": "124", "name": "Pão", "price": "1.50"}],
    }
    with agent.client() as c:
        r = c.post("/api/sync", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["synced"] == 2 and len(set(r.json()["event_ids"])) == 2
        again = c.post("/api/sync", json=body)  # a retry: the same events, stored once
        assert again.status_code == 200 and again.json()["event_ids"] == r.json()["event_ids"]
        bad = c.post(
            "/api/sync", json={**body, "event_id": "lote-2", "data": [{"id": "125", "price": -1}]}
        )
        assert bad.status_code == 422 and bad.json()["error"].startswith("data[0]: price")
    wait_until(lambda: {"123", "124"} <= set(server_rows(server, "products")))
    rows = server_rows(server, "products")
    assert (
        rows["123"]["name"] == "Bolo2" and float(rows["124"]["price"]) == 1.5 and "125" not in rows
    )
