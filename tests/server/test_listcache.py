"""The list reads kept serialised (server/listcache.py) answer the same bytes as the uncached
path (`list_live`, `fetch_since(table, None)` encoded whole), on both backends: after
writes, patches, deletes, increments, undeclared fields, a second server process's writes,
a purge of tombstones the cache had not read, a commit between its two queries, and a restore.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from protocol.envelope import encode
from server import listcache
from server.backup import backup, restore
from server.db import bind_models, connect_database
from server.service import SyncService
from server.settings import Settings
from tests.server.conftest import new_event_id, pull_all, push, push_batch, push_one
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
    for row_id in ("ção", "Zeta", "p2", "p-1", "p\u00e9", "P10", "0"):  # each takes its place
        push_one(service, "products", {"id": row_id, "name": row_id}, machine=None)
        assert_same(service, tables=("products",))


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
    """Where the database's order of ids is not bytes (a PostgreSQL collation other than
    C), a row joining makes the cache ask for the order; a commit may land in between."""
    monkeypatch.setattr(listcache, "_ids_as_bytes", lambda ctx: False)
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


# -- over HTTP: two real server processes on one database ------------------------------------


def test_two_server_processes_answer_the_uncached_bytes(server_factory, database_url):
    """Writes through either process; each one's list reads (kept serialised in that
    process) are byte for byte what the uncached path reads from the database now."""
    a, b = server_factory(database_url=database_url), server_factory(database_url=database_url)

    def batch(url: str, *events: tuple[str, dict]) -> None:
        body = {
            "machineId": "caixa-http",
            "events": [{"eventId": new_event_id(), "table": t, "record": r} for t, r in events],
        }
        reply = httpx.post(f"{url}/api/sync/batch", json=body, timeout=30)
        assert reply.status_code == 200, reply.text

    def check(reader) -> None:
        for url in (a.url, b.url):
            for path, table, kw in (
                ("/api/products", "products", {}),
                ("/api/supplies", "supplies", {}),
                ("/api/technical_sheets", "technical_sheets", {}),
                ("/api/orders", "orders", {}),
                ("/api/orders?start_date=2026-01-02", "orders", {"created_from": 1767312000000}),
                ("/api/order_items?order_id=o1", "order_items", {"order_id": "o1"}),
            ):
                got = httpx.get(url + path, timeout=30)
                assert got.content == uncached(reader, table, **kw), (url, path)
                assert got.headers["content-type"] == "application/json"
            got = httpx.get(f"{url}/api/sync/products", timeout=30).content
            rows = reader.fetch_since("products", None)
            whole = encode({"success": True, "data": rows, "count": len(rows)})
            assert got.startswith(whole[:-1] + b',"timestamp":"'), url

    reader = service_factory_reader(database_url)
    try:
        batch(
            a.url,
            *(("products", {**p, "id": f"{p['id']}-{i}"}) for i in range(30) for p in PRODUCTS),
        )
        batch(
            a.url,
            ("orders", {"id": "o1", "createdAt": "2026-01-01T10:00:00Z", "total": "10.00"}),
            ("orders", {"id": "o2", "createdAt": "2026-01-03T10:00:00Z", "total": "5.5"}),
            ("order_items", {"id": "i1", "order_id": "o1", "quantity": "1.5", "price": "2"}),
            ("order_items", {"id": "i2", "order_id": "o2", "quantity": 2, "price": "1.25"}),
            ("supplies", {"id": "s1", "name": "Farinha", "stock": "2.500"}),
            ("technical_sheets", {"id": "t1"}),
        )
        check(reader)
        assert httpx.patch(f"{a.url}/api/products/p1-3", json={"price": "99.90"}).status_code == 200
        assert httpx.delete(f"{b.url}/api/products/p3-7").status_code == 200
        batch(b.url, ("products", {"id": "p3-8", "_op": "increment", "stock_quantity": -4}))
        batch(b.url, ("supplies", {"id": "s1", "_op": "increment", "stock": "-0.250"}))
        assert httpx.post(f"{a.url}/api/products", json={"id": "0-novo", "x": 1}).status_code == 200
        check(reader)
    finally:
        reader.db.close_all()


def service_factory_reader(database_url: str) -> SyncService:
    """The uncached path, in this process, on the servers' database."""
    db, _ = connect_database(database_url, Path("."))
    return SyncService(bind_models(db))
