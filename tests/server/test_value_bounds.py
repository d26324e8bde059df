"""Money and quantities against a real server: a negative price, total or cost, or a quantity
of zero or less, is bad input (a clear 4xx naming the field, nothing applied); negative stock
and negative increments (a sale, an oversold shelf) stay legal."""

from __future__ import annotations

from decimal import Decimal

from tests.server.test_bad_input import assert_refused, batch, eid, single, snapshot, table_push


def test_negative_money_and_quantities_are_refused_on_every_write_route(live_server):
    with live_server.client() as c:
        r = c.post(
            "/api/sync/products", json=table_push({"id": "pao", "name": "Pão", "price": "1.00"})
        )
        assert r.status_code == 200 and r.json()["conflicts"] == []
        before = snapshot(c)

        # The QA's sale: one atomic batch, refused whole, naming the first bad field.
        sale = batch(
            {
                "eventId": eid(),
                "table": "products",
                "record": {"id": "neg-p", "name": "neg", "price": -5},
            },
            {"eventId": eid(), "table": "orders", "record": {"id": "neg-o", "total": -100}},
            {
                "eventId": eid(),
                "table": "order_items",
                "record": {
                    "id": "neg-i",
                    "order_id": "neg-o",
                    "product_id": "neg-p",
                    "quantity": -3,
                    "price": -5,
                },
            },
            {
                "eventId": eid(),
                "table": "supplies",
                "record": {"id": "neg-s", "name": "s", "stock": -7, "costPerUnit": -1},
            },
        )
        body = assert_refused(c.post("/api/sync/batch", json=sale), 422)
        errors = {item["id"]: item["error"] for item in body["invalid"]}
        assert set(errors) == {"neg-p", "neg-o", "neg-i", "neg-s"}, body
        assert errors["neg-p"].startswith("price: must not be negative")
        assert errors["neg-o"].startswith("total: must not be negative")
        assert errors["neg-i"].startswith("quantity: must be greater than 0")
        assert errors["neg-s"].startswith("costPerUnit: must not be negative")  # stock -7 is fine

        cases = [
            ("products", {"id": "pao", "price": -5}, "price: must not be negative"),
            ("orders", {"id": "o1", "total": "-0.01"}, "total: must not be negative"),
            ("order_items", {"id": "i1", "quantity": -3}, "quantity: must be greater than 0"),
            ("order_items", {"id": "i1", "quantity": 0}, "quantity: must be greater than 0"),
            (
                "order_items",
                {"id": "i1", "quantity": 1, "price": -2},
                "price: must not be negative",
            ),
            ("supplies", {"id": "s1", "costPerUnit": -1}, "costPerUnit: must not be negative"),
        ]
        entity = {
            "products": "product",
            "orders": "order",
            "order_items": "order_item",
            "supplies": "supply",
        }
        for table, record, message in cases:
            # The seed's single event and the REST collections answer 422 naming the field...
            body = assert_refused(
                c.post("/api/sync", json=single(record, f"{entity[table]}_updated")), 422
            )
            assert message in body["error"], (table, body)
            body = assert_refused(c.post(f"/api/{table}", json=record), 422)
            assert message in body["error"], (table, body)
            # ...a table push refuses that event, with the same reason, and applies nothing.
            r = c.post(f"/api/sync/{table}", json=table_push(record))
            assert r.status_code == 200, r.text
            [conflict] = r.json()["conflicts"]
            assert conflict["resolution"] == "rejected" and conflict["reason"] == "invalid_value"
            assert message in conflict["error"], conflict
        assert snapshot(c)[:3] == before[:3]


def test_a_sale_with_negative_increments_and_oversold_stock_still_applies(live_server):
    with live_server.client() as c:
        r = c.post(
            "/api/sync/batch",
            json=batch(
                {
                    "eventId": eid(),
                    "table": "products",
                    "record": {"id": "bolo", "name": "Bolo", "price": "0", "stock_quantity": 1},
                },
                {
                    "eventId": eid(),
                    "table": "supplies",
                    "record": {
                        "id": "acucar",
                        "name": "Açúcar",
                        "stock": "-0.5",
                        "costPerUnit": "0",
                    },
                },
            ),
        )
        assert r.status_code == 200 and r.json()["conflicts"] == [], r.text
        r = c.post(
            "/api/sync/batch",
            json=batch(
                {"eventId": eid(), "table": "orders", "record": {"id": "v1", "total": "30.00"}},
                {
                    "eventId": eid(),
                    "table": "order_items",
                    "record": {
                        "id": "v1-1",
                        "order_id": "v1",
                        "product_id": "bolo",
                        "quantity": 3,
                        "price": "10.00",
                    },
                },
                {
                    "eventId": eid(),
                    "table": "products",
                    "record": {"id": "bolo", "_op": "increment", "stock_quantity": -3},
                },
                {
                    "eventId": eid(),
                    "table": "supplies",
                    "record": {"id": "acucar", "_op": "increment", "stock": "-0.250"},
                },
            ),
        )
        assert r.status_code == 200 and r.json()["conflicts"] == [], r.text
        products = {p["id"]: p for p in c.get("/api/products").json()["products"]}
        supplies = {s["id"]: s for s in c.get("/api/supplies").json()["supplies"]}
        assert products["bolo"]["stock_quantity"] == -2  # oversold by two
        assert Decimal(str(supplies["acucar"]["stock"])) == Decimal("-0.75")
