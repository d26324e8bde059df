"""The agent's local store on real SQLite files: local writes with their outbox events,
acknowledgements, pulled changes over pending edits (invariant 9), repair and summaries."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from agent.store import migrations
from agent.store.store import DEAD, PENDING, SENT, Store
from protocol import TABLES, ProtocolError, bucket_of, dumps, loads, parse_change, to_iso
from protocol.messages import PushItem

T0 = 1_750_000_000_000  # a fixed instant: the store never reads the clock itself


def ch(table: str, record: dict):
    return parse_change(TABLES[table], record)


def server_product(row_id: str, updated_at: int, **fields) -> dict:
    """A product as the server sends it in a pull (every field, wire form)."""
    record = {
        "id": row_id,
        "name": None,
        "description": None,
        "price": None,
        "category": None,
        "imageUrlId": None,
        "stock_quantity": 0,
        "createdAt": to_iso(T0),
        "updatedAt": to_iso(updated_at),
    }
    record.update(fields)
    return record


def pulled(*records: dict, table: str = "products") -> list[dict]:
    return [{"table": table, "seq": i + 1, "record": r} for i, r in enumerate(records)]


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "agent.db")
    yield s
    s.close()


# -- local writes ---------------------------------------------------------------------------


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


# -- the outbox --------------------------------------------------------------------------------


def test_due_events_in_order_and_oldest_not_due_means_nothing(store):
    for i in range(3):
        store.write([(f"e{i}", ch("products", {"id": f"p{i}", "name": str(i)}))], T0 + i)
    assert [e.event_id for e in store.due_events(T0)] == ["e0", "e1", "e2"]
    assert [e.event_id for e in store.due_events(T0, limit=2)] == ["e0", "e1"]
    store.record_failure(["e0", "e1"], "servidor inacessível", next_attempt_at=T0 + 1000)
    # The oldest is backing off: nothing goes, so a later edit never overtakes an earlier one.
    assert store.due_events(T0 + 999) == []
    due = store.due_events(T0 + 1000)
    assert [e.event_id for e in due] == ["e0", "e1", "e2"]
    assert [(e.attempts, e.last_error) for e in due[:2]] == [(1, "servidor inacessível")] * 2
    assert due[2].attempts == 0
    assert store.oldest_pending_at() == T0


def test_due_events_never_split_an_atomic_group(store):
    store.write([("a", ch("products", {"id": "pa", "name": "a"}))], T0)
    sale = [(f"g{i}", ch("order_items", {"id": f"i{i}", "order_id": "o1"})) for i in range(4)]
    store.write(sale, T0 + 1, group_id="sale-1")
    store.write([("z", ch("products", {"id": "pz", "name": "z"}))], T0 + 2)

    for limit in (1, 2, 3, 4):  # the page would end inside the sale: it stops before it
        assert [e.event_id for e in store.due_events(T0 + 5, limit=limit)] == ["a"]
    assert [e.event_id for e in store.due_events(T0 + 5, limit=5)] == ["a", "g0", "g1", "g2", "g3"]

    store.acknowledge([{"eventId": "a", "status": "applied", "seq": 1}], T0 + 5)
    for limit in (1, 2, 3):  # a sale bigger than a page goes alone, whole
        assert [e.event_id for e in store.due_events(T0 + 5, limit=limit)] == [
            "g0",
            "g1",
            "g2",
            "g3",
        ]
    assert [e.event_id for e in store.due_events(T0 + 5, limit=4)] == ["g0", "g1", "g2", "g3"]
    assert [e.event_id for e in store.due_events(T0 + 5, limit=5)] == ["g0", "g1", "g2", "g3", "z"]


# -- acknowledgements ----------------------------------------------------------------------


def test_applied_keeps_the_local_view_until_the_server_row_arrives(store):
    store.write([("e1", ch("products", {"id": "p1", "name": "Pão", "stock_quantity": 5}))], T0)
    counts = store.acknowledge([{"eventId": "e1", "status": "applied", "seq": 7}], T0 + 100)
    assert counts == {"applied": 1, "stale": 0, "rejected": 0}
    assert store.pending_count() == 0
    assert store.get("products", "p1")["name"] == "Pão"  # no flicker back to "nothing"
    server = server_product("p1", T0 + 3, name="Pão", stock_quantity=5, createdAt=to_iso(T0 + 3))
    store.apply_pulled([{"table": "products", "seq": 7, "record": server}], 7)
    assert store.get("products", "p1") == server
    assert store.cursor == 7


def test_applied_with_its_row_in_the_same_reply(store):
    store.write([("e1", ch("products", {"id": "p1", "name": "Pão"}))], T0)
    server = server_product("p1", T0 + 2, name="Pão")
    store.acknowledge(
        [{"eventId": "e1", "status": "applied", "seq": 3}],
        T0 + 100,
        changes=[{"table": "products", "seq": 3, "record": server}],
        cursor=3,
    )
    assert store.get("products", "p1")["updatedAt"] == to_iso(T0 + 2)
    assert store.cursor == 3


def test_duplicate_acknowledged_after_a_pull_that_carried_its_effect(store):
    """The push reached the server but its reply was lost; a pull then brought the row with
    the increment applied, and the re-push is answered 'duplicate'. The increment must count
    once: the view is rebuilt from the server's row, not left at shadow + event."""
    store.apply_pulled(pulled(server_product("p1", T0, stock_quantity=10)), 1)
    store.write(
        [("inc", ch("products", {"id": "p1", "_op": "increment", "stock_quantity": -2}))], T0 + 1
    )
    assert store.get("products", "p1")["stock_quantity"] == 8
    store.apply_pulled(
        [{"table": "products", "seq": 2, "record": server_product("p1", T0 + 1, stock_quantity=8)}],
        2,
    )
    store.acknowledge(
        [{"eventId": "inc", "status": "applied", "seq": 2, "duplicate": True}],
        T0 + 5,
        changes=[],
        cursor=2,
    )
    assert store.get("products", "p1")["stock_quantity"] == 8


