"""Fewer round trips and commits on the sync path: no pull after a push whose reply already
reached the head while the live socket is up (nor for the echo of our own push), no commit
for an empty pull or an unchanged clock offset, and synchronous=NORMAL only for the
transactions that hold what the server already has."""

from __future__ import annotations

from collections import Counter

from agent.store.store import Store
from protocol import TABLES, parse_change, to_iso

from .test_engine_inprocess import run, write

T0 = 1_750_000_000_000


def count_requests(engine) -> Counter:
    """Counts the requests the engine sends, by path."""
    seen: Counter = Counter()
    inner = engine.transport.handle_async_request

    async def counting(request):
        seen[request.url.path] += 1
        return await inner(request)

    engine.transport.handle_async_request = counting
    return seen


def as_if_live(engine) -> None:
    """The state the live loop leaves after its catch-up pull: socket up, nothing owed."""
    engine.facts.live = True
    engine.context.force_pull = False
    engine.context.announced = engine.store.cursor


def test_while_live_a_push_whose_reply_reached_the_head_is_not_followed_by_a_pull(tmp_path):
    async def scenario(shop) -> None:
        a, b = shop.agent("a"), shop.agent("b")
        for e in (a, b):
            await e._sync_cycle()  # the first cycle always pulls (catch-up)
            as_if_live(e)
        calls_a, calls_b = count_requests(a), count_requests(b)

        write(a, "products", {"id": "p1", "name": "Pão"})
        await a._sync_cycle()
        assert calls_a == {"/api/sync/batch": 1}  # its reply carried the changes up to the head
        assert a.store.cursor == shop.service.head() and a.store.pending_count() == 0

        # The server announces the commit to every socket, a's own included.
        head = shop.service.head()
        a.context.announced = max(a.context.announced, head)  # the echo: not ahead of a's cursor
        await a._sync_cycle()
        assert calls_a == {"/api/sync/batch": 1}  # nothing pushed, nothing pulled
        b.context.announced = head  # ahead of b's cursor: b pulls
        await b._sync_cycle()
        assert calls_b == {"/api/sync/changes": 1}
        assert b.store.get("products", "p1")["name"] == "Pão"
        await b._sync_cycle()
        assert calls_b == {"/api/sync/changes": 1}  # at head: an idle cycle asks nothing

    run(tmp_path, scenario)


def test_without_the_socket_or_after_a_reconnection_every_cycle_pulls(tmp_path):
    async def scenario(shop) -> None:
        a = shop.agent("a")
        await a._sync_cycle()
        calls = count_requests(a)
        a.facts.live = False  # polling fallback
        await a._sync_cycle()
        write(a, "products", {"id": "p1", "name": "Pão"})
        await a._sync_cycle()
        assert calls == {"/api/sync/changes": 2, "/api/sync/batch": 1}
        as_if_live(a)
        a.context.force_pull = True  # what the live loop sets on (re)connecting
        await a._sync_cycle()
        assert calls["/api/sync/changes"] == 3
        await a._sync_cycle()
        assert calls["/api/sync/changes"] == 3

    run(tmp_path, scenario)


def test_a_push_reply_with_more_pages_is_followed_by_a_pull(tmp_path):
    async def scenario(shop) -> None:
        a, b = shop.agent("a"), shop.agent("b")
        for n in range(600):  # more than one page of changes (500)
            write(b, "products", {"id": f"b{n}", "name": "de B"})
        await b._sync_cycle()
        await a._sync_cycle()  # the catch-up pull, in pages
        write(b, "products", {"id": "b-late", "name": "de B"})
        await b._sync_cycle()
        as_if_live(a)
        a.store.set_state("cursor", "0")  # pretend a is a page behind when it pushes
        calls = count_requests(a)
        write(a, "products", {"id": "a1", "name": "de A"})
        await a._sync_cycle()
        assert calls["/api/sync/batch"] == 1 and calls["/api/sync/changes"] >= 1
        assert a.store.cursor == shop.service.head()
        assert a.store.get("products", "b-late") is not None

    run(tmp_path, scenario)


def test_a_forced_cycle_pulls_unless_its_push_reached_the_head(tmp_path):
    async def scenario(shop) -> None:
        a = shop.agent("a")
        await a._sync_cycle()
        as_if_live(a)
        calls = count_requests(a)
        await a._sync_cycle(force=True)  # "sync now" with nothing to push: asks the server
        assert calls == {"/api/sync/changes": 1}
        write(a, "products", {"id": "p1", "name": "Pão"})
        await a._sync_cycle(force=True)
        assert calls == {"/api/sync/changes": 1, "/api/sync/batch": 1}

    run(tmp_path, scenario)


def test_an_idle_cycle_commits_nothing(tmp_path):
    async def scenario(shop) -> None:
        a = shop.agent("a")
        write(a, "products", {"id": "p1", "name": "Pão"})
        await a._sync_cycle()
        a.facts.live = False  # polling: push nothing, pull an empty page
        conn = a.store.db.connection()
        before = conn.total_changes
        await a._sync_cycle()
        await a._sync_cycle()
        assert conn.total_changes == before  # no cursor, no clock offset written again
        # An offset that moved away from the saved one is saved again.
        a.cycle.saved_offset_ms = a.clock.offset_ms - 5_000
        await a._sync_cycle()
        assert int(a.store.get_state("clock_offset_ms")) == a.clock.offset_ms

    run(tmp_path, scenario)


def test_an_empty_pull_at_the_same_cursor_is_no_transaction(tmp_path):
    s = Store(tmp_path / "agent.db")
    try:
        s.apply_pulled([], 7)
        conn = s.db.connection()
        before = conn.total_changes
        assert s.apply_pulled([], 7) == 0
        assert conn.total_changes == before
        s.apply_pulled([], 8)  # a new cursor is stored
        assert s.cursor == 8
    finally:
        s.close()


def test_only_mirror_transactions_commit_with_synchronous_normal(tmp_path, monkeypatch):
    """POS writes and their outbox events: FULL (a power cut loses nothing acknowledged).
    Pulled rows and acknowledgements, which the server holds anyway: NORMAL."""
    s = Store(tmp_path / "agent.db")
    seen: list[tuple[str, int]] = []

    def level() -> int:
        return s.db.execute_sql("PRAGMA synchronous").fetchone()[0]

    put_views = s._put_views

    def spy(rows):
        seen.append((caller[0], level()))
        return put_views(rows)

    caller = ["write"]
    monkeypatch.setattr(s, "_put_views", spy)
    try:
        s.write([("e1", parse_change(TABLES["products"], {"id": "p1", "name": "x"}))], T0)
        caller[0] = "acknowledge"
        s.acknowledge([{"eventId": "e1", "status": "applied"}], T0)
        caller[0] = "apply_pulled"
        record = {"id": "p2", "name": "y", "stock_quantity": 1, "updatedAt": to_iso(T0)}
        s.apply_pulled([{"table": "products", "seq": 1, "record": record}], 1)
        caller[0] = "write"
        s.write(
            [
                (
                    "e2",
                    parse_change(
                        TABLES["products"], {"id": "p2", "_op": "increment", "stock_quantity": -1}
                    ),
                )
            ],
            T0,
        )
        assert seen == [("write", 2), ("acknowledge", 1), ("apply_pulled", 1), ("write", 2)]
        assert level() == 2  # FULL again after each mirror transaction
    finally:
        s.close()
