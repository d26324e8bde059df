"""Qt signals over the sync layer: engine callbacks and futures arrive on the GUI thread."""

from __future__ import annotations

import concurrent.futures
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, SignalInstance

from agent.sync.monitor import SyncMonitor


class EngineBridge(QObject):
    """Emitted from worker threads; Qt queues them to the receivers' (GUI) thread."""

    statusChanged = Signal(dict)
    reconcileFinished = Signal(dict)
    reconcileFailed = Signal(str)
    syncFinished = Signal(dict)
    serverHistoryReady = Signal(dict)
    connectionTested = Signal(object)
    # (signal, value): a future's outcome, always queued to the GUI thread (see `_relay`).
    _settled = Signal(object, object)

    def __init__(self, monitor: SyncMonitor) -> None:
        super().__init__()
        self.monitor = monitor
        monitor.add_listener(self._from_engine)
        self._settled.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

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
        # A future already done runs `done` at once, on the caller's (GUI) thread: the
        # result would then arrive inside the call that asked for it. Queued, it always
        # arrives afterwards, from the event loop, whichever thread finished the work.
        def done(f: concurrent.futures.Future) -> None:
            try:
                result: Any = f.result()
            except Exception as exc:  # shown to the manager, never raised into Qt
                if failed is not None:
                    self._settled.emit(failed, f"{type(exc).__name__}: {exc}")
                return
            self._settled.emit(ok, result)

        future.add_done_callback(done)

    def _deliver(self, signal: SignalInstance, value: Any) -> None:
        signal.emit(value)

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