def test_skipped_stale_rebuilds_from_the_server_version(store):
    store.apply_pulled(pulled(server_product("p1", T0 + 50, name="Servidor")), 1)
    store.write(
        [("e1", ch("products", {"id": "p1", "name": "Meu", "updatedAt": T0 + 10}))], T0 + 60
    )
    assert store.get("products", "p1")["name"] == "Meu"
    newer = server_product("p1", T0 + 80, name="Outro PDV")
    counts = store.acknowledge(
        [{"eventId": "e1", "status": "skipped_stale", "resolution": "skipped_stale"}],
        T0 + 100,
        changes=[{"table": "products", "seq": 2, "record": newer}],
        cursor=2,
    )
    assert counts["stale"] == 1
    assert store.get("products", "p1")["name"] == "Outro PDV"
    assert store.pending_count() == 0 and store.dead_letters() == []


def test_rejected_becomes_a_dead_letter_and_its_effect_leaves_the_view(store):
    store.apply_pulled(pulled(server_product("p1", T0, stock_quantity=10)), 1)
    store.write(
        [("bad", ch("products", {"id": "p1", "_op": "increment", "stock_quantity": -3}))], T0 + 1
    )
    store.write([("next", ch("products", {"id": "p2", "name": "Bolo"}))], T0 + 2)
    assert store.get("products", "p1")["stock_quantity"] == 7
    counts = store.acknowledge(
        [
            {
                "eventId": "bad",
                "status": "rejected",
                "reason": "unknown_record",
                "error": "products/p1 does not exist",
            }
        ],
        T0 + 3,
    )
    assert counts["rejected"] == 1
    assert store.get("products", "p1")["stock_quantity"] == 10
    [dead] = store.dead_letters()
    assert (dead.event_id, dead.state, dead.last_error) == (
        "bad",
        DEAD,
        "products/p1 does not exist",
    )
    # It never blocks the events behind it.
    assert [e.event_id for e in store.due_events(T0 + 3)] == ["next"]
    assert store.pending_count() == 1

    # Retry: back in line at its original place, and its effect shows again.
    assert store.retry_dead("bad") is True
    assert [e.event_id for e in store.due_events(T0 + 3)] == ["bad", "next"]
    assert store.get("products", "p1")["stock_quantity"] == 7
    assert store.retry_dead("bad") is False  # no longer dead

    store.acknowledge([{"eventId": "bad", "status": "rejected", "error": "still wrong"}], T0 + 4)
    assert store.discard_dead("bad") is True
    assert store.dead_letters() == []
    assert store.get("products", "p1")["stock_quantity"] == 10
    assert store.discard_dead("bad") is False
    assert store.retry_dead("unknown") is False


