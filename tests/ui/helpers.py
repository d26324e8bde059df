"""Small assertions and waits shared by the tray tests."""

from __future__ import annotations

import time

from agent.runtime import AgentRuntime
from agent.ui.tray import TrayApp
from tests.serverproc import ServerProcess

LABELS = {
    "waiting": "Aguardando",
    "syncing": "Sincronizando",
    "synced": "Sincronizado",
    "divergent": "Com Divergência",
    "offline": "Offline/Erro",
}


def badge(tray: TrayApp) -> str | None:
    """The state whose icon the tray shows now (compared by the icon's cache key)."""
    key = tray.tray.icon().cacheKey()
    for state, icon in tray.icons.items():
        if icon.cacheKey() == key:
            return state
    return None


def wait_badge(qtbot, tray: TrayApp, state: str, timeout_ms: int = 20_000) -> None:
    qtbot.waitUntil(lambda: badge(tray) == state, timeout=timeout_ms)


def assert_badge(tray: TrayApp, state: str, *reasons: str) -> None:
    """Icon, tooltip title and reasons of one state."""
    assert badge(tray) == state, tray.tray.toolTip()
    tooltip = tray.tray.toolTip()
    assert tooltip.splitlines()[0] == f"PDV Sync — {LABELS[state]}", tooltip
    for reason in reasons:
        assert reason in tooltip, f"{reason!r} not in tooltip:\n{tooltip}"


def sync_until(runtime: AgentRuntime, state: str, attempts: int = 40) -> dict:
    """`sync now` until the engine reaches `state` (a restarted server may need a second
    try: the first request can meet the previous process's dead connection)."""
    status = {}
    for _ in range(attempts):
        status = runtime.engine.sync_now()
        if status["state"] == state:
            return status
        time.sleep(0.1)
    raise AssertionError(f"engine never reached {state}: {status}")


def restart_server(server_factory, old: ServerProcess) -> ServerProcess:
    """The same database on the same port (the agent's configured address)."""
    old.kill()
    last: Exception | None = None
    for _ in range(40):
        try:
            return server_factory(database_url=old.database_url, port=old.port)
        except RuntimeError as exc:  # the old socket can linger a moment
            last = exc
            time.sleep(0.25)
    raise AssertionError(f"server did not restart on port {old.port}: {last}")
