"""Per-row digests (store migration 2): a store file of v1 with rows is migrated and its
digests backfilled; the one-query summary equals the summary computed row by row, as
before, after every kind of write."""

from __future__ import annotations

import random
import sqlite3
from decimal import Decimal

import pytest

from agent.store import migrations
from agent.store.store import Store, open_database
from protocol import (
    TABLES,
    bucket_of,
    bucket_summaries,
    parse_change,
    row_digest,
    summarize,
    to_iso,
    to_signed,
)

T0 = 1_750_000_000_000


def summary_by_scan(s: Store) -> dict:
    """Store.summary as it was computed before migration 2: every row read, digested, summed."""
    out = {}
    for name, table in TABLES.items():
        sm = summarize(
            name, ((r["updatedAt"], row_digest(table, r)) for r in s.views.live_rows(name))
        )
        out[name] = {
            "count": sm["count"],
            "latestUpdatedAt": sm["latestUpdatedAt"],
            "checksum": sm["checksum"],
        }
    return out


def buckets_by_scan(s: Store, name: str) -> dict:
    rows = (
        (bucket_of(r["id"]), to_signed(row_digest(TABLES[name], r)))
        for r in s.views.live_rows(name)
    )
    return {str(b): v for b, v in bucket_summaries(rows).items()}


def stored_digests_match(s: Store) -> int:
    checked = 0
    for name, table in TABLES.items():
        stored = dict(
            (rid, (hi << 32) + lo)
            for rid, hi, lo in s.db.execute_sql(
                f'SELECT id, digest_hi, digest_lo FROM "{name}"'
            ).fetchall()
        )
        for row in s.views.live_rows(name):
            assert stored[row["id"]] == row_digest(table, row), (name, row["id"])
            checked += 1
    return checked


V1_ROWS = {
    "products": [
        "INSERT INTO products (id, updated_at, name, description, price, category, image_url_id, stock_quantity, "
        "created_at) VALUES ('p1', ?, 'Pão francês', NULL, '0.75', 'padaria', NULL, 120, ?)",
        "INSERT INTO products (id, updated_at, name, description, price, category, image_url_id, stock_quantity, "
        "created_at) VALUES ('p2', ?, 'Bolo', 'de fubá', '25.5', NULL, 'img-9', -3, ?)",
        "INSERT INTO products (id, updated_at, name, description, price, category, image_url_id, stock_quantity, "
        "created_at) VALUES ('p3', ?, NULL, NULL, NULL, NULL, NULL, 0, NULL)",
    ],
    "orders": [
        "INSERT INTO orders (id, updated_at, customer_name, total, status, created_at) "
        "VALUES ('o1', ?, 'Ana', '12345678901.25', 'paid', ?)",
    ],
    "order_items": [
        "INSERT INTO order_items (id, updated_at, order_id, product_id, quantity, price, created_at) "
        "VALUES ('i1', ?, 'o1', 'p1', '2.5', '0.75', ?)",
    ],
    "supplies": [
        "INSERT INTO supplies (id, updated_at, name, stock, unit, cost_per_unit, created_at) "
        "VALUES ('s1', ?, 'Farinha', '12.345', 'kg', '3.2', ?)",
    ],
}


def make_v1_file(path, monkeypatch) -> None:
    """A store file as an agent of schema v1 left it, rows included."""
    with monkeypatch.context() as m:
        m.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
        m.setattr(migrations, "LATEST", 1)
        db = open_database(path)
        with db.connection_context():
            migrations.migrate(db)
            with db.atomic():
                for n, statements in enumerate(V1_ROWS.values()):
                    for k, sql in enumerate(statements):
                        params = (
                            (T0 + 10 * n + k, T0) if sql.count("?") == 2 else (T0 + 10 * n + k,)
                        )
                        db.execute_sql(sql, params)
                db.execute_sql("INSERT INTO sync_state (key, value) VALUES ('cursor', '42')")
        db.close()
    con = sqlite3.connect(str(path))
    try:
        assert [v for (v,) in con.execute("SELECT version FROM schema_version")] == [1]
        assert "digest_hi" not in [r[1] for r in con.execute("PRAGMA table_info(products)")]
    finally:
        con.close()


def test_a_v1_store_with_rows_is_migrated_and_its_digests_backfilled(tmp_path, monkeypatch):
    path = tmp_path / "agent.db"
    make_v1_file(path, monkeypatch)
    s = Store(path)
    try:
        assert [
            v for (v,) in s.db.execute_sql("SELECT version FROM schema_version ORDER BY version")
        ] == [1, 2, 3]
        assert stored_digests_match(s) == sum(len(v) for v in V1_ROWS.values())
        assert s.summary() == summary_by_scan(s)
        assert s.summary()["products"]["count"] == 3
        assert s.summary()["orders"]["latestUpdatedAt"] == to_iso(T0 + 10)
        for name in TABLES:
            assert s.bucket_summary(name) == buckets_by_scan(s, name)
        # The data itself is untouched, and the store works on from there.
        assert s.cursor == 42
        assert s.get("products", "p2")["price"] == Decimal("25.50")
        # Migration 3's columns, at the defaults the server's migration gives them too.
        p2 = s.get("products", "p2")
        assert (p2["costPrice"], p2["isActive"]) == (Decimal("0"), True)
        assert s.get("supplies", "s1")["category"] == "Geral"
        s.write(
            [
                (
                    "e1",
                    parse_change(
                        TABLES["products"], {"id": "p1", "_op": "increment", "stock_quantity": -2}
                    ),
                )
            ],
            T0 + 100,
        )
        assert s.get("products", "p1")["stock_quantity"] == 118
        assert stored_digests_match(s) == 6 and s.summary() == summary_by_scan(s)
    finally:
        s.close()
    [backup] = tmp_path.glob("agent.db.before-v2-*.bak")
    con = sqlite3.connect(str(backup))
    try:
        assert [v for (v,) in con.execute("SELECT version FROM schema_version")] == [1]
    finally:
        con.close()