def test_acknowledge_ignores_unknown_and_already_done_events(store):
    store.write([("e1", ch("products", {"id": "p1", "name": "A"}))], T0)
    store.acknowledge([{"eventId": "e1", "status": "applied", "seq": 1}], T0 + 1)
    counts = store.acknowledge(
        [{"eventId": "e1", "status": "rejected"}, {"eventId": "nope", "status": "applied"}], T0 + 2
    )
    assert counts == {"applied": 0, "stale": 0, "rejected": 0}
    assert store.dead_letters() == []


# -- pulled changes (invariant 9) --------------------------------------------------------------


def test_pull_never_clobbers_a_pending_edit_and_pending_increments_stay_on_top(store):
    store.apply_pulled(
        pulled(server_product("p1", T0, name="Pão", price="0.75", stock_quantity=10)), 1
    )
    store.write([("rename", ch("products", {"id": "p1", "name": "Pão francês"}))], T0 + 10)
    store.write(
        [("sale", ch("products", {"id": "p1", "_op": "increment", "stock_quantity": -2}))], T0 + 11
    )
    assert store.get("products", "p1")["stock_quantity"] == 8

    # Another PDV renamed it, repriced it and received stock; the server sends that version.
    other = server_product("p1", T0 + 20, name="Pão integral", price="0.90", stock_quantity=15)
    store.apply_pulled([{"table": "products", "seq": 2, "record": other}], 2)
    view = store.get("products", "p1")
    assert view["name"] == "Pão francês"  # the pending rename is not clobbered
    assert view["price"] == Decimal("0.90")  # a field this machine did not edit follows the server
    assert view["stock_quantity"] == 13  # server 15, pending -2

    # The server says 10 again: still the pending decrement on top.
    store.apply_pulled(
        [{"table": "products", "seq": 3, "record": {**other, "stock_quantity": 10}}], 3
    )
    assert store.get("products", "p1")["stock_quantity"] == 8

    # Once acknowledged and pulled, the view is exactly the server's row.
    final = server_product("p1", T0 + 30, name="Pão francês", price="0.90", stock_quantity=8)
    store.acknowledge(
        [
            {"eventId": "rename", "status": "applied", "seq": 4},
            {"eventId": "sale", "status": "applied", "seq": 5},
        ],
        T0 + 40,
        changes=[{"table": "products", "seq": 5, "record": final}],
        cursor=5,
    )
    assert store.get("products", "p1") == {**final, "price": Decimal("0.90")}


def test_tombstones_from_pulls_remove_rows(store):
    store.apply_pulled(
        pulled(server_product("p1", T0, name="A"), server_product("p2", T0, name="B")), 2
    )
    assert store.count("products") == 2
    store.apply_pulled(
        [
            {
                "table": "products",
                "seq": 3,
                "record": {"id": "p1", "_deleted": True, "updatedAt": to_iso(T0 + 5)},
            }
        ],
        3,
    )
    assert store.get("products", "p1") is None
    assert [p["id"] for p in store.list("products")] == ["p2"]
    assert store.summary()["products"]["count"] == 1
    assert store.cursor == 3


