"""The ingest path of a push (server/push.py, server/pushdb.py).

- On PostgreSQL a push reads and writes set-based, in two round trips (`_Batched`); nested in
  an outer transaction it takes the portable statements one at a time (`_Portable`, also
  SQLite's). Both must leave the same rows, receipts and counters and give the same results
  and sequence numbers: stale writes, increments (of unknown records too), deletes and
  tombstones, repeated events within one batch and across pushes, rejected events, an atomic
  batch refused whole, two shops.
- The pusher's cursor is checked inside the push's transaction, on the state it reads under
  its lock: a cursor the database cannot continue from is refused (409) before anything is
  applied, and before the refusals that need no database (413, 422).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import pytest

from protocol import ProtocolError
from protocol.messages import parse_batch_push, parse_table_push
from server import sql
from server.push import MAX_EVENTS_PER_REQUEST
from server.service import SyncService

from .conftest import T0, Clock


def _table_push(machine: str, cursor: int, *updates: tuple[str | None, dict]) -> dict:
    events = []
    for event_id, record in updates:
        event: dict[str, Any] = {"record": record}
        if event_id is not None:
            event["eventId"] = event_id
        events.append(event)
    return {"machineId": machine, "cursor": cursor, "localUpdates": events}


# (what, shop, request): "table" pushes go to POST /api/sync/products with a cursor, "batch"
# ones to POST /api/sync/batch (atomic).
SCRIPT: list[tuple[str, str, dict]] = [
    (
        "table",
        "default",
        _table_push(
            "caixa-1",
            0,
            (
                "e1",
                {
                    "id": "p1",
                    "name": "Pão",
                    "price": "1.50",
                    "stock_quantity": 10,
                    "updatedAt": T0 - 10_000,
                },
            ),  # fmt: skip
            ("e2", {"id": "p2", "name": "Bolo", "updatedAt": T0 - 10_000}),
            ("e3", {"id": "p1", "_op": "increment", "stock_quantity": -2}),
            ("e4", {"id": "p9", "_op": "increment", "stock_quantity": -1}),  # unknown record
            ("e5", {"id": "p1", "name": "older", "updatedAt": T0 - 20_000}),  # stale
            ("e1", {"id": "p1", "name": "Pão", "updatedAt": T0 - 10_000}),  # repeated in batch
            ("e6", {"id": "p4", "price": "abc"}),  # malformed: rejected
            (None, {"id": "p5", "name": "no event id"}),  # rejected
            ("e8", {"id": "p2", "_op": "delete"}),  # tombstone (edited now)
            ("e9", {"id": "p2", "name": "back?", "updatedAt": T0 - 15_000}),  # stale
            ("e10", {"id": "p3", "name": 'aspas " e \\', "corFav": {"b": 1, "a": "x"}}),
            ("e11", {"id": "p1", "_op": "increment", "stock_quantity": 2**53 - 1}),  # too big
            ("e12", {"id": "p6", "_op": "delete"}),  # never seen: a tombstone too
        ),
    ),
    (
        "table",
        "default",
        _table_push(
            "caixa-2",
            5,
            ("e3", {"id": "p1", "_op": "increment", "stock_quantity": -2}),  # repeated
            ("e20", {"id": "p1", "price": "2.25", "updatedAt": T0 - 5_000}),
            ("e21", {"id": "p9", "name": "now known", "updatedAt": T0 - 5_000}),
            ("e22", {"id": "p7", "name": "Sonho", "isActive": False}),
        ),
    ),
    (
        "table",
        "b",  # another shop: same ids and event ids, its own rows and sequence
        _table_push(
            "caixa-b",
            0,
            ("e1", {"id": "p1", "name": "Pão da loja b", "price": "3", "updatedAt": T0 - 1}),
            ("e3", {"id": "p1", "_op": "increment", "stock_quantity": 4}),
        ),
    ),
    (
        "batch",
        "default",
        {
            "machineId": "caixa-1",
            "events": [  # refused whole: the last increment would overflow
                {"eventId": "s1", "table": "orders", "record": {"id": "o1", "total": "5"}},
                {
                    "eventId": "s2",
                    "table": "products",
                    "record": {"id": "p1", "_op": "increment", "stock_quantity": 2**53 - 1},
                },
            ],  # fmt: skip
        },
    ),
    (
        "batch",
        "default",
        {
            "machineId": "caixa-1",
            "events": [  # a sale: order, item, stock
                {"eventId": "s1", "table": "orders", "record": {"id": "o1", "total": "5"}},
                {
                    "eventId": "s3",
                    "table": "order_items",
                    "record": {"id": "i1", "order_id": "o1", "product_id": "p1", "quantity": 2},
                },
                {
                    "eventId": "s4",
                    "table": "products",
                    "record": {"id": "p1", "_op": "increment", "stock_quantity": -2},
                },
            ],  # fmt: skip
        },
    ),
]


def _run_script(svc: SyncService, clock: Clock, nested: bool) -> list[Any]:
    """Every request of SCRIPT, its outcome (results and head, or the error refusing it);
    `nested`: each push inside an outer transaction (the portable statements)."""
    outcomes: list[Any] = []
    for kind, shop, body in SCRIPT:
        clock.advance(1000)
        s = svc.scoped(shop)
        outer = s.db.atomic() if nested else nullcontext()
        try:
            with s.connection(), outer:
                if kind == "table":
                    request = parse_table_push("products", body)
                    results, head, page = s.push_and_pull(
                        "products", request.machine_id, request.items, request.cursor or 0
                    )
                    outcomes.append((results, head, page))
                else:
                    machine_id, items, cursor = parse_batch_push(body)
                    outcomes.append(s.push(machine_id, items, atomic_batch=True, since=cursor))
        except ProtocolError as exc:
            outcomes.append((exc.code, exc.status, exc.details))
    return outcomes


def _stored(svc: SyncService) -> dict[str, list[tuple]]:
    """Every row the script can have written, all columns, in key order."""
    out = {}
    with svc.connection():
        for table in ("products", "orders", "order_items", "sync_events", "sync_machines"):
            key = (
                "event_id" if table == "sync_events" else "machine_id" if "mach" in table else "id"
            )
            cursor = svc.db.execute_sql(f"SELECT * FROM {table} ORDER BY tenant_id, {key}")
            out[table] = [tuple(r) for r in cursor.fetchall()]
        cursor = svc.db.execute_sql(
            "SELECT tenant_id, key, value FROM sync_state WHERE tenant_id <> '' "
            "ORDER BY tenant_id, key"
        )
        out["sync_state"] = [tuple(r) for r in cursor.fetchall()]
    return out


@pytest.mark.postgres
def test_set_based_and_portable_pushes_leave_the_same_rows_and_results(
    service_factory, pg_cluster, tmp_path
) -> None:
    runs: dict[str, tuple[list[Any], dict[str, list[tuple]]]] = {}
    for name, url, nested in (
        ("batched", pg_cluster.createdb(f"ingest_batched_{id(tmp_path)}"), False),
        ("portable", pg_cluster.createdb(f"ingest_portable_{id(tmp_path)}"), True),
        ("sqlite", f"sqlite:///{tmp_path / 'server.db'}", False),
    ):
        clock = Clock()
        svc = service_factory(url, clock)
        runs[name] = (_run_script(svc, clock, nested), _stored(svc))
    batched, portable, sqlite = runs["batched"], runs["portable"], runs["sqlite"]
    assert batched[0] == portable[0]
    assert batched[1] == portable[1]
    # The same results and sequence numbers on SQLite (the pages' decimals differ in form:
    # NUMERIC(18,4) on PostgreSQL).
    assert [o[:2] for o in batched[0]] == [o[:2] for o in sqlite[0]]

    first, second, shop_b, refused, sale = batched[0]
    statuses = [(r.get("eventId"), r["status"], r.get("duplicate", False)) for r in first[0]]
    assert statuses == [
        ("e1", "applied", False),
        ("e2", "applied", False),
        ("e3", "applied", False),
        ("e4", "applied", False),
        ("e5", "skipped_stale", False),
        ("e1", "applied", True),
        ("e6", "rejected", False),
        (None, "rejected", False),
        ("e8", "applied", False),
        ("e9", "skipped_stale", False),
        ("e10", "applied", False),
        ("e11", "rejected", False),
        ("e12", "applied", False),
    ]
    assert [r.get("seq") for r in first[0] if not r.get("duplicate")] == [
        1, 2, 3, 4, None, None, None, 5, None, 6, None, 7,
    ]  # fmt: skip
    assert first[1] == 7 and [r["id"] for r in first[2]["synced"]] == ["p1", "p9", "p2", "p3", "p6"]
    assert second[0][0]["duplicate"] and second[1] == 10
    assert shop_b[1] == 2 and [r["seq"] for r in shop_b[0]] == [1, 2]
    assert refused[:2] == ("invalid_batch", 422)
    assert [r["seq"] for r in sale[0]] == [11, 12, 13] and sale[1] == 13


@pytest.fixture
def service_at_10(service: SyncService, clock: Clock) -> SyncService:
    """A shop whose sequence is at 10."""
    body = _table_push("caixa-1", 0, *((f"seed{i}", {"id": f"r{i}"}) for i in range(10)))
    request = parse_table_push("products", body)
    service.push_and_pull("products", request.machine_id, request.items, 0)
    return service


def _unusable_cursor(svc: SyncService, case: str) -> int:
    """A cursor `svc`'s database cannot continue from, of each kind pull.check_cursor knows."""
    if case == "ahead":
        return 11
    with svc.connection():
        if case == "restore_gap":
            sql.set_state(svc.ctx, "restore_gap_low", 2)
            sql.set_state(svc.ctx, "restore_gap_high", 8)
        else:  # tombstones purged up to 6: an unknown machine's cursor below it
            sql.set_state(svc.ctx, "tombstone_horizon", 6)
    return 4


