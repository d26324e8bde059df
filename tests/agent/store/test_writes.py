"""The POS's writes on a real SQLite file: row and outbox event committed together, a
repeated eventId, atomic and non-atomic batches, increments the server would refuse."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agent.store.store import PENDING, SENT, Store
from protocol import ProtocolError, loads, to_iso
from tests.agent.store.conftest import T0, ch


def test_write_commits_view_row_and_outbox_event_together(tmp_path):
    path = tmp_path / "agent.db"
    first = Store(path)
    try:
        result = first.write(
            [("e1", ch("products", {"id": "p1", "name": "Pão", "price": "0.75"}))], T0
        )
        assert result == [{"eventId": "e1", "id": "p1", "table": "products", "status": "accepted"}]
        # Durable against power loss: WAL with synchronous=FULL.
        assert first.db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert first.db.execute_sql("PRAGMA synchronous").fetchone()[0] == 2
        second = Store(path)  # a new object on the same file: what a restarted agent sees
        try:
            assert second.get("products", "p1")["name"] == "Pão"
            events = second.pending_events()
            assert [(e.event_id, e.table, e.record_id, e.op, e.state) for e in events] == [
                ("e1", "products", "p1", "upsert", PENDING)
            ]
            assert events[0].payload == {
                "id": "p1",
                "name": "Pão",
                "price": Decimal("0.75"),
                "updatedAt": to_iso(T0),
            }
        finally:
            second.close()
    finally:
        first.close()


def test_repeated_event_id_is_duplicate_and_changes_nothing(store):
    store.write([("e1", ch("products", {"id": "p1", "name": "A"}))], T0)
    again = store.write([("e1", ch("products", {"id": "p1", "name": "B"}))], T0 + 10)
    assert again[0]["status"] == "duplicate" and again[0]["state"] == PENDING
    # The same id twice in one call: the second is the duplicate.
    twice = store.write(
        [
            ("e2", ch("products", {"id": "p2", "name": "X"})),
            ("e2", ch("products", {"id": "p2", "name": "Y"})),
        ],
        T0 + 20,
    )
    assert [r["status"] for r in twice] == ["accepted", "duplicate"]
    assert store.get("products", "p1")["name"] == "A"
    assert store.get("products", "p2")["name"] == "X"
    assert store.pending_count() == 2
    # Still a duplicate after the server acknowledged it (a POS retrying an old request).
    store.acknowledge([{"eventId": "e1", "status": "applied", "seq": 1}], T0 + 30)
    late = store.write([("e1", ch("products", {"id": "p1", "name": "C"}))], T0 + 40)
    assert late[0]["status"] == "duplicate" and late[0]["state"] == SENT
    assert store.get("products", "p1")["name"] == "A"


def test_atomic_write_with_increment_of_unknown_record_stores_nothing(store):
    items = [
        ("e1", ch("orders", {"id": "o1", "total": "10.00"})),
        ("e2", ch("products", {"id": "ghost", "_op": "increment", "stock_quantity": -1})),
    ]
    with pytest.raises(ProtocolError) as info:
        store.write(items, T0, group_id="sale-1")
    assert info.value.code == "unknown_record"
    assert store.get("orders", "o1") is None
    assert store.pending_count() == 0 and store.pending_events() == []


@pytest.mark.parametrize(
    ("table", "field", "start", "delta"),
    [
        ("products", "stock_quantity", 2**53 - 5, 10),
        ("products", "stock_quantity", -(2**53) + 5, -10),
        ("supplies", "stock", "999999999999.999", "2"),
    ],
)
def test_an_increment_the_server_would_refuse_is_refused_here_first(
    store, table, field, start, delta
):
    """Past what clients read back (2^53, 15 digits): the POS gets the error at once."""
    store.write([("e0", ch(table, {"id": "x", "name": "X", field: start}))], T0)
    with pytest.raises(ProtocolError) as info:
        store.write([("e1", ch(table, {"id": "x", "_op": "increment", field: delta}))], T0 + 1)
    assert (
        info.value.code == "out_of_range"
        and info.value.status == 422
        and field in info.value.message
    )
    [result] = store.write(
        [("e2", ch(table, {"id": "x", "_op": "increment", field: delta}))], T0 + 2, atomic=False
    )
    assert result["status"] == "rejected" and result["reason"] == "out_of_range"
    assert str(store.get(table, "x")[field]) == str(start) and store.pending_count() == 1


def test_non_atomic_write_rejects_only_that_item(store):
    items = [
        ("e1", ch("orders", {"id": "o1", "total": "10.00"})),
        ("e2", ch("products", {"id": "ghost", "_op": "increment", "stock_quantity": -1})),
        ("e3", ch("orders", {"id": "o2", "total": "5.00"})),
    ]
    results = store.write(items, T0, atomic=False)
    assert [r["status"] for r in results] == ["accepted", "rejected", "accepted"]
    assert results[1]["reason"] == "unknown_record"
    assert store.get("orders", "o1")["total"] == Decimal("10.00")
    assert store.get("orders", "o2")["total"] == Decimal("5.00")
    assert [e.event_id for e in store.pending_events()] == ["e1", "e3"]


def test_an_event_goes_on_the_wire_as_stored(store):
    """A push sends the stored record text as it is: the same JSON value as `wire()`,
    exact decimals, awkward text and a sale's events included."""
    record = {"id": 'p"1\\', "name": 'Pão \u2028 "x" {}', "price": "1234567890123.45"}
    sale = [
        ('e-ó"1', ch("products", record)),
        ("e2", ch("orders", {"id": "o1", "total": "0.10", "status": "open"})),
    ]
    store.write(sale, T0, group_id="g1", atomic=True)
    events = store.due_events(T0, 10)
    assert len(events) == 2
    for event in events:
        text = event.wire_json()
        assert loads(text) == event.wire()
        assert text.endswith(f',"record":{event.payload_json}}}')
    assert loads(events[0].wire_json())["record"]["price"] == Decimal("1234567890123.45")