def test_a_page_from_a_newer_server_with_an_unknown_table_changes_nothing(store):
    page = [
        {"table": "products", "seq": 1, "record": server_product("p1", T0)},
        {"table": "coupons", "seq": 2, "record": {"id": "c1", "updatedAt": to_iso(T0)}},
    ]
    with pytest.raises(KeyError):
        store.apply_pulled(page, 2)
    assert store.get("products", "p1") is None and store.cursor == 0


def test_reset_mirror_keeps_pending_events(store):
    store.apply_pulled(
        pulled(
            server_product("p1", T0, name="A", stock_quantity=4), server_product("p2", T0, name="B")
        ),
        2,
    )
    store.write([("e1", ch("products", {"id": "p3", "name": "Novo"}))], T0 + 1)
    store.write(
        [("e2", ch("products", {"id": "p1", "_op": "increment", "stock_quantity": 1}))], T0 + 2
    )
    store.reset_mirror()
    assert store.cursor == 0
    assert store.get("products", "p2") is None
    assert store.get("products", "p3")["name"] == "Novo"
    assert [e.event_id for e in store.pending_events()] == ["e1", "e2"]
    # The next pull rebuilds the rest, still with the pending increment on top.
    store.apply_pulled(
        pulled(
            server_product("p1", T0, name="A", stock_quantity=4), server_product("p2", T0, name="B")
        ),
        2,
    )
    assert store.get("products", "p1")["stock_quantity"] == 5
    assert store.get("products", "p2")["name"] == "B"


# -- repair -------------------------------------------------------------------------------------


def _ids_in_distinct_buckets(n: int, prefix: str = "p") -> list[str]:
    ids, seen, i = [], set(), 0
    while len(ids) < n:
        candidate = f"{prefix}{i}"
        if bucket_of(candidate) not in seen:
            seen.add(bucket_of(candidate))
            ids.append(candidate)
        i += 1
    return ids


def test_replace_buckets_fixes_exactly_the_planted_rows(store):
    ids = _ids_in_distinct_buckets(30)
    server_rows = {
        i: server_product(i, T0 + n, name=f"produto {n}", stock_quantity=n)
        for n, i in enumerate(ids)
    }
    store.apply_pulled(pulled(*server_rows.values()), 30)
    good = store.summary()
    changed, dropped, untouched_plant = ids[3], ids[7], ids[11]
    ghost = next(
        f"x{i}" for i in range(10_000) if bucket_of(f"x{i}") not in {bucket_of(j) for j in ids}
    )
    pending_row = ids[20]
    store.write([("keep", ch("products", {"id": pending_row, "name": "edição local"}))], T0 + 100)
    # Plant a divergence straight into the view table, as a bug or a crash might.
    P = store.m.views["products"]
    P.update(name="corrompido").where(P.id == changed).execute()
    P.delete().where(P.id == dropped).execute()
    P.insert(id=ghost, updated_at=T0, name="fantasma", stock_quantity=1).execute()
    P.update(stock_quantity=999).where(
        P.id == untouched_plant
    ).execute()  # outside the repaired buckets

    buckets = [bucket_of(i) for i in (changed, dropped, ghost, pending_row)]
    rows = [
        server_rows[i] for i in (changed, dropped, pending_row)
    ]  # the server's rows of those buckets
    report = store.replace_buckets("products", buckets, rows)

    assert report == {
        "table": "products",
        "buckets": sorted(buckets),
        "fixed": sorted([changed, dropped]),
        "removed": [ghost],
    }
    assert store.get("products", changed)["name"] == f"produto {ids.index(changed)}"
    assert store.get("products", dropped) is not None
    assert store.get("products", ghost) is None
    assert store.get("products", pending_row)["name"] == "edição local"  # pending edits are kept
    assert store.get("products", untouched_plant)["stock_quantity"] == 999  # only those buckets
    P.update(stock_quantity=ids.index(untouched_plant)).where(P.id == untouched_plant).execute()
    store.acknowledge([{"eventId": "keep", "status": "skipped_stale"}], T0 + 200)
    assert store.summary() == good


