"""The set-based store paths (many rows per statement) give the same results as the same
work done one row at a time: batched writes, acknowledgements of many events, pulled pages
bigger than one query chunk (500 ids), and the sent-event purge that now runs hourly."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agent.store import store as store_module
from agent.store.store import DEAD, PENDING, SENT, SENT_RETENTION_MS, Store
from protocol import TABLES, parse_change, to_iso

T0 = 1_750_000_000_000
N = 1_234  # more than two chunks of 500


def ch(table: str, record: dict):
    return parse_change(TABLES[table], record)


def product(row_id: str, updated_at: int, **fields) -> dict:
    record = {
        "id": row_id,
        "name": None,
        "description": None,
        "price": None,
        "costPrice": 0,
        "category": None,
        "imageUrlId": None,
        "stock_quantity": 0,
        "isActive": True,
        "createdAt": to_iso(T0),
        "updatedAt": to_iso(updated_at),
    }
    record.update(fields)
    return record


def snapshot(s: Store) -> dict:
    """Everything the store holds that a batch path could get wrong."""
    out = {name: s.list(name) for name in TABLES}
    out["server_rows"] = s.db.execute_sql(
        "SELECT table_name, row_id, data, deleted, updated_at FROM server_rows ORDER BY table_name, row_id"
    ).fetchall()
    out["outbox"] = s.db.execute_sql(
        "SELECT event_id, table_name, record_id, op, payload, group_id, state, created_at, sent_at, result, "
        "last_error FROM outbox ORDER BY id"
    ).fetchall()
    out["cursor"] = s.cursor
    out["summary"] = s.summary()
    return out


@pytest.fixture
def pair(tmp_path):
    a, b = Store(tmp_path / "a.db"), Store(tmp_path / "b.db")
    yield a, b
    a.close()
    b.close()


def _page() -> list[dict]:
    """A pulled page of N changes: new rows, a row sent twice (the later version wins),
    tombstones, and rows this machine has pending edits on."""
    changes = []
    for i in range(N):
        changes.append(
            product(f"p{i:05d}", T0 + i, name=f"server {i}", price=Decimal(i) / 4, stock_quantity=i)
        )
    changes.append(product("p00007", T0 + 5_000, name="second version", stock_quantity=70))
    for i in range(0, N, 97):
        changes.append({"id": f"p{i:05d}", "_deleted": True, "updatedAt": to_iso(T0 + 6_000)})
    return [{"table": "products", "seq": n + 1, "record": r} for n, r in enumerate(changes)]


def _local_edits(s: Store) -> None:
    # Pending edits on rows the page brings (invariant 9: the view keeps them on top).
    s.write([("local-name", ch("products", {"id": "p00003", "name": "local name"}))], T0 + 10)
    s.write(
        [("local-inc", ch("products", {"id": "p00003", "_op": "increment", "stock_quantity": -2}))],
        T0 + 11,
    )
    s.write(
        [("local-new", ch("products", {"id": "p00194", "name": "local only"}))], T0 + 12
    )  # deleted by the page


def test_apply_pulled_of_a_big_page_equals_row_by_row(pair):
    batch, single = pair
    _local_edits(batch)
    _local_edits(single)
    page = _page()
    assert batch.apply_pulled(page, len(page)) == len(page)
    for c in page:
        single.apply_pulled([c], c["seq"])
    assert snapshot(batch) == snapshot(single)
    # And the view is what the invariants say, not merely the same on both sides.
    p3 = batch.get("products", "p00003")
    assert (p3["name"], p3["stock_quantity"]) == ("local name", 3 - 2)
    assert batch.get("products", "p00007")["name"] == "second version"
    assert batch.get("products", "p00097") is None  # tombstone, no pending edit
    assert (
        batch.get("products", "p00194")["name"] == "local only"
    )  # pending upsert over a tombstone
    assert batch.count("products") == N - len(range(0, N, 97)) + 1


def test_acknowledge_of_many_events_in_one_reply(pair):
    batch, single = pair
    for s in pair:
        s.apply_pulled(
            [{"table": "products", "seq": 1, "record": product("base", T0, stock_quantity=100)}], 1
        )
        s.write(
            [
                (f"e{i:05d}", ch("products", {"id": f"n{i:05d}", "name": f"new {i}"}))
                for i in range(N)
            ],
            T0 + 1,
        )
        s.write(
            [
                (
                    f"inc{i}",
                    ch("products", {"id": "base", "_op": "increment", "stock_quantity": -1}),
                )
                for i in range(3)
            ],
            T0 + 2,
        )
    results = []
    for i in range(N):
        status = "rejected" if i % 100 == 0 else "skipped_stale" if i % 100 == 1 else "applied"
        r = {
            "eventId": f"e{i:05d}",
            "status": status,
            "seq": i + 2 if status == "applied" else None,
        }
        if status == "rejected":
            r["reason"] = "invalid_value"
        results.append(r)
    results.append(dict(results[5]))  # repeated in one reply: counted once
    results.append(
        {"eventId": "never-sent", "status": "applied", "seq": 99_999}
    )  # unknown: ignored
    results += [{"eventId": f"inc{i}", "status": "applied", "seq": N + 2 + i} for i in range(3)]
    changes = [
        {"table": "products", "seq": i + 2, "record": product(f"n{i:05d}", T0 + 1, name=f"new {i}")}
        for i in range(N)
        if i % 100 > 1
    ]
    changes.append(
        {"table": "products", "seq": N + 4, "record": product("base", T0 + 2, stock_quantity=97)}
    )
    cursor = N + 4

    counts = batch.acknowledge(results, T0 + 3, changes=changes, cursor=cursor)
    rejected = len(range(0, N, 100))
    stale = len(range(1, N, 100))
    assert counts == {"applied": N - rejected - stale + 3, "stale": stale, "rejected": rejected}
    # The same reply acknowledged one result at a time (changes with the last one).
    for r in results[:-1]:
        single.acknowledge([r], T0 + 3)
    single.acknowledge(results[-1:], T0 + 3, changes=changes, cursor=cursor)
    assert snapshot(batch) == snapshot(single)

    states = dict(batch.db.execute_sql("SELECT event_id, state FROM outbox").fetchall())
    assert states["e00000"] == DEAD and states["e00001"] == SENT and states["e00002"] == SENT
    assert PENDING not in states.values()
    assert [e.event_id for e in batch.dead_letters()] == [f"e{i:05d}" for i in range(0, N, 100)]
    assert (
        batch.get("products", "e00000") is None and batch.get("products", "n00000") is None
    )  # dead: gone
    # Stale: rebuilt from the server's version, which this reply did not bring (the pull will).
    assert batch.get("products", "n00001") is None
    assert batch.get("products", "n00002")["name"] == "new 2"
    assert batch.get("products", "base")["stock_quantity"] == 97  # decrements counted once
    assert batch.cursor == cursor


def test_batched_write_equals_writes_one_by_one(pair):
    batch, single = pair
    items = []
    for i in range(N):
        items.append(
            (f"e{i}", ch("products", {"id": f"p{i % 600}", "name": f"v{i}", "stock_quantity": i}))
        )
    items.append(("inc", ch("products", {"id": "p1", "_op": "increment", "stock_quantity": -5})))
    items.append(("del", ch("products", {"id": "p2", "_op": "delete"})))
    items.append(
        ("inc-gone", ch("products", {"id": "p2", "_op": "increment", "stock_quantity": -1}))
    )
    items.append(("e3", ch("products", {"id": "p3", "name": "duplicate"})))
    results = batch.write(items, T0, atomic=False)
    one_by_one = [r for item in items for r in single.write([item], T0, atomic=False)]
    assert results == one_by_one
    assert [r["status"] for r in results[-3:]] == ["accepted", "rejected", "duplicate"]
    assert snapshot(batch) == snapshot(single)
    assert batch.get("products", "p1")["stock_quantity"] == 1201 - 5
    # Pushed in the order written.
    assert [e.event_id for e in batch.pending_events(limit=5)] == ["e0", "e1", "e2", "e3", "e4"]


def test_get_many_keeps_the_order_asked_and_skips_missing(tmp_path):
    s = Store(tmp_path / "agent.db")
    try:
        s.write(
            [(f"e{i}", ch("products", {"id": f"p{i}", "name": str(i)})) for i in range(700)], T0
        )
        ids = [f"p{i}" for i in range(699, -1, -3)] + ["missing"]
        assert s.get_many("products", ids) == [s.get("products", i) for i in ids if i != "missing"]
    finally:
        s.close()


def test_sent_events_are_still_purged_after_their_retention(tmp_path, monkeypatch):
    s = Store(tmp_path / "agent.db")
    try:

        def sent(event_id: str, at: int) -> None:
            s.write([(event_id, ch("products", {"id": event_id, "name": "x"}))], at)
            s.acknowledge([{"eventId": event_id, "status": "applied"}], at)

        def kept() -> list[str]:
            return [
                e for (e,) in s.db.execute_sql("SELECT event_id FROM outbox ORDER BY id").fetchall()
            ]

        hour = store_module.PURGE_EVERY_MS
        sent("old", T0)
        sent("old2", T0 + hour // 2)
        x = T0 + SENT_RETENTION_MS + 1
        sent("a", x)  # "old" is past its retention: purged now; "old2" not yet
        assert kept() == ["old2", "a"]
        # "old2" is past its retention too, but within the hour after a purge the
        # acknowledgements do not scan for old events again...
        sent("b", x + hour * 3 // 4)
        assert kept() == ["old2", "a", "b"]
        # ...the first one after the hour does.
        sent("c", x + hour)
        assert kept() == ["a", "b", "c"]
        # A kept event retried by the POS is still answered "duplicate".
        assert (
            s.write([("a", ch("products", {"id": "a", "name": "again"}))], x + hour)[0]["status"]
            == "duplicate"
        )
    finally:
        s.close()
