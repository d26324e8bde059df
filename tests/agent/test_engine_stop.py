"""Stopping the engine while the server hangs: the engine thread ends, nothing is lost."""

from __future__ import annotations

import uuid

from agent.config import AgentConfig
from agent.runtime import AgentRuntime
from agent.store.store import Store
from protocol import TABLES, parse_change
from tests.ui.scenario import HangingServer


def test_stop_while_the_server_hangs_ends_the_engine_and_keeps_the_outbox(tmp_path):
    hanging = HangingServer()
    try:
        config = AgentConfig(
            server_url=hanging.url,
            machine_id="stop-test",
            data_dir=tmp_path / "data",
            log_dir=tmp_path / "logs",
            auto_reconcile=False,
        ).validate()
        runtime = AgentRuntime(config, api_key=None)
        runtime.start(serve_api=False)
        change = parse_change(TABLES["products"], {"id": "p1", "name": "Pão", "stock_quantity": 3})
        runtime.store.write([(str(uuid.uuid4()), change)], runtime.engine.now())
        runtime.engine.local_write_done()  # a push starts and waits on the hanging server
        future = runtime.engine.reconcile_async(None)  # and a submitted request waits too
        runtime.stop()
        assert not runtime.engine._thread.is_alive()
        assert future.done()
    finally:
        hanging.close()
    # The write is still in the outbox, ready for the next start.
    store = Store(tmp_path / "data" / "agent.db")
    try:
        assert store.pending_count() == 1
        assert store.get("products", "p1")["stock_quantity"] == 3
    finally:
        store.close()
