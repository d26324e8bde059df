"""A push's answer built from its own rows (server/echo.py) is the page a read after it
gives, to the byte: random pushes of every kind (new rows, patches, undeclared fields,
decimals, JSON, deletes, increments of known and unknown rows, stale edits, repeated events)
on every table, both backends, small pages too; for a table's push (`POST /api/sync/{table}`)
and for a batch of several tables (`POST /api/sync/batch`, HTTP or the live socket)."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from protocol import TABLES, ProtocolError, dumps
from protocol.messages import parse_batch_push, parse_table_push
from server import echo, pull
from server.service import SyncService

from .conftest import T0, Clock, new_event_id


def _value(kind: str, rng: random.Random) -> Any:
    if kind == "text":
        return rng.choice(["Pão", "Bolo de cenoura", 'aspas " e \\ barra', "ç ã é", ""])
    if kind == "decimal":
        return rng.choice(["0", "1.5", "2.50", "10", "0.001", 3, 7.25, "12.3456"])
    if kind == "integer":
        return rng.randint(0, 500)
    if kind == "timestamp":
        return T0 - rng.randint(0, 10**7)
    if kind == "boolean":
        return rng.choice([True, False, 1, "sim"])
    return rng.choice([[], [{"supplyId": "s1", "quantity": 1.5}], {"b": 1, "a": [2, "x"]}])


def _record(table: str, row_id: str, rng: random.Random, clock: Clock) -> dict[str, Any]:
    t = TABLES[table]
    op = rng.random()
    if op < 0.15:
        return {"id": row_id, "_op": "delete", "updatedAt": clock.now - rng.randint(0, 5000)}
    if op < 0.35 and t.counters:
        name = rng.choice(t.counters)
        delta = rng.choice([-2, 1, 5]) if name == "stock_quantity" else rng.choice(["-0.5", 2])
        return {"id": row_id, "_op": "increment", name: delta}
    record: dict[str, Any] = {"id": row_id}
    for f in rng.sample(list(t.fields), k=rng.randint(1, len(t.fields))):
        value = _value(f.kind.value, rng)
        if f.kind.value == "decimal" and (f.positive or f.non_negative):
            value = abs(Decimal(str(value))) + (1 if f.positive else 0)
            if f.scale < 4:
                value = round(value, f.scale)
        if f.kind.value == "decimal" and f.scale < 4:
            value = round(Decimal(str(value)), f.scale)
        if f.kind.value == "integer" and f.non_negative:
            value = abs(value)
        record[f.name] = value
    if rng.random() < 0.4:
        record[rng.choice(["corFavorita", "zeta", "alpha"])] = rng.choice(
            [1, "x", {"z": 1, "a": Decimal("2.5")}, None]
        )
    # Edits from a little in the past: some lose to a newer stored edit (stale).
    record["updatedAt"] = clock.now - rng.randint(0, 5000)
    return record


def answered_from_rows(monkeypatch: pytest.MonkeyPatch, name: str) -> list[bool]:
    """For each call of `echo.<name>` from now on: whether it answered from the push's own
    rows (else the answer was read from the database)."""
    used: list[bool] = []
    real = getattr(echo, name)

    def spy(*args: Any, **kw: Any) -> Any:
        page = real(*args, **kw)
        used.append(page is not None)
        return page

    monkeypatch.setattr(echo, name, spy)
    return used


@pytest.mark.parametrize("seed", [1, 2])
def test_the_answer_from_the_push_rows_is_the_page_a_read_gives(
    service: SyncService, clock: Clock, monkeypatch, seed: int
) -> None:
    rng = random.Random(seed)
    used = answered_from_rows(monkeypatch, "own_page")
    cursor = 0
    repeated: list[dict[str, Any]] = []
    for _ in range(40):
        clock.advance(rng.randint(1, 3000))
        table = rng.choice(list(TABLES))
        ids = [f"{table[:3]}-{rng.randint(1, 8)}" for _ in range(rng.randint(1, 6))]
        updates = [
            {"eventId": new_event_id(), "record": _record(table, i, rng, clock)} for i in ids
        ]
        if repeated and rng.random() < 0.3:
            updates.append(rng.choice(repeated))  # a repeated event: its receipt, no change
        repeated = [u for u in updates if u["record"]["id"].startswith(table[:3])]
        request = parse_table_push(
            table, {"machineId": "caixa-1", "localUpdates": updates, "cursor": cursor}
        )
        limit = rng.choice([2, 500])
        _, head, page = service.push_and_pull(table, "caixa-1", request.items, cursor, limit)
        read = pull.pull(service.ctx, table, cursor, limit, None)
        assert dumps(page) == dumps(read)
        cursor = page["cursor"] if not page["hasMore"] else head
        if page["hasMore"]:
            # Jump to the head, as a client at the head would be after paging.
            cursor = service.head()
    assert any(used), "the push's own rows were never used"


@pytest.mark.parametrize("seed", [3, 4])
def test_a_batch_answer_from_the_push_rows_is_the_changes_page_a_read_gives(
    service: SyncService, clock: Clock, monkeypatch, seed: int
) -> None:
    rng = random.Random(seed)
    used = answered_from_rows(monkeypatch, "own_changes")
    cursor = 0
    repeated: list[dict[str, Any]] = []
    refused = 0
    for _ in range(40):
        clock.advance(rng.randint(1, 3000))
        events = []
        for table in rng.sample(list(TABLES), k=rng.randint(1, 3)):
            for row_id in {f"{table[:3]}-{rng.randint(1, 8)}" for _ in range(rng.randint(1, 4))}:
                record = _record(table, row_id, rng, clock)
                events.append({"eventId": new_event_id(), "table": table, "record": record})
        if repeated and rng.random() < 0.3:
            events.append(rng.choice(repeated))  # a repeated event: its receipt, no change
        machine, items, _ = parse_batch_push(
            {"machineId": "caixa-1", "events": events, "cursor": cursor}
        )
        limit = rng.choice([2, 500])
        try:
            _, head, page = service.push_and_changes(machine, items, cursor, limit)
        except ProtocolError as exc:  # all or nothing: an increment of an unknown row
            assert exc.code == "invalid_batch"
            refused += 1
            continue
        repeated = events
        read = pull.changes(service.ctx, cursor, limit, None)
        assert dumps(page) == dumps(read)
        cursor = page["cursor"] if not page["hasMore"] else service.head()
    assert any(used), "the push's own rows were never used"
    assert refused < 40


def test_a_batch_from_behind_the_head_gets_the_changes_read_from_the_database(
    service: SyncService,
) -> None:
    def push(cursor: int, table: str, record: dict[str, Any], machine: str) -> Any:
        body = {
            "machineId": machine,
            "events": [{"eventId": new_event_id(), "table": table, "record": record}],
            "cursor": cursor,
        }
        _, items, _ = parse_batch_push(body)
        return service.push_and_changes(machine, items, cursor)

    push(0, "supplies", {"id": "s1", "name": "Farinha"}, "caixa-2")
    _, head, page = push(0, "products", {"id": "p1", "name": "Bolo"}, "caixa-1")
    assert [(c["table"], c["record"]["id"]) for c in page["changes"]] == [
        ("supplies", "s1"),
        ("products", "p1"),
    ]
    assert page["cursor"] == head == 2 and not page["hasMore"]
    _, head, page = push(head, "products", {"id": "p2", "name": "Sonho"}, "caixa-1")
    assert [c["record"]["id"] for c in page["changes"]] == ["p2"] and page["cursor"] == head


def test_a_client_behind_the_head_gets_the_page_read_from_the_database(
    service: SyncService,
) -> None:
    def push(cursor: int, *records: dict[str, Any], machine: str = "caixa-1") -> Any:
        request = parse_table_push(
            "products",
            {
                "machineId": machine,
                "localUpdates": [{"eventId": new_event_id(), "record": r} for r in records],
                "cursor": cursor,
            },
        )
        return service.push_and_pull("products", machine, request.items, cursor)

    push(0, {"id": "a", "name": "Pão", "price": "1.50"}, machine="caixa-2")
    _, head, page = push(0, {"id": "b", "name": "Bolo", "price": 3})
    assert [r["id"] for r in page["synced"]] == ["a", "b"]
    assert page["cursor"] == head == 2
