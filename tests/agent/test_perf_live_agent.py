"""Notices that carry a small commit's changes (newer servers): applied without a pull when
they start at the agent's cursor; otherwise, or when malformed, or absent (older servers),
the agent pulls as before."""

from __future__ import annotations

from protocol import dumps, loads

from .test_engine_inprocess import run, write
from .test_perf_engine import as_if_live, count_requests


async def notice_of_next_push(shop, b, record: dict) -> dict:
    """Push `record` from a second agent and build the notice the server's hub sends for it."""
    since = shop.service.head()
    write(b, "products", record)
    await b._sync_cycle()
    page = shop.service.changes(since)
    return {
        "type": "changes",
        "tables": ["products"],
        "cursor": page["cursor"],
        "since": since,
        "changes": loads(dumps(page["changes"])),
    }


def test_a_notice_carrying_the_changes_after_our_cursor_is_applied_without_a_pull(tmp_path):
    async def scenario(shop) -> None:
        a, b = shop.agent("a"), shop.agent("b")
        await a._sync_cycle()
        await b._sync_cycle()
        as_if_live(a)
        calls = count_requests(a)
        note = await notice_of_next_push(shop, b, {"id": "p1", "name": "Pão", "stock_quantity": 5})
        a.context.announced = note["cursor"]
        await a.live.apply(note, note["cursor"])
        assert a.store.cursor == note["cursor"] and a.store.get("products", "p1")["name"] == "Pão"
        await a._sync_cycle()  # the wake-up that follows: nothing left to fetch
        assert calls == {}

    run(tmp_path, scenario)


def test_a_notice_not_contiguous_with_our_cursor_malformed_or_without_changes_is_pulled(tmp_path):
    async def scenario(shop) -> None:
        a, b = shop.agent("a"), shop.agent("b")
        await a._sync_cycle()
        await b._sync_cycle()
        as_if_live(a)
        calls = count_requests(a)
        first = await notice_of_next_push(shop, b, {"id": "p1", "name": "um"})
        second = await notice_of_next_push(shop, b, {"id": "p2", "name": "dois"})
        a.context.announced = second["cursor"]
        await a.live.apply(second, second["cursor"])  # we missed `first`: not applied
        assert a.store.cursor == first["since"] and a.store.get("products", "p2") is None
        broken = {**first, "changes": [{"table": "products", "seq": 1, "record": {"id": "p1"}}]}
        await a.live.apply(broken, first["cursor"])  # no updatedAt: refused, nothing stored
        assert a.store.cursor == first["since"] and a.store.get("products", "p1") is None
        await a._sync_cycle()  # the pull those notices triggered
        assert calls == {"/api/sync/changes": 1}
        assert {a.store.get("products", i)["name"] for i in ("p1", "p2")} == {"um", "dois"}
        # An older server's notice has no changes: the agent pulls, as it always did.
        third = await notice_of_next_push(shop, b, {"id": "p3", "name": "três"})
        a.context.announced = third["cursor"]
        await a._sync_cycle()
        assert calls == {"/api/sync/changes": 2} and a.store.get("products", "p3")["name"] == "três"

    run(tmp_path, scenario)
