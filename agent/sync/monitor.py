"""What the tray needs from the sync layer, in one place: status, outbox, histories,
dead-letter actions, reconcile and a connection test. The UI calls this, never the store."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from protocol import parse_ms, to_iso

from .engine import Engine


@dataclass
class ConnectionReport:
    reachable: bool
    authenticated: bool | None  # None when it could not be checked (server unreachable)
    clock_offset_ms: int | None
    message: str  # Portuguese, shown to the manager


def test_connection(server_url: str, api_key: str | None, timeout: float = 5.0) -> ConnectionReport:
    """Reachability, authentication and clock offset of a server, without touching the store."""
    headers = {"x-api-key": api_key} if api_key else {}
    try:
        with httpx.Client(base_url=server_url.rstrip("/"), headers=headers, timeout=timeout) as c:
            sent = time.time_ns() // 1_000_000
            health = c.get("/health")
            received = time.time_ns() // 1_000_000
            offset = None
            stamp = (
                health.json().get("timestamp")
                if health.headers.get("content-type", "").startswith("application/json")
                else None
            )
            if stamp:
                offset = parse_ms(stamp) - (sent + received) // 2
            probe = c.get("/api/sync/reconcile")
    except httpx.HTTPError as exc:
        return ConnectionReport(False, None, None, f"Servidor inacessível: {type(exc).__name__}")
    except ValueError:
        return ConnectionReport(
            False, None, None, "O endereço não responde como um servidor PDV Sync"
        )
    if probe.status_code == 401:
        return ConnectionReport(
            True, False, offset, "Servidor acessível, mas a chave de API foi recusada"
        )
    if probe.status_code >= 400:
        return ConnectionReport(
            True, None, offset, f"Servidor respondeu com erro HTTP {probe.status_code}"
        )
    drift = f"; diferença de relógio: {offset / 1000:+.1f} s" if offset is not None else ""
    return ConnectionReport(True, True, offset, f"Conexão OK, chave aceita{drift}")


class SyncMonitor:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="monitor"
        )

    def status(self) -> dict[str, Any]:
        return self.engine.status()

    def add_listener(self, callback) -> None:
        self.engine.add_listener(callback)

    def outbox(self) -> dict[str, list[dict[str, Any]]]:
        store = self.engine.store

        def view(e) -> dict[str, Any]:
            return {
                "eventId": e.event_id,
                "table": e.table,
                "id": e.record_id,
                "op": e.op,
                "createdAt": to_iso(e.created_at),
                "attempts": e.attempts,
                "lastError": e.last_error,
                "reason": e.reason,
            }

        return {
            "pending": [view(e) for e in store.pending_events(200)],
            "dead": [view(e) for e in store.dead_letters()],
        }

    def local_history(self, limit: int = 50) -> Sequence[Mapping[str, Any]]:
        return self.engine.store.reconcile_history(limit)

    def server_history_async(self) -> concurrent.futures.Future:
        return self._pool.submit(self.engine.server_history)

    def retry_dead(self, event_id: str) -> bool:
        return self.engine.retry_dead(event_id)

    def discard_dead(self, event_id: str) -> bool:
        return self.engine.discard_dead(event_id)

    def sync_now_async(self) -> concurrent.futures.Future:
        return self._pool.submit(self.engine.sync_now)

    def reconcile_async(self, strategy: str | None = None) -> concurrent.futures.Future:
        return self.engine.reconcile_async(strategy)

    def test_connection_async(
        self, server_url: str, api_key: str | None
    ) -> concurrent.futures.Future:
        return self._pool.submit(test_connection, server_url, api_key)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
