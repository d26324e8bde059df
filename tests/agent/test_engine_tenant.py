"""The engine and its shop (tenant), against the real server app in process: every request
names the PDV's shop, two shops on one server never see each other's rows, a store keeps
to the shop it first synced with, and the server's refusals about shops are reasons the
manager can read (codes, worded by the UI)."""

from __future__ import annotations

import httpx

from agent.store.store import Store
from agent.sync.engine import SYNCED_TENANT_KEY, SyncSettings
from agent.sync.errors import split_failure, tenant_changed_shops
from tests.agent.test_engine_inprocess import (
    SERVER_URL,
    InProcessEngine,
    Shop,
    Transport,
    local_rows,
    run,
    sale,
    write,
)


class Recording(Transport):
    """The app's transport, remembering each request's path and shop header."""

    def __init__(self, app) -> None:
        super().__init__(app)
        self.seen: list[tuple[str, str | None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.url.path, request.headers.get("x-tenant-id")))
        return await super().handle_async_request(request)


def agent(
    shop: Shop,
    name: str,
    *,
    db: str | None = None,
    transport: Recording | None = None,
    **config,
) -> InProcessEngine:
    """An engine of the test's server on the store `db` (default: its own), recording."""
    store = Store(shop.tmp_path / f"{db or name}.db")
    transport = transport or Recording(shop.app)
    engine = InProcessEngine(
        store,
        SyncSettings(
            server_url=SERVER_URL,
            machine_id=name,
            auto_sync=False,
            auto_reconcile=False,
            **config,
        ),
        transport=transport,
    )
    engine.transport = transport
    shop.engines.append(engine)
    return engine


async def retire(shop: Shop, engine: InProcessEngine) -> None:
    """Close an engine and its store (a restart of the agent with other settings follows)."""
    await engine.context.client.aclose()
    engine.store.close()
    shop.engines.remove(engine)


def shop_rows(shop: Shop, tenant: str, table: str) -> dict[str, dict]:
    return {r["id"]: r for r in shop.service.scoped(tenant).list_live(table)}


def test_every_request_names_the_pdvs_shop(tmp_path):
    async def scenario(shop: Shop) -> None:
        a = agent(shop, "a", tenant_id="loja-a")
        write(a, "products", {"id": "p1", "name": "Pão"})
        await a._sync_cycle(force=True)
        await a._reconcile(None)
        assert a.status()["state"] == "synced"
        paths = {path for path, _ in a.transport.seen}
        assert {"/api/sync/batch", "/api/sync/changes", "/api/sync/reconcile"} <= paths
        assert {tenant for _, tenant in a.transport.seen} == {"loja-a"}
        # No shop set: the default shop, by name.
        d = agent(shop, "d")
        await d._sync_cycle()
        assert d.transport.seen and {t for _, t in d.transport.seen} == {"default"}
        assert (a.tenant, d.tenant) == ("loja-a", "default")
        assert (a.status()["tenantId"], d.status()["tenantId"]) == ("loja-a", "default")

    run(tmp_path, scenario)


def test_two_shops_on_one_server_never_see_each_others_rows(tmp_path):
    async def scenario(shop: Shop) -> None:
        a1 = agent(shop, "a1", tenant_id="loja-a")
        a2 = agent(shop, "a2", tenant_id="loja-a")
        b1 = agent(shop, "b1", tenant_id="loja-b")
        # The same ids in both shops: each shop's row is its own.
        write(a1, "products", {"id": "p1", "name": "Pão A", "stock_quantity": 10})
        write(b1, "products", {"id": "p1", "name": "Pão B", "stock_quantity": 5})
        await a1._sync_cycle()
        await b1._sync_cycle()
        sale(a1, "o1", "p1", 2)
        await a1._sync_cycle()
        for engine in (a2, b1):
            await engine._pull_to_head()
        assert local_rows(a2, "products")["p1"]["name"] == "Pão A"
        assert local_rows(a2, "products")["p1"]["stock_quantity"] == 8
        assert set(local_rows(a2, "orders")) == {"o1"}
        assert local_rows(b1, "products")["p1"]["name"] == "Pão B"
        assert local_rows(b1, "products")["p1"]["stock_quantity"] == 5
        assert local_rows(b1, "orders") == {}
        assert shop_rows(shop, "loja-b", "orders") == {}
        assert shop_rows(shop, "default", "products") == {}
        for engine in (a1, a2, b1):
            report = await engine._reconcile(None)
            assert report["status"] == "consistent", report

    run(tmp_path, scenario)


