"""Migration 3 of a POPULATED v2 store (the release before issue 10): view rows, the server's
rows it mirrors, a pending sale, a dead letter, a sent event, the reconcile log and the
cursor are all kept; the new columns get the defaults the server's migration gives them
(in the view and in the mirrored rows, so a rebuild agrees); every digest is v2 and matches
its row; the pending sale still pushes, whole."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal

import pytest

from agent.store import migrations
from agent.store.store import Store, open_database
from protocol import TABLES, dumps, parse_change, row_digest, to_iso
from protocol.messages import parse_batch_push
from tests.agent.store.conftest import T0


def v2_product(row_id: str, updated_at: int, **fields) -> dict:
    """A product as a v2 server sent it: the fields of that release only."""
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


def v2_supply(row_id: str, updated_at: int, **fields) -> dict:
    record = {
        "id": row_id,
        "name": None,
        "stock": "0.000",
        "unit": None,
        "costPerUnit": None,
        "createdAt": to_iso(T0),
        "updatedAt": to_iso(updated_at),
    }
    record.update(fields)
    return record


def v1_digest(table: str, row: dict) -> tuple[int, int]:
    digest = row_digest(TABLES[table], row)  # any value: migration 3 recomputes them all
    return digest >> 32, digest & 0xFFFFFFFF


SALE = "sale-1"


def make_v2_store(path, monkeypatch) -> None:
    """A store file as the v2 agent left it, with a bit of everything in it."""
    with monkeypatch.context() as m:
        m.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:2])
        m.setattr(migrations, "LATEST", 2)
        db = open_database(path)
        with db.connection_context(), db.atomic():
            migrations.migrate(db)
            sql = db.execute_sql
            # The server's rows this store mirrors (v2 wire records).
            shadows = [
                ("products", v2_product("p1", T0 + 1, name="Pão francês", price="0.75")),
                ("products", v2_product("p2", T0 + 2, name="Bolo", stock_quantity=10)),
                ("supplies", v2_supply("s1", T0 + 3, name="Farinha", stock="12.345", unit="kg")),
            ]
            for table, record in shadows:
                sql(
                    "INSERT INTO server_rows (table_name, row_id, data, deleted, updated_at) "
                    "VALUES (?, ?, ?, 0, ?)",
                    (table, record["id"], dumps(record), T0),
                )
            sql(
                "INSERT INTO server_rows (table_name, row_id, data, deleted, updated_at) "
                "VALUES ('products', 'gone', ?, 1, ?)",
                (dumps({"id": "gone", "_deleted": True, "updatedAt": to_iso(T0)}), T0),
            )
            # The views: the shadows, plus the pending sale on top (order, item, stock -2).
            for row_id, updated, name, price, stock in (
                ("p1", T0 + 1, "Pão francês", "0.75", 0),
                ("p2", T0 + 100, "Bolo", None, 8),
            ):
                row = {"id": row_id, "updatedAt": updated, "name": name, "price": price}
                row.update(stock_quantity=stock, createdAt=T0)
                sql(
                    "INSERT INTO products (id, updated_at, name, price, stock_quantity, created_at, "
                    "digest_hi, digest_lo) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (row_id, updated, name, price, stock, T0, *v1_digest("products", row)),
                )
            sql(
                "INSERT INTO supplies (id, updated_at, name, stock, unit, created_at) "
                "VALUES ('s1', ?, 'Farinha', '12.345', 'kg', ?)",
                (T0 + 3, T0),
            )
            sql(
                "INSERT INTO orders (id, updated_at, customer_name, total, status, created_at) "
                "VALUES ('o1', ?, 'Ana', '10.50', 'Pago', ?)",
                (T0 + 100, T0 + 100),
            )
            sql(
                "INSERT INTO order_items (id, updated_at, order_id, product_id, quantity, price, "
                "created_at) VALUES ('o1-i0', ?, 'o1', 'p2', '2.000', '5.25', ?)",
                (T0 + 100, T0 + 100),
            )
            # The outbox: the pending sale (one group), a dead letter, a sent event.
            events = [
                (
                    "ev-order",
                    "orders",
                    "o1",
                    "upsert",
                    {
                        "id": "o1",
                        "customerName": "Ana",
                        "total": "10.50",
                        "status": "Pago",
                        "updatedAt": to_iso(T0 + 100),
                    },
                    "pending",
                ),
                (
                    "ev-item",
                    "order_items",
                    "o1-i0",
                    "upsert",
                    {
                        "id": "o1-i0",
                        "order_id": "o1",
                        "product_id": "p2",
                        "quantity": 2,
                        "price": "5.25",
                        "updatedAt": to_iso(T0 + 100),
                    },
                    "pending",
                ),
                (
                    "ev-stock",
                    "products",
                    "p2",
                    "increment",
                    {
                        "id": "p2",
                        "_op": "increment",
                        "stock_quantity": -2,
                        "updatedAt": to_iso(T0 + 100),
                    },
                    "pending",
                ),
                (
                    "ev-dead",
                    "products",
                    "p9",
                    "increment",
                    {
                        "id": "p9",
                        "_op": "increment",
                        "stock_quantity": 9007199254740991,
                        "updatedAt": to_iso(T0 + 50),
                    },
                    "dead",
                ),
                (
                    "ev-sent",
                    "products",
                    "p1",
                    "upsert",
                    {"id": "p1", "name": "Pão francês", "updatedAt": to_iso(T0 + 1)},
                    "sent",
                ),
            ]
            for n, (event_id, table, record_id, op, payload, state) in enumerate(events):
                sql(
                    "INSERT INTO outbox (event_id, table_name, record_id, op, payload, group_id, "
                    "state, created_at, attempts, next_attempt_at, last_error, sent_at, result) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
                    (
                        event_id,
                        table,
                        record_id,
                        op,
                        dumps(payload),
                        SALE if state == "pending" else None,
                        state,
                        T0 + 100 + n,
                        3 if state == "dead" else 0,
                        "out of range" if state == "dead" else None,
                        T0 + 2 if state == "sent" else None,
                        json.dumps({"status": "rejected", "reason": "out_of_range"})
                        if state == "dead"
                        else None,
                    ),
                )
            sql(
                "INSERT INTO reconcile_log (created_at, status, is_consistent, strategy, "
                "mismatches, repair, server_log_id, error) "
                "VALUES (?, 'consistent', 1, 'refresh_mismatched', '[]', NULL, 4, NULL)",
                (T0 + 7,),
            )
            for key, value in (("cursor", "7"), ("machine_id", "caixa-1")):
                sql("INSERT INTO sync_state (key, value) VALUES (?, ?)", (key, value))
        db.close()


@pytest.fixture
def upgraded(tmp_path, monkeypatch):
    path = tmp_path / "agent.db"
    make_v2_store(path, monkeypatch)
    before = _dump(path)
    s = Store(path)
    yield s, before
    s.close()


def _dump(path) -> dict[str, list[tuple]]:
    con = sqlite3.connect(str(path))
    try:
        return {
            t: con.execute(f'SELECT * FROM "{t}" ORDER BY 1, 2').fetchall()
            for t in ("outbox", "reconcile_log", "sync_state")
        }
    finally:
        con.close()


def view(s: Store) -> dict:
    return {name: {r["id"]: r for r in s.views.live_rows(name)} for name in TABLES}


def test_everything_is_kept_and_the_new_columns_get_the_servers_defaults(upgraded, tmp_path):
    s, before = upgraded
    assert [v for (v,) in s.db.execute_sql("SELECT version FROM schema_version")] == [1, 2, 3]
    [backup] = tmp_path.glob("agent.db.before-v3-*.bak")
    assert _dump(backup) == before
    # The outbox (pending sale, dead letter, sent event), the log and the facts: unchanged.
    assert _dump(s.path) == before
    assert s.cursor == 7 and s.get_state("machine_id") == "caixa-1"
    assert [e.event_id for e in s.dead_letters()] == ["ev-dead"]
    assert s.dead_letters()[0].reason == "out_of_range"
    assert s.reconcile_history()[0]["server_log_id"] == 4

    p1, p2 = s.get("products", "p1"), s.get("products", "p2")
    assert (p1["name"], p1["price"], p1["costPrice"], p1["isActive"]) == (
        "Pão francês",
        Decimal("0.75"),
        Decimal("0"),
        True,
    )
    assert p2["stock_quantity"] == 8  # the pending decrement still on top
    s1 = s.get("supplies", "s1")
    assert (s1["category"], s1["type"], s1["purchaseFormat"], s1["sku"]) == (
        "Geral",
        "ingredient",
        "unidade",
        "",
    )
    assert (s1["minStock"], s1["isActive"], s1["supplier"]) == (Decimal("0"), True, None)
    o1 = s.get("orders", "o1")
    assert (o1["status"], o1["totalCost"], o1["paymentMethod"]) == ("Pago", Decimal("0"), None)
    assert s.count("technical_sheets") == 0
    # The mirrored server rows got the same defaults (the server's migration wrote them).
    shadow = json.loads(
        s.db.execute_sql("SELECT data FROM server_rows WHERE row_id = 'p1'").fetchone()[0]
    )
    assert (shadow["costPrice"], shadow["isActive"]) == (0, True)


def test_a_rebuild_from_the_mirror_and_the_outbox_gives_the_same_view(upgraded):
    s, _ = upgraded
    migrated = view(s)
    s.views.rebuild_many((name, row_id) for name in TABLES for row_id in migrated[name])
    assert view(s) == migrated


def test_digests_are_v2_and_match_every_row(upgraded):
    s, _ = upgraded
    assert s.check_digests() == 0
    for name, rows in view(s).items():
        stored = dict(
            (rid, (hi << 32) + lo)
            for rid, hi, lo in s.db.execute_sql(
                f'SELECT id, digest_hi, digest_lo FROM "{name}"'
            ).fetchall()
        )
        for row_id, row in rows.items():
            assert stored[row_id] == row_digest(TABLES[name], row), (name, row_id)
    # The digest the server computes for p1 after its own migration 0003.
    server_p1 = {
        "id": "p1",
        "updatedAt": T0 + 1,
        "name": "Pão francês",
        "price": Decimal("0.75"),
        "costPrice": Decimal("0.00"),
        "stock_quantity": 0,
        "isActive": True,
        "createdAt": T0,
    }
    p1_hi, p1_lo = s.db.execute_sql(
        "SELECT digest_hi, digest_lo FROM products WHERE id = 'p1'"
    ).fetchone()
    assert (p1_hi << 32) + p1_lo == row_digest(TABLES["products"], server_p1)


def test_the_pending_sale_still_pushes_whole(upgraded, tmp_path):
    from server.db import bind_models, connect_database
    from server.migrations import migrate
    from server.service import SyncService

    s, _ = upgraded
    due = s.due_events(T0 + 10_000)
    assert [e.event_id for e in due] == ["ev-order", "ev-item", "ev-stock"]
    assert {e.group_id for e in due} == {SALE}
    _, items, _ = parse_batch_push({"events": [e.wire() for e in due]})
    assert all(i.error is None for i in items)
    db, _ = connect_database(f"sqlite:///{tmp_path / 'server.db'}", tmp_path)
    migrate(db)
    try:
        service = SyncService(bind_models(db), clock=lambda: T0 + 1_000)
        service.push("other", [_item("p2", {"id": "p2", "name": "Bolo", "stock_quantity": 10})])
        results, _ = service.push("caixa-1", items, atomic_batch=True)
        assert [r["status"] for r in results] == ["applied"] * 3
        s.acknowledge(results, T0 + 10_000)
        assert s.pending_count() == 0 and [e.event_id for e in s.dead_letters()] == ["ev-dead"]
        page = service.changes(0, 5000)
        s.apply_pulled(page["changes"], page["cursor"])
        assert s.get("products", "p2")["stock_quantity"] == 8
        assert s.get("orders", "o1")["customerName"] == "Ana"
    finally:
        db.close_all()


def test_rows_already_there_count_as_changed_at_the_migration(upgraded):
    s, _ = upgraded
    assert {r["id"] for r in s.since("products", None)} == {"p1", "p2"}
    # A front end that read just before the upgrade gets every row once more, misses none.
    from protocol import now_ms

    assert {r["id"] for r in s.since("products", now_ms())} == {"p1", "p2"}


def _item(row_id: str, record: dict):
    from protocol.messages import PushItem

    return PushItem(
        f"seed-{row_id}",
        parse_change(TABLES["products"], record),
        record_id=row_id,
        table="products",
    )
