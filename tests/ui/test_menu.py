"""Every entry of the tray menu, against a real engine and a real server."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QDialogButtonBox

from agent import __version__
from agent.runtime import AgentRuntime
from agent.ui.app import AgentSession, build_tray
from agent.ui.pin import hash_pin
from tests.ui.helpers import sync_until, wait_badge
from tests.ui.scenario import plant_divergence, sell_product, server_products

MENU = [
    "Sincronizar agora",
    "Forçar reconciliação",
    "Detalhes…",
    "Configurações…",
    "Abrir pasta de logs",
    "Sobre",
    "Sair",
]


def entries(tray) -> list[str]:
    return [a.text() for a in tray.menu.actions() if not a.isSeparator()]


def test_first_line_is_disabled_and_repeats_the_state_then_every_action(agents, trays, sync_server):
    tray = trays.make(agents.start(sync_server.url))
    first = tray.menu.actions()[0]
    assert not first.isEnabled()
    assert first.text() == "PDV Sync — Aguardando · Última sincronização: nunca"
    assert entries(tray)[1:] == MENU
    assert all(a.isEnabled() for a in tray.menu.actions()[1:] if not a.isSeparator())


def test_menu_is_rebuilt_with_the_current_state_each_time_it_opens(
    agents, trays, sync_server, qtbot
):
    runtime = agents.start(sync_server.url)
    tray = trays.make(runtime)
    sell_product(runtime)
    qtbot.waitUntil(lambda: tray.status["pending"] == 1)
    tray.menu.aboutToShow.emit()
    assert entries(tray)[0] == "PDV Sync — Aguardando · 1 venda/alteração pendente (agora)"

    sync_until(runtime, "synced")
    wait_badge(qtbot, tray, "synced")
    assert entries(tray)[0].startswith("PDV Sync — Aguardando")  # not rebuilt while closed
    tray.menu.aboutToShow.emit()
    assert entries(tray)[0] == "PDV Sync — Sincronizado · Última sincronização: agora"
    assert entries(tray)[1:] == MENU


def test_sync_now_pushes_the_pending_events(agents, trays, sync_server, qtbot):
    runtime = agents.start(sync_server.url)  # no automatic sync: only the menu pushes
    tray = trays.make(runtime)
    ids = [sell_product(runtime, f"Bolo {n}") for n in range(3)]
    qtbot.waitUntil(lambda: tray.status["pending"] == 3)
    assert not set(ids) & set(server_products(sync_server))

    with qtbot.waitSignal(tray.bridge.syncFinished, timeout=20_000):
        tray.actions()["Sincronizar agora"].trigger()
    assert set(ids) <= set(server_products(sync_server))
    wait_badge(qtbot, tray, "synced")
    assert server_products(sync_server)[ids[0]]["name"] == "Bolo 0"


def _reconcile_from_menu(tray, qtbot) -> dict:
    tray.actions()["Forçar reconciliação"].trigger()
    dialog = tray.reconcile_dialog
    assert dialog is not None and dialog.isVisible()
    # Progress first (the result comes later, through a queued signal).
    assert dialog.progress.maximum() == 0  # a busy indicator
    assert dialog.headline.text() == "Comparando os dados deste PDV com o servidor…"
    assert not dialog.buttons.isEnabled()
    qtbot.waitUntil(lambda: dialog.outcome is not None, timeout=60_000)
    assert dialog.progress.maximum() == dialog.progress.value() == 1
    assert dialog.buttons.isEnabled()
    return dialog.outcome


def test_force_reconcile_consistent(agents, trays, sync_server, qtbot):
    runtime = agents.start(sync_server.url)
    tray = trays.make(runtime)
    sell_product(runtime)  # pushed by the reconcile itself before comparing
    result = _reconcile_from_menu(tray, qtbot)
    assert result["status"] == "consistent"
    dialog = tray.reconcile_dialog
    assert dialog.headline.text() == "Tudo certo: os dados deste PDV são iguais aos do servidor."
    assert not dialog.details.isVisible()
    wait_badge(qtbot, tray, "synced")
    assert len(server_products(sync_server)) == 1


def test_force_reconcile_divergent_lists_the_mismatching_tables(agents, trays, sync_server, qtbot):
    runtime = agents.start(sync_server.url, divergence_strategy="none")
    tray = trays.make(runtime)
    sell_product(runtime)
    sync_until(runtime, "synced")
    plant_divergence(runtime)
    result = _reconcile_from_menu(tray, qtbot)
    assert result["status"] == "divergent"
    dialog = tray.reconcile_dialog
    assert dialog.headline.text() == "Os dados deste PDV são diferentes dos do servidor."
    assert dialog.details.isVisible()
    text = dialog.details.toPlainText()
    assert "Tabela Produtos: diferem quantidade de registros, " in text
    assert "Pedidos" not in text and "_mismatch" not in text
    wait_badge(qtbot, tray, "divergent")


def test_force_reconcile_repairs_and_lists_the_rows_it_fixed_and_removed(
    agents, trays, sync_server, qtbot
):
    runtime = agents.start(sync_server.url, divergence_strategy="refresh_mismatched")
    tray = trays.make(runtime)
    real = sell_product(runtime, "Sonho")
    sync_until(runtime, "synced")
    ghost = plant_divergence(runtime)
    db = sqlite3.connect(runtime.data_dir / "agent.db", timeout=10)
    with db:
        db.execute("UPDATE products SET name = 'Adulterado' WHERE id = ?", (real,))
    db.close()

    result = _reconcile_from_menu(tray, qtbot)
    assert result["status"] == "repaired"
    dialog = tray.reconcile_dialog
    assert dialog.headline.text() == "Havia diferenças; foram corrigidas com os dados do servidor."
    lines = dialog.details.toPlainText().splitlines()
    assert any(line.startswith("Tabela Produtos: diferem ") for line in lines)
    assert "Reparo em Produtos: 1 corrigido(s), 1 removido(s)" in lines
    assert f"  corrigido: {real}" in lines
    assert f"  removido: {ghost}" in lines
    wait_badge(qtbot, tray, "synced")
    assert runtime.store.get("products", real)["name"] == "Sonho"
    assert runtime.store.get("products", ghost) is None


def test_force_reconcile_reports_an_unreachable_server(agents, trays, sync_server, qtbot):
    runtime = agents.start(sync_server.url)
    tray = trays.make(runtime)
    sync_server.kill()
    result = _reconcile_from_menu(tray, qtbot)
    assert result["status"] == "error"
    assert tray.reconcile_dialog.headline.text().startswith("Não foi possível reconciliar: ")
    assert "servidor inacessível" in tray.reconcile_dialog.headline.text()


def _pin_ok(dialog):
    return dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok)


def _reconciles(runtime: AgentRuntime, server) -> tuple[int, int]:
    with server.client() as c:
        remote = c.get(
            "/api/sync/reconcile/history", params={"machineId": runtime.config.machine_id}
        ).json()["count"]
    return len(runtime.store.reconcile_history()), remote


def test_pin_gate_wrong_pin_refused_right_pin_reconciles(agents, trays, sync_server, qtbot):
    runtime = agents.start(sync_server.url)
    tray = trays.make(runtime, config=replace(runtime.config, manager_pin_hash=hash_pin("1234")))
    tray.actions()["Forçar reconciliação"].trigger()
    pin = tray.pin_dialog
    assert pin is not None and pin.isVisible()
    assert tray.reconcile_dialog is None

    pin.field.setText("4321")
    _pin_ok(pin).click()
    assert pin.error.text() == "PIN incorreto"
    assert pin.field.text() == ""
    assert pin.isVisible()
    assert tray.reconcile_dialog is None
    qtbot.wait(200)
    assert _reconciles(runtime, sync_server) == (0, 0)

    pin.field.setText("1234")
    _pin_ok(pin).click()
    assert not pin.isVisible()
    assert tray.reconcile_dialog is not None
    qtbot.waitUntil(lambda: tray.reconcile_dialog.outcome is not None, timeout=60_000)
    assert tray.reconcile_dialog.outcome["status"] == "consistent"
    assert _reconciles(runtime, sync_server) == (1, 1)


def test_pin_gate_cancel_runs_nothing(agents, trays, sync_server, qtbot):
    runtime = agents.start(sync_server.url)
    tray = trays.make(runtime, config=replace(runtime.config, manager_pin_hash=hash_pin("987654")))
    tray.actions()["Forçar reconciliação"].trigger()
    tray.pin_dialog.field.setText("987654")
    tray.pin_dialog.findChild(QDialogButtonBox).button(
        QDialogButtonBox.StandardButton.Cancel
    ).click()
    assert not tray.pin_dialog.isVisible()
    assert tray.reconcile_dialog is None
    assert _reconciles(runtime, sync_server) == (0, 0)


def test_open_logs_folder(agents, trays, sync_server, monkeypatch, tmp_path):
    opened = []
    # An observer only: the real call would launch the desktop's file manager.
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    tray = trays.make(agents.start(sync_server.url))
    logs = tmp_path / "logs"
    tray.actions()["Abrir pasta de logs"].trigger()
    assert len(opened) == 1
    assert opened[0].isLocalFile() and opened[0].toLocalFile() == str(logs)
    assert logs.is_dir()


def test_about(agents, trays, sync_server):
    runtime = agents.start(sync_server.url)
    tray = trays.make(runtime)
    tray.actions()["Sobre"].trigger()
    box = tray.about_box
    assert box.isVisible() and not box.isModal()
    assert box.windowTitle() == "Sobre o PDV Sync"
    assert f"PDV Sync {__version__}" in box.text()
    assert f"Este PDV: {runtime.config.machine_id}" in box.text()
    assert "Loja: padrão (default)" in box.text()
    assert f"Servidor: {sync_server.url}" in box.text()


def test_quit_stops_the_agent_cleanly_and_releases_its_folder(
    agents, trays, sync_server, qtbot, tmp_path
):
    runtime = agents.start(sync_server.url)
    quits = []
    tray = build_tray(
        AgentSession(runtime), config_path=tmp_path / "cfg.json", on_quit=lambda: quits.append(1)
    )
    trays.made.append(tray)
    pid = sell_product(runtime)
    sync_until(runtime, "synced")
    engine_thread = runtime.engine._thread
    assert engine_thread.is_alive()
    tray.show_details()

    tray.actions()["Sair"].trigger()
    assert quits == [1]
    assert not engine_thread.is_alive()
    assert not tray.timer.isActive()
    assert not tray.tray.isVisible()
    assert not tray.details.isVisible()
    # Lock released and nothing half-written: a new agent opens the same folder and is clean.
    again = agents.start(sync_server.url)
    assert again.data_dir == runtime.data_dir
    assert again.store.pending_count() == 0
    assert again.store.get("products", pid)["name"] == "Pão francês"
    assert sync_until(again, "synced")["pending"] == 0


def test_quit_during_a_settings_restart_leaves_no_agent_running(agents, sync_server):
    runtime = agents.start(sync_server.url)
    session = agents.session(runtime)
    monitor = session.restart(replace(runtime.config, interval_ms=2000))
    assert session.runtime is not runtime and monitor.engine is session.runtime.engine
    session.stop()
    with pytest.raises(RuntimeError, match="quitting"):
        session.restart(runtime.config)  # a restart that lost the race to `Sair` starts nothing
    assert not session.runtime.engine._thread.is_alive()
    agents.start(sync_server.url)  # the folder is free


# uvicorn ends its thread with SystemExit when the port is taken; AgentRuntime.start turns
# that into OSError for the caller, but the thread's exception still reaches threading's
# hook (agent/runtime.py could catch SystemExit in the thread target).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_restart_with_settings_that_do_not_start_keeps_the_previous_ones(
    agents, sync_server, caplog
):
    import socket

    runtime = agents.start(sync_server.url)
    session = agents.session(runtime)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        bad = replace(runtime.config, local_port=taken.getsockname()[1])
        session.restart(bad)
    assert session.runtime.config.local_port == runtime.config.local_port
    assert session.runtime.engine._thread.is_alive()
    assert "back to the previous ones" in caplog.text
