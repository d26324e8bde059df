"""The seed's HTTP API end to end: a real server process, real HTTP, both backends.

Field names in requests and responses are the contract (`seed/setup-sync-server.md`), so the
tests spell them out literally rather than importing them.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

TABLES = {"products", "orders", "order_items", "supplies", "technical_sheets"}


def eid() -> str:
    return str(uuid.uuid4())


def push(
    c: httpx.Client,
    table: str,
    *records: dict,
    machine: str = "caixa-1",
    cursor: int | None = None,
    event_ids: list[str] | None = None,
) -> dict:
    body: dict = {
        "machineId": machine,
        "localUpdates": [
            {"eventId": (event_ids[i] if event_ids else eid()), "record": r}
            for i, r in enumerate(records)
        ],
    }
    if cursor is not None:
        body["cursor"] = cursor
    r = c.post(f"/api/sync/{table}", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def pull_all(
    c: httpx.Client, table: str, since: int = 0, limit: int = 500
) -> tuple[list[dict], int]:
    """Every change of `table` after `since`, following the pages (bounded)."""
    out: list[dict] = []
    cursor = since
    for _ in range(1000):
        r = c.get(f"/api/sync/{table}", params={"since": cursor, "limit": limit})
        assert r.status_code == 200, r.text
        page = r.json()
        out += page["synced"]
        cursor = page["cursor"]
        if not page["hasMore"]:
            return out, cursor
    raise AssertionError("paging did not end")


def head(c: httpx.Client) -> int:
    return c.get("/api/sync/reconcile").json()["cursor"]


# -- POST /api/sync (the seed's single event) ---------------------------------------------


def test_single_event_seed_shape_and_idempotent_by_event_id(live_server):
    with live_server.client() as c:
        event = {
            "type": "product_created",
            "timestamp": 1707554400000,
            "data": {"id": "p-123", "name": "Pão de queijo", "price": "4.50", "stock_quantity": 10},
            "event_id": "b9c4a2e1-9f2d-4f6a-9a17-3a6f9f1f4c2b",
        }
        r = c.post("/api/sync", json=event)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["success"] is True
        assert isinstance(body["synced_at"], str) and body["synced_at"].endswith("Z")

        # A retry of the same event (even with other data) changes nothing.
        retry = {**event, "data": {**event["data"], "name": "outro nome"}}
        r = c.post("/api/sync", json=retry)
        assert r.status_code == 200 and r.json()["success"] is True
        changes, cursor = pull_all(c, "products")
        assert len(changes) == 1 and cursor == 1
        assert changes[0]["name"] == "Pão de queijo"
        assert changes[0]["price"] == 4.5 and changes[0]["stock_quantity"] == 10
        assert changes[0]["updatedAt"] == "2024-02-10T08:40:00.000Z"  # the event's timestamp

        # The seed's example: `productId` names the record when data has no id.
        r = c.post(
            "/api/sync",
            json={
                "type": "product_updated",
                "productId": "p-123",
                "data": {"price": 5},
                "event_id": eid(),
            },
        )
        assert r.status_code == 200, r.text
        r = c.post(
            "/api/sync",
            json={
                "type": "supply_created",
                "data": {
                    "id": "s-1",
                    "name": "Farinha",
                    "stock": "2.5",
                    "unit": "kg",
                    "costPerUnit": "3.1234",
                },
                "event_id": eid(),
            },
        )
        assert r.status_code == 200, r.text
        r = c.post(
            "/api/sync",
            json={"type": "product_deleted", "data": {"id": "p-123"}, "event_id": eid()},
        )
        assert r.status_code == 200, r.text
        changes, _ = pull_all(c, "products", since=cursor)
        assert changes[-1]["id"] == "p-123" and changes[-1]["_deleted"] is True
        assert set(changes[-1]) == {"id", "_deleted", "updatedAt"}
        supplies = c.get("/api/supplies").json()["supplies"]
        # Every field of the table, the ones the event did not carry at their defaults.
        assert supplies == [
            {
                "id": "s-1",
                "name": "Farinha",
                "sku": "",
                "category": "Geral",
                "type": "ingredient",
                "stock": 2.5,
                "unit": "kg",
                "costPerUnit": 3.1234,
                "purchaseFormat": "unidade",
                "packageCost": None,
                "packageQuantity": None,
                "supplier": None,
                "lastPurchaseDate": None,
                "expirationDate": None,
                "minStock": 0,
                "isActive": True,
                "createdAt": supplies[0]["createdAt"],
                "updatedAt": supplies[0]["updatedAt"],
            }
        ]


# -- POST /api/sync/{table} ---------------------------------------------------------------


def test_table_push_response_shape_patch_stale_invalid_and_tombstone(live_server):
    with live_server.client() as c:
        first = push(
            c,
            "products",
            {
                "id": "bolo",
                "name": "Bolo",
                "price": "30.00",
                "category": "doces",
                "updatedAt": "2026-01-10T10:00:00.000Z",
            },
            cursor=0,
        )
        assert set(first) >= {"success", "synced", "conflicts", "cursor", "hasMore", "timestamp"}
        assert first["success"] is True and first["conflicts"] == [] and first["hasMore"] is False
        assert [s["id"] for s in first["synced"]] == ["bolo"]
        cursor = first["cursor"]

        # A patch changes only what it carries; an older edit is skipped, an invalid one says why.
        stale_id, bad_id = eid(), eid()
        second = push(
            c,
            "products",
            {"id": "bolo", "price": "32.50", "updatedAt": "2026-01-10T11:00:00.000Z"},
            {"id": "bolo", "name": "Bolo velho", "updatedAt": "2026-01-10T09:00:00.000Z"},
            {"id": "bad", "price": "abc"},
            cursor=cursor,
            event_ids=[eid(), stale_id, bad_id],
        )
        conflicts = {x["eventId"]: x for x in second["conflicts"]}
        assert set(conflicts) == {stale_id, bad_id}
        assert conflicts[stale_id]["id"] == "bolo"
        assert conflicts[stale_id]["resolution"] == "skipped_stale"
        assert conflicts[bad_id]["id"] == "bad" and conflicts[bad_id]["reason"]
        assert "price" in conflicts[bad_id]["error"]
        # `synced` holds only what changed after the client's cursor: the applied patch.
        assert len(second["synced"]) == 1
        bolo = second["synced"][0]
        assert bolo["name"] == "Bolo" and bolo["category"] == "doces" and bolo["price"] == 32.5
        assert bolo["updatedAt"] == "2026-01-10T11:00:00.000Z"
        assert second["cursor"] > cursor

        deleted = push(c, "products", {"id": "bolo", "_op": "delete"}, cursor=second["cursor"])
        assert deleted["synced"] == [
            {"id": "bolo", "_deleted": True, "updatedAt": deleted["synced"][0]["updatedAt"]}
        ]
        assert c.get("/api/products").json()["products"] == []
        assert c.get("/api/products/bolo").status_code == 404


def test_table_push_is_idempotent_and_counters_commute(live_server):
    with live_server.client() as c:
        push(c, "products", {"id": "sonho", "name": "Sonho", "stock_quantity": 10})
        sale = eid()
        for _ in range(3):  # a retried sale is counted once
            push(
                c,
                "products",
                {"id": "sonho", "_op": "increment", "stock_quantity": -2},
                event_ids=[sale],
            )
        push(
            c,
            "products",
            {"id": "sonho", "_op": "increment", "stock_quantity": -1},
            machine="caixa-2",
        )
        assert c.get("/api/products/sonho").json()["record"]["stock_quantity"] == 7
        changes, cursor = pull_all(c, "products")
        assert [x["stock_quantity"] for x in changes] == [7]  # a pull gives each row's latest state
        assert cursor == 3  # create + two distinct increments; the retries made no change


def test_pull_pages_with_since_and_limit(live_server):
    with live_server.client() as c:
        ids = [f"p{i:02d}" for i in range(7)]
        push(c, "products", *({"id": i, "name": i} for i in ids))
        push(c, "supplies", {"id": "s", "name": "Açúcar"})  # other tables do not show up
        pages, cursor, seen = [], 0, []
        for _ in range(10):
            r = c.get("/api/sync/products", params={"since": cursor, "limit": 3})
            assert r.status_code == 200, r.text
            page = r.json()
            assert set(page) >= {"success", "synced", "cursor", "hasMore"}
            pages.append(len(page["synced"]))
            seen += [s["id"] for s in page["synced"]]
            cursor = page["cursor"]
            if not page["hasMore"]:
                break
        assert pages == [3, 3, 1]
        assert seen == ids
        assert cursor == head(c)  # the last page moves the cursor to the head
        r = c.get("/api/sync/products", params={"since": cursor})
        assert r.json()["synced"] == [] and r.json()["hasMore"] is False


# -- POST /api/sync/batch and GET /api/sync/changes -----------------------------------------


def test_batch_is_atomic(live_server):
    with live_server.client() as c:
        push(c, "products", {"id": "pao", "name": "Pão", "price": "1.00", "stock_quantity": 100})
        before = head(c)
        sale = {
            "machineId": "caixa-1",
            "events": [
                {
                    "eventId": eid(),
                    "table": "orders",
                    "record": {"id": "o1", "customerName": "Ana", "total": "3.00"},
                },
                {
                    "eventId": eid(),
                    "table": "order_items",
                    "record": {
                        "id": "o1-1",
                        "order_id": "o1",
                        "product_id": "pao",
                        "quantity": 3,
                        "price": "1.00",
                    },
                },
                {
                    "eventId": eid(),
                    "table": "products",
                    "record": {"id": "pao", "_op": "increment", "stock_quantity": -3},
                },
            ],
        }
        r = c.post("/api/sync/batch", json=sale)
        assert r.status_code == 200, r.text
        assert r.json()["success"] is True and r.json()["conflicts"] == []
        assert r.json()["cursor"] == before + 3
        assert c.get("/api/products/pao").json()["record"]["stock_quantity"] == 97
        orders = c.get("/api/orders").json()
        assert orders["total"] == 1 and orders["orders"][0]["status"] == "Pendente"
        assert [
            i["id"]
            for i in c.get("/api/order_items", params={"order_id": "o1"}).json()["order_items"]
        ] == ["o1-1"]

        # One invalid event: 422, and none of the others is applied.
        bad = {
            "machineId": "caixa-1",
            "events": [
                {"eventId": eid(), "table": "orders", "record": {"id": "o2", "total": "2.00"}},
                {
                    "eventId": eid(),
                    "table": "products",
                    "record": {"id": "pao", "_op": "increment", "stock_quantity": -2},
                },
                {
                    "eventId": eid(),
                    "table": "order_items",
                    "record": {"id": "o2-1", "quantity": "muitos"},
                },
            ],
        }
        at = head(c)
        r = c.post("/api/sync/batch", json=bad)
        assert r.status_code == 422, r.text
        assert r.json()["success"] is False and r.json()["code"] and r.json()["error"]
        assert head(c) == at
        assert c.get("/api/products/pao").json()["record"]["stock_quantity"] == 97
        assert c.get("/api/orders/o2").status_code == 404


def test_batch_with_an_increment_out_of_range_applies_nothing(live_server):
    with live_server.client() as c:
        push(c, "products", {"id": "big", "name": "Estoque enorme", "stock_quantity": 2**53 - 10})
        at = head(c)
        r = c.post(
            "/api/sync/batch",
            json={
                "events": [
                    {"eventId": eid(), "table": "orders", "record": {"id": "o9", "total": "5.00"}},
                    {
                        "eventId": eid(),
                        "table": "products",
                        "record": {"id": "big", "_op": "increment", "stock_quantity": 20},
                    },
                ]
            },
        )
        assert r.status_code == 422, r.text
        assert r.json()["invalid"][0]["reason"] == "out_of_range"
        assert head(c) == at
        assert c.get("/api/orders/o9").status_code == 404


def test_a_sale_of_a_product_the_server_does_not_have_is_kept(live_server):
    """E.g. the server was restored from a backup older than the product: the PDV's sale
    (money taken) must not be refused for it."""
    with live_server.client() as c:
        r = c.post(
            "/api/sync/batch",
            json={
                "events": [
                    {"eventId": eid(), "table": "orders", "record": {"id": "o10", "total": "5.00"}},
                    {
                        "eventId": eid(),
                        "table": "order_items",
                        "record": {
                            "id": "o10-1",
                            "order_id": "o10",
                            "product_id": "sumido",
                            "quantity": 2,
                        },
                    },
                    {
                        "eventId": eid(),
                        "table": "products",
                        "record": {"id": "sumido", "_op": "increment", "stock_quantity": -2},
                    },
                ]
            },
        )
        assert r.status_code == 200, r.text
        assert [x["status"] for x in r.json()["results"]] == ["applied"] * 3
        assert r.json()["results"][2]["warning"] == "unknown_record"
        assert c.get("/api/orders/o10").status_code == 200
        assert c.get("/api/products/sumido").status_code == 404  # not invented


def test_changes_feed_covers_every_table_in_order(live_server):
    with live_server.client() as c:
        push(c, "products", {"id": "a", "name": "A"})
        push(c, "supplies", {"id": "b", "name": "B"})
        push(c, "orders", {"id": "c", "total": 1})
        push(c, "order_items", {"id": "d", "order_id": "c"})
        push(c, "products", {"id": "a", "name": "A2"})  # row "a" moves to the end of the log
        r = c.get("/api/sync/changes", params={"since": 0, "limit": 3})
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["success"] is True and page["hasMore"] is True
        assert [(x["table"], x["record"]["id"]) for x in page["changes"]] == [
            ("supplies", "b"),
            ("orders", "c"),
            ("order_items", "d"),
        ]
        seqs = [x["seq"] for x in page["changes"]]
        assert seqs == sorted(seqs) == [2, 3, 4]
        r = c.get("/api/sync/changes", params={"since": page["cursor"]})
        rest = r.json()
        assert [(x["table"], x["record"]["name"]) for x in rest["changes"]] == [("products", "A2")]
        assert rest["hasMore"] is False and rest["cursor"] == head(c) == 5


# -- the seed's collection routes ---------------------------------------------------------


def test_collections_read_with_seed_shapes_and_orders_by_inclusive_days(live_server):
    with live_server.client() as c:
        push(
            c,
            "products",
            {"id": "p1", "name": "Pão", "price": "0.75"},
            {"id": "p2", "name": "Broa"},
        )
        push(c, "products", {"id": "p2", "_op": "delete"})
        push(c, "supplies", {"id": "s1", "name": "Leite", "stock": "10.500", "unit": "l"})
        push(
            c,
            "orders",
            {"id": "before", "total": 1, "createdAt": "2023-12-31T23:59:59.999Z"},
            {"id": "first", "total": 2, "createdAt": "2024-01-01T00:00:00.000Z"},
            {
                "id": "last",
                "total": 3,
                "customerName": "Zé",
                "createdAt": "2024-01-31T23:59:59.999Z",
            },
            {"id": "after", "total": 4, "createdAt": "2024-02-01T00:00:00.000Z"},
        )

        products = c.get("/api/products").json()
        assert [p["id"] for p in products["products"]] == ["p1"]
        assert set(products["products"][0]) == {
            "id",
            "name",
            "description",
            "price",
            "costPrice",
            "category",
            "imageUrlId",
            "stock_quantity",
            "isActive",
            "createdAt",
            "updatedAt",
        }
        supplies = c.get("/api/supplies").json()["supplies"]
        assert supplies[0]["stock"] == 10.5 and set(supplies[0]) == {
            "id",
            "name",
            "sku",
            "category",
            "type",
            "stock",
            "unit",
            "costPerUnit",
            "purchaseFormat",
            "packageCost",
            "packageQuantity",
            "supplier",
            "lastPurchaseDate",
            "expirationDate",
            "minStock",
            "isActive",
            "createdAt",
            "updatedAt",
        }

        r = c.get("/api/orders", params={"start_date": "2024-01-01", "end_date": "2024-01-31"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert sorted(o["id"] for o in body["orders"]) == ["first", "last"]
        assert body["total"] == 2
        assert set(body["orders"][0]) == {
            "id",
            "orderNumber",
            "customerName",
            "userId",
            "cashRegisterId",
            "paymentMethod",
            "total",
            "totalCost",
            "status",
            "createdAt",
            "updatedAt",
        }
        assert c.get("/api/orders").json()["total"] == 4
        assert {
            o["id"]
            for o in c.get("/api/orders", params={"start_date": "2024-02-01"}).json()["orders"]
        } == {"after"}
        assert {
            o["id"]
            for o in c.get("/api/orders", params={"end_date": "2023-12-31"}).json()["orders"]
        } == {"before"}
        r = c.get("/api/orders", params={"start_date": "2024-02-01", "end_date": "2024-01-01"})
        assert r.status_code == 400 and r.json()["success"] is False


@pytest.mark.parametrize(
    "collection,record,stored,patch",
    [
        (
            "products",
            {"name": "Croissant", "price": "6.00"},
            {"name": "Croissant", "price": 6},
            {"price": "6.50"},
        ),
        (
            "orders",
            {"customerName": "Maria", "total": "12.00"},
            {"customerName": "Maria", "status": "Pendente"},
            {"status": "Entregue"},
        ),
        (
            "order_items",
            {"order_id": "o", "product_id": "p", "quantity": 2, "price": "3.00"},
            {"order_id": "o", "quantity": 2, "price": 3},
            {"quantity": 3},
        ),
        (
            "supplies",
            {"name": "Fermento", "stock": 1, "unit": "kg"},
            {"name": "Fermento", "unit": "kg"},
            {"costPerUnit": "20.5"},
        ),
    ],
)
def test_crud_routes_write_through_the_change_log(
    server_factory, tmp_path, collection, record, stored, patch
):
    server = server_factory(database_url=f"sqlite:///{tmp_path / 'crud.db'}")
    with server.client() as c:
        r = c.post(f"/api/{collection}", json=record)
        assert r.status_code == 200, r.text
        row_id = r.json()["record"]["id"]
        changes, cursor = pull_all(c, collection)
        assert [x["id"] for x in changes] == [row_id]
        assert {k: changes[0][k] for k in stored} == stored

        r = c.put(f"/api/{collection}/{row_id}", json=patch)
        assert r.status_code == 200, r.text
        r = c.patch(f"/api/{collection}/{row_id}", json={"machineId": "caixa-1", **patch})
        assert r.status_code == 200, r.text
        changes, cursor2 = pull_all(c, collection, since=cursor)
        assert [x["id"] for x in changes] == [
            row_id
        ] and cursor2 == cursor + 2  # two changes, latest state
        got = c.get(f"/api/{collection}/{row_id}").json()["record"]
        assert {k: got[k] for k in stored if k not in patch} == {
            k: v for k, v in stored.items() if k not in patch
        }
        assert got[next(iter(patch))] is not None

        r = c.delete(f"/api/{collection}/{row_id}")
        assert r.status_code == 200, r.text
        changes, _ = pull_all(c, collection, since=cursor2)
        assert changes == [{"id": row_id, "_deleted": True, "updatedAt": changes[0]["updatedAt"]}]
        assert c.get(f"/api/{collection}/{row_id}").status_code == 404
        assert c.put(f"/api/{collection}/{row_id}", json=patch).status_code == 404
        assert c.delete(f"/api/{collection}/{row_id}").status_code == 404


# -- reconcile ----------------------------------------------------------------------------


def test_reconcile_summary_compare_and_history(live_server):
    with live_server.client() as c:
        push(
            c,
            "products",
            {"id": "p1", "name": "Pão", "updatedAt": "2026-02-11T18:00:00.000Z"},
            {"id": "p2", "name": "Broa", "updatedAt": "2026-02-11T17:00:00.000Z"},
        )
        r = c.get("/api/sync/reconcile")
        assert r.status_code == 200
        body = r.json()
        assert body["success"] is True and body["cursor"] == 2
        summary = {s["table"]: s for s in body["serverSummary"]}
        assert set(summary) == TABLES
        assert summary["products"]["count"] == 2
        assert summary["products"]["latestUpdatedAt"] == "2026-02-11T18:00:00.000Z"
        assert isinstance(summary["products"]["checksum"], str)
        assert summary["orders"] == {
            "table": "orders",
            "count": 0,
            "latestUpdatedAt": None,
            "checksum": summary["orders"]["checksum"],
        }

        def reconcile(machine: str, client_summary) -> dict:
            r = c.post(
                "/api/sync/reconcile",
                json={"machineId": machine, "clientSummary": client_summary, "cursor": 2},
            )
            assert r.status_code == 200, r.text
            return r.json()

        # The seed's client: no checksum. Every table it does not summarise differs, as on
        # the original server (`missing_client_table`).
        empty = {t: {"count": 0, "latestUpdatedAt": None} for t in TABLES}
        ok = reconcile(
            "machine-1",
            {**empty, "products": {"count": 2, "latestUpdatedAt": "2026-02-11T18:00:00.000Z"}},
        )
        assert ok["success"] is True and ok["isConsistent"] is True and ok["mismatches"] == []
        assert {s["table"] for s in ok["serverSummary"]} == TABLES
        # With checksum, and in the server's own list form.
        ok = reconcile("machine-2", list(summary.values()))
        assert ok["isConsistent"] is True
        # A different checksum with the same count and time is still a divergence.
        bad = reconcile(
            "machine-1",
            {
                **empty,
                "products": {
                    **{k: v for k, v in summary["products"].items() if k != "table"},
                    "checksum": "0123456789abcdef",
                },
                "supplies": {"count": 3},
            },
        )
        assert bad["isConsistent"] is False
        by_table = {m["table"]: m for m in bad["mismatches"]}
        assert set(by_table) == {"products", "supplies"}
        assert by_table["products"]["reason"] == "checksum_mismatch"
        assert by_table["supplies"]["reason"] == "count_mismatch"
        assert (
            by_table["supplies"]["server"]["count"] == 0
            and by_table["supplies"]["client"]["count"] == 3
        )

        r = c.get("/api/sync/reconcile/history")
        history = r.json()
        assert history["success"] is True and history["count"] == 3
        assert [h["machine_id"] for h in history["data"]] == ["machine-1", "machine-2", "machine-1"]
        ids = [h["id"] for h in history["data"]]
        assert ids == sorted(ids, reverse=True)  # newest first
        newest = history["data"][0]
        assert newest["is_consistent"] is False and newest["mismatches_count"] == 2
        assert newest["created_at"].endswith("Z")

        h = c.get("/api/sync/reconcile/history", params={"limit": 1}).json()
        assert h["count"] == 1 and h["data"][0]["id"] == ids[0]
        h = c.get("/api/sync/reconcile/history", params={"machineId": "machine-2"}).json()
        assert [x["machine_id"] for x in h["data"]] == ["machine-2"]
        h = c.get(
            "/api/sync/reconcile/history",
            params={"limit": 50, "machineId": "machine-1", "onlyInconsistent": "true"},
        ).json()
        assert h["count"] == 1 and h["data"][0]["is_consistent"] is False


def test_reconcile_buckets_and_rows_find_the_differing_rows(live_server):
    with live_server.client() as c:
        push(c, "products", *({"id": f"p{i}", "name": f"n{i}"} for i in range(20)))
        r = c.get("/api/sync/reconcile/buckets", params={"table": "products"})
        assert r.status_code == 200, r.text
        buckets = r.json()["buckets"]
        assert sum(b["count"] for b in buckets.values()) == 20
        first = sorted(buckets, key=int)[0]
        r = c.get("/api/sync/reconcile/rows", params={"table": "products", "buckets": first})
        assert r.status_code == 200, r.text
        rows = r.json()["rows"]
        assert len(rows) == buckets[first]["count"] and all(x["id"].startswith("p") for x in rows)
        everything = ",".join(buckets)
        rows = c.get(
            "/api/sync/reconcile/rows", params={"table": "products", "buckets": everything}
        ).json()["rows"]
        assert sorted(x["id"] for x in rows) == sorted(f"p{i}" for i in range(20))
        assert c.get("/api/sync/reconcile/buckets", params={"table": "nope"}).status_code == 404
        assert (
            c.get(
                "/api/sync/reconcile/rows", params={"table": "products", "buckets": "999"}
            ).status_code
            == 400
        )


# -- health and stats ---------------------------------------------------------------------


def test_health(live_server, database_url):
    with live_server.client() as c:
        r = c.get("/health")
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "ok"
        assert body["database"] == ("sqlite" if database_url.startswith("sqlite") else "postgresql")


def test_stats_count_events_conflicts_and_machines(live_server):
    with live_server.client() as c:
        push(
            c,
            "products",
            {"id": "p", "name": "x", "updatedAt": "2026-01-02T00:00:00Z"},
            machine="caixa-1",
        )
        push(
            c,
            "products",
            {"id": "p", "name": "old", "updatedAt": "2026-01-01T00:00:00Z"},
            machine="caixa-2",
        )
        assert (
            c.get("/api/sync/products", params={"since": 1, "machineId": "caixa-2"}).status_code
            == 200
        )
        r = c.get("/api/stats")
        assert r.status_code == 200
        stats = r.json()
        assert stats["eventsProcessed"] == 2
        assert stats["conflicts"] == 1
        assert stats["liveClients"] == 0
        machines = {m["machineId"]: m for m in stats["machines"]}
        assert set(machines) == {"caixa-1", "caixa-2"}
        assert machines["caixa-2"]["cursor"] == 1
        assert machines["caixa-1"]["lastSeen"].endswith("Z")


@pytest.mark.postgres
def test_health_and_data_routes_answer_503_when_the_database_is_down(
    server_factory, own_pg_cluster
):
    cluster = own_pg_cluster
    server = server_factory(database_url=cluster.createdb("down"))
    with server.client() as c:
        push(c, "products", {"id": "p", "name": "x"})
        assert c.get("/health").json()["status"] == "ok"
        cluster.stop()
        r = c.get("/health")
        assert r.status_code == 503
        assert r.json()["status"] != "ok" and r.json()["database"] == "postgresql"
        for method, path, body in [
            ("GET", "/api/products", None),
            ("GET", "/api/sync/products?since=0", None),
            ("GET", "/api/sync/reconcile", None),
            ("GET", "/api/stats", None),
            (
                "POST",
                "/api/sync/products",
                {"localUpdates": [{"eventId": eid(), "record": {"id": "q"}}]},
            ),
            (
                "POST",
                "/api/sync",
                {"type": "product_updated", "data": {"id": "q"}, "event_id": eid()},
            ),
        ]:
            r = c.request(method, path, json=body)
            assert r.status_code == 503, (path, r.status_code, r.text)
            assert r.json()["success"] is False and r.json()["code"] == "database_unavailable"
    assert not any("Traceback" in line for line in server.output)


def test_a_push_with_a_cursor_ahead_of_the_server_applies_nothing_and_asks_for_a_resync(
    live_server,
):
    """After a restore to an older backup: a PDV pushing its offline sales first must be
    told to resync before they move the head past its stale cursor."""
    with live_server.client() as c:
        push(c, "products", {"id": "a", "name": "A"})
        at = head(c)
        stale = at + 5
        for path, body in (
            (
                "/api/sync/batch",
                {
                    "machineId": "caixa-1",
                    "cursor": stale,
                    "events": [
                        {
                            "eventId": eid(),
                            "table": "orders",
                            "record": {"id": "o-late", "total": "1.00"},
                        }
                    ],
                },
            ),
            (
                "/api/sync/products",
                {
                    "machineId": "caixa-1",
                    "cursor": stale,
                    "localUpdates": [{"eventId": eid(), "record": {"id": "late", "name": "Late"}}],
                },
            ),
        ):
            r = c.post(path, json=body)
            assert r.status_code == 409 and r.json()["resyncRequired"] is True, r.text
            assert head(c) == at
