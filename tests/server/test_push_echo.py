"""A table push's answer built from its own rows (server/echo.py) is the page a read after
it gives, to the byte: random pushes of every kind (new rows, patches, undeclared fields,
decimals, JSON, deletes, increments of known and unknown rows, stale edits, repeated events)
on every table, both backends, small pages too."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from protocol import TABLES, dumps
from protocol.messages import parse_table_push
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


@pytest.mark.parametrize("seed", [1, 2])
def test_the_answer_from_the_push_rows_is_the_page_a_read_gives(
    service: SyncService, clock: Clock, monkeypatch, seed: int
) -> None:
    rng = random.Random(seed)
    used: list[int] = []
    own_page = echo.own_page

    def spy(*args: Any, **kw: Any) -> Any:
        page = own_page(*args, **kw)
        used.append(page is not None)
        return page

    monkeypatch.setattr(echo, "own_page", spy)
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
