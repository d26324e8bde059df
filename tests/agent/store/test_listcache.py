"""The whole-table reads kept serialised (agent/store/listcache.py) answer the same bytes as
the uncached reads (`Store.list`, `Store.since(table, None)` encoded whole): after POS
writes, patches, increments, deletes, undeclared fields, pulled and acknowledged rows, a
rolled-back write, a reset of the mirror, a bucket repair and many rows at once."""

from __future__ import annotations

import threading

import pytest

from agent.store.store import Store
from protocol import to_iso
from protocol.envelope import encode
from tests.agent.store.conftest import T0, ch, pulled, server_product
from webapi import ok_items

TABLES = ("products", "orders", "order_items", "supplies", "technical_sheets")


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)  # most writes share one change time: `since`'s ties are table order


@pytest.fixture
def local(tmp_path, clock):
    s = Store(tmp_path / "agent.db", clock=clock)
    yield s
    s.close()


def uncached(store: Store, table: str, **kw) -> bytes:
    order_id = kw.pop("order_id", None)
    rows = store.list(table, **kw)
    if order_id is not None:
        rows = [r for r in rows if r["order_id"] == order_id]
    more = {"total": len(rows)} if table == "orders" else {}
    return encode({"success": True, table: rows, **more})


def cached(store: Store, table: str, **kw) -> bytes:
    listing = store.listing(table, **kw)
    more = {"total": listing.count} if table == "orders" else {}
    return bytes(ok_items(table, listing.items_json, **more).body)


def assert_same(store: Store, tables=TABLES) -> None:
    for table in tables:
        assert cached(store, table) == uncached(store, table), table
        rows = store.since(table, None)
        mine = store.since_all(table)
        assert bytes(ok_items("data", mine.items_json, count=mine.count).body) == encode(
            {"success": True, "data": rows, "count": len(rows)}
        ), table


_events = iter(range(1, 10**9))


def write(store: Store, *changes: tuple[str, dict]) -> list[str]:
    """POS writes of one sale; their event ids."""
    items = [(f"ev-{next(_events)}", ch(table, record)) for table, record in changes]
    store.write(items, T0)
    return [event_id for event_id, _ in items]


def test_pos_writes_patches_increments_and_deletes(local, clock):
    assert_same(local)
    write(
        local,
        ("products", {"id": "p3", "name": "Pão de queijo", "price": "4.50", "stock_quantity": 5}),
        ("products", {"id": "p1", "name": 'Bolo\n"fubá"', "price": "12", "sabor": "milho"}),
        ("products", {"id": "P2", "name": "Café ☕", "price": 0.1, "x": {"b": [1, 2.5]}}),
    )
    assert_same(local)
    write(local, ("products", {"id": "p1", "price": "13.40"}))  # a patch: same place
    write(local, ("products", {"id": "p3", "_op": "increment", "stock_quantity": -2}))
    assert_same(local)
    clock.now += 1000
    write(local, ("products", {"id": "P2", "_op": "delete"}))
    assert_same(local)
    write(local, ("products", {"id": "P2", "name": "De volta"}), ("products", {"id": "a"}))
    assert_same(local)
    assert [p["id"] for p in local.list("products")] == ["P2", "a", "p1", "p3"]
    for row_id in ("ção", "Zeta", "p2", "p-1", "pé", "P10", "0"):  # each takes its place
        write(local, ("products", {"id": row_id, "name": row_id}))
        assert_same(local, ("products",))


