"""The upgrade of a POPULATED v2 database (before shops) to the latest schema, on both
backends; and adding a column the way the README says (one declaration in protocol/ plus one
`add_columns` migration).

The v2 database is built with the frozen migrations 1-2 only and filled with SQL, as a v2
server left it (digests of the old formula included), never through today's code.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import peewee as pw
import pytest

from protocol import TABLES, Field, Kind, Table, combine, from_wire, now_ms, row_digest, to_signed
from protocol.tenancy import DEFAULT_TENANT
from server import migrations
from server.auth import KeyStore, hash_key
from server.db import bind_models, column_name, connect_database
from server.identity import read_database_id
from server.migrations import migrate
from server.migrations.steps import add_columns
from server.service import SyncService
from tests.server.conftest import pull_all, push_one

T = 1_893_456_000_000  # 2030-01-01T00:00:00Z, when the v2 server stored these rows
OLD_DIGEST = 12345  # what a v2 server's digest might be: not digest v2
KEY = "pdv_the-machine-key-of-caixa-1"


@pytest.fixture
def open_db(tmp_path):
    dbs: list[pw.Database] = []

    def open_(url: str) -> pw.Database:
        db, _ = connect_database(url, Path(tmp_path))
        dbs.append(db)
        return db

    yield open_
    for db in dbs:
        db.close_all()


def _meta(seq: int, deleted: bool = False) -> str:
    return f"{T + seq}, {T + seq}, {'TRUE' if deleted else 'FALSE'}, {seq}, {0 if deleted else OLD_DIGEST}, 0"


def build_v2(db: pw.Database, monkeypatch) -> int:
    """A v2 database with rows, a tombstone, events, machines, a key and a reconcile.
    Returns its identity."""
    with monkeypatch.context() as m:
        m.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:2])
        m.setattr(migrations, "LATEST", 2)
        assert migrate(db) == [1, 2]
    meta = "updated_at, lww_at, deleted, seq, digest, bucket"
    statements = [
        "INSERT INTO products (id, name, price, category, stock_quantity, created_at, "
        f"{meta}) VALUES ('p1', 'Pão', '0.50', 'Padaria', 3, {T}, {_meta(1)})",
        f"INSERT INTO products (id, {meta}) VALUES ('p2', {_meta(2, deleted=True)})",
        "INSERT INTO supplies (id, name, stock, unit, cost_per_unit, created_at, "
        f"{meta}) VALUES ('s1', 'Farinha', '2.500', 'kg', '4.2500', {T}, {_meta(3)})",
        "INSERT INTO orders (id, customer_name, total, status, created_at, "
        f"{meta}) VALUES ('o1', 'Ana', '10.00', 'Pago', {T}, {_meta(4)})",
        "INSERT INTO order_items (id, order_id, product_id, quantity, price, created_at, "
        f"{meta}) VALUES ('i1', 'o1', 'p1', '2.000', '5.00', {T}, {_meta(5)})",
        "UPDATE sync_state SET value = 5 WHERE key = 'seq'",
        "INSERT INTO sync_state (key, value) VALUES ('events_applied', 5), "
        "('conflicts_stale', 1), ('tombstone_horizon', 0)",
        "INSERT INTO sync_events (event_id, machine_id, table_name, record_id, status, result, "
        "seq, created_at) VALUES ('ev-1', 'caixa-1', 'products', 'p1', 'applied', "
        '\'{"eventId":"ev-1","id":"p1","table":"products","status":"applied","seq":1}\', '
        f"1, {T})",
        "INSERT INTO sync_machines (machine_id, first_seen, last_seen, cursor, events_pushed) "
        f"VALUES ('caixa-1', {T}, {T}, 5, 5), ('caixa-2', {T}, {T}, 2, 0)",
        "INSERT INTO api_keys (machine_id, key_hash, prefix, created_at) "
        f"VALUES ('caixa-1', '{hash_key(KEY)}', 'pdv_', {T})",
        "INSERT INTO reconcile_log (machine_id, status, is_consistent, mismatches_count, "
        "mismatches, client_summary, server_summary, cursor, created_at) "
        f"VALUES ('caixa-1', 'consistent', TRUE, 0, '[]', '{{}}', '[]', 5, {T})",
    ]
    with db.connection_context(), db.atomic():
        for sql in statements:
            db.execute_sql(sql)
        (identity,) = db.execute_sql(
            "SELECT value FROM sync_state WHERE key = 'database_id'"
        ).fetchone()
    return int(identity)


def stored_digests(db: pw.Database, table: str) -> dict[str, int]:
    with db.connection_context():
        rows = db.execute_sql(
            f'SELECT id, digest FROM "{table}" WHERE deleted = %s' % db.param, (False,)
        ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def test_a_populated_v2_database_upgrades_keeping_everything(database_url, open_db, monkeypatch):
    db = open_db(database_url)
    identity = build_v2(db, monkeypatch)
    started = now_ms()
    assert migrate(db) == [3, 4]
    finished = now_ms()
    svc = SyncService(bind_models(db))

    # Rows kept, in the default shop, the new columns at their declared defaults.
    product = svc.get_live("products", "p1")
    assert product is not None and svc.tenant == DEFAULT_TENANT
    assert (product["name"], product["price"], product["stock_quantity"]) == (
        "Pão",
        Decimal("0.50"),
        3,
    )
    assert (product["costPrice"], product["isActive"]) == (0, True)
    supply = svc.get_live("supplies", "s1")
    assert supply is not None and supply["costPerUnit"] == Decimal("4.25")
    assert {k: supply[k] for k in ("sku", "category", "type", "purchaseFormat", "isActive")} == {
        "sku": "",
        "category": "Geral",
        "type": "ingredient",
        "purchaseFormat": "unidade",
        "isActive": True,
    }
    assert (supply["minStock"], supply["packageCost"], supply["supplier"]) == (0, None, None)
    order = svc.get_live("orders", "o1")
    assert order is not None and (order["totalCost"], order["orderNumber"]) == (0, None)
    assert order["paymentMethod"] is None and order["status"] == "Pago"
    assert svc.get_live("order_items", "i1")["quantity"] == Decimal("2.000")
    assert svc.list_live("technical_sheets") == []

    # Every digest is digest v2 of the row as read back; summaries agree with a fresh
    # computation from pulled rows.
    for name, table in TABLES.items():
        rows, _ = pull_all(svc, name)
        live = [from_wire(table, r) for r in rows if not r.get("_deleted")]
        assert stored_digests(db, name) == {r["id"]: to_signed(row_digest(table, r)) for r in live}
        summary = {s["table"]: s for s in svc.summary().tables}[name]
        assert summary["checksum"] == combine(row_digest(table, r) for r in live)
        assert summary["count"] == len(live)

    # The sequence, the tombstone and the cursors are unchanged.
    assert svc.head() == 5
    assert [(r["id"], r.get("_deleted", False)) for r in pull_all(svc, "products")[0]] == [
        ("p1", False),
        ("p2", True),
    ]
    svc.check_cursor(5, "caixa-1")
    assert svc.pull("products", 5, machine_id="caixa-1")["synced"] == []
    stats = svc.stats()
    assert (stats["cursor"], stats["eventsProcessed"], stats["conflicts"]) == (5, 5, 1)
    assert [(m["machineId"], m["cursor"]) for m in stats["machines"]] == [
        ("caixa-1", 5),
        ("caixa-2", 2),
    ]
    # The receipts: a repeated event replays its result, changing nothing.
    again = push_one(svc, "products", {"id": "p1", "name": "outro"}, event_ids=["ev-1"])
    assert again["duplicate"] is True and again["seq"] == 1
    assert svc.get_live("products", "p1")["name"] == "Pão"
    # The key still opens, for the default shop; the history, the identity stay.
    principal = KeyStore(svc.m, None).verify(KEY)
    assert principal is not None and (principal.machine_id, principal.tenant) == (
        "caixa-1",
        DEFAULT_TENANT,
    )
    assert [h["machine_id"] for h in svc.history()] == ["caixa-1"]
    assert read_database_id(db) == format(identity, "016x")
    # Change times: the migration's (see m0003_shops.py), so a seed client reads them once.
    with db.connection_context():
        times = {r[0] for r in db.execute_sql("SELECT changed_at FROM products").fetchall()}
    assert len(times) == 1 and started <= times.pop() <= finished
    assert [r["id"] for r in svc.fetch_since("products", finished)] == ["p1", "p2"]
    # Nothing of it belongs to another shop; new changes go on from the head.
    assert svc.scoped("b").list_live("products") == [] and svc.scoped("b").head() == 0
    assert push_one(svc, "products", {"id": "p3", "name": "Novo"})["seq"] == 6
    assert migrate(db) == []


def test_keys_and_indexes_lead_with_the_shop(database_url, open_db, monkeypatch):
    db = open_db(database_url)
    build_v2(db, monkeypatch)
    migrate(db)
    with db.connection_context():
        for name in [*TABLES, "sync_state", "sync_events", "sync_machines", "bootstrap_state"]:
            assert db.get_primary_keys(name)[0] == "tenant_id", name
        for name in TABLES:
            indexes = [tuple(i.columns) for i in db.get_indexes(name)]
            assert all(cols[0] == "tenant_id" for cols in indexes), (name, indexes)
            assert {("tenant_id", "seq"), ("tenant_id", "changed_at")} <= set(indexes), name
        assert ("tenant_id", "created_at") in [tuple(i.columns) for i in db.get_indexes("orders")]
        assert ("tenant_id", "order_id") in [
            tuple(i.columns) for i in db.get_indexes("order_items")
        ]


def test_adding_a_column_is_a_declaration_plus_one_migration(database_url, open_db, monkeypatch):
    """The README's recipe: declare `barcode` in protocol/schema.py, add a migration calling
    add_columns. Values a front end sent before (kept as undeclared fields) move into the
    column; the digests follow; nothing else is edited."""
    db = open_db(database_url)
    migrate(db)
    svc = SyncService(bind_models(db))
    push_one(svc, "products", {"id": "early", "name": "A", "barcode": "789"})  # undeclared yet
    push_one(svc, "products", {"id": "plain", "name": "B"})
    push_one(svc.scoped("b"), "products", {"id": "early", "name": "C", "barcode": 42})

    products = TABLES["products"]
    declared = Table(
        "products",
        (*products.fields, Field("barcode", Kind.TEXT, max_length=64, default="sem código")),
        entity="product",
    )
    monkeypatch.setitem(TABLES, "products", declared)  # the declaration in protocol/

    def m_barcode(db: pw.Database) -> None:  # the migration
        add_columns(db, "products", [("barcode", "text", "sem código")])

    latest = migrations.LATEST + 1
    monkeypatch.setattr(
        migrations, "MIGRATIONS", [*migrations.MIGRATIONS, (latest, "barcode", m_barcode)]
    )
    monkeypatch.setattr(migrations, "LATEST", latest)
    assert migrate(db) == [latest]

    svc = SyncService(bind_models(db))  # the models follow the declaration by themselves
    assert svc.get_live("products", "early")["barcode"] == "789"
    assert svc.get_live("products", "plain")["barcode"] == "sem código"
    # 42 is not text: it stays an undeclared field (never dropped), the column its default.
    with db.connection_context():
        kept = db.execute_sql(
            f"SELECT {column_name('barcode')}, extra FROM products WHERE tenant_id = 'b'"
        ).fetchone()
    assert kept == ("sem código", '{"barcode":42}')
    push_one(svc, "products", {"id": "plain", "barcode": "123"})
    assert svc.pull("products", 0)["synced"][-1]["barcode"] == "123"
    rows, _ = pull_all(svc, "products")
    live = [from_wire(declared, r) for r in rows]
    assert all("barcode" not in r["_extra"] for r in live)
    summary = {s["table"]: s for s in svc.summary().tables}["products"]
    assert summary["checksum"] == combine(row_digest(declared, r) for r in live)
    assert stored_digests(db, "products") != {}
