"""`POST /api/sync/{table}` as one unit of work (push_and_pull), and a pull that repeats a
recently recorded cursor writing nothing: the machine's recorded cursor, which garbage
collection relies on, stays exactly what it was with one write per step."""

from __future__ import annotations

import pytest

from protocol import ProtocolError
from protocol.messages import parse_table_push
from server.service import PULL_TOUCH_MS

from .conftest import new_event_id, pull_all, push_one


def items_of(table: str, records, machine: str | None, event_ids=None):
    ids = event_ids or [new_event_id() for _ in records]
    body = {
        "machineId": machine,
        "localUpdates": [{"eventId": e, "record": r} for e, r in zip(ids, records, strict=True)],
    }
    request = parse_table_push(table, body)
    machine_id, items = request.machine_id, request.items
    return machine_id, items


def push_and_pull(
    svc, table: str, since: int, *records: dict, machine: str | None = "caixa-1", event_ids=None
):
    machine_id, items = items_of(table, records, machine, event_ids)
    return svc.push_and_pull(table, machine_id, items, since)


def recorded(svc, machine: str) -> tuple[int, int] | None:
    M = svc.m.Machine
    with svc.connection():
        row = M.get_or_none(M.machine_id == machine)
    return None if row is None else (row.cursor, row.last_seen)


def test_push_and_pull_returns_what_push_then_pull_returned(service):
    push_one(service, "products", {"id": "p0", "name": "antes"}, machine="caixa-2")
    records = ({"id": "p1", "name": "Pão"}, {"id": "p0", "name": "x"})
    results, head, page = push_and_pull(service, "products", 0, *records, event_ids=["e1", "e2"])
    assert [(r["eventId"], r["status"], r["seq"]) for r in results] == [
        ("e1", "applied", 2),
        ("e2", "applied", 3),
    ]
    assert head == 3
    assert page == service.pull("products", 0)  # what the separate pull returned (read only here)
    assert (
        [r["id"] for r in page["synced"]] == ["p1", "p0"]
        and page["cursor"] == 3
        and not page["hasMore"]
    )
    assert recorded(service, "caixa-1")[0] == 0  # the cursor the pull started from
    # The same events again: duplicates, nothing new.
    again, head, _ = push_and_pull(service, "products", 3, *records, event_ids=["e1", "e2"])
    assert [r.get("duplicate") for r in again] == [True, True] and head == 3
    # The next request carries the reply's cursor: only what came after it.
    _, _, page = push_and_pull(service, "products", 3, {"id": "p2", "name": "Bolo"})
    assert [r["id"] for r in page["synced"]] == ["p2"] and page["cursor"] == 4
    assert recorded(service, "caixa-1")[0] == 3


def test_push_and_pull_below_the_horizon_still_asks_for_a_resync(service):
    for i in range(3):
        push_one(service, "products", {"id": f"p{i}", "name": "x"}, machine=None)
        push_one(service, "products", {"id": f"p{i}", "_op": "delete"}, machine=None)
    pull_all(service, "products", 6, machine="caixa-a")
    assert service.collect_garbage()["horizon"] == 6
    with pytest.raises(ProtocolError) as err:
        push_and_pull(service, "products", 2, machine="caixa-velha")
    assert err.value.code == "resync_required"
    # A full pull from 0 is always possible, and records 0 (it holds back the next purge).
    _, _, page = push_and_pull(service, "products", 0, machine="caixa-velha")
    assert page["cursor"] == 6 and recorded(service, "caixa-velha")[0] == 0


def test_a_pull_repeating_a_recent_cursor_writes_nothing_but_any_other_cursor_is_recorded(
    service, clock
):
    push_one(service, "products", {"id": "p1", "name": "x"})
    push_one(service, "products", {"id": "p2", "name": "y"})
    t0 = clock.now
    service.changes(1, machine_id="caixa-1")
    assert recorded(service, "caixa-1") == (1, t0)
    clock.advance(1000)
    service.changes(1, machine_id="caixa-1")  # the same cursor again, just now
    assert recorded(service, "caixa-1")[0] == 1
    if not service.postgres:
        assert recorded(service, "caixa-1")[1] == t0  # not written again
    clock.advance(PULL_TOUCH_MS)
    service.changes(1, machine_id="caixa-1")
    assert recorded(service, "caixa-1") == (1, clock.now)  # written again after a while
    # A different cursor is always recorded at once, backwards too (a restored store).
    service.changes(2, machine_id="caixa-1")
    assert recorded(service, "caixa-1") == (2, clock.now)
    service.changes(1, machine_id="caixa-1")
    assert recorded(service, "caixa-1")[0] == 1
    # A cursor recorded by push_and_pull counts as recorded: pulling back at the old one
    # right after it is written (never a recorded cursor above what the machine holds).
    push_and_pull(service, "products", 2, machine="caixa-1")
    assert recorded(service, "caixa-1")[0] == 2
    service.changes(1, machine_id="caixa-1")
    assert recorded(service, "caixa-1")[0] == 1