def test_orders_by_range_and_items_by_order(local, clock):
    day = 86_400_000
    write(
        local,
        ("orders", {"id": "o1", "createdAt": to_iso(T0), "total": "10.00"}),
        ("orders", {"id": "o2", "createdAt": to_iso(T0 + day), "total": "5.5"}),
        ("orders", {"id": "o3", "createdAt": to_iso(T0 + 2 * day), "total": 1}),
        ("order_items", {"id": "i1", "order_id": "o1", "quantity": "1.5", "price": "2"}),
        ("order_items", {"id": "i2", "order_id": "o2", "quantity": 2, "price": "1.25"}),
        ("order_items", {"id": "i3", "order_id": "o1", "quantity": 1, "price": "3"}),
    )
    ranges = [
        {},
        {"created_from": T0},
        {"created_to": T0 + day},
        {"created_from": T0 + 1, "created_to": T0 + 3 * day},
        {"created_from": T0 + 9 * day},
    ]
    for _ in range(2):  # cold, then warm
        for kw in ranges:
            assert cached(local, "orders", **kw) == uncached(local, "orders", **kw), kw
        for order in ("o1", "o2", "o9"):
            assert cached(local, "order_items", order_id=order) == uncached(
                local, "order_items", order_id=order
            )
    write(local, ("orders", {"id": "o1", "createdAt": to_iso(T0 + 5 * day)}))  # moves first
    assert [o["id"] for o in local.list("orders")][0] == "o1"
    for kw in ranges:
        assert cached(local, "orders", **kw) == uncached(local, "orders", **kw), kw
    assert_same(local)


def test_pulled_and_acknowledged_rows_and_a_reset(local, clock):
    (event_id,) = write(local, ("products", {"id": "p1", "name": "Local"}))
    assert_same(local)
    local.apply_pulled(
        pulled(server_product("p2", T0, name="Do servidor"), server_product("p0", T0)), 2
    )
    assert_same(local)
    local.acknowledge(
        [{"eventId": event_id, "status": "applied", "seq": 3}],
        T0 + 10,
        changes=pulled(server_product("p1", T0 + 5, name="Local", price="2.50")),
        cursor=3,
    )
    assert_same(local)
    local.reset_mirror()  # every view is emptied, then rebuilt from the pending events
    assert_same(local)
    local.apply_pulled(pulled(server_product("p2", T0 + 9, name="De novo")), 4)
    assert_same(local)


def test_a_rolled_back_write_leaves_the_answer_as_it_was(local):
    write(local, ("products", {"id": "p1", "name": "Antes"}))
    before = cached(local, "products")
    put = local.views.put

    def put_then_fail(rows):
        put(rows)
        raise RuntimeError("power cut")

    local.views.put = put_then_fail
    with pytest.raises(RuntimeError):
        write(local, ("products", {"id": "p1", "name": "Nunca"}), ("products", {"id": "p9"}))
    local.views.put = put
    assert cached(local, "products") == before == uncached(local, "products")
    assert_same(local)


def test_many_rows_at_once_are_read_whole(local, clock):
    write(local, ("products", {"id": "first"}))
    assert_same(local, ("products",))
    local.apply_pulled(
        pulled(*(server_product(f"p{i:05d}", T0, price=f"{i}.5") for i in range(2500))), 2500
    )
    assert_same(local, ("products",))
    assert local.listing("products").count == 2501


def test_a_read_waits_for_an_open_write_only_once_it_wrote_view_rows(local):
    """No row marked: the read does not take the writer lock (the engine's transactions do
    not hold it up) and shows what is committed. A row marked by a transaction still open:
    the read waits for its commit, then shows it."""
    write(local, ("products", {"id": "p1", "name": "Antes"}))
    before = local.listing("products")
    put = local.views.put
    in_transaction, proceed = threading.Event(), threading.Event()

    def paused(after_put: bool):
        def writer(rows):
            if after_put:
                put(rows)
            in_transaction.set()
            assert proceed.wait(30)
            if not after_put:
                put(rows)

        return writer

    for after_put in (False, True):
        in_transaction.clear()
        proceed.clear()
        local.views.put = paused(after_put)
        name = f"Depois {after_put}"
        writer = threading.Thread(
            target=write, args=(local, ("products", {"id": "p1", "name": name}))
        )
        writer.start()
        assert in_transaction.wait(30)
        answers: list = []
        reader = threading.Thread(target=lambda out=answers: out.append(local.listing("products")))
        reader.start()
        reader.join(0.5)
        if after_put:
            assert reader.is_alive()  # waits for the commit
        else:
            assert not reader.is_alive() and answers == [before]  # the committed rows
        proceed.set()
        writer.join(30)
        reader.join(30)
        local.views.put = put
        assert name.encode() in local.listing("products").items_json
        if after_put:
            assert name.encode() in answers[0].items_json
        before = local.listing("products")
        assert_same(local, ("products",))
