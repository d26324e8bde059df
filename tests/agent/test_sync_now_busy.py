""" "Sync now" while the engine is busy past the route's wait: a clear 503, never a 500, and
the cycle still runs once the engine is free."""

from __future__ import annotations

import asyncio
import socket

import httpx

from agent.api import create_local_app
from agent.store.store import Store
from agent.sync.engine import Engine, SyncSettings


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sync_now_past_its_wait_is_503_and_the_cycle_still_runs(tmp_path):
    store = Store(tmp_path / "agent.db")
    engine = Engine(
        store,
        SyncSettings(
            server_url=f"http://127.0.0.1:{_closed_port()}",
            machine_id="caixa-1",
            auto_sync=False,
            auto_reconcile=False,
        ),
    )
    engine.SYNC_NOW_WAIT_S = 0.5
    engine.start()
    try:
        # A reconcile (or a slow server) holds the engine's work for longer than the wait.
        release = asyncio.Event()

        async def hold_the_work() -> None:
            async with engine.context.work_lock:
                await release.wait()

        held = engine._runner.submit(hold_the_work())
        app = create_local_app(store, engine)

        async def sync_now() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                return await c.post("/api/sync/now")

        r = asyncio.run(sync_now())
        assert r.status_code == 503, r.text
        assert r.json()["success"] is False and r.json()["code"] == "sync_busy"

        engine._runner.call_soon(release.set)
        held.result(5)
        engine.SYNC_NOW_WAIT_S = 30.0
        r = asyncio.run(sync_now())
        assert r.status_code == 200, r.text
        # The cycle ran: the server is not there, and the badge says so.
        assert r.json()["state"] == "offline"
    finally:
        engine.stop()
        store.close()
