"""`pdvsync-agent --self-test`: the smoke test of a built bundle.

Starts offscreen, opens a store in a temporary folder, builds the tray and its menu,
checks the keyring backend, and prints one line. Exit 0 only when everything worked.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def run_self_test() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    checks: list[str] = []
    try:
        from PySide6 import __version__ as qt_version
        from PySide6.QtWidgets import QApplication

        from agent import __version__
        from agent.config import AgentConfig
        from agent.runtime import AgentRuntime
        from agent.secrets import backend_name
        from agent.sync.monitor import SyncMonitor
        from agent.ui.tray import TrayApp

        app = QApplication.instance() or QApplication(sys.argv[:1])
        with tempfile.TemporaryDirectory(prefix="pdvsync-selftest-") as tmp:
            config = AgentConfig(
                server_url="http://127.0.0.1:9",
                machine_id="self-test",
                data_dir=Path(tmp) / "data",
                log_dir=Path(tmp) / "logs",
                auto_sync=False,
                auto_reconcile=False,
            ).validate()
            runtime = AgentRuntime(config, api_key=None)
            try:
                runtime.start(serve_api=False)
                checks.append(f"store v{_store_version(runtime)}")
                tray = TrayApp(
                    SyncMonitor(runtime.engine), runtime.config, log_dir=Path(tmp) / "logs"
                )
                tray.menu.aboutToShow.emit()
                actions = [a.text() for a in tray.menu.actions() if a.text()]
                if len(actions) < 8 or any(icon.isNull() for icon in tray.icons.values()):
                    raise RuntimeError(f"tray incomplete: {actions}")
                checks.append(f"tray menu {len(actions)} entries, {len(tray.icons)} icons")
                tray.timer.stop()
                app.processEvents()
            finally:
                runtime.stop()
        checks.append(f"keyring {backend_name()}")
        print(f"PDV Sync {__version__} self-test OK: " + "; ".join(checks) + f"; Qt {qt_version}")
        return 0
    except Exception as exc:  # the report is the point: say what failed
        print(
            f"PDV Sync self-test FAILED: {type(exc).__name__}: {exc} (passed: {', '.join(checks) or 'none'})"
        )
        return 1


def _store_version(runtime) -> int:
    from agent.store.migrations import current_version

    return current_version(runtime.store.db)