Attempt = Callable[..., Any]


def _table(svc: SyncService, cursor: int, records: list[dict], repeat: int = 1) -> Any:
    """POST /api/sync/products with `cursor`; `repeat`: its events that many times over (the
    parser refuses more than MAX_EVENTS_PER_REQUEST, the service must too)."""
    body = _table_push("caixa-9", cursor, *((f"new-{r['id']}", r) for r in records))
    request = parse_table_push("products", body)
    return svc.push_and_pull("products", request.machine_id, request.items * repeat, cursor)


def _batch(svc: SyncService, cursor: int, records: list[dict], repeat: int = 1) -> Any:
    events = [{"eventId": f"new-{r['id']}", "table": "products", "record": r} for r in records]
    machine_id, items, since = parse_batch_push(
        {"machineId": "caixa-9", "cursor": cursor, "events": events}
    )
    return svc.push(machine_id, items * repeat, atomic_batch=True, since=since)


@pytest.mark.parametrize("case", ["ahead", "restore_gap", "below_horizon"])
@pytest.mark.parametrize("attempt", [_table, _batch], ids=["table", "batch"])
def test_a_cursor_the_database_cannot_continue_from_refuses_the_push_whole(
    service_at_10: SyncService, case: str, attempt: Attempt
) -> None:
    svc = service_at_10
    cursor = _unusable_cursor(svc, case)
    with pytest.raises(ProtocolError) as err:
        attempt(svc, cursor, [{"id": "x1", "name": "never"}, {"id": "x2"}])
    assert err.value.status == 409 and err.value.code == "resync_required"
    assert svc.head() == 10 and svc.get_live("products", "x1") is None
    # Nothing of it was kept, not even its receipts: the same events apply after a resync.
    results = attempt(svc, 0, [{"id": "x1", "name": "now"}, {"id": "x2"}])[0]
    assert [r["status"] for r in results] == ["applied", "applied"]
    assert not any(r.get("duplicate") for r in results)


