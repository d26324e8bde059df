"""The seed's client example against a real server: `POST /api/sync` with `data` a list of
records (`{type: 'product_updated', productId: '123', data: novosProdutos}`)."""

from __future__ import annotations

from tests.server.test_bad_input import assert_refused, eid, snapshot


def test_the_seeds_client_example_syncs_a_list_of_products_idempotently(live_server):
    with live_server.client() as c:
        event_id = eid()
        body = {
            "type": "product_updated",
            "productId": "123",
            "event_id": event_id,
            "data": [{"id": "123", "name": "Bolo2"}, {"id": "124", "name": "Pão", "price": "1.50"}],
        }
        r = c.post("/api/sync", json=body)
        assert r.status_code == 200, r.text
        reply = r.json()
        assert reply["success"] is True and reply["synced"] == 2 and reply["duplicate"] is False
        assert len(set(reply["event_ids"])) == 2 and event_id not in reply["event_ids"]
        products = {p["id"]: p for p in c.get("/api/products").json()["products"]}
        assert products["123"]["name"] == "Bolo2" and products["124"]["price"] == 1.5
        before = snapshot(c)

        # A retry (even with other data) maps onto the same events: nothing changes.
        retry = {**body, "data": [{"id": "123", "name": "outro"}, {"id": "124", "name": "outro"}]}
        r = c.post("/api/sync", json=retry)
        assert r.status_code == 200, r.text
        assert r.json()["duplicate"] is True and r.json()["event_ids"] == reply["event_ids"]
        assert snapshot(c)[:3] == before[:3]

        # One bad record refuses the whole list, naming it; nothing is applied.
        bad = {
            "type": "product_updated",
            "event_id": eid(),
            "data": [{"id": "125", "name": "ok"}, {"id": "126", "price": -1}],
        }
        refused = assert_refused(c.post("/api/sync", json=bad), 422)
        assert refused["error"].startswith("data[1]: price: must not be negative"), refused
        assert snapshot(c)[:3] == before[:3]

        # One object, as before.
        r = c.post(
            "/api/sync",
            json={
                "type": "product_updated",
                "productId": "123",
                "data": {"name": "Bolo3"},
                "event_id": eid(),
            },
        )
        assert r.status_code == 200 and r.json()["status"] == "applied", r.text
