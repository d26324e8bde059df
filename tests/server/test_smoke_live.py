"""The server starts for real on both backends and answers the seed's health and reconcile."""


def test_health_and_reconcile(live_server):
    with live_server.client() as c:
        r = c.get("/health")
        assert r.status_code == 200
        assert r.json()["status"] == "ok"
        r = c.get("/api/sync/reconcile")
        body = r.json()
        assert body["success"] is True
        assert {s["table"] for s in body["serverSummary"]} == {"products", "orders", "order_items", "supplies"}
    assert any("Database connected" in line for line in live_server.output)