@pytest.mark.parametrize("attempt", [_table, _batch], ids=["table", "batch"])
def test_the_cursor_is_refused_before_a_batch_too_large_or_invalid(
    service_at_10: SyncService, attempt: Attempt
) -> None:
    too_many = ([{"id": "m1"}, {"id": "m2"}], MAX_EVENTS_PER_REQUEST // 2 + 1)
    invalid = ([{"id": "ok"}, {"id": "bad", "price": "abc"}], 1)
    for records, repeat in (too_many, invalid) if attempt is _batch else (too_many,):
        with pytest.raises(ProtocolError) as err:
            attempt(service_at_10, 11, records, repeat)
        assert err.value.status == 409, err.value.code
        # With a good cursor the batch's own refusal stands.
        with pytest.raises(ProtocolError) as err:
            attempt(service_at_10, 10, records, repeat)
        assert err.value.status in (413, 422) and err.value.code != "resync_required"
    assert service_at_10.head() == 10


def test_a_known_machine_paging_a_full_pull_below_the_horizon_may_push(
    service_at_10: SyncService,
) -> None:
    """Below the tombstone horizon, a machine whose recorded cursor shows it is paging a full
    pull is let through: that check reads the machine's row inside the push's transaction."""
    svc = service_at_10
    page = svc.pull("products", 0, 3, machine_id="caixa-9")  # records caixa-9's cursor: 0
    with svc.connection():
        sql.set_state(svc.ctx, "tombstone_horizon", 6)
    results = _table(svc, page["cursor"], [{"id": "y1", "name": "sold offline"}])[0]
    assert results[0]["status"] == "applied" and svc.head() == 11
    with pytest.raises(ProtocolError) as err:  # another machine with that cursor is not
        svc.push_and_pull("products", "caixa-other", [], page["cursor"])
    assert err.value.status == 409
