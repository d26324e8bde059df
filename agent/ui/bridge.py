"""Qt signals over the sync layer: engine callbacks and futures arrive on the GUI thread."""

from __future__ import annotations

import concurrent.futures
from typing import Any

from PySide6.QtCore import QObject, Signal, SignalInstance

from agent.sync.monitor import SyncMonitor


class EngineBridge(QObject):
    """Emitted from worker threads; Qt queues them to the receivers' (GUI) thread."""

    statusChanged = Signal(dict)
    reconcileFinished = Signal(dict)
    reconcileFailed = Signal(str)
    syncFinished = Signal(dict)
    serverHistoryReady = Signal(dict)
    connectionTested = Signal(object)

    def __init__(self, monitor: SyncMonitor) -> None:
        super().__init__()
        self.monitor = monitor
        monitor.add_listener(self._from_engine)

    def attach(self, monitor: SyncMonitor) -> None:
        """Follow a new engine (after the settings changed and the agent restarted)."""
        self.monitor = monitor
        monitor.add_listener(self._from_engine)
        self.statusChanged.emit(monitor.status())

    def _from_engine(self, status: dict) -> None:
        if status.get("machineId") == self.monitor.engine.config.machine_id:
            self.statusChanged.emit(status)

    def _relay(
        self,
        future: concurrent.futures.Future,
        ok: SignalInstance,
        failed: SignalInstance | None = None,
    ) -> None:
        def done(f: concurrent.futures.Future) -> None:
            try:
                result: Any = f.result()
            except Exception as exc:  # shown to the manager, never raised into Qt
                if failed is not None:
                    failed.emit(f"{type(exc).__name__}: {exc}")
                return
            ok.emit(result)

        future.add_done_callback(done)

    def reconcile(self, strategy: str | None = None) -> None:
        try:
            self._relay(
                self.monitor.reconcile_async(strategy), self.reconcileFinished, self.reconcileFailed
            )
        except RuntimeError as exc:
            self.reconcileFailed.emit(str(exc))

    def sync_now(self) -> None:
        self._relay(self.monitor.sync_now_async(), self.syncFinished)

    def fetch_server_history(self) -> None:
        self._relay(self.monitor.server_history_async(), self.serverHistoryReady)

    def test_connection(self, server_url: str, api_key: str | None) -> None:
        self._relay(self.monitor.test_connection_async(server_url, api_key), self.connectionTested)
