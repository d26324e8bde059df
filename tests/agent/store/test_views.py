"""What the POS reads: its own writes at once, exact decimals stored as text."""

from __future__ import annotations

from decimal import Decimal

from protocol import dumps, loads, to_iso
from tests.agent.store.conftest import T0, ch


def test_reads_reflect_own_upserts_increments_and_deletes_at_once(store):
    store.write(
        [
            (
                "e1",
                ch("products", {"id": "p1", "name": "Pão", "price": "0.75", "stock_quantity": 10}),
            )
        ],
        T0,
    )
    store.write([("e2", ch("products", {"id": "p1", "price": "0.80"}))], T0 + 1)  # a patch
    p1 = store.get("products", "p1")
    assert (p1["name"], p1["price"], p1["stock_quantity"]) == ("Pão", Decimal("0.80"), 10)
    assert p1["updatedAt"] == to_iso(T0 + 1) and p1["createdAt"] == to_iso(T0)
    store.write(
        [("e3", ch("products", {"id": "p1", "_op": "increment", "stock_quantity": -3}))], T0 + 2
    )
    assert store.get("products", "p1")["stock_quantity"] == 7
    store.write([("e4", ch("products", {"id": "p2", "name": "Bolo"}))], T0 + 3)
    assert [p["id"] for p in store.list("products")] == ["p1", "p2"]
    store.write([("e5", ch("products", {"id": "p1", "_op": "delete"}))], T0 + 4)
    assert store.get("products", "p1") is None
    assert [p["id"] for p in store.list("products")] == ["p2"]
    assert store.count("products") == 1
    # Orders newest first, filtered by creation time.
    for i in range(3):
        store.write([(f"o{i}", ch("orders", {"id": f"o{i}", "createdAt": T0 + i * 1000}))], T0 + 10)
    assert [o["id"] for o in store.list("orders")] == ["o2", "o1", "o0"]
    assert [o["id"] for o in store.list("orders", created_from=T0 + 500, created_to=T0 + 1500)] == [
        "o1"
    ]


def test_decimals_are_exact(store):
    store.write(
        [("s", ch("supplies", {"id": "s1", "name": "Açúcar", "stock": 0, "costPerUnit": "0.1"}))],
        T0,
    )
    for i in range(3):
        store.write(
            [(f"i{i}", ch("supplies", {"id": "s1", "_op": "increment", "stock": 0.1}))], T0 + i + 1
        )
    s1 = store.get("supplies", "s1")
    assert (
        s1["stock"] == Decimal("0.3") and str(s1["stock"]) == "0.300"
    )  # never 0.30000000000000004
    assert s1["costPerUnit"] == Decimal("0.1000")
    big = "9999999999999.99"  # 15 significant digits: the most a JSON number keeps exactly
    store.write([("o", ch("orders", {"id": "o1", "total": big}))], T0)
    assert store.get("orders", "o1")["total"] == Decimal(big)
    # Stored as text, not as SQLite's float-ish NUMERIC.
    raw = store.db.execute_sql("SELECT total, typeof(total) FROM orders WHERE id = 'o1'").fetchone()
    assert raw == (big, "text")
    # The pushed payload round-trips through JSON to the same exact value.
    [event] = [e for e in store.pending_events() if e.event_id == "o"]
    assert loads(dumps(event.wire()))["record"]["total"] == Decimal(big)
