"""A Python API for embedding the agent, shaped like the seed's `initSyncClient` options."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, cast

from protocol import TABLES, ProtocolError, parse_change
from protocol.vocabulary import DivergenceStrategy

from .config import AgentConfig
from .runtime import AgentRuntime
from .store.store import WriteResult
from .sync.reconcile import ReconcileReport


class SyncClient:
    """`init_sync_client(server_url=..., tenant_id=None, auto_sync=True, sync_interval=5000, ...)`.

    Writes go to the local store at once (offline-safe); `fetch` returns the materialised
    rows without deleted ones, as the seed's `SyncClient.fetch()`.
    """

    def __init__(self, runtime: AgentRuntime) -> None:
        self._rt = runtime

    def push(self, table: str, record: dict[str, Any], event_id: str | None = None) -> WriteResult:
        if table not in TABLES:
            raise ProtocolError("unknown_table", f"unknown table '{table}'", status=404)
        change = parse_change(TABLES[table], record)
        change.edited_at = None
        result = self._rt.store.write(
            [(event_id or str(uuid.uuid4()), change)], self._rt.engine.now()
        )[0]
        self._rt.engine.local_write_done()
        return result

    def fetch(self, table: str) -> list[dict[str, Any]]:
        if table not in TABLES:
            raise ProtocolError("unknown_table", f"unknown table '{table}'", status=404)
        return self._rt.store.list(table)

    def sync(self) -> dict[str, Any]:
        return self._rt.engine.sync_now()

    def reconcile(self, strategy: str | None = None) -> ReconcileReport:
        return self._rt.engine.reconcile_now(strategy)

    def status(self) -> dict[str, Any]:
        return self._rt.engine.status()

    def close(self) -> None:
        self._rt.stop()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def init_sync_client(
    server_url: str,
    *,
    machine_id: str | None = None,
    tenant_id: str | None = None,
    data_dir: str | Path | None = None,
    api_key: str | None = None,
    auto_sync: bool = True,
    sync_interval: int = 5000,
    retry_attempts: int = 3,
    retry_base_delay: int = 500,
    retry_max_delay: int = 5000,
    auto_reconcile: bool = True,
    reconcile_interval: int = 60000,
    divergence_strategy: str = "refresh_mismatched",
    serve_local_api: bool = False,
    local_port: int = 4000,
) -> SyncClient:
    config = AgentConfig(
        server_url=server_url,
        machine_id=machine_id,
        tenant_id=tenant_id,
        data_dir=Path(data_dir) if data_dir else None,
        auto_sync=auto_sync,
        interval_ms=sync_interval,
        retry_attempts=retry_attempts,
        retry_base_delay_ms=retry_base_delay,
        retry_max_delay_ms=retry_max_delay,
        auto_reconcile=auto_reconcile,
        reconcile_interval_ms=reconcile_interval,
        # Text, as the seed takes it: held as the enum when valid, refused by validate() if not.
        divergence_strategy=cast(DivergenceStrategy, divergence_strategy),
        local_port=local_port,
    ).validate()
    runtime = AgentRuntime(config, api_key=api_key)
    runtime.start(serve_api=serve_local_api)
    return SyncClient(runtime)
