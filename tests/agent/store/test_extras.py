"""Fields nobody declared, booleans and JSON through the store: a POS write keeps them in its
outbox payload, the server (in process) keeps them, another store pulls them into its view,
and both stores' digests equal the server's."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agent.store.store import Store
from protocol import TABLES, loads
from protocol.messages import parse_batch_push
from tests.agent.store.conftest import T0, ch


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


def push_outbox(store: Store, service) -> None:
    """What the engine does: the due events as one batch; the server's answer acknowledged."""
    events = store.due_events(T0 + 10_000)
    _, items, _ = parse_batch_push({"events": [e.wire() for e in events]})
    results, _ = service.push("pdv", items)
    assert all(r["status"] == "applied" for r in results), results
    store.acknowledge(results, T0 + 10_000)


def pull_all(store: Store, service) -> None:
    page = service.changes(store.cursor, 5000)
    store.apply_pulled(page["changes"], page["cursor"])


def test_undeclared_fields_go_from_a_pos_write_to_another_pdvs_view(tmp_path, service):
    a, b = Store(tmp_path / "a.db"), Store(tmp_path / "b.db")
    try:
        record = {
            "id": "p1",
            "name": "Pão de queijo",
            "price": "4.50",
            "isActive": False,
            "barcode": "7891234567895",
            "tags": ["doce", "festa"],
            "dimensions": {"peso": 0.25, "unidade": "kg"},
        }
        a.write([("e1", ch("products", record))], T0)
        # Read back at once, as they came (and kept in the outbox payload).
        mine = a.get("products", "p1")
        assert mine["isActive"] is False and mine["barcode"] == "7891234567895"
        assert mine["tags"] == ["doce", "festa"]
        assert mine["dimensions"] == {"peso": Decimal("0.25"), "unidade": "kg"}
        [event] = a.pending_events()
        assert {k: event.payload[k] for k in ("barcode", "tags", "dimensions")} == {
            "barcode": "7891234567895",
            "tags": ["doce", "festa"],
            "dimensions": {"peso": Decimal("0.25"), "unidade": "kg"},
        }
        # A later patch adds to them, key by key.
        a.write([("e2", ch("products", {"id": "p1", "tags": ["salgado"], "lote": 7}))], T0 + 1)
        assert a.get("products", "p1")["barcode"] == "7891234567895"
        assert a.get("products", "p1")["tags"] == ["salgado"]

        push_outbox(a, service)
        pull_all(a, service)
        pull_all(b, service)
        on_server = service.get_live("products", "p1")
        assert on_server is not None
        for store in (a, b):
            seen = store.get("products", "p1")
            assert seen == a.get("products", "p1")
            assert (seen["barcode"], seen["tags"], seen["lote"]) == (
                "7891234567895",
                ["salgado"],
                7,
            )
            assert seen["isActive"] is False
        server_summary, _, _ = service.summary()
        for entry in server_summary:
            for store in (a, b):
                assert store.summary()[entry["table"]]["checksum"] == entry["checksum"]
    finally:
        a.close()
        b.close()


def test_booleans_and_json_are_stored_exactly_and_digest_as_the_server(tmp_path, service):
    s = Store(tmp_path / "a.db")
    try:
        sheet = {
            "id": "t1",
            "name": "Massa básica",
            "components": [{"supplyId": "s1", "quantity": 0.5, "unit": "kg"}],
            "isActive": True,
            "preparationTime": 45,
            "totalCost": "12.30",
        }
        s.write([("e1", ch("technical_sheets", sheet))], T0)
        raw = s.db.execute_sql(
            "SELECT components, typeof(components), is_active, typeof(is_active) "
            "FROM technical_sheets"
        ).fetchone()
        assert raw == ('[{"quantity":0.5,"supplyId":"s1","unit":"kg"}]', "text", 1, "integer")
        got = s.get("technical_sheets", "t1")
        assert got["components"] == [{"supplyId": "s1", "quantity": Decimal("0.5"), "unit": "kg"}]
        assert got["isActive"] is True and got["type"] == "base"  # the declared default
        assert s.check_digests() == 0
        push_outbox(s, service)
        pull_all(s, service)
        [entry] = [e for e in service.summary()[0] if e["table"] == "technical_sheets"]
        assert s.summary()["technical_sheets"]["checksum"] == entry["checksum"]
        assert loads(s.db.execute_sql("SELECT data FROM server_rows").fetchone()[0])[
            "components"
        ] == [{"supplyId": "s1", "quantity": Decimal("0.5"), "unit": "kg"}]
    finally:
        s.close()


def test_every_table_is_a_store_table(store):
    for name in TABLES:
        store.write([(f"e-{name}", ch(name, {"id": "x"}))], T0)
        assert store.get(name, "x")["id"] == "x" and store.count(name) == 1