def test_a_store_keeps_to_the_shop_it_synced_with_and_keeps_its_sales(tmp_path):
    async def scenario(shop: Shop) -> None:
        a = agent(shop, "caixa", tenant_id="loja-a")
        assert a.store.get_state(SYNCED_TENANT_KEY) is None  # no contact yet
        write(a, "products", {"id": "p1", "name": "Pão", "stock_quantity": 10})
        await a._sync_cycle()
        assert a.store.get_state(SYNCED_TENANT_KEY) == "loja-a"
        assert a.status()["syncedTenantId"] == "loja-a"
        await retire(shop, a)

        # The manager points the same PDV (same data folder) at another shop.
        moved = agent(shop, "caixa", tenant_id="loja-b")
        sale(moved, "o1", "p1", 3)
        await moved._sync_cycle(force=True)
        status = moved.status()
        assert (status["state"], status["online"], status["pending"]) == ("offline", False, 3)
        assert status["lastErrorCode"] == "tenant_changed"
        assert tenant_changed_shops(status["lastError"]) == ("loja-a", "loja-b")
        assert (status["tenantId"], status["syncedTenantId"]) == ("loja-b", "loja-a")
        assert moved.transport.seen == []  # nothing sent to either shop
        report = await moved._reconcile(None)
        assert report["errorCode"] == "tenant_changed" and report["status"] == "error"
        [entry] = moved.store.reconcile_history(1)
        assert split_failure(entry["error"])[0] == "tenant_changed"
        # The events are untouched (not counted as failed attempts), and nothing crossed.
        assert [e.attempts for e in moved.store.pending_events()] == [0, 0, 0]
        assert shop_rows(shop, "loja-b", "orders") == {}
        assert moved.store.get_state(SYNCED_TENANT_KEY) == "loja-a"
        await moved.live.run()  # returns at once: no socket for another shop's store
        assert moved.transport.seen == []
        await retire(shop, moved)

        # Pointed back at its shop: the sale kept on the PDV goes to loja-a.
        back = agent(shop, "caixa", tenant_id="loja-a")
        await back._sync_cycle()
        assert back.status()["state"] == "synced" and back.status()["pending"] == 0
        assert set(shop_rows(shop, "loja-a", "orders")) == {"o1"}
        assert shop_rows(shop, "loja-a", "products")["p1"]["stock_quantity"] == 7

    run(tmp_path, scenario)


def test_a_store_that_synced_before_shops_existed_holds_the_default_shops_data(tmp_path):
    async def scenario(shop: Shop) -> None:
        old = agent(shop, "caixa")
        write(old, "products", {"id": "p1", "name": "Pão"})
        await old._sync_cycle()
        assert old.store.cursor > 0
        # As an agent from before the shop setting left it: a cursor, no shop remembered.
        old.store.set_state(SYNCED_TENANT_KEY, "")
        await retire(shop, old)

        moved = agent(shop, "caixa", tenant_id="loja-a")
        await moved._sync_cycle()
        status = moved.status()
        assert status["lastErrorCode"] == "tenant_changed"
        assert tenant_changed_shops(status["lastError"]) == ("default", "loja-a")
        await retire(shop, moved)

        same = agent(shop, "caixa", tenant_id="default")  # the default shop by name
        await same._sync_cycle()
        assert same.status()["state"] == "synced"

    run(tmp_path, scenario)


def test_sales_made_before_the_first_contact_go_to_the_configured_shop(tmp_path):
    async def scenario(shop: Shop) -> None:
        a = agent(shop, "novo", tenant_id="loja-a")
        a.transport.down = True
        write(a, "products", {"id": "p1", "name": "Pão"})
        await a._sync_cycle()
        assert a.status()["lastErrorCode"] == "unreachable"
        assert a.store.get_state(SYNCED_TENANT_KEY) is None  # no answer: no shop yet
        a.transport.down = False
        await a._sync_cycle(force=True)  # the event waits out its backoff otherwise
        assert a.status()["state"] == "synced"
        assert set(shop_rows(shop, "loja-a", "products")) == {"p1"}
        assert a.store.get_state(SYNCED_TENANT_KEY) == "loja-a"

    run(tmp_path, scenario)


