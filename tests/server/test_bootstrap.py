"""The seed's bootstrap (fill an empty table once, one machine at a time) and diagnostics, at
the service. Both backends, on the test's server clock."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from protocol.messages import parse_bootstrap
from server import bootstrap as server_bootstrap
from server.bootstrap import BOOTSTRAP_LEASE_MS
from server.push import MAX_EVENTS_PER_REQUEST
from tests.server.conftest import push_one


def items(table: str, records: list[dict], machine: str = "front") -> list:
    body = {"machineId": machine, "localUpdates": records}
    return parse_bootstrap(table, body).items


def state(service, table: str) -> dict | None:
    B = service.m.BootstrapState
    with service.connection():
        row = (
            B.select()
            .where((B.tenant_id == service.tenant) & (B.table_name == table))
            .dicts()
            .first()
        )
    return row


def test_an_empty_table_is_bootstrapped_once(service, clock):
    records = [{"id": f"p{i}", "name": f"P{i}", "price": "1.50"} for i in range(3)]
    answer = service.bootstrap("products", "front", items("products", records))
    assert answer == {"bootstrapped": True, "processed": 3, "conflicts": []}
    assert len(service.list_live("products")) == 3
    assert service.get_live("products", "p1")["price"] == Decimal("1.50")
    saved = state(service, "products")
    assert saved is not None and (saved["status"], saved["machine_id"]) == ("completed", "front")
    assert (saved["records_count"], saved["completed_at"]) == (3, clock.now)
    again = service.bootstrap("products", "other", items("products", records, "other"))
    assert again == {"bootstrapped": False, "reason": "already_completed"}
    # Another table of the same shop has its own state.
    assert service.bootstrap("supplies", "front", items("supplies", [{"id": "s1"}]))["bootstrapped"]


def test_a_table_with_rows_is_not_bootstrapped(service, clock):
    push_one(service, "products", {"id": "there", "name": "já no servidor"})
    answer = service.bootstrap("products", "front", items("products", [{"id": "p1"}]))
    assert answer == {"bootstrapped": False, "reason": "server_not_empty"}
    assert service.get_live("products", "p1") is None
    saved = state(service, "products")
    assert saved is not None and (saved["status"], saved["records_count"]) == ("completed", 1)
    assert service.bootstrap("products", "front", [])["reason"] == "already_completed"


def test_bootstrap_records_keep_their_edit_time_and_lose_to_newer_edits_and_deletes(service, clock):
    push_one(service, "products", {"id": "gone", "_op": "delete"})  # a tombstone: no live row
    clock.advance(1000)
    old = "2029-12-31T00:00:00.000Z"  # before the delete, on the front end's clock
    records = [
        {"id": "gone", "name": "ressuscitado?", "updatedAt": old},
        {"id": "p1", "name": "Pão", "updatedAt": old},
        {"id": "bad", "price": "-1"},
    ]
    answer = service.bootstrap("products", "front", items("products", records))
    assert answer["bootstrapped"] is True and answer["processed"] == 1
    assert [(c["id"], c["status"]) for c in answer["conflicts"]] == [
        ("gone", "skipped_stale"),
        ("bad", "rejected"),
    ]
    assert service.get_live("products", "gone") is None
    assert service.get_live("products", "p1")["updatedAt"] == old


def test_another_machine_is_locked_out_until_the_lease_runs_out(service, clock, monkeypatch):
    """Between chunks the state is `in_progress`, committed: another machine is refused; the
    same bootstrap resumed by its own machine goes on."""
    records = [{"id": f"p{i}"} for i in range(MAX_EVENTS_PER_REQUEST + 2)]
    seen: list[dict] = []
    push = server_bootstrap._push.push
    calls = [0]

    def push_between_chunks(ctx, *args, **kw):
        calls[0] += 1
        if calls[0] == 2:  # the first chunk is committed, the second not yet
            result: list[dict] = []
            other = threading.Thread(
                target=lambda: result.append(
                    service.bootstrap("products", "other", items("products", [{"id": "x"}]))
                )
            )
            other.start()
            other.join(30)
            seen.extend(result)
            seen.append(state(service, "products") or {})
        return push(ctx, *args, **kw)

    monkeypatch.setattr(server_bootstrap._push, "push", push_between_chunks)
    answer = service.bootstrap("products", "front", items("products", records))
    assert calls[0] == 2
    assert seen[0] == {"bootstrapped": False, "reason": "locked_by_other_machine"}
    assert (seen[1]["status"], seen[1]["machine_id"]) == ("in_progress", "front")
    assert seen[1]["records_count"] == MAX_EVENTS_PER_REQUEST
    assert answer["processed"] == len(records) and answer["bootstrapped"] is True
    assert service.get_live("products", "x") is None


def test_a_stale_lease_is_taken_over(service, clock, monkeypatch):
    def crash(*args, **kw):
        raise RuntimeError("the front end's machine died mid-bootstrap")

    monkeypatch.setattr(server_bootstrap._push, "push", crash)
    with pytest.raises(RuntimeError):
        service.bootstrap("products", "front", items("products", [{"id": "p1"}]))
    monkeypatch.undo()
    other = items("products", [{"id": "p2"}], "other")
    assert service.bootstrap("products", "other", other)["reason"] == "locked_by_other_machine"
    clock.advance(BOOTSTRAP_LEASE_MS - 1)
    assert service.bootstrap("products", "other", other)["reason"] == "locked_by_other_machine"
    clock.advance(1)
    answer = service.bootstrap("products", "other", other)
    assert answer == {"bootstrapped": True, "processed": 1, "conflicts": []}
    assert state(service, "products")["machine_id"] == "other"


def test_the_same_machine_resumes_its_bootstrap(service, clock, monkeypatch):
    """A front end that crashed after its first chunk retries: its rows are there (the table
    is not empty), its bootstrap goes on, the events already applied are not applied again."""
    records = [{"id": f"p{i}", "eventId": f"e{i}"} for i in range(MAX_EVENTS_PER_REQUEST + 1)]
    push = server_bootstrap._push.push
    calls = [0]

    def crash_on_second_chunk(*args, **kw):
        calls[0] += 1
        if calls[0] == 2:
            raise RuntimeError("crash")
        return push(*args, **kw)

    monkeypatch.setattr(server_bootstrap._push, "push", crash_on_second_chunk)
    with pytest.raises(RuntimeError):
        service.bootstrap("products", "front", items("products", records))
    monkeypatch.undo()
    assert len(service.list_live("products")) == MAX_EVENTS_PER_REQUEST
    answer = service.bootstrap("products", "front", items("products", records))
    assert answer == {"bootstrapped": True, "processed": 1, "conflicts": []}
    assert len(service.list_live("products")) == len(records)


def test_diagnostics_count_live_rows_latest_edit_and_missing_expected_fields(service, clock):
    empty = service.diagnostics()
    assert set(empty) == {"products", "orders", "order_items", "supplies", "technical_sheets"}
    assert empty["products"] == {
        "total": 0,
        "latestUpdatedAt": None,
        "missingByField": dict.fromkeys(
            ["name", "price", "costPrice", "category", "stock_quantity", "isActive"], 0
        ),
    }
    assert empty["order_items"]["missingByField"] == {}
    push_one(service, "products", {"id": "p1", "name": "Pão", "price": "1.00", "category": ""})
    clock.advance(1000)
    push_one(service, "products", {"id": "p2", "name": "", "isActive": False})
    push_one(service, "products", {"id": "p3", "name": "x", "_op": "delete"})
    push_one(service, "technical_sheets", {"id": "t1", "name": "Bolo", "components": []})
    push_one(service, "technical_sheets", {"id": "t2", "name": "Pão", "components": None})
    found = service.diagnostics()
    products = found["products"]
    assert products["total"] == 2 and products["latestUpdatedAt"] == "2030-01-01T12:00:01.000Z"
    # Missing: NULL or empty text; false, 0 and the defaults are values.
    assert products["missingByField"] == {
        "name": 1,
        "price": 1,
        "costPrice": 0,
        "category": 2,
        "stock_quantity": 0,
        "isActive": 0,
    }
    # An empty list of components is present (chosen), null is missing.
    assert found["technical_sheets"]["missingByField"] == {
        "name": 0,
        "components": 1,
        "totalCost": 0,
        "isActive": 0,
    }
