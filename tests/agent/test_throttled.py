"""A 429 is the server saying "not now": the PDV stays online, its events wait (Retry-After
honoured, within bounds), its badge says Aguardando with the count, and the reason is the
code `server_busy`, worded for the manager by the UI. Against the real server app in
process."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from agent.store.store import Store
from agent.sync.client import (
    RETRY_AFTER_DEFAULT_MS,
    RETRY_AFTER_MAX_MS,
    RETRY_AFTER_MIN_MS,
    retry_after_ms,
)
from agent.sync.engine import SyncSettings
from agent.sync.errors import SyncError, split_failure
from tests.agent.test_engine_inprocess import (
    SERVER_URL,
    InProcessEngine,
    Shop,
    Transport,
    run,
    write,
)


class Busy(Transport):
    """The app's transport; while `busy`, pushes get 429 with `retry_after` (the header)."""

    def __init__(self, app) -> None:
        super().__init__(app)
        self.busy = True
        self.retry_after: str | None = "7"
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.busy and request.url.path == "/api/sync/batch":
            self.refused += 1
            headers = {"retry-after": self.retry_after} if self.retry_after else {}
            return httpx.Response(
                429,
                json={"success": False, "error": "too many requests", "code": "busy"},
                headers=headers,
            )
        return await super().handle_async_request(request)


def busy_agent(shop: Shop, name: str) -> tuple[InProcessEngine, Busy]:
    transport = Busy(shop.app)
    engine = InProcessEngine(
        Store(shop.tmp_path / f"{name}.db"),
        SyncSettings(server_url=SERVER_URL, machine_id=name, auto_sync=False, auto_reconcile=False),
        transport=transport,
    )
    engine.transport = transport
    shop.engines.append(engine)
    return engine, transport


def test_a_429_keeps_the_pdv_online_and_its_sales_waiting(tmp_path):
    async def scenario(shop: Shop) -> None:
        a, transport = busy_agent(shop, "caixa-1")
        await a._sync_cycle()  # reaches the server: online, synced
        assert a.status()["state"] == "synced"
        write(a, "products", {"id": "p1", "name": "Pão"})
        write(a, "products", {"id": "p2", "name": "Bolo"})
        before = a.clock.local_now()
        await a._sync_cycle()
        assert transport.refused == 1
        status = a.status()
        assert status["state"] == "waiting" and status["label"] == "Aguardando"
        assert status["online"] is True and status["pending"] == 2
        assert status["lastErrorCode"] == SyncError.SERVER_BUSY.value
        # The events wait for the Retry-After (7 s), not for the usual short backoff.
        due = a.cycle.earliest_retry()
        assert due is not None and 7_000 <= due - before <= 7_000 + 1_000
        (event, *_) = a.store.pending_events(10)
        assert split_failure(event.last_error)[0] is SyncError.SERVER_BUSY
        # Not due yet: an automatic cycle sends nothing.
        await a._sync_cycle()
        assert transport.refused == 1
        # The server takes them again: synced, the reason gone.
        transport.busy = False
        await a._sync_cycle(force=True)
        status = a.status()
        assert status["state"] == "synced" and status["pending"] == 0
        assert status["lastErrorCode"] is None
        assert set(shop.server_rows("products")) == {"p1", "p2"}

    run(tmp_path, scenario)


def test_a_reconcile_while_the_server_is_busy_says_so(tmp_path):
    async def scenario(shop: Shop) -> None:
        a, transport = busy_agent(shop, "caixa-1")
        write(a, "products", {"id": "p1", "name": "Pão"})
        report = await a._reconcile(None)
        assert report["status"] == "error" and report["errorCode"] is SyncError.SERVER_BUSY
        assert a.status()["state"] == "waiting"

    run(tmp_path, scenario)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7_000),
        ("0.5", RETRY_AFTER_MIN_MS),  # bounded below: never a tight loop
        ("3600", RETRY_AFTER_MAX_MS),  # bounded above: sales never wait an hour
        (None, RETRY_AFTER_DEFAULT_MS),
        ("", RETRY_AFTER_DEFAULT_MS),
        ("soon", RETRY_AFTER_DEFAULT_MS),
        ("-5", RETRY_AFTER_DEFAULT_MS),
    ],
)
def test_retry_after_in_seconds_is_honoured_within_bounds(header, expected):
    assert retry_after_ms(header, 0) == expected


def test_retry_after_as_an_http_date_is_read_on_the_servers_clock():
    now = 1_900_000_000_000
    in_20_s = email.utils.formatdate((now + 20_000) / 1000, usegmt=True)
    assert retry_after_ms(in_20_s, now) == 20_000
    past = email.utils.formatdate((now - 20_000) / 1000, usegmt=True)
    assert retry_after_ms(past, now) == RETRY_AFTER_MIN_MS


def test_server_busy_is_worded_for_the_manager():
    from agent.ui.presentation import error_text

    text = error_text("server_busy", "too many requests")
    assert text is not None and text.startswith("servidor ocupado")
    assert "too many requests" in text
