"""The list reads kept serialised (server/listcache.py) answer the same bytes as the uncached
path (`list_live`, `fetch_since(table, None)` encoded whole), on both backends: after
writes, patches, deletes, increments, undeclared fields, a second server process's writes,
a purge of tombstones the cache had not read, a commit between its two queries, and a restore.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol.envelope import encode
from server import listcache
from server.backup import backup, restore
from server.service import SyncService
from server.settings import Settings
from tests.server.conftest import pull_all, push, push_batch, push_one
from webapi import ok_items


def uncached(svc: SyncService, table: str, **kw) -> bytes:
    order_id = kw.pop("order_id", None)
    rows = svc.list_live(table, **kw)
    if order_id is not None:
        rows = [r for r in rows if r["order_id"] == order_id]
    more = {"total": len(rows)} if table == "orders" else {}
    return encode({"success": True, table: rows, **more})


def cached(svc: SyncService, table: str, **kw) -> bytes:
    listing = svc.live_listing(table, **kw)
    more = {"total": listing.count} if table == "orders" else {}
    return bytes(ok_items(table, listing.items_json, **more).body)


def assert_same(svc: SyncService, tables=("products", "orders", "order_items", "supplies")):
    """Every list read, cached, is byte for byte the uncached one; so is the seed's read."""
    for table in tables:
        assert cached(svc, table) == uncached(svc, table), table
        seq = svc.live_by_seq(table)
        whole = svc.fetch_since(table, None)
        assert bytes(ok_items("data", seq.items_json, count=seq.count).body) == encode(
            {"success": True, "data": whole, "count": len(whole)}
        ), table


PRODUCTS = [
    {"id": "p3", "name": "Pão de queijo", "price": "4.50", "stock_quantity": 10},
    {"id": "p1", "name": 'Bolo\n"fubá"', "price": "12", "category": "Bolos", "sabor": "milho"},
    {"id": "P2", "name": "Café ☕", "price": "0.10", "extra_json": {"b": [1, 2.5], "a": None}},
    {"id": "p10", "name": "Sonho", "price": 7.25, "description": None},
]


def test_list_reads_match_the_uncached_path_through_every_kind_of_change(service):
    assert_same(service)  # empty tables
    push(service, "products", *PRODUCTS, machine=None)
    assert_same(service)
    push_one(service, "products", {"id": "p1", "price": "13.40"}, machine=None)  # a patch
    push_one(service, "products", {"id": "p3", "_op": "increment", "stock_quantity": -3})
    assert_same(service)
    push_one(service, "products", {"id": "P2", "_op": "delete"}, machine=None)
    assert_same(service)
    push_one(service, "products", {"id": "P2", "name": "Café de novo"}, machine=None)  # back
    push_one(service, "products", {"id": "p0", "name": "Primeiro"}, machine=None)  # joins first
    assert_same(service)
    assert [p["id"] for p in service.list_live("products")][:2] == ["P2", "p0"]


def test_orders_by_day_range_and_items_by_order(service):
    day = 86_400_000
    push_batch(
        service,
        ("orders", {"id": "o1", "createdAt": "2026-01-01T10:00:00Z", "total": "10.00"}),
        ("orders", {"id": "o2", "createdAt": "2026-01-02T10:00:00Z", "total": "5.5"}),
        ("orders", {"id": "o3", "createdAt": "2026-01-03T23:59:59.999Z", "total": 1}),
        ("orders", {"id": "o4", "total": "2.00"}),  # no createdAt: in no range
        ("order_items", {"id": "i1", "order_id": "o1", "quantity": "1.5", "price": "2"}),
        ("order_items", {"id": "i2", "order_id": "o2", "quantity": 2, "price": "1.25"}),
        ("order_items", {"id": "i3", "order_id": "o1", "quantity": 1, "price": "3"}),
    )
    lo = 1767225600000  # 2026-01-01T00:00:00Z
    ranges = [
        {},
        {"created_from": lo},
        {"created_to": lo + 2 * day - 1},
        {"created_from": lo + day, "created_to": lo + 3 * day - 1},
        {"created_from": lo + 5 * day},
    ]
    for _ in range(2):  # cold, then warm
        for kw in ranges:
            assert cached(service, "orders", **kw) == uncached(service, "orders", **kw), kw
        for order in ("o1", "o2", "o9"):
            assert cached(service, "order_items", order_id=order) == uncached(
                service, "order_items", order_id=order
            )
    # An order whose createdAt moves changes its place in the list.
    push_one(service, "orders", {"id": "o1", "createdAt": "2026-01-04T00:00:00Z"}, machine=None)
    ids = [o["id"] for o in service.list_live("orders")]
    assert ids.index("o1") < ids.index("o3")
    for kw in ranges:
        assert cached(service, "orders", **kw) == uncached(service, "orders", **kw), kw
    assert_same(service)


