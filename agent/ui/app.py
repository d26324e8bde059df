"""The tray application: `pdvsync-agent` without `--headless`. Composition of the runtime,
the tray, the single-instance guard and the crash handler."""

from __future__ import annotations

import logging
import os
import sys
import traceback

from PySide6.QtWidgets import QApplication, QMessageBox

from agent import autostart
from agent.config import AgentConfig, save
from agent.instance import AlreadyRunning
from agent.runtime import AgentRuntime
from agent.secrets import get_api_key, set_api_key
from agent.sync.monitor import SyncMonitor

from .i18n import tr
from .single_instance import SingleInstance, instance_name, send_to_running
from .tray import TrayApp

log = logging.getLogger(__name__)


def _api_key() -> str | None:
    return os.environ.get("SYNC_API_KEY") or os.environ.get("NEXT_PUBLIC_SYNC_API_KEY") or get_api_key()


def install_crash_handler(parent_tray: TrayApp | None) -> None:
    """An unexpected exception is logged and shown once; the sync (its own thread) goes on."""
    shown = {"done": False}

    def hook(exc_type, exc, tb) -> None:
        log.error("unexpected error:\n%s", "".join(traceback.format_exception(exc_type, exc, tb)))
        if shown["done"] or QApplication.instance() is None:
            return
        shown["done"] = True
        box = QMessageBox(QMessageBox.Icon.Critical, tr("PDV Sync: erro inesperado"),
                          tr("Ocorreu um erro inesperado. A sincronização continua funcionando.\n"
                             "Detalhes foram gravados no log."))
        box.setModal(False)
        box.show()
        if parent_tray is not None:
            parent_tray._crash_box = box

    sys.excepthook = hook


def run_tray(config: AgentConfig, *, config_path=None) -> int:
    app = QApplication.instance() or QApplication(sys.argv)
    app.setQuitOnLastWindowClosed(False)
    app.setApplicationName("PDV Sync")
    name = instance_name()
    if send_to_running(name):
        print("O PDV Sync já está em execução; abrindo os detalhes.", file=sys.stderr)
        return 0
    single = SingleInstance(name)
    try:
        runtime = AgentRuntime(config, api_key=_api_key())
    except AlreadyRunning as exc:
        QMessageBox.warning(None, tr("PDV Sync"), tr("Já existe um agente usando esta pasta de dados:\n{e}").format(e=exc))
        return 3
    runtime.start()
    holder = {"runtime": runtime}

    def restart(new_config: AgentConfig) -> SyncMonitor:
        holder["runtime"].stop()
        fresh = AgentRuntime(new_config, api_key=_api_key())
        fresh.start()
        holder["runtime"] = fresh
        return SyncMonitor(fresh.engine)

    def save_settings(new_config: AgentConfig, api_key: str | None, start_with_os: bool) -> None:
        if api_key:
            set_api_key(api_key)
        save(new_config, config_path)
        autostart.set_enabled(start_with_os)

    def quit_app() -> None:
        holder["runtime"].stop()
        single.close()
        app.quit()

    tray = TrayApp(
        SyncMonitor(runtime.engine), runtime.config, log_dir=config.resolved_log_dir(),
        save_settings=save_settings, restart=restart, autostart_enabled=autostart.is_enabled,
        quit_app=quit_app,
    )
    single.messageReceived.connect(lambda _message: tray.show_details())
    install_crash_handler(tray)
    tray.show()
    return app.exec()
