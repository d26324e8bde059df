"""What the tray needs from the sync layer, in one place: status, outbox, histories,
dead-letter actions, reconcile and a connection test. The UI calls this, never the store."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

from protocol import parse_ms, to_iso

from .engine import Engine


class ConnectionOutcome(StrEnum):
    """What a connection test found (the settings window words it for the manager)."""

    OK = "ok"  # reachable, key accepted (or none needed)
    UNREACHABLE = "unreachable"  # no answer at all
    NOT_A_SERVER = "not_a_server"  # something answers, not a PDV Sync server
    KEY_REFUSED = "key_refused"  # reachable, the key was refused
    HTTP_ERROR = "http_error"  # reachable, another error status


@dataclass
class ConnectionReport:
    reachable: bool
    authenticated: bool | None  # None when it could not be checked (server unreachable)
    clock_offset_ms: int | None
    outcome: ConnectionOutcome
    detail: str = ""  # English: the network error's name, or the HTTP status


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
        return ConnectionReport(
            False, None, None, ConnectionOutcome.UNREACHABLE, type(exc).__name__
        )
    except ValueError:
        return ConnectionReport(False, None, None, ConnectionOutcome.NOT_A_SERVER)
    if probe.status_code == 401:
        return ConnectionReport(True, False, offset, ConnectionOutcome.KEY_REFUSED)
    if probe.status_code >= 400:
        return ConnectionReport(
            True, None, offset, ConnectionOutcome.HTTP_ERROR, f"HTTP {probe.status_code}"
        )
    return ConnectionReport(True, True, offset, ConnectionOutcome.OK)


class SyncMonitor:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="monitor"
        )
        self._listeners: list[Any] = []  # removed from the engine on close

    def status(self) -> dict[str, Any]:
        return self.engine.status()

    def add_listener(self, callback) -> None:
        self.engine.add_listener(callback)
        self._listeners.append(callback)

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
        """The UI is done with this engine: its worker threads end, and the engine calls
        the UI's listeners no more (a closed tray's Qt objects are then collectable on the
        GUI thread, never touched from the engine's while they are destroyed)."""
        for callback in self._listeners:
            self.engine.remove_listener(callback)
        self._listeners.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