# -- summaries as the server computes them -------------------------------------------------


@pytest.fixture
def service(tmp_path):
    from server.db import bind_models, connect_database
    from server.migrations import migrate
    from server.service import SyncService

    db, _ = connect_database(f"sqlite:///{tmp_path / 'server.db'}", tmp_path)
    migrate(db)
    try:
        yield SyncService(bind_models(db), clock=lambda: T0 + 1_000_000)
    finally:
        db.close_all()


def test_summary_equals_the_servers_for_the_same_rows(store, service):
    records = [
        (
            "products",
            {
                "id": "p1",
                "name": "Pão de queijo",
                "price": "0.5",
                "stock_quantity": 40,
                "updatedAt": T0 + 1,
            },
        ),
        (
            "products",
            {
                "id": "p2",
                "name": "Café ☕",
                "price": "4.99",
                "category": "bebidas",
                "updatedAt": T0 + 2,
            },
        ),
        ("products", {"id": "p3", "name": "apagado", "updatedAt": T0 + 3}),
        ("products", {"id": "p3", "_op": "delete", "updatedAt": T0 + 4}),
        ("products", {"id": "p1", "_op": "increment", "stock_quantity": -3, "updatedAt": T0 + 5}),
        (
            "orders",
            {
                "id": "o1",
                "customerName": "Ana",
                "total": "12.30",
                "createdAt": T0,
                "updatedAt": T0 + 6,
            },
        ),
        (
            "order_items",
            {
                "id": "i1",
                "order_id": "o1",
                "product_id": "p1",
                "quantity": "1.250",
                "price": "0.5",
                "updatedAt": T0 + 7,
            },
        ),
        (
            "supplies",
            {
                "id": "s1",
                "name": "Farinha",
                "stock": "25.125",
                "unit": "kg",
                "costPerUnit": "3.1415",
                "updatedAt": T0 + 8,
            },
        ),
        ("supplies", {"id": "s1", "_op": "increment", "stock": "-0.125", "updatedAt": T0 + 9}),
    ]
    items = [
        PushItem(f"e{n}", ch(t, r), record_id=r["id"], table=t) for n, (t, r) in enumerate(records)
    ]
    results, head = service.push("server-side", items)
    assert all(r["status"] == "applied" for r in results)
    page = service.changes(0, 5000)
    assert not page["hasMore"]
    store.apply_pulled(page["changes"], page["cursor"])

    server_summary, _, stable = service.summary()
    assert stable
    local = store.summary()
    for entry in server_summary:
        assert local[entry["table"]] == {
            k: entry[k] for k in ("count", "latestUpdatedAt", "checksum")
        }, entry["table"]
    assert local["products"]["count"] == 2  # the tombstone is not a live row
    for name in TABLES:
        assert store.bucket_summary(name) == service.buckets(name)["buckets"]
    assert store.get("supplies", "s1")["stock"] == Decimal("25.000")


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


# -- migrations -----------------------------------------------------------------------------------


def _versions(path: Path) -> list[int]:
    con = sqlite3.connect(str(path))
    try:
        return [v for (v,) in con.execute("SELECT version FROM schema_version ORDER BY version")]
    finally:
        con.close()


def test_fresh_file_migrates_to_the_latest_version_and_reopening_does_not_migrate(tmp_path):
    path = tmp_path / "agent.db"
    Store(path).close()
    assert _versions(path) == [1, 2] == list(range(1, migrations.LATEST + 1))
    s = Store(path)
    try:
        assert migrations.migrate(s.db) == []
    finally:
        s.close()
    assert _versions(path) == [1, 2]
    assert list(tmp_path.glob("*.bak")) == []  # nothing to copy when nothing migrates