def test_a_key_of_another_shop_is_offline_with_the_reason_and_keeps_the_sales(tmp_path):
    async def scenario(shop: Shop) -> None:
        _, key = shop.app.state.sync.keys.issue("caixa", "loja-a")
        b = agent(shop, "caixa", tenant_id="loja-b", api_key=key)
        write(b, "products", {"id": "p1", "name": "Pão", "stock_quantity": 5})
        sale(b, "o1", "p1", 1)
        await b._sync_cycle()
        status = b.status()
        assert (status["state"], status["authRefused"], status["pending"]) == ("offline", True, 4)
        assert status["lastErrorCode"] == "tenant_forbidden"
        assert b.store.get_state(SYNCED_TENANT_KEY) is None  # refused: not this shop's store
        assert shop_rows(shop, "loja-b", "orders") == {} == shop_rows(shop, "loja-a", "orders")
        await retire(shop, b)
        # The same key with its own shop: the sale goes.
        a = agent(shop, "caixa", db="caixa", tenant_id="loja-a", api_key=key)
        await a._sync_cycle(force=True)
        assert a.status()["state"] == "synced"
        assert set(shop_rows(shop, "loja-a", "orders")) == {"o1"}
        assert shop_rows(shop, "loja-a", "products")["p1"]["stock_quantity"] == 4

    run(tmp_path, scenario, api_secret_key="the-shops-master-key")


class RefusingShop(Recording):
    """A server whose shop rule differs from ours: every request answers 400 `code`."""

    def __init__(self, app, code: str) -> None:
        super().__init__(app)
        self.code = code

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.url.path, request.headers.get("x-tenant-id")))
        body = {"success": False, "error": f"tenantId: refused ({self.code})", "code": self.code}
        return httpx.Response(400, json=body, request=request)


def test_the_server_refusing_the_shop_is_offline_with_the_reason_and_keeps_the_sales(tmp_path):
    async def scenario(shop: Shop) -> None:
        for code in ("invalid_tenant", "tenant_mismatch"):
            a = agent(
                shop, f"caixa-{code}", tenant_id="loja-a", transport=RefusingShop(shop.app, code)
            )
            write(a, "products", {"id": "p1", "name": "Pão"})
            await a._sync_cycle()
            status = a.status()
            assert (status["state"], status["pending"]) == ("offline", 1), status
            assert status["lastErrorCode"] == "tenant_refused"
            assert code in status["lastError"]
            assert a.store.pending_count() == 1 and a.store.dead_letters() == []
            assert a.store.get_state(SYNCED_TENANT_KEY) is None

    run(tmp_path, scenario)


def test_a_store_holding_nothing_takes_a_corrected_shop(tmp_path):
    """A shop typed wrong at install and corrected before any sale or data: nothing of the
    first shop is on the PDV, so nothing needs setting aside."""

    async def scenario(shop: Shop) -> None:
        typo = agent(shop, "caixa", tenant_id="loja-typo")
        await typo._sync_cycle()  # an empty shop: nothing pulled, nothing pushed
        assert typo.store.get_state(SYNCED_TENANT_KEY) == "loja-typo"
        assert typo.store.cursor == 0
        await retire(shop, typo)

        fixed = agent(shop, "caixa", tenant_id="loja-a")
        assert fixed.status()["syncedTenantId"] is None
        write(fixed, "products", {"id": "p1", "name": "Pão"})
        await fixed._sync_cycle()
        assert fixed.status()["state"] == "synced"
        assert fixed.store.get_state(SYNCED_TENANT_KEY) == "loja-a"
        assert set(shop_rows(shop, "loja-a", "products")) == {"p1"}
        await retire(shop, fixed)

        # Holding loja-a's data now: the typo again is refused.
        again = agent(shop, "caixa", tenant_id="loja-typo")
        await again._sync_cycle()
        assert again.status()["lastErrorCode"] == "tenant_changed"

    run(tmp_path, scenario)
