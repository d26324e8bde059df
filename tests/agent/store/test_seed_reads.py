"""The seed's reads by `lastSync` from the store (`Store.since`): every live row without it;
with it, every row written and every row gone since `lastSync - LASTSYNC_OVERLAP_MS` on this
machine's clock, whatever wrote or removed it (a POS write, a pulled page, a rebuild, a
reset); local tombstones that a row coming back drops, purged after 30 days."""

from __future__ import annotations

import pytest

from agent.store.store import Store
from agent.store.views import TOMBSTONE_RETENTION_MS
from protocol import to_iso
from protocol.messages import LASTSYNC_OVERLAP_MS
from tests.agent.store.conftest import T0, ch, pulled, server_product

HOUR = 3_600_000


class Clock:
    """This machine's clock, moved by hand."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def local(tmp_path, clock):
    s = Store(tmp_path / "agent.db", clock=clock)
    yield s
    s.close()


def ids(records: list[dict]) -> list[str]:
    return [r["id"] for r in records]


def test_without_last_sync_every_live_row_and_no_tombstone(local, clock):
    local.write([("e1", ch("products", {"id": "p1", "name": "Pão"}))], T0)
    local.write([("e2", ch("products", {"id": "p2", "name": "Bolo"}))], T0)
    local.write([("e3", ch("products", {"id": "p1", "_op": "delete"}))], T0)
    assert local.since("products", None) == [local.get("products", "p2")]
    assert local.since("orders", None) == []


def test_with_last_sync_the_changes_since_with_the_overlap_and_deletions(local, clock):
    local.write([("e1", ch("products", {"id": "old", "name": "Antigo"}))], T0)
    clock.now = T0 + 10 * HOUR
    local.write([("e2", ch("products", {"id": "p1", "name": "Pão"}))], T0)
    local.write([("e3", ch("products", {"id": "p2", "name": "Bolo"}))], T0)
    clock.now = T0 + 10 * HOUR + HOUR // 2
    local.write([("e4", ch("products", {"id": "p2", "_op": "delete"}))], T0)
    clock.now = T0 + 11 * HOUR
    local.write([("e5", ch("products", {"id": "p1", "price": "1.50"}))], T0)

    # A client that last read at T0 + 10 h (its clock): everything changed from T0 + 8 h.
    got = local.since("products", T0 + 10 * HOUR)
    assert ids(got) == ["p2", "p1"]  # oldest change first
    assert got[0] == {"id": "p2", "_deleted": True, "updatedAt": to_iso(T0 + 10 * HOUR + HOUR // 2)}
    assert got[1] == local.get("products", "p1")
    # The window opens LASTSYNC_OVERLAP_MS before lastSync, inclusive: a client clock an
    # hour ahead, or a write that waited on the store's lock, misses nothing.
    edge = T0 + 11 * HOUR + LASTSYNC_OVERLAP_MS
    assert ids(local.since("products", edge)) == ["p1"]  # p1 last changed at T0 + 11 h
    assert local.since("products", edge + 1) == []
    assert ids(local.since("products", T0 + LASTSYNC_OVERLAP_MS)) == ["old", "p2", "p1"]


def test_pulled_pages_rebuilds_and_resets_are_changes_too(local, clock):
    local.apply_pulled(pulled(server_product("p1", T0), server_product("p2", T0)), 2)
    clock.now = T0 + 5 * HOUR
    # A pulled tombstone: the row leaves the view, a tombstone says so.
    gone = {"id": "p2", "_deleted": True, "updatedAt": to_iso(T0 + 1)}
    local.apply_pulled([{"table": "products", "seq": 3, "record": gone}], 3)
    # A pulled tombstone of a row never seen here leaves no tombstone.
    never = {"id": "nunca", "_deleted": True, "updatedAt": to_iso(T0 + 1)}
    local.apply_pulled([{"table": "products", "seq": 4, "record": never}], 4)
    assert local.since("products", T0 + 5 * HOUR) == [
        {"id": "p2", "_deleted": True, "updatedAt": to_iso(T0 + 5 * HOUR)}
    ]
    # A local write refused by the server: its effect leaves the view (a rebuild to nothing).
    clock.now = T0 + 10 * HOUR
    local.write([("e1", ch("products", {"id": "p9", "name": "Recusado"}))], T0)
    local.acknowledge([{"eventId": "e1", "status": "rejected", "reason": "x"}], T0)
    assert local.since("products", T0 + 10 * HOUR) == [
        {"id": "p9", "_deleted": True, "updatedAt": to_iso(T0 + 10 * HOUR)}
    ]
    # A reset (full resync) empties the view: every row leaves a tombstone, and the rows
    # the resync brings back drop theirs.
    clock.now = T0 + 20 * HOUR
    local.reset_mirror()
    assert local.since("products", T0 + 20 * HOUR) == [
        {"id": "p1", "_deleted": True, "updatedAt": to_iso(T0 + 20 * HOUR)}
    ]
    clock.now = T0 + 21 * HOUR
    local.apply_pulled(pulled(server_product("p1", T0)), 1)
    assert local.since("products", T0 + 20 * HOUR) == [local.get("products", "p1")]


def test_a_row_that_comes_back_drops_its_tombstone(local, clock):
    local.write([("e1", ch("products", {"id": "p1", "name": "Pão"}))], T0)
    local.write([("e2", ch("products", {"id": "p1", "_op": "delete"}))], T0)
    assert local.since("products", T0)[0]["_deleted"] is True
    local.write([("e3", ch("products", {"id": "p1", "name": "Pão de novo"}))], T0)
    assert local.since("products", T0) == [local.get("products", "p1")]
    count = local.db.execute_sql("SELECT COUNT(*) FROM view_tombstones").fetchone()[0]
    assert count == 0


def test_tombstones_are_purged_after_thirty_days(tmp_path, clock):
    s = Store(tmp_path / "agent.db", clock=clock)
    try:
        s.write([("e1", ch("products", {"id": "p1", "name": "Pão"}))], T0)
        s.write([("e2", ch("products", {"id": "p1", "_op": "delete"}))], T0)
        clock.now = T0 + TOMBSTONE_RETENTION_MS - 1
        s.write([("e3", ch("products", {"id": "p2", "name": "Bolo"}))], T0)
        assert ids(s.since("products", T0)) == ["p1", "p2"]  # not yet 30 days old
        clock.now = T0 + TOMBSTONE_RETENTION_MS + 2 * HOUR
        s.write([("e4", ch("orders", {"id": "o1", "total": "1"}))], T0)
        assert ids(s.since("products", T0)) == ["p2"]
    finally:
        s.close()


def test_a_pull_that_reaches_the_head_is_remembered_and_a_reset_forgets_it(local):
    assert local.reached_server() is False
    local.apply_pulled([], 0)  # a server with nothing: an empty page at cursor 0
    assert local.reached_server() is True
    local.reset_mirror()
    assert local.reached_server() is False
    local.apply_pulled(pulled(server_product("p1", T0)), 1)  # rows pulled: a cursor above 0
    assert local.reached_server() is True
    local.close()
    again = Store(local.path)
    try:
        assert again.reached_server() is True
    finally:
        again.close()


def test_an_empty_push_reply_page_is_the_head_too(local):
    local.write([("e1", ch("products", {"id": "p1", "name": "Pão"}))], T0)
    local.acknowledge([{"eventId": "e1", "status": "applied"}], T0, changes=[], cursor=0)
    assert local.reached_server() is True
