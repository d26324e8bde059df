"""A POS write is told to the status listeners (the tray's badge, the panel's report) at once:
by the cycle it wakes, as that cycle starts its push; or from the writing request itself
while a cycle already under way holds the engine (a server that takes the connection and
never answers), so the pending count never waits for that cycle's timeout."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from agent.api import create_local_app
from agent.store.store import Store
from agent.sync.engine import Engine, SyncSettings


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose kernel completes the connection and nobody ever answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


class Heard:
    """The statuses the engine told its listeners, as they come."""

    def __init__(self, engine: Engine) -> None:
        self._statuses: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        engine.context.board.add_listener(self._heard)

    def _heard(self, status: dict[str, Any]) -> None:
        with self._changed:
            self._statuses.append(status)
            self._changed.notify_all()

    def wait_for(self, check: Callable[[dict[str, Any]], bool], timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: any(check(s) for s in self._statuses), timeout)


def _engine(store: Store, port: int) -> Engine:
    return Engine(
        store,
        SyncSettings(
            server_url=f"http://127.0.0.1:{port}",
            machine_id="caixa-1",
            auto_reconcile=False,
        ),
    )


def _sell(store: Store, engine: Engine, row_id: str) -> None:
    """A POS write through the loopback API's real route."""

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_local_app(store, engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return await c.post("/api/products", json={"id": row_id, "name": "Pão"})

    r = asyncio.run(post())
    assert r.status_code == 200, r.text


def _wait_until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_cycle_a_write_wakes_tells_it(tmp_path):
    store = Store(tmp_path / "agent.db")
    engine = _engine(store, _closed_port())
    engine.start()
    try:
        _wait_until(lambda: engine.status()["online"] is False, 10)  # its first cycle is over
        heard = Heard(engine)
        _sell(store, engine, "pao")
        assert heard.wait_for(lambda s: s["pending"] == 1, 5)
    finally:
        engine.stop()
        store.close()


def test_a_write_while_a_cycle_waits_on_a_silent_server_is_told_at_once(tmp_path, silent_port):
    store = Store(tmp_path / "agent.db")
    engine = _engine(store, silent_port)
    engine.start()
    try:
        # Its first cycle waits for an answer that never comes (15 s of HTTP timeout).
        _wait_until(engine.context.work_lock.locked, 10)
        heard = Heard(engine)
        _sell(store, engine, "pao")
        assert heard.wait_for(lambda s: s["pending"] == 1, 3)
        _sell(store, engine, "broa")
        assert heard.wait_for(lambda s: s["pending"] == 2, 3)
        assert engine.context.work_lock.locked()  # still the same cycle, still waiting
    finally:
        engine.stop()
        store.close()
