"""The tray application: `pdvsync-agent` without `--headless`. Composition of the runtime,
the tray, the single-instance guard and the crash handler."""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QLibraryInfo, QLocale, QTranslator
from PySide6.QtWidgets import QApplication, QMessageBox

from agent import autostart
from agent.config import AgentConfig, default_config_file, update_file
from agent.handoff import take_staged_key
from agent.instance import AlreadyRunning
from agent.runtime import AgentRuntime
from agent.secrets import get_api_key, set_api_key
from agent.sync.monitor import SyncMonitor

from .collector import GuiGarbageCollector
from .i18n import tr
from .single_instance import SingleInstance, instance_name, send_to_running
from .tray import TrayApp

log = logging.getLogger(__name__)


def _api_key() -> str | None:
    return (
        os.environ.get("SYNC_API_KEY")
        or os.environ.get("NEXT_PUBLIC_SYNC_API_KEY")
        or get_api_key()
    )


def install_crash_handler(parent_tray: TrayApp | None) -> None:
    """An unexpected exception is logged and shown once; the sync (its own thread) goes on."""
    shown: dict[str, Any] = {"box": None}

    def hook(exc_type, exc, tb) -> None:
        log.error("unexpected error:\n%s", "".join(traceback.format_exception(exc_type, exc, tb)))
        if shown["box"] is not None or QApplication.instance() is None:
            return
        box = QMessageBox(
            QMessageBox.Icon.Critical,
            tr("PDV Sync: erro inesperado"),
            tr(
                "Ocorreu um erro inesperado. A sincronização continua funcionando.\n"
                "Detalhes foram gravados no log."
            ),
        )
        box.setModal(False)
        box.show()
        # Held here, as long as the hook lives: a box nobody references is destroyed (and
        # vanishes) at once.
        shown["box"] = box

    sys.excepthook = hook


def _install_qt_translation(app: QApplication) -> QTranslator | None:
    """Qt's own texts (OK, Cancelar, ...) in Brazilian Portuguese. The caller keeps the
    translator: Qt does not own what it is given here."""
    translator = QTranslator(app)
    path = QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath)
    if translator.load(QLocale("pt_BR"), "qtbase", "_", path):
        app.installTranslator(translator)
        return translator
    return None


def settings_saver(
    config_path: Path | None, current: Callable[[], AgentConfig]
) -> Callable[[AgentConfig, str | None, bool], None]:
    """What `Salvar` in the settings does: key to the OS keyring, the settings that changed
    to the user's config file (never the key), and the logon entry.

    Only what changed is written: a server address the installer later puts in the
    machine-wide file must still reach a PDV where someone once saved another setting."""

    def save_settings(new_config: AgentConfig, api_key: str | None, start_with_os: bool) -> None:
        if api_key:
            set_api_key(api_key)
        before, after = current().to_file_dict(), new_config.to_file_dict()
        changes = {name: value for name, value in after.items() if before[name] != value}
        if changes:
            update_file(config_path or default_config_file(), changes)
        autostart.set_enabled(start_with_os)

    return save_settings


class AgentSession:
    """The runtime the tray drives; replaced by a fresh one when the settings change.

    Restart (on a worker thread) and stop (`Sair`) are serialised: quitting during a
    restart stops the new runtime instead of leaving it running behind the tray's back."""

    def __init__(
        self,
        runtime: AgentRuntime,
        *,
        serve_api: bool = True,
        on_runtime: Callable[[AgentRuntime], None] | None = None,
    ) -> None:
        """`on_runtime(runtime)`: for this runtime and each one a restart starts."""
        self.runtime = runtime
        self.serve_api = serve_api
        self._on_runtime = on_runtime
        self._lock = threading.Lock()
        self._stopped = False
        if on_runtime is not None:
            on_runtime(runtime)

    def restart(self, new_config: AgentConfig) -> SyncMonitor:
        with self._lock:
            if self._stopped:
                raise RuntimeError("the agent is quitting")
            old = self.runtime
            old.stop()
            try:
                fresh = AgentRuntime(new_config, api_key=_api_key())
                try:
                    fresh.start(serve_api=self.serve_api)
                except Exception:
                    fresh.stop()
                    raise
            except Exception:
                # The new settings do not start (port taken, ...): keep syncing with the old ones.
                log.exception(
                    "the agent did not start with the new settings; back to the previous ones"
                )
                fresh = AgentRuntime(old.config, api_key=_api_key())
                fresh.start(serve_api=self.serve_api)
            self.runtime = fresh
            if self._on_runtime is not None:
                self._on_runtime(fresh)
            return SyncMonitor(fresh.engine)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self.runtime.stop()


def build_tray(
    session: AgentSession,
    *,
    config_path: Path | None,
    on_quit: Callable[[], None],
    **tray_options: Any,
) -> TrayApp:
    """The tray wired to the session: settings saved and applied, `Sair` stops the agent."""

    def quit_app() -> None:
        session.stop()
        on_quit()

    runtime = session.runtime
    return TrayApp(
        SyncMonitor(runtime.engine),
        runtime.config,
        log_dir=runtime.config.resolved_log_dir(),
        save_settings=settings_saver(config_path, lambda: session.runtime.config),
        restart=session.restart,
        autostart_enabled=autostart.is_enabled,
        autostart_machine_wide=autostart.machine_wide,
        quit_app=quit_app,
        **tray_options,
    )


def run_tray(config: AgentConfig, *, config_path: Path | None = None) -> int:
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv)
    app.setQuitOnLastWindowClosed(False)
    app.setApplicationName("PDV Sync")
    translator = _install_qt_translation(app)  # noqa: F841 - held for the app's lifetime
    collector = GuiGarbageCollector(app)  # Qt objects are freed on the GUI thread only
    name = instance_name()
    if send_to_running(name):
        print("O PDV Sync já está em execução; abrindo os detalhes.", file=sys.stderr)
        return 0
    single = SingleInstance(name)
    take_staged_key()  # a key handed over by the installer, if any
    try:
        if autostart.drop_duplicate():
            log.info(
                "removed this user's logon entry: the installer's machine-wide one starts the agent"
            )
    except OSError as exc:
        log.warning("could not check the logon entries: %s", exc)
    try:
        runtime = AgentRuntime(config, api_key=_api_key())
    except AlreadyRunning as exc:
        QMessageBox.warning(
            None,
            tr("PDV Sync"),
            tr("Já existe um agente usando esta pasta de dados:\n{e}").format(e=exc),
        )
        return 3
    try:
        runtime.start()
    except OSError as exc:
        runtime.stop()
        QMessageBox.warning(
            None, tr("PDV Sync"), tr("Não foi possível iniciar a API local:\n{e}").format(e=exc)
        )
        return 4

    def on_quit() -> None:
        single.close()
        collector.stop()
        app.quit()

    # Garbage collection rides on the engine's own wake-ups: no timer of the tray's.
    session = AgentSession(
        runtime, on_runtime=lambda rt: rt.engine.add_heartbeat(collector.request)
    )
    tray = build_tray(session, config_path=config_path, on_quit=on_quit)
    single.messageReceived.connect(tray.handle_message)
    install_crash_handler(tray)
    tray.show()
    return app.exec()
