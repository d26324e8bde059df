"""`Detalhes…`: state, pending and refused events (retry/discard), last sync, clock offset,
and the reconcile history, local and the server's, with the mismatches of a selection."""

from __future__ import annotations

from PySide6.QtWidgets import QSystemTrayIcon, QTableWidget

from tests.ui.helpers import sync_until, wait_badge
from tests.ui.scenario import (
    plant_divergence,
    plant_refused_increment,
    sell_product,
    server_products,
)


def column(table: QTableWidget, col: int) -> list[str]:
    return [table.item(r, col).text() for r in range(table.rowCount())]


def select_row(table: QTableWidget, row: int) -> None:
    table.clearSelection()
    table.selectRow(row)


def open_details(tray):
    tray.actions()["Detalhes…"].trigger()
    window = tray.details
    assert window is not None and window.isVisible()
    assert window.windowTitle() == "PDV Sync — Detalhes"
    return window


def test_state_pending_last_sync_and_clock_offset(agents, trays, sync_server, qtbot):
    runtime = agents.start(sync_server.url)
    tray = trays.make(runtime)
    sync_until(runtime, "synced")
    a = sell_product(runtime, "Broa")
    b = sell_product(runtime, "Rosca")
    qtbot.waitUntil(lambda: tray.status["pending"] == 2)

    window = open_details(tray)
    assert window.state_label.text() == "Aguardando"
    assert window.pending_label.text() == "2 pendente(s), 0 recusado(s)"
    assert window.last_sync_label.text() == "agora"
    assert window.offset_label.text().endswith(" s em relação ao servidor")
    assert window.error_label.text() == "nenhum"
    assert column(window.pending_table, 0) == ["Produtos", "Produtos"]
    assert column(window.pending_table, 1) == [a, b]
    assert column(window.pending_table, 2) == ["gravação", "gravação"]

    # The window follows the engine while it is open.
    sync_until(runtime, "synced")
    qtbot.waitUntil(lambda: window.state_label.text() == "Sincronizado")
    assert window.pending_label.text() == "0 pendente(s), 0 recusado(s)"
    window.refresh()
    assert window.pending_table.rowCount() == 0

    sync_server.kill()
    sync_until(runtime, "offline")
    qtbot.waitUntil(lambda: window.state_label.text() == "Offline/Erro")
    assert "servidor inacessível" in window.error_label.text()


def test_a_refused_event_can_be_retried_or_discarded(agents, trays, sync_server, qtbot):
    runtime = agents.start(sync_server.url)
    tray = trays.make(runtime)
    good = sell_product(runtime, "Pão de queijo")
    dead_id = plant_refused_increment(runtime, good)
    status = runtime.engine.sync_now()
    assert status["deadLetters"] == 1 and status["pending"] == 0, status
    assert good in server_products(sync_server)  # the change beside it was not blocked
    qtbot.waitUntil(lambda: tray.status["deadLetters"] == 1)
    assert "1 recusada(s) pelo servidor — ver Detalhes" in tray.tray.toolTip()

    window = open_details(tray)
    assert window.pending_label.text() == "0 pendente(s), 1 recusado(s)"
    assert window.dead_table.rowCount() == 1
    assert window.dead_table.item(0, 2).text() == "ajuste de estoque"
    assert window.dead_table.item(0, 4).text()  # the server's reason
    assert window._dead[0]["eventId"] == dead_id

    window.retry_button.click()  # nothing selected: nothing happens
    assert window.dead_table.rowCount() == 1

    select_row(window.dead_table, 0)
    window.retry_button.click()
    assert window.dead_table.rowCount() == 0
    assert window.pending_table.rowCount() == 1  # back in line
    assert window.pending_label.text() == "1 pendente(s), 0 recusado(s)"

    runtime.engine.sync_now()  # refused again
    window.refresh()
    assert window.dead_table.rowCount() == 1
    select_row(window.dead_table, 0)
    window.discard_button.click()  # asked first: a discarded change is lost for good
    confirm = window.discard_confirm
    assert confirm is not None and confirm.isVisible()
    assert "venda inteira" in confirm.text()
    [cancel] = [b for b in confirm.buttons() if b.text() == "Cancelar"]
    cancel.click()
    assert not confirm.isVisible() and window.dead_table.rowCount() == 1
    window.discard_button.click()
    [discard] = [b for b in window.discard_confirm.buttons() if b.text() == "Descartar"]
    discard.click()
    assert window.dead_table.rowCount() == 0
    assert window.pending_table.rowCount() == 0
    assert window.pending_label.text() == "0 pendente(s), 0 recusado(s)"
    qtbot.waitUntil(lambda: tray.status["deadLetters"] == 0)
    assert "recusada" not in tray.tray.toolTip()


