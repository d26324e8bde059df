"""The tray icon cashiers glance at, and its menu (rebuilt each time it opens)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QSize, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QIcon
from PySide6.QtWidgets import QMenu, QMessageBox, QSystemTrayIcon, QWidget

from agent import __version__
from agent.config import AgentConfig
from agent.sync.monitor import SyncMonitor
from protocol import parse_ms

from .bridge import EngineBridge
from .i18n import tr
from .notify import NotificationPolicy
from .presentation import (
    STATES,
    icon_files,
    menu_status_line,
    next_text_change,
    present,
    shop_label,
)

if TYPE_CHECKING:  # the windows' modules are imported when one first opens (issue 12)
    from .details import DetailsWindow
    from .dialogs import PinDialog, ReconcileDialog
    from .settings_dialog import SettingsDialog

log = logging.getLogger(__name__)

# `Sincronizando` appears after this much work (agent/sync/status.py, SYNCING_AFTER_MS), plus
# a margin so the status read then already says it.
_SYNCING_AFTER_MS = 1_500 + 50
_MIN_WAIT_MS = 50


def wall_ms() -> int:
    import time

    return time.time_ns() // 1_000_000


class TrayApp(QObject):
    """Owns the tray icon, its menu and the windows. Talks to the sync layer only through
    the bridge (signals) and the monitor."""

    runtimeReplaced = Signal(object)
    notified = Signal(str, str)  # title, message (for tests and logs)

    def __init__(
        self,
        monitor: SyncMonitor,
        config: AgentConfig,
        *,
        log_dir: Path,
        save_settings: Callable[[AgentConfig, str | None, bool], None] | None = None,
        restart: Callable[[AgentConfig], SyncMonitor] | None = None,
        autostart_enabled: Callable[[], bool] = lambda: False,
        autostart_machine_wide: Callable[[], bool] = lambda: False,
        quit_app: Callable[[], None] | None = None,
        clock: Callable[[], int] = wall_ms,
        grace_ms: int = 15_000,
        debounce_ms: int = 8_000,
    ) -> None:
        super().__init__()
        self.config = config
        self.log_dir = log_dir
        self._save_settings = save_settings
        self._restart = restart
        self._autostart_enabled = autostart_enabled
        self._autostart_machine_wide = autostart_machine_wide
        self._quit_app = quit_app
        self.clock = clock
        self.bridge = EngineBridge(monitor)
        self.icons = {s: badge_icon(s) for s in STATES}
        self.policy = NotificationPolicy(clock(), grace_ms=grace_ms, debounce_ms=debounce_ms)
        self.status: dict[str, Any] = monitor.status()
        self._shown: tuple[str, str] | None = None  # (state, tooltip) on screen
        self._quitting = False
        self.details: DetailsWindow | None = None
        self.settings_dialog: SettingsDialog | None = None
        self.pin_dialog: PinDialog | None = None
        self.reconcile_dialog: ReconcileDialog | None = None
        self.menu = QMenu()
        self.menu.aboutToShow.connect(self.rebuild_menu)
        self.tray = QSystemTrayIcon()
        self.tray.setContextMenu(self.menu)
        self.tray.activated.connect(self._activated)
        self.bridge.statusChanged.connect(self.on_status)
        self.bridge.reconcileFinished.connect(self._reconcile_done)
        self.bridge.reconcileFailed.connect(self._reconcile_failed)
        self.runtimeReplaced.connect(self._attach)
        # No periodic tick: one single shot, set after each status for the next moment
        # something shown changes by time alone ('Sincronizando' after 1.5 s of work, the
        # tooltip's 'há 2 min', a debounced notification falling due). Idle, it sleeps for
        # minutes, then hours.
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self.tick)
        self.rebuild_menu()
        self.on_status(self.status)
        self._tray_wait = QTimer(self)
        self._tray_wait.setInterval(2000)
        self._tray_wait.timeout.connect(self._show_when_tray_appears)

    # -- showing -------------------------------------------------------------------------

    def show(self, *, wait_for_tray: bool = True) -> None:
        """Show the icon; when the OS has no tray yet, keep syncing and wait for one."""
        if not wait_for_tray or QSystemTrayIcon.isSystemTrayAvailable():
            self.tray.show()
        else:
            log.warning("no system tray yet; syncing continues, the icon will appear when it does")
            self._tray_wait.start()

    def _show_when_tray_appears(self) -> None:
        if QSystemTrayIcon.isSystemTrayAvailable():
            self._tray_wait.stop()
            self.tray.show()

    def on_status(self, status: dict[str, Any]) -> None:
        self.status = status
        now = self.clock()
        # The tooltip's ages to the minute: its text then changes once a minute at most.
        p = present(status, now, seconds=False)
        if (p.state, p.tooltip) != self._shown:  # unchanged: nothing to send to the tray
            self._shown = (p.state, p.tooltip)
            self.tray.setIcon(self.icons[p.state])
            self.tray.setToolTip(p.tooltip)
        self.policy.observe(p.state, now)
        self._schedule(now)

    def _schedule(self, now: int) -> None:
        """Arm the single shot for the next moment the badge, the tooltip or a notification
        changes by time alone; none (asleep until the next status) when nothing will."""
        if self._quitting:
            return
        waits: list[int] = []
        status = self.status
        busy = status.get("syncingSince")
        if busy and status.get("state") in ("waiting", "synced"):
            # Work in progress not shown yet: it will be after 1.5 s (a short wait at most,
            # whatever the clocks say).
            waits.append(min(_SYNCING_AFTER_MS, max(0, _SYNCING_AFTER_MS - (now - parse_ms(busy)))))
        for then in (_ms(status.get("lastSuccessAt")), _pending_since(status, now)):
            change = next_text_change(then, now)
            if change is not None:
                waits.append(change)
        due = self.policy.next_due()
        if due is not None:
            waits.append(max(0, due - now))
        if waits:
            self.timer.start(max(_MIN_WAIT_MS, min(waits)))
        else:
            self.timer.stop()

    def tick(self) -> None:
        self.on_status(self.bridge.monitor.status())
        notice = self.policy.due(self.clock())
        if notice is not None:
            self._notify(notice.category)
            self._schedule(self.clock())  # that one is told: the next, if any

    def _notify(self, category: str) -> None:
        if category == "offline":
            title, text, icon = (
                tr("PDV Sync: sem conexão"),
                tr(
                    "Não foi possível falar com o servidor. As vendas continuam sendo registradas neste PDV "
                    "e serão enviadas quando a conexão voltar."
                ),
                QSystemTrayIcon.MessageIcon.Warning,
            )
        elif category == "divergent":
            title, text, icon = (
                tr("PDV Sync: dados divergentes"),
                tr("Os dados deste PDV estão diferentes dos do servidor. Avise o gerente."),
                QSystemTrayIcon.MessageIcon.Warning,
            )
        else:
            title, text, icon = (
                tr("PDV Sync: tudo certo"),
                tr("A sincronização voltou ao normal."),
                QSystemTrayIcon.MessageIcon.Information,
            )
        log.info("notification: %s", title)
        self.tray.showMessage(title, text, icon, 8000)
        self.notified.emit(title, text)

    # -- the menu ------------------------------------------------------------------------

    def rebuild_menu(self) -> None:
        self.menu.clear()
        p = present(self.status, self.clock())
        status_line = QAction(menu_status_line(p), self.menu)
        status_line.setEnabled(False)
        self.menu.addAction(status_line)
        self.menu.addSeparator()
        self._action(tr("Sincronizar agora"), self.sync_now)
        self._action(tr("Forçar reconciliação"), self.request_force_reconcile)
        self._action(tr("Detalhes…"), self.show_details)
        self._action(tr("Configurações…"), self.show_settings)
        self.menu.addSeparator()
        self._action(tr("Abrir pasta de logs"), self.open_logs)
        self._action(tr("Sobre"), self.show_about)
        self._action(tr("Sair"), self.quit)

    def _action(self, text: str, slot: Callable[[], None]) -> QAction:
        action = QAction(text, self.menu)
        action.triggered.connect(slot)
        self.menu.addAction(action)
        return action

    def actions(self) -> dict[str, QAction]:
        return {a.text(): a for a in self.menu.actions() if a.text()}

    def handle_message(self, message: str) -> None:
        """From a second start (`SingleInstance`): `quit` from the installer, else show the details."""
        if message == "quit":
            self.quit()
        else:
            self.show_details()

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (
            QSystemTrayIcon.ActivationReason.Trigger,
            QSystemTrayIcon.ActivationReason.DoubleClick,
        ):
            self.show_details()

    # -- actions -------------------------------------------------------------------------

    def sync_now(self) -> None:
        self.bridge.sync_now()

    def request_force_reconcile(self) -> None:
        """The manager's action; behind the PIN when one is set."""
        if self.config.manager_pin_hash:
            from .dialogs import PinDialog

            _release(self.pin_dialog)
            self.pin_dialog = PinDialog(self.config.manager_pin_hash)
            self.pin_dialog.accepted.connect(self._start_reconcile)
            self.pin_dialog.show()
            self.pin_dialog.raise_()
        else:
            self._start_reconcile()

    def _start_reconcile(self) -> None:
        from .dialogs import ReconcileDialog

        _release(self.reconcile_dialog)
        self.reconcile_dialog = ReconcileDialog()
        self.reconcile_dialog.show()
        self.reconcile_dialog.raise_()
        self.bridge.reconcile(None)

    def _reconcile_done(self, result: dict[str, Any]) -> None:
        if self.reconcile_dialog is not None:
            self.reconcile_dialog.show_result(result)
        if self.details is not None and self.details.isVisible():
            self.details.refresh()

    def _reconcile_failed(self, message: str) -> None:
        if self.reconcile_dialog is not None:
            self.reconcile_dialog.show_failure(message)

    def show_details(self) -> None:
        if self.details is None:
            from .details import DetailsWindow

            self.details = DetailsWindow(self.bridge)
            self.details.closed.connect(self._details_closed)
        self.details.refresh()
        self.details.show()
        self.details.raise_()
        self.details.activateWindow()

    def _details_closed(self) -> None:
        """Closed by the manager: its tables and history are released, and the next open
        makes it anew. Hidden (`hide()`) it stays; quitting leaves it to the exit."""
        window = self.details
        if window is None or self._quitting:
            return
        self.details = None
        window.deleteLater()

    def show_settings(self) -> None:
        from .settings_dialog import SettingsDialog

        _release(self.settings_dialog)
        self.settings_dialog = SettingsDialog(
            self.config,
            self.bridge,
            self._apply_settings,
            self._autostart_enabled(),
            autostart_machine_wide=self._autostart_machine_wide(),
        )
        self.settings_dialog.show()
        self.settings_dialog.raise_()

    def _apply_settings(self, config: AgentConfig, api_key: str | None, autostart: bool) -> None:
        if self._save_settings is not None:
            self._save_settings(config, api_key, autostart)
        changed = config != self.config or api_key is not None
        self.config = config
        if changed and self._restart is not None:
            restart = self._restart

            def work() -> None:
                try:
                    self.runtimeReplaced.emit(restart(config))
                except Exception:
                    log.exception("could not restart the agent with the new settings")

            threading.Thread(target=work, name="agent-restart", daemon=True).start()

    def _attach(self, monitor: SyncMonitor) -> None:
        previous = self.bridge.monitor
        self.bridge.attach(monitor)
        if previous is not monitor:
            previous.close()  # its engine is stopped; its worker threads need not linger

    def open_logs(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.log_dir)))

    def show_about(self) -> None:
        _release(getattr(self, "about_box", None))
        self.about_box = QMessageBox(
            QMessageBox.Icon.Information,
            tr("Sobre o PDV Sync"),
            tr(
                "PDV Sync {v}\nSincronização offline dos PDVs da loja.\nEste PDV: {m}\n"
                "Loja: {t}\nServidor: {s}"
            ).format(
                v=__version__,
                m=self.config.machine_id,
                t=shop_label(self.config.tenant),
                s=self.config.server_url,
            ),
        )
        self.about_box.setModal(False)
        self.about_box.show()

    def quit(self) -> None:
        """Finish the current push, close the socket, leave nothing half-written."""
        self._quitting = True
        self.timer.stop()
        self._tray_wait.stop()
        self.tray.hide()
        # Gone from the screen first: stopping the engine can take a few seconds.
        for window in (
            self.details,
            self.settings_dialog,
            self.pin_dialog,
            self.reconcile_dialog,
            getattr(self, "about_box", None),
        ):
            if window is not None:
                window.close()
        if self._quit_app is not None:
            self._quit_app()


def _release(window: QWidget | None) -> None:
    """A window being replaced by a new one: closed, and deleted by Qt on this (the GUI)
    thread. Left to Python's garbage collector, its widgets (in reference cycles through
    their signal connections) would be deleted by whichever thread collects next, the
    engine's or the loopback's included, which Qt does not allow."""
    if window is not None:
        window.close()
        window.deleteLater()


def badge_icon(state: str) -> QIcon:
    """The badge of `state`, drawn at each size a tray may ask for."""
    icon = QIcon()
    for size, path in icon_files(state).items():
        icon.addFile(str(path), QSize(size, size))
    return icon


def _ms(iso: str | None) -> int | None:
    return parse_ms(iso) if iso else None


def _pending_since(status: dict[str, Any], now: int) -> int | None:
    """When the oldest pending change was made, on the tray's clock (its age is given)."""
    age = status.get("oldestPendingAgeMs")
    return now - int(age) if status.get("pending") and age is not None else None