def test_each_shop_has_its_own_rows(service):
    push(service, "products", *PRODUCTS[:2], machine=None)
    other = service.scoped("loja-b")
    push_one(other, "products", {"id": "b1", "name": "Outro"}, machine=None)
    assert_same(service)
    assert_same(other)
    assert [p["id"] for p in other.list_live("products")] == ["b1"]
    push_one(other, "products", {"id": "p1", "name": "Mesmo id, outra loja"}, machine=None)
    assert_same(service)
    assert_same(other)


def test_writes_of_another_server_process_are_seen(service_factory, database_url, service):
    """Two services on one database stand for two server processes: nothing tells this
    one's cache of the other's commits; the sequence numbers in the rows do."""
    other = service_factory(database_url)
    push(service, "products", *PRODUCTS, machine=None)
    assert_same(service)
    push_one(other, "products", {"id": "p1", "name": "Mudou lá"}, machine=None)
    push_one(other, "products", {"id": "p3", "_op": "delete"}, machine=None)
    push_one(other, "products", {"id": "novo", "name": "Criado lá"}, machine=None)
    assert_same(service)
    assert {p["id"] for p in service.list_live("products")} == {"p1", "P2", "p10", "novo"}
    assert cached(service, "products") == cached(other, "products")


def test_a_purge_of_tombstones_the_cache_never_read_is_seen(service):
    push(service, "products", *PRODUCTS, machine=None)
    assert_same(service)  # the cache holds p1 live
    push_one(service, "products", {"id": "p1", "_op": "delete"}, machine=None)
    _, head = pull_all(service, "products", machine="caixa-a")
    pull_all(service, "products", head, machine="caixa-a")  # every known machine is past it
    assert service.collect_garbage()["tombstones"] == 1  # the tombstone is gone unread
    assert_same(service)
    assert "p1" not in {p["id"] for p in service.list_live("products")}


def test_a_commit_between_the_delta_and_the_list_order_is_read_again(service, monkeypatch):
    push(service, "products", *PRODUCTS, machine=None)
    assert_same(service)
    original = listcache._apply_delta
    calls = []

    def delta_then_commit(ctx, table_name, entry):
        reorder = original(ctx, table_name, entry)
        if not calls:  # once: a commit lands after the delta, before the order is read
            calls.append(1)
            push_one(service, "products", {"id": "p3", "_op": "delete"}, machine=None)
            push_one(service, "products", {"id": "a-novo", "name": "Entre"}, machine=None)
        return reorder

    monkeypatch.setattr(listcache, "_apply_delta", delta_then_commit)
    push_one(service, "products", {"id": "p5", "name": "Junta-se"}, machine=None)
    assert_same(service, tables=("products",))
    assert calls
    assert [p["id"] for p in service.list_live("products")][:1] == ["P2"]
    assert "a-novo" in {p["id"] for p in service.list_live("products")}


def test_a_restore_to_older_rows_is_seen(database_url, tmp_path, service_factory):
    settings = Settings(database_url=database_url, data_dir=Path(tmp_path))
    svc = service_factory(database_url)
    push(svc, "products", *PRODUCTS[:2], machine=None)
    push_one(svc.scoped("b"), "products", {"id": "b1"}, machine=None)
    svc.db.close_all()
    file = backup(settings, Path(tmp_path) / ("copy.db" if database_url is None else "copy.sql"))

    push_one(svc, "products", {"id": "p1", "name": "Depois do backup"}, machine=None)
    push(svc, "products", *PRODUCTS[2:], machine=None)
    assert_same(svc)  # the cache holds rows newer than the backup's
    assert_same(svc.scoped("b"))
    svc.db.close_all()
    restore(settings, file, force=True)

    assert_same(svc)  # the same process, after the restore: the backup's rows
    assert_same(svc.scoped("b"))
    assert [p["id"] for p in svc.list_live("products")] == ["p1", "p3"]
    assert svc.list_live("products")[0]["name"] == PRODUCTS[1]["name"]


@pytest.mark.parametrize("table", ["technical_sheets"])
def test_every_declared_table_is_served(service, table):
    push_one(service, table, {"id": "t1"}, machine=None)
    assert_same(service, tables=(table,))
