"""Fixtures of the tray tests: a real agent runtime (engine, store, loopback API) against a
real server process, an in-memory OS keyring, a clock the tests move by hand, and a server
that accepts connections and never answers (to hold the engine in `Sincronizando`)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QCoreApplication, QEvent

from agent.config import AgentConfig
from agent.runtime import AgentRuntime
from agent.sync.monitor import SyncMonitor
from agent.ui.app import AgentSession
from agent.ui.tray import TrayApp
from tests.memkeyring import MemoryKeyring, memory_keyring  # noqa: F401 - autouse fixture
from tests.serverproc import ServerProcess
from tests.ui.scenario import HangingServer, free_port

MACHINE = "caixa-ui"


@pytest.fixture(autouse=True)
def _isolated_desktop(tmp_path, monkeypatch):
    """`Iniciar com o Windows` writes an XDG autostart entry, and config files are looked up in
    the XDG folders: all of it in the test folder, never the machine's."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "xdg-site"))
    for name in ("SYNC_API_KEY", "NEXT_PUBLIC_SYNC_API_KEY"):
        monkeypatch.delenv(name, raising=False)


class FakeClock:
    """The tray's clock (ms), moved by the test: debounce and grace without sleeping."""

    def __init__(self) -> None:
        self.now = time.time_ns() // 1_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms

    def to_wall(self) -> None:
        """Catch up with the wall clock (the engine stamps its facts with it)."""
        self.now = max(self.now, time.time_ns() // 1_000_000)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def hanging_server():
    server = HangingServer()
    yield server
    server.close()


@pytest.fixture
def sync_server(server_factory, tmp_path) -> ServerProcess:
    """A real sync server process (SQLite) on 127.0.0.1."""
    return server_factory(database_url=f"sqlite:///{tmp_path / 'server.db'}")


class Agents:
    """Real agent runtimes on temp data folders; every one still running is stopped at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[AgentRuntime] = []
        self.sessions: list[AgentSession] = []

    def config(self, server_url: str, **overrides: Any) -> AgentConfig:
        base = AgentConfig(
            server_url=server_url,
            machine_id=MACHINE,
            data_dir=self.tmp_path / "agent",
            log_dir=self.tmp_path / "logs",
            local_port=free_port(),
            auto_sync=False,
            interval_ms=1000,
            retry_base_delay_ms=100,
            retry_max_delay_ms=500,
            auto_reconcile=False,
            divergence_strategy="none",
        )
        return replace(base, **overrides)

    def start(
        self,
        server_url: str,
        *,
        api_key: str | None = None,
        serve_api: bool = True,
        before_start: Callable[[AgentRuntime], None] | None = None,
        **overrides: Any,
    ) -> AgentRuntime:
        runtime = AgentRuntime(self.config(server_url, **overrides), api_key=api_key)
        self.started.append(runtime)
        if before_start is not None:
            before_start(runtime)
        runtime.start(serve_api=serve_api)
        return runtime

    def session(self, runtime: AgentRuntime) -> AgentSession:
        """The tray app's session over `runtime` (its restarts are stopped at the end too)."""
        session = AgentSession(runtime)
        self.sessions.append(session)
        return session

    def stop_all(self) -> None:
        for session in self.sessions:
            session.stop()  # waits for a restart in progress, then stops its runtime
        for runtime in self.started:
            runtime.stop()  # stopping twice is harmless


@pytest.fixture
def agents(tmp_path):
    a = Agents(tmp_path)
    yield a
    a.stop_all()


class Trays:
    def __init__(self, qtbot, clock: FakeClock, tmp_path: Path) -> None:
        self.qtbot = qtbot
        self.clock = clock
        self.tmp_path = tmp_path
        self.made: list[TrayApp] = []

    def make(
        self,
        runtime: AgentRuntime,
        *,
        config: AgentConfig | None = None,
        grace_ms: int = 0,
        debounce_ms: int = 5_000,
        **kw: Any,
    ) -> TrayApp:
        monitor = SyncMonitor(runtime.engine)
        tray = TrayApp(
            monitor,
            config or runtime.config,
            log_dir=self.tmp_path / "logs",
            clock=self.clock,
            grace_ms=grace_ms,
            debounce_ms=debounce_ms,
            **kw,
        )
        self.made.append(tray)
        return tray

    def close_all(self) -> None:
        for tray in self.made:
            close_tray(tray)


def close_tray(tray: TrayApp) -> None:
    tray.timer.stop()
    tray._tray_wait.stop()
    tray.tray.hide()
    for window in (
        tray.details,
        tray.settings_dialog,
        tray.pin_dialog,
        tray.reconcile_dialog,
        getattr(tray, "about_box", None),
    ):
        if window is not None:
            window.close()
            window.deleteLater()
    tray.bridge.monitor.close()


@pytest.fixture
def trays(qtbot, clock, tmp_path, agents):
    """Depends on `agents`: torn down first, so no tray outlives its engine."""
    t = Trays(qtbot, clock, tmp_path)
    yield t
    t.close_all()
    # Closed trays are Qt objects in reference cycles: collected now, on the GUI thread. Left
    # to Python's collector, they would be deleted by whichever thread allocates next (a
    # later test's engine), while Qt may still touch them: a crash in the next test.
    # The windows first, deleted by Qt itself (deleteLater, run now): the collector then
    # frees Python wrappers whose widgets are gone, instead of deleting widgets one by one in
    # whatever order a cycle is broken.
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    t.made.clear()
    gc.collect()
