"""The sync engine against the real server app, in process: no sockets, no threads of ours.

Each test builds the real FastAPI app (`server.app.create_app`) on a temporary SQLite file,
runs its lifespan, and connects engines to it through `httpx.ASGITransport`. The engine's
parts (`cycle`, `live`, `reconciler`) run on an event loop the test owns, through the
shortcuts of `InProcessEngine`; `auto_sync=False`, so nothing runs unless the test asks.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from agent.store.store import DEAD, Store
from agent.sync.engine import Engine, SyncSettings
from agent.sync.errors import Rejected, SyncError, split_failure
from agent.sync.reconcile import ReconcileReport
from protocol import TABLES, bucket_of, dumps, parse_change
from protocol.messages import PushItem
from server.app import create_app
from server.settings import Settings

SERVER_URL = "http://127.0.0.1:3001"  # never dialled: the transport calls the app in process
HOUR = 3_600_000


class Transport(httpx.AsyncBaseTransport):
    """The app's ASGI transport, with faults a test can switch on."""

    def __init__(self, app) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.down = False  # every request fails to connect
        self.lose_next_push_reply = False  # the push commits on the server, its reply is lost
        self.before: dict[str, list] = {}  # path -> callbacks run once before that request

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        for callback in self.before.pop(request.url.path, []):
            callback()
        response = await self.inner.handle_async_request(request)
        if self.lose_next_push_reply and request.url.path == "/api/sync/batch":
            self.lose_next_push_reply = False
            await response.aread()
            await response.aclose()
            raise httpx.ReadTimeout("timed out reading the reply", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class InProcessEngine(Engine):
    """The engine with no thread of its own: the test awaits its parts."""

    transport: Transport

    async def _sync_cycle(self, *, force: bool = False) -> None:
        await self.cycle.run(force=force)

    async def _pull_to_head(self) -> int:
        return await self.cycle.pull_to_head()

    async def _reconcile(self, strategy: str | None) -> ReconcileReport:
        return await self.reconciler.run(strategy)


class Shop:
    """One server app and the agents (engines) of the test."""

    def __init__(self, tmp_path: Path, app) -> None:
        self.tmp_path = tmp_path
        self.app = app
        self.service = app.state.sync.service
        self.engines: list[InProcessEngine] = []

    def agent(self, name: str, *, api_key: str | None = None, **config) -> InProcessEngine:
        store = Store(self.tmp_path / f"{name}.db")
        transport = Transport(self.app)
        engine = InProcessEngine(
            store,
            SyncSettings(
                server_url=SERVER_URL,
                machine_id=name,
                api_key=api_key,
                auto_sync=False,
                auto_reconcile=False,
                **config,
            ),
            transport=transport,
        )
        engine.transport = transport
        self.engines.append(engine)
        return engine

    async def close(self) -> None:
        for engine in self.engines:
            await engine.context.client.aclose()
            engine.store.close()

    def server_rows(self, table: str) -> dict[str, dict]:
        return {r["id"]: r for r in self.service.list_live(table)}


def run(tmp_path: Path, scenario, **settings) -> None:
    async def main() -> None:
        app = create_app(
            Settings(
                data_dir=tmp_path / "server",
                database_url=f"sqlite:///{tmp_path / 's.db'}",
                **settings,
            )
        )
        async with app.router.lifespan_context(app):
            shop = Shop(tmp_path, app)
            try:
                await asyncio.wait_for(scenario(shop), timeout=90)
            finally:
                await shop.close()

    asyncio.run(main())


def write(
    engine: Engine,
    table: str,
    record: dict,
    *,
    event_id: str | None = None,
    group: str | None = None,
) -> str:
    event_id = event_id or str(uuid.uuid4())
    [result] = engine.store.write(
        [(event_id, parse_change(TABLES[table], record))], engine.now(), group_id=group
    )
    assert result["status"] == "accepted", result
    engine.local_write_done()  # as the loopback API does after a committed write
    return event_id


def sale(engine: Engine, order_id: str, product_id: str, quantity: int) -> None:
    """A sale as the POS sends it: order, item and stock decrement in one atomic group."""
    items = [
        (
            str(uuid.uuid4()),
            parse_change(TABLES["orders"], {"id": order_id, "total": "7.50", "status": "Pago"}),
        ),
        (
            str(uuid.uuid4()),
            parse_change(
                TABLES["order_items"],
                {
                    "id": f"{order_id}-1",
                    "order_id": order_id,
                    "product_id": product_id,
                    "quantity": quantity,
                    "price": "2.50",
                },
            ),
        ),
        (
            str(uuid.uuid4()),
            parse_change(
                TABLES["products"],
                {"id": product_id, "_op": "increment", "stock_quantity": -quantity},
            ),
        ),
    ]
    engine.store.write(items, engine.now(), group_id=str(uuid.uuid4()))
    engine.local_write_done()


def local_rows(engine: Engine, table: str) -> dict[str, dict]:
    return {r["id"]: r for r in engine.store.list(table)}


async def set_on_server(shop: Shop, product_id: str, stock: int) -> None:
    """Another PDV sets a product's stock on the server (the test's PDV has not pulled it)."""
    other = shop.agent(f"other-{uuid.uuid4().hex[:6]}")
    await other._pull_to_head()
    write(other, "products", {"id": product_id, "stock_quantity": stock})
    await other._sync_cycle()
    assert shop.server_rows("products")[product_id]["stock_quantity"] == stock


def assert_same_as_server(shop: Shop, engine: Engine) -> None:
    for table in TABLES:
        assert local_rows(engine, table) == shop.server_rows(table), table
    server_summary, _, _ = shop.service.summary()
    local = engine.store.summary()
    for entry in server_summary:
        assert local[entry["table"]] == {
            k: entry[k] for k in ("count", "latestUpdatedAt", "checksum")
        }


# -- push and pull ---------------------------------------------------------------------------


def test_push_then_pull_round_trip_between_two_stores(tmp_path):
    async def scenario(shop: Shop) -> None:
        a, b = shop.agent("caixa-a"), shop.agent("caixa-b")
        write(
            a,
            "products",
            {"id": "p1", "name": "Pão francês", "price": "0.75", "stock_quantity": 100},
        )
        write(
            a,
            "products",
            {
                "id": "p2",
                "name": "Sonho",
                "price": "6.50",
                "stock_quantity": 10,
                "updatedAt": a.now() - 60_000,
            },
        )  # created a minute ago
        write(a, "supplies", {"id": "s1", "name": "Farinha", "stock": "50.000", "unit": "kg"})
        sale(a, "o1", "p1", 3)
        assert a.status()["state"] == "waiting" and a.status()["pending"] == 6

        await a._sync_cycle()
        status = a.status()
        assert (status["state"], status["label"], status["pending"]) == (
            "synced",
            "Sincronizado",
            0,
        )
        assert status["online"] is True and status["lastError"] is None and status["cursor"] > 0
        assert shop.server_rows("products")["p1"]["stock_quantity"] == 97
        assert_same_as_server(shop, a)

        await b._sync_cycle()
        assert local_rows(b, "products")["p1"]["stock_quantity"] == 97
        assert local_rows(b, "order_items")["o1-1"]["quantity"] == 3
        assert_same_as_server(shop, b)

        # Concurrent sales on both machines: no decrement is lost.
        sale(a, "o2", "p1", 2)
        sale(b, "o3", "p1", 5)
        write(b, "products", {"id": "p1", "_op": "increment", "stock_quantity": 50})  # a delivery
        await a._sync_cycle()
        await b._sync_cycle()
        await a._sync_cycle()
        for engine in (a, b):
            assert local_rows(engine, "products")["p1"]["stock_quantity"] == 97 - 2 - 5 + 50
            assert_same_as_server(shop, engine)

        # Invariant 9 across machines: A's pending price change survives B's (older) rename
        # arriving; then A's newer patch wins and the server holds both changes.
        write(b, "products", {"id": "p2", "name": "Sonho de creme", "updatedAt": b.now() - 10_000})
        write(a, "products", {"id": "p2", "price": "7.00"})
        await b._sync_cycle()
        await a._pull_to_head()  # a pull only: A's edit is still pending
        p2 = local_rows(a, "products")["p2"]
        assert (p2["name"], str(p2["price"])) == ("Sonho de creme", "7.00")
        assert a.store.pending_count() == 1
        await a._sync_cycle()
        await b._sync_cycle()
        assert (
            shop.server_rows("products")["p2"]["name"],
            str(shop.server_rows("products")["p2"]["price"]),
        ) == ("Sonho de creme", "7.00")

        # Deletes travel as tombstones.
        write(a, "products", {"id": "p2", "_op": "delete"})
        await a._sync_cycle()
        await b._sync_cycle()
        for engine in (a, b):
            assert "p2" not in local_rows(engine, "products")
            assert_same_as_server(shop, engine)

    run(tmp_path, scenario)


def test_stale_edit_is_answered_with_the_servers_version(tmp_path):
    async def scenario(shop: Shop) -> None:
        a, b = shop.agent("a"), shop.agent("b")
        write(a, "products", {"id": "p1", "name": "Broa", "price": "3.00"})
        await a._sync_cycle()
        await b._sync_cycle()
        # B edited offline a minute ago; A edits now and reaches the server first.
        write(b, "products", {"id": "p1", "name": "Broa de milho", "updatedAt": b.now() - 60_000})
        write(a, "products", {"id": "p1", "name": "Broa caseira"})
        await a._sync_cycle()
        assert local_rows(b, "products")["p1"]["name"] == "Broa de milho"
        await b._sync_cycle()
        assert local_rows(b, "products")["p1"]["name"] == "Broa caseira"
        assert b.store.pending_count() == 0 and b.store.dead_letters() == []
        assert b.status()["state"] == "synced"
        assert_same_as_server(shop, b)

    run(tmp_path, scenario)


@pytest.mark.parametrize("skew", [-HOUR, HOUR])
def test_an_hour_of_clock_skew_neither_always_wins_nor_always_loses(tmp_path, skew):
    async def scenario(shop: Shop) -> None:
        a, b = shop.agent("a"), shop.agent("b", clock_skew_ms=skew)
        write(a, "products", {"id": "p1", "name": "v0", "updatedAt": a.now() - 60_000})
        await a._sync_cycle()
        await b._sync_cycle()  # B learns its offset from the server's replies
        assert abs(b.clock.offset_ms + skew) < 10_000
        assert abs(b.now() - a.now()) < 10_000

        # A's edit from 10 s ago, then B's edit now: B's is newer and wins, even when B's
        # own clock is an hour behind.
        write(
            a, "products", {"id": "p1", "name": "from A, 10 s ago", "updatedAt": a.now() - 10_000}
        )
        await a._sync_cycle()
        write(b, "products", {"id": "p1", "name": "from B, now"})
        await b._sync_cycle()
        assert shop.server_rows("products")["p1"]["name"] == "from B, now"

        # B's edit from 10 s ago reaches the server after A's edit of now: A's is newer and
        # wins, even when B's own clock is an hour ahead.
        write(
            b, "products", {"id": "p1", "name": "from B, 10 s ago", "updatedAt": b.now() - 10_000}
        )
        write(a, "products", {"id": "p1", "name": "from A, now"})
        await a._sync_cycle()
        await b._sync_cycle()
        assert shop.server_rows("products")["p1"]["name"] == "from A, now"
        assert local_rows(b, "products")["p1"]["name"] == "from A, now"

    run(tmp_path, scenario)


# -- failures --------------------------------------------------------------------------------


def test_rejected_event_becomes_a_dead_letter_and_the_events_behind_it_are_pushed(tmp_path):
    async def scenario(shop: Shop) -> None:
        a = shop.agent("a")
        # A stock increment whose result no client could read back (past 2^53): another
        # PDV took the stock to the edge meanwhile, so the server refuses this one.
        write(a, "products", {"id": "big", "name": "Estoque enorme", "stock_quantity": 5})
        await a._sync_cycle()
        await set_on_server(shop, "big", 2**53 - 3)
        bad = write(a, "products", {"id": "big", "_op": "increment", "stock_quantity": 5})
        write(a, "products", {"id": "p5", "name": "Pão doce"})
        await a._sync_cycle()
        [dead] = a.store.dead_letters()
        assert dead.event_id == bad and dead.state == DEAD and dead.reason == "out_of_range"
        assert "stock_quantity" in dead.last_error
        assert "p5" in shop.server_rows("products")
        assert local_rows(a, "products")["big"]["stock_quantity"] == 2**53 - 3  # the server's
        status = a.status()
        assert (status["deadLetters"], status["pending"], status["state"]) == (1, 0, "divergent")

        # An event the server cannot even parse (e.g. written by an older agent, a value of
        # the wrong type), planted in the outbox: the server names it invalid, and the events
        # behind it still go.
        a.store.m.Outbox.create(
            event_id="old-format",
            table_name="products",
            record_id="p6",
            op="upsert",
            payload=dumps({"id": "p6", "price": "muito caro", "updatedAt": a.now()}),
            state="pending",
            created_at=a.now(),
            next_attempt_at=0,
        )
        write(a, "products", {"id": "p7", "name": "Rosca"})
        await a._sync_cycle()
        assert {e.event_id for e in a.store.dead_letters()} == {bad, "old-format"}
        assert "p7" in shop.server_rows("products") and "p6" not in shop.server_rows("products")
        assert a.status()["deadLetters"] == 2

        # Retry puts it back in line (rejected again); discard drops it for good.
        assert a.retry_dead(bad) is True
        assert a.store.pending_count() == 1
        await a._sync_cycle()
        assert len(a.store.dead_letters()) == 2
        assert a.discard_dead(bad) and a.discard_dead("old-format")
        assert a.status()["deadLetters"] == 0
        assert_same_as_server(shop, a)

    run(tmp_path, scenario)


def test_the_other_events_of_a_sale_with_an_invalid_event_die_with_it_for_the_agents_reason(
    tmp_path,
):
    async def scenario(shop: Shop) -> None:
        a = shop.agent("a")
        for event_id, payload in (
            ("old-format", {"id": "p6", "price": "muito caro", "updatedAt": a.now()}),
            ("its-sale", {"id": "p7", "name": "Rosca", "updatedAt": a.now()}),
        ):
            a.store.m.Outbox.create(
                event_id=event_id,
                table_name="products",
                record_id=payload["id"],
                op="upsert",
                payload=dumps(payload),
                group_id="sale-1",
                state="pending",
                created_at=a.now(),
                next_attempt_at=0,
            )
        await a._sync_cycle()
        dead = {e.event_id: e for e in a.store.dead_letters()}
        assert set(dead) == {"old-format", "its-sale"}
        assert dead["its-sale"].reason == "part_of_refused_sale"  # worded by the UI only
        assert dead["its-sale"].last_error == "part of a sale the server refused"

    run(tmp_path, scenario)


def test_a_push_refused_as_a_whole_is_retried_later_and_says_why_with_a_code(tmp_path):
    async def scenario(shop: Shop) -> None:
        a = shop.agent("a")
        write(a, "products", {"id": "p1", "name": "Pão"})

        async def refused(*args, **kwargs):
            raise Rejected(400, {"success": False, "error": "cursor: expected an integer"})

        a.context.client.push = refused
        await a._sync_cycle()
        status = a.status()
        assert (status["state"], status["lastErrorCode"]) == ("offline", "server_refused")
        assert status["lastError"] == "cursor: expected an integer"
        [event] = a.store.pending_events()
        assert event.attempts == 1
        assert split_failure(event.last_error) == (
            SyncError.SERVER_REFUSED,
            "cursor: expected an integer",
        )

    run(tmp_path, scenario)


def test_offline_then_back_nothing_lost(tmp_path):
    async def scenario(shop: Shop) -> None:
        a = shop.agent("a", retry_base_delay_ms=500)
        a.transport.down = True
        write(a, "products", {"id": "p1", "name": "Pão", "stock_quantity": 10})
        await a._sync_cycle()
        status = a.status()
        assert (status["state"], status["label"], status["pending"]) == (
            "offline",
            "Offline/Erro",
            1,
        )
        assert status["lastErrorCode"] == "unreachable" and "unreachable" in status["lastError"]
        [event] = a.store.pending_events()
        assert event.attempts == 1 and event.next_attempt_at > a.clock.local_now()

        # The POS keeps selling while offline.
        write(a, "products", {"id": "p1", "_op": "increment", "stock_quantity": -4})
        assert local_rows(a, "products")["p1"]["stock_quantity"] == 6

        a.transport.down = False
        a.clock.skew_ms += 60_000  # past the backoff, without waiting for it
        await a._sync_cycle()
        assert a.status()["state"] == "synced"
        assert shop.server_rows("products")["p1"]["stock_quantity"] == 6
        assert_same_as_server(shop, a)

    run(tmp_path, scenario)


def test_lost_push_reply_counts_the_increment_once(tmp_path):
    async def scenario(shop: Shop) -> None:
        a = shop.agent("a")
        write(a, "products", {"id": "p1", "name": "Pão", "stock_quantity": 10})
        await a._sync_cycle()
        write(a, "products", {"id": "p1", "_op": "increment", "stock_quantity": -2})
        a.transport.lose_next_push_reply = True
        await a._sync_cycle()  # committed on the server, but the agent never heard back
        assert a.status()["state"] == "offline" and a.store.pending_count() == 1
        assert shop.server_rows("products")["p1"]["stock_quantity"] == 8
        await a._sync_cycle()  # the event is backing off; a pull brings the server's row
        await a._sync_cycle()
        a.clock.skew_ms += 60_000  # past the backoff: the re-push is answered "duplicate"
        await a._sync_cycle()
        assert a.store.pending_count() == 0
        assert local_rows(a, "products")["p1"]["stock_quantity"] == 8
        assert_same_as_server(shop, a)

    run(tmp_path, scenario)


def test_a_cursor_ahead_of_the_server_resyncs_in_full_and_keeps_pending_events(tmp_path):
    async def scenario(shop: Shop) -> None:
        a = shop.agent("a")
        write(a, "products", {"id": "p1", "name": "Pão", "stock_quantity": 10})
        write(a, "products", {"id": "p2", "name": "Bolo"})
        await a._sync_cycle()
        write(a, "products", {"id": "p1", "_op": "increment", "stock_quantity": -2})
        write(a, "products", {"id": "p3", "name": "Novo"})
        a.store.set_state("cursor", "999")  # e.g. the server's database was restored
        await a._sync_cycle()
        assert a.status()["state"] == "synced", a.status()["lastError"]
        assert a.store.pending_count() == 0
        assert local_rows(a, "products")["p1"]["stock_quantity"] == 8
        assert shop.server_rows("products")["p1"]["stock_quantity"] == 8
        assert a.store.cursor == shop.service.head()
        assert_same_as_server(shop, a)

    run(tmp_path, scenario)


def test_a_refused_key_is_offline_with_the_reason(tmp_path):
    async def scenario(shop: Shop) -> None:
        a = shop.agent("a", api_key="wrong-key")
        write(a, "products", {"id": "p1", "name": "Pão"})
        await a._sync_cycle()
        status = a.status()
        assert (status["state"], status["authRefused"], status["pending"]) == ("offline", True, 1)
        assert status["lastErrorCode"] == "auth_refused" and "wrong-key" not in status["lastError"]
        good = shop.agent("b", api_key="the-shop-key")
        await good._sync_cycle()
        assert good.status()["state"] == "synced"

    run(tmp_path, scenario, api_secret_key="the-shop-key")


# -- reconcile -------------------------------------------------------------------------------


def test_reconcile_consistent_after_a_sync(tmp_path):
    async def scenario(shop: Shop) -> None:
        a = shop.agent("a")
        for i in range(5):
            write(a, "products", {"id": f"p{i}", "name": f"produto {i}", "price": "1.10"})
        # Reconcile pushes first: pending events are never a false divergence.
        report = await a._reconcile(None)
        assert (report["status"], report["isConsistent"], report["mismatches"]) == (
            "consistent",
            True,
            [],
        )
        assert report["strategy"] == "refresh_mismatched" and report["serverLogId"] is not None
        assert a.store.pending_count() == 0
        [entry] = a.store.reconcile_history()
        assert entry["status"] == "consistent" and entry["server_log_id"] == report["serverLogId"]
        history = await a.reconciler.server_history()
        assert (
            history["data"][0]["id"] == report["serverLogId"]
            and history["data"][0]["machine_id"] == "a"
        )
        status = a.status()
        assert status["state"] == "synced" and status["lastReconcile"]["status"] == "consistent"

    run(tmp_path, scenario)


def test_a_reconcile_without_the_server_reports_an_error_code_and_logs_it(tmp_path):
    async def scenario(shop: Shop) -> None:
        a = shop.agent("a")
        a.transport.down = True
        report = await a._reconcile(None)
        assert (report["status"], report["isConsistent"], report["errorCode"]) == (
            "error",
            False,
            "unreachable",
        )
        assert "unreachable" in report["error"]  # English; the UI words the code
        [entry] = a.store.reconcile_history()
        assert split_failure(entry["error"]) == (SyncError.UNREACHABLE, report["error"])
        assert a.status()["lastReconcile"]["errorCode"] == "unreachable"

    run(tmp_path, scenario)


def test_no_false_divergence_while_another_machine_writes(tmp_path):
    async def scenario(shop: Shop) -> None:
        a = shop.agent("a")
        write(a, "products", {"id": "p1", "name": "Pão"})
        await a._sync_cycle()

        def b_writes() -> None:  # another PDV's push lands between A's pull and its reconcile
            change = parse_change(TABLES["products"], {"id": "b1", "name": "do caixa B"})
            shop.service.push(
                "b", [PushItem(str(uuid.uuid4()), change, record_id="b1", table="products")]
            )

        a.transport.before["/api/sync/reconcile"] = [b_writes]
        report = await a._reconcile("none")
        assert report["status"] == "consistent"
        assert "b1" in local_rows(a, "products")
        statuses = [h["status"] for h in shop.service.history(machine_id="a")]
        assert statuses == ["consistent", "retry"]  # newest first: a retry, never "divergent"
        assert not a.facts.divergent

    run(tmp_path, scenario)


def _plant_divergence(engine: Engine, ids: list[str]) -> tuple[str, str, str]:
    """Corrupt the view directly: one row changed, one missing, one that the server never had."""
    P = engine.store.m.views["products"]
    changed, dropped = ids[3], ids[17]
    used = {bucket_of(i) for i in ids}
    ghost = next(f"ghost{i}" for i in range(100_000) if bucket_of(f"ghost{i}") not in used)
    P.update(name="corrompido", stock_quantity=-999).where(P.id == changed).execute()
    P.delete().where(P.id == dropped).execute()
    P.insert(id=ghost, updated_at=engine.now(), name="fantasma", stock_quantity=1).execute()
    return changed, dropped, ghost


def _distinct_bucket_ids(n: int) -> list[str]:
    ids, used, i = [], set(), 0
    while len(ids) < n:
        candidate = f"prod-{i}"
        if bucket_of(candidate) not in used:
            used.add(bucket_of(candidate))
            ids.append(candidate)
        i += 1
    return ids


def test_planted_divergence_is_found_and_refresh_mismatched_repairs_exactly_it(tmp_path):
    async def scenario(shop: Shop) -> None:
        a = shop.agent("a")
        ids = _distinct_bucket_ids(40)
        for n, row_id in enumerate(ids):
            write(a, "products", {"id": row_id, "name": f"produto {n}", "stock_quantity": n})
        write(a, "orders", {"id": "o1", "total": "9.90"})
        await a._sync_cycle()
        clean = local_rows(a, "products")
        changed, dropped, ghost = _plant_divergence(a, ids)

        # Strategy "none": reported, not repaired; the badge says so.
        report = await a._reconcile("none")
        assert report["status"] == "divergent" and not report["isConsistent"]
        [mismatch] = report["mismatches"]
        # Same count, a newer row (the ghost), other content: the seed's reason, and the
        # checksum difference beside it.
        assert mismatch["table"] == "products"
        assert mismatch["reason"] == "latest_updatedAt_mismatch" and mismatch["checksumMismatch"]
        status = a.status()
        assert (status["state"], status["label"]) == ("divergent", "Com Divergência")

        report = await a._reconcile("refresh_mismatched")
        assert report["status"] == "repaired" and report["isConsistent"]
        [repaired] = report["repair"]["tables"]
        assert repaired["table"] == "products"
        assert repaired["buckets"] == sorted(bucket_of(i) for i in (changed, dropped, ghost))
        assert (repaired["fixed"], repaired["removed"]) == (sorted([changed, dropped]), [ghost])
        assert local_rows(a, "products") == clean
        assert a.status()["state"] == "synced"
        assert [h["status"] for h in a.store.reconcile_history()] == ["repaired", "divergent"]
        assert_same_as_server(shop, a)

    run(tmp_path, scenario)


def test_full_resync_repairs_and_keeps_pending_events(tmp_path):
    async def scenario(shop: Shop) -> None:
        a, b = shop.agent("a"), shop.agent("b")
        ids = _distinct_bucket_ids(20)
        for row_id in ids:
            write(a, "products", {"id": row_id, "name": row_id, "stock_quantity": 10})
        await a._sync_cycle()
        _plant_divergence(a, ids)
        write(
            a, "products", {"id": ids[0], "_op": "increment", "stock_quantity": -1}
        )  # pushed first
        report = await a._reconcile("full_resync")
        assert report["status"] == "repaired", report
        assert report["repair"]["strategy"] == "full_resync"
        assert local_rows(a, "products")[ids[0]]["stock_quantity"] == 9
        assert_same_as_server(shop, a)

        # A full resync with an edit still pending (B, which never pushed it) keeps the edit.
        await b._sync_cycle()
        write(b, "products", {"id": ids[1], "name": "renomeado em B"})
        await b.cycle.full_resync()  # forgets the mirror and pulls it again, without pushing
        assert local_rows(b, "products")[ids[1]]["name"] == "renomeado em B"
        assert b.store.pending_count() == 1
        await b._sync_cycle()
        assert shop.server_rows("products")[ids[1]]["name"] == "renomeado em B"
        assert_same_as_server(shop, b)

    run(tmp_path, scenario)


def test_a_batch_over_the_servers_body_limit_is_split_not_retried_forever(tmp_path):
    """A 413 must not be retried as is forever (the outbox would never drain)."""

    async def scenario(shop: Shop) -> None:
        a = shop.agent("a")
        for i in range(60):  # ~60 x 2 KB: over the server's 64 KB limit as one batch
            write(a, "products", {"id": f"p{i}", "name": f"produto {i}", "description": "ç" * 1000})
        for _ in range(5):
            await a._sync_cycle()
            a.clock.skew_ms += 600_000  # past any backoff, without waiting for it
        assert a.store.pending_count() == 0, a.status()["lastError"]
        assert len(shop.server_rows("products")) == 60

    run(tmp_path, scenario, max_body_bytes=64 * 1024)