def test_an_empty_v1_store_migrates(tmp_path, monkeypatch):
    path = tmp_path / "agent.db"
    with monkeypatch.context() as m:
        m.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
        m.setattr(migrations, "LATEST", 1)
        Store(path).close()
    s = Store(path)
    try:
        assert s.summary() == summary_by_scan(s)
        assert all(v["count"] == 0 and v["checksum"] == "0" * 16 for v in s.summary().values())
    finally:
        s.close()


@pytest.mark.parametrize("seed", range(3))
def test_summary_equals_the_row_by_row_summary_after_any_writes(tmp_path, seed):
    rnd = random.Random(seed)
    s = Store(tmp_path / "agent.db")
    try:
        ids = [f"r{i}" for i in range(60)]
        cursor = 0
        now = T0
        for step in range(40):
            now += rnd.randint(1, 100_000)
            table = rnd.choice(list(TABLES))
            if rnd.random() < 0.5:  # local writes
                items = []
                for _ in range(rnd.randint(1, 20)):
                    rid = rnd.choice(ids)
                    r = rnd.random()
                    if table == "products":
                        rec = {
                            "id": rid,
                            "name": f"n{rnd.randint(0, 9)}",
                            "price": f"{rnd.randint(0, 999) / 100}",
                        }
                        if r < 0.3:
                            rec = {
                                "id": rid,
                                "_op": "increment",
                                "stock_quantity": rnd.randint(-5, 5),
                            }
                    elif table == "supplies":
                        rec = {
                            "id": rid,
                            "stock": rnd.randint(0, 10_000) / 1000,
                            "costPerUnit": "1.5",
                        }
                        if r < 0.3:
                            rec = {"id": rid, "_op": "increment", "stock": Decimal("-0.125")}
                    elif table == "orders":
                        rec = {
                            "id": rid,
                            "customerName": None if r < 0.2 else "Zé",
                            "total": rnd.randint(0, 10**6),
                        }
                    else:
                        rec = {"id": rid, "order_id": "o", "quantity": "1", "price": "2.00"}
                    if r > 0.9:
                        rec = {"id": rid, "_op": "delete"}
                    items.append((f"e{step}-{len(items)}", parse_change(TABLES[table], rec)))
                s.write(items, now, atomic=False)
            elif rnd.random() < 0.7:  # a pulled page, over pending edits
                changes = []
                for rid in rnd.sample(ids, 15):
                    cursor += 1
                    if rnd.random() < 0.2:
                        rec = {"id": rid, "_deleted": True, "updatedAt": to_iso(now)}
                    else:
                        rec = {
                            "id": rid,
                            "updatedAt": to_iso(now - rnd.randint(0, 10**6)),
                            "createdAt": to_iso(T0),
                        }
                        if table == "products":
                            rec.update(
                                name="srv",
                                price=rnd.randint(0, 400) / 4,
                                stock_quantity=rnd.randint(0, 9),
                            )
                        elif table == "supplies":
                            rec.update(name="srv", stock=rnd.randint(0, 10**4) / 100)
                    changes.append({"table": table, "seq": cursor, "record": rec})
                s.apply_pulled(changes, cursor)
            else:  # acknowledgements
                results = [
                    {
                        "eventId": e.event_id,
                        "status": rnd.choice(["applied", "skipped_stale", "rejected"]),
                    }
                    for e in s.pending_events(30)
                ]
                s.acknowledge(results, now)
            if step % 10 == 9:
                assert s.summary() == summary_by_scan(s)
        stored_digests_match(s)
        assert s.summary() == summary_by_scan(s)
        for name in TABLES:
            assert s.bucket_summary(name) == buckets_by_scan(s, name)
        s.reset_mirror()
        assert s.summary() == summary_by_scan(s)
    finally:
        s.close()


def test_an_edit_that_bypassed_the_store_is_caught_by_the_digest_check(tmp_path):
    s = Store(tmp_path / "agent.db")
    try:
        s.write(
            [
                (f"e{i}", parse_change(TABLES["products"], {"id": f"p{i}", "name": "x"}))
                for i in range(5)
            ],
            T0,
        )
        assert s.check_digests() == 0
        # Someone edits the file with another tool: the stored digest no longer matches.
        s.db.execute_sql("UPDATE products SET name = 'edited by hand' WHERE id = 'p2'")
        s.db.execute_sql(
            "INSERT INTO products (id, updated_at, stock_quantity) VALUES ('ghost', ?, 1)", (T0,)
        )
        assert s.summary() != summary_by_scan(s)  # the aggregate alone cannot see it...
        assert s.check_digests() == 2  # ...the check (the engine runs it before reconciles) does
        assert s.summary() == summary_by_scan(s)
        assert s.bucket_summary("products") == buckets_by_scan(s, "products")
        assert s.check_digests() == 0
    finally:
        s.close()