def test_a_copy_is_taken_before_a_future_migration(tmp_path, monkeypatch):
    path = tmp_path / "agent.db"
    s = Store(path)
    s.write([("e1", ch("products", {"id": "p1", "name": "antes"}))], T0)
    s.close()

    copy = migrations._copy_before(path, 2)
    assert copy.name.startswith("agent.db.before-v3-") and copy.name.endswith(".bak")
    con = sqlite3.connect(str(copy))
    try:
        assert con.execute("SELECT name FROM products WHERE id = 'p1'").fetchone() == ("antes",)
    finally:
        con.close()
    copy.unlink()

    def m0003(db):
        db.execute_sql("ALTER TABLE products ADD COLUMN barcode TEXT")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, (3, "barcode", m0003)])
    monkeypatch.setattr(migrations, "LATEST", 3)
    s = Store(path)
    s.close()
    assert _versions(path) == [1, 2, 3]
    [backup] = tmp_path.glob("agent.db.before-v3-*.bak")
    assert _versions(backup) == [1, 2]
    con = sqlite3.connect(str(backup))
    try:
        assert con.execute("SELECT name FROM products WHERE id = 'p1'").fetchone() == ("antes",)
    finally:
        con.close()


def test_a_failing_migration_changes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "agent.db"
    Store(path).close()

    def broken(db):
        db.execute_sql("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("boom")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, (3, "broken", broken)])
    monkeypatch.setattr(migrations, "LATEST", 3)
    with pytest.raises(RuntimeError, match="boom"):
        Store(path)
    assert _versions(path) == [1, 2]
    con = sqlite3.connect(str(path))
    try:
        assert (
            con.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchone()
            is None
        )
    finally:
        con.close()


def test_a_store_newer_than_the_agent_is_refused(tmp_path):
    path = tmp_path / "agent.db"
    Store(path).close()
    con = sqlite3.connect(str(path))
    with con:
        con.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (99, 'future', 0)"
        )
    con.close()
    with pytest.raises(RuntimeError, match="newer"):
        Store(path)


def test_replace_buckets_reports_only_what_really_changed(store):
    ids = _ids_in_distinct_buckets(3)
    store.apply_pulled(pulled(server_product(ids[0], T0, name="A")), 1)
    # A row created here and not pushed yet, in a repaired bucket: it stays, and is
    # reported neither as fixed nor as removed.
    store.write([("new", ch("products", {"id": ids[1], "name": "local"}))], T0 + 1)
    report = store.replace_buckets(
        "products", [bucket_of(i) for i in ids], [server_product(ids[0], T0, name="A")]
    )
    assert (report["fixed"], report["removed"]) == ([], [])
    assert store.get("products", ids[1])["name"] == "local"
    assert store.get("products", ids[0])["name"] == "A"


def test_reconcile_log_keeps_the_local_history(store):
    store.log_reconcile({"created_at": T0, "status": "consistent", "strategy": "none"})
    store.log_reconcile(
        {
            "created_at": T0 + 1,
            "status": "repaired",
            "strategy": "refresh_mismatched",
            "mismatches": [{"table": "products", "reason": "checksum_mismatch"}],
            "repair": {"tables": [{"table": "products", "fixed": ["p1"], "removed": []}]},
            "server_log_id": 7,
        }
    )
    store.log_reconcile(
        {
            "created_at": T0 + 2,
            "status": "error",
            "strategy": "none",
            "error": "servidor inacessível",
        }
    )
    history = store.reconcile_history()
    assert [(h["status"], h["is_consistent"]) for h in history] == [
        ("error", False),
        ("repaired", True),
        ("consistent", True),
    ]
    assert history[1]["mismatches"] == [{"table": "products", "reason": "checksum_mismatch"}]
    assert history[1]["repair"]["tables"][0]["fixed"] == ["p1"] and history[1]["server_log_id"] == 7
    assert history[0]["error"] == "servidor inacessível" and history[2]["created_at"] == to_iso(T0)
    assert len(store.reconcile_history(limit=1)) == 1
