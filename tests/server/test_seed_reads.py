"""The seed's reads by its own clock (`fetch_since`, `push_and_fetch`): what changed since
`lastSync`, chosen by the server's change time, so a client clock off by up to an hour either
way, a commit that lands late, or an offline PDV's old sale never hides a change. Both
backends, on the test's server clock."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest

from protocol import to_iso
from protocol.messages import parse_table_push
from server import pushdb
from server.seedsync import LASTSYNC_OVERLAP_MS
from tests.server.conftest import T0, push, push_one

HOUR = 3_600_000
MINUTE = 60_000


def ids(records: list[dict]) -> list[str]:
    return [r["id"] for r in records]


def test_without_last_sync_every_live_row_in_sequence_order(service, clock):
    push(service, "products", {"id": "b", "name": "B"}, {"id": "a", "name": "A"}, {"id": "c"})
    push_one(service, "products", {"id": "c", "_op": "delete"})
    push_one(service, "orders", {"id": "o1", "total": "1.00"})
    records = service.fetch_since("products", None)
    assert ids(records) == ["b", "a"]
    assert records[0] == service.get_live("products", "b")  # the wire record, whole


def test_with_last_sync_rows_and_tombstones_changed_since_then(service, clock):
    push_one(service, "products", {"id": "old", "name": "antigo"})
    clock.advance(5 * HOUR)
    push_one(service, "products", {"id": "new", "name": "novo"})
    push_one(service, "products", {"id": "old", "_op": "delete"})
    read_at = clock.advance(MINUTE)
    records = service.fetch_since("products", read_at - 10 * MINUTE)
    assert ids(records) == ["new", "old"]
    assert records[1] == {"id": "old", "_deleted": True, "updatedAt": to_iso(T0 + 5 * HOUR)}
    # Far enough after every change: nothing (the window is not "everything").
    assert service.fetch_since("products", read_at + LASTSYNC_OVERLAP_MS + 1) == []
    # The window opens LASTSYNC_OVERLAP_MS before lastSync, inclusive.
    changed = T0 + 5 * HOUR
    assert ids(service.fetch_since("products", changed + LASTSYNC_OVERLAP_MS)) == ["new", "old"]
    assert service.fetch_since("products", changed + LASTSYNC_OVERLAP_MS + 1) == []


@pytest.mark.parametrize("skew", [-HOUR, -HOUR // 2, 0, HOUR // 2, HOUR])
def test_a_client_clock_off_by_up_to_an_hour_misses_nothing(service, clock, skew):
    """The client reads, then sets lastSync from ITS clock; changes committed right after the
    read (on the server's clock) must all come in its next read."""
    push_one(service, "products", {"id": "p1", "name": "Pão"})
    clock.advance(1000)
    first = service.fetch_since("products", None)
    last_sync = clock.now + skew  # the client's `new Date()` after the call
    assert ids(first) == ["p1"]
    clock.advance(1)  # the very next millisecond on the server
    push_one(service, "products", {"id": "p2", "name": "Bolo"})
    push_one(service, "products", {"id": "p1", "_op": "delete"})
    clock.advance(30 * MINUTE)
    second = service.fetch_since("products", last_sync)
    assert {"p2"} <= set(ids(second))
    assert {"id": "p1", "_deleted": True, "updatedAt": to_iso(T0 + 1001)} in second


def test_an_offline_pdvs_old_sale_pushed_late_is_a_fresh_change(service, clock):
    """Chosen by change time, not by the record's `updatedAt` (its edit time)."""
    clock.advance(6 * HOUR)
    read_at = clock.now
    clock.advance(MINUTE)
    sold_at = to_iso(T0)  # six hours ago, on the PDV
    push_one(service, "orders", {"id": "o-offline", "total": "9.90", "updatedAt": sold_at})
    records = service.fetch_since("orders", read_at)
    assert ids(records) == ["o-offline"] and records[0]["updatedAt"] == sold_at


def test_a_late_commit_is_read_by_the_next_fetch(service, clock, monkeypatch):
    """A writer takes its change time, then commits only after a reader has read (and set its
    lastSync from its own clock, an hour fast): the reader's next fetch still gets it."""
    in_transaction, reader_done = threading.Event(), threading.Event()
    unit_of_work = pushdb.unit_of_work

    @contextmanager
    def slow_unit(ctx):
        # The writer stops in its transaction, its change time taken, before its writes
        # (on PostgreSQL they go with the COMMIT, in one message: server/pushdb.py).
        with unit_of_work(ctx) as unit:
            write = unit.write

            def slow_write(writes):
                if threading.current_thread().name == "late-writer":
                    in_transaction.set()
                    assert reader_done.wait(30)
                write(writes)

            unit.write = slow_write
            yield unit

    monkeypatch.setattr(pushdb, "unit_of_work", slow_unit)
    push_one(service, "products", {"id": "early", "name": "antes"})
    writer = threading.Thread(
        target=push_one,
        args=(service, "products", {"id": "late", "name": "atrasado"}),
        name="late-writer",
    )
    writer.start()
    try:
        assert in_transaction.wait(30)  # its change time is taken, its commit is not made
        clock.advance(20 * MINUTE)
        seen = service.fetch_since("products", None)
        last_sync = clock.now + HOUR  # the reader's clock runs an hour fast
        assert ids(seen) == ["early"]  # not committed yet: invisible
    finally:
        reader_done.set()
        writer.join(30)
    assert not writer.is_alive()
    clock.advance(MINUTE)
    assert "late" in ids(service.fetch_since("products", last_sync))


def test_push_and_fetch_pushes_then_reads_by_last_sync(service, clock):
    push_one(service, "products", {"id": "theirs", "name": "de outro caixa"}, machine="caixa-2")
    clock.advance(3 * HOUR)
    last_sync = clock.now - MINUTE
    body = {
        "machineId": "front",
        "lastSync": last_sync,
        "localUpdates": [{"eventId": "e1", "record": {"id": "mine", "name": "meu"}}],
    }
    request = parse_table_push("products", body)
    results, head, records = service.push_and_fetch(
        "products", request.machine_id, request.items, request.last_sync
    )
    assert [r["status"] for r in results] == ["applied"] and head == 2
    assert ids(records) == ["mine"]  # "theirs" changed three hours before lastSync
    results, head, records = service.push_and_fetch("products", "front", [], None)
    assert results == [] and head == 2 and ids(records) == ["theirs", "mine"]
    # A repeated event: its original result, nothing new.
    request = parse_table_push("products", body)
    results, head, _ = service.push_and_fetch("products", "front", request.items, last_sync)
    assert results[0]["duplicate"] is True and head == 2