def test_reconcile_history_local_and_server_with_the_mismatches_of_a_selection(
    agents, trays, sync_server, qtbot
):
    runtime = agents.start(sync_server.url)
    tray = trays.make(runtime)
    sell_product(runtime)
    assert runtime.engine.reconcile_now()["status"] == "consistent"
    ghost = plant_divergence(runtime)
    assert runtime.engine.reconcile_now("none")["status"] == "divergent"
    wait_badge(qtbot, tray, "divergent")

    window = open_details(tray)
    history = window.history_table
    # The local history shows at once; the server's arrives from the network a moment later
    # (or already has, on a quick server).
    assert column(history, 1).count("local") == 2
    qtbot.waitUntil(lambda: history.rowCount() == 4, timeout=20_000)
    assert sorted(column(history, 1)) == ["local", "local", "servidor", "servidor"]
    assert sorted(column(history, 2)) == ["Consistente", "Consistente", "Divergente", "Divergente"]
    stamps = [h["created_at"] for h in window._history]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    assert all(
        len(text) == 19 and text[2] == "/" for text in column(history, 0)
    )  # 29/11/2025 14:03:07

    for source in ("local", "servidor"):
        row = next(
            r
            for r in range(history.rowCount())
            if history.item(r, 1).text() == source and history.item(r, 2).text() == "Divergente"
        )
        assert history.item(row, 3).text() == "1"
        select_row(history, row)
        text = window.mismatch_text.toPlainText()
        assert text.startswith("Tabela Produtos: diferem quantidade de registros")
        assert "  servidor: 1 registros, último em " in text
        assert "  este PDV: 2 registros, último em " in text

    row = next(r for r in range(history.rowCount()) if history.item(r, 2).text() == "Consistente")
    select_row(history, row)
    assert window.mismatch_text.toPlainText() == "Nenhuma divergência."
    assert ghost


def test_the_history_shows_what_a_repair_did_and_refreshes_after_a_forced_reconcile(
    agents, trays, sync_server, qtbot
):
    runtime = agents.start(sync_server.url, divergence_strategy="refresh_mismatched")
    tray = trays.make(runtime)
    sell_product(runtime)
    sync_until(runtime, "synced")
    window = open_details(tray)
    qtbot.waitUntil(lambda: window.isVisible())
    assert window.history_table.rowCount() == 0

    ghost = plant_divergence(runtime)
    tray.actions()["Forçar reconciliação"].trigger()
    qtbot.waitUntil(lambda: tray.reconcile_dialog.outcome is not None, timeout=60_000)
    # The open details window refreshed itself: local entry now, the server's after.
    # The server logged both of its comparisons: divergent, then consistent after the repair.
    qtbot.waitUntil(lambda: window.history_table.rowCount() == 3, timeout=20_000)
    assert column(window.history_table, 1) == ["servidor", "servidor", "local"]
    assert column(window.history_table, 2) == ["Consistente", "Divergente", "Reparado"]
    row = 2
    assert window.history_table.item(row, 4).text() == "Corrigir só o que diverge"
    select_row(window.history_table, row)
    text = window.mismatch_text.toPlainText()
    assert "Tabela Produtos: diferem " in text
    assert "Reparo em Produtos: 0 corrigido(s), 1 removido(s)" in text
    assert f"  removido: {ghost}" in text


def test_a_click_on_the_icon_opens_the_details_a_right_click_does_not(agents, trays, sync_server):
    tray = trays.make(agents.start(sync_server.url))
    tray.tray.activated.emit(QSystemTrayIcon.ActivationReason.Context)  # the menu's job
    assert tray.details is None
    tray.tray.activated.emit(QSystemTrayIcon.ActivationReason.Trigger)
    assert tray.details is not None and tray.details.isVisible()
    tray.details.hide()
    tray.tray.activated.emit(QSystemTrayIcon.ActivationReason.DoubleClick)
    assert tray.details.isVisible()


def test_the_window_is_made_on_first_open_and_released_when_closed(
    agents, trays, sync_server, qtbot
):
    """Nothing of it exists while idle: made when opened, with its content; closed by the
    manager, the Qt window is destroyed and the next open makes a new one, complete."""
    runtime = agents.start(sync_server.url)
    tray = trays.make(runtime)
    sync_until(runtime, "synced")
    sell_product(runtime, "Sonho")
    qtbot.waitUntil(lambda: tray.status["pending"] == 1)
    assert tray.details is None
    window = open_details(tray)
    qtbot.waitUntil(lambda: window.pending_table.rowCount() == 1)
    destroyed = []
    window.destroyed.connect(lambda: destroyed.append(1))

    window.close()  # the window's own close button
    assert tray.details is None
    qtbot.waitUntil(lambda: destroyed == [1])

    again = open_details(tray)
    assert again is not window
    qtbot.waitUntil(lambda: again.pending_table.rowCount() == 1)
    assert again.state_label.text()
