"""Summaries as the server computes them, and the local reconcile log."""

from __future__ import annotations

from decimal import Decimal

import pytest

from protocol import TABLES, to_iso
from protocol.messages import PushItem
from tests.agent.store.conftest import T0, ch

# -- summaries -----------------------------------------------------------------------------


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


# -- reconcile log -------------------------------------------------------------------------


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


# -- the seed's diagnostics and reconcile, from the view -------------------------------------


def test_diagnostics_equal_the_servers_for_the_same_rows(store, service):
    records = [
        ("products", {"id": "p1", "name": "Pão", "price": "1", "category": "padaria"}),
        ("products", {"id": "p2", "name": "", "category": ""}),
        ("products", {"id": "p3", "name": "Sem nada", "isActive": False}),
        ("technical_sheets", {"id": "t1", "name": "Massa", "components": ""}),
        ("technical_sheets", {"id": "t2", "name": "Vazia", "components": []}),
        ("orders", {"id": "o1", "orderNumber": "", "total": "0"}),
    ]
    items = [
        PushItem(f"e{n}", ch(t, r), record_id=r["id"], table=t) for n, (t, r) in enumerate(records)
    ]
    results, _ = service.push("server-side", items)
    assert all(r["status"] == "applied" for r in results), results
    page = service.changes(0, 5000)
    store.apply_pulled(page["changes"], page["cursor"])
    local = store.diagnostics()
    assert local == service.diagnostics()
    assert local["products"]["total"] == 3
    assert local["products"]["missingByField"]["name"] == 1
    assert local["products"]["missingByField"]["category"] == 2  # "" and never given
    assert local["products"]["missingByField"]["isActive"] == 0  # false is a value
    assert local["technical_sheets"]["missingByField"]["components"] == 1  # "" is missing
    assert local["supplies"] == {
        "total": 0,
        "latestUpdatedAt": None,
        "missingByField": dict.fromkeys(TABLES["supplies"].expected, 0),
    }


def test_a_front_ends_summary_is_compared_with_the_view_in_the_seeds_words(store):
    store.write([("e1", ch("products", {"id": "p1", "name": "Pão"}))], T0)
    store.write([("e2", ch("products", {"id": "p2", "name": "Bolo"}))], T0 + 5)
    mine = store.summary()
    client = {
        name: {"count": s["count"], "latestUpdatedAt": s["latestUpdatedAt"]}
        for name, s in mine.items()
    }
    same = store.compare_summary(client, T0 + 10)
    assert same["isConsistent"] is True and same["mismatches"] == []
    assert [s["table"] for s in same["serverSummary"]] == list(TABLES)
    assert same["serverSummary"][0] == {"table": "products", **mine["products"]}

    behind = {
        "products": {"count": 1, "latestUpdatedAt": to_iso(T0)},
        "orders": {"count": 0, "latestUpdatedAt": None},
        "supplies": {"latestUpdatedAt": None},  # the seed's `count ?? 0`
        "order_items": {"count": 0, "latestUpdatedAt": None, "checksum": "00000000000000ff"},
    }
    result = store.compare_summary(behind, T0 + 11)
    assert result["isConsistent"] is False
    reasons = {m["table"]: m for m in result["mismatches"]}
    assert reasons["products"]["reason"] == "count_and_latest_updatedAt_mismatch"
    assert reasons["products"]["client"] == {"count": 1, "latestUpdatedAt": to_iso(T0)}
    assert reasons["products"]["server"]["count"] == 2
    assert reasons["order_items"]["reason"] == "checksum_mismatch"
    assert reasons["order_items"]["checksumMismatch"] is True
    assert reasons["technical_sheets"] == {
        "table": "technical_sheets",
        "reason": "missing_client_table",
        "server": same["serverSummary"][-1],
        "client": None,
    }
    assert set(reasons) == {"products", "order_items", "technical_sheets"}
    # Each comparison is in the local log, as the front end's ("client").
    latest, first = store.reconcile_history(2)
    assert (latest["status"], latest["strategy"], latest["is_consistent"]) == (
        "divergent",
        "client",
        False,
    )
    assert [m["table"] for m in latest["mismatches"]] == [m["table"] for m in result["mismatches"]]
    assert (first["status"], first["strategy"]) == ("consistent", "client")
