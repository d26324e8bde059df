"""The PDV's shop (tenant) in the tray: `Loja` in Configurações (validated next to the
field, saved like the other settings, warned about when it differs from the shop this PDV's
data belongs to), in Detalhes, and the shop errors in the manager's words."""

from __future__ import annotations

import json

import pytest
from PySide6.QtWidgets import QDialogButtonBox

from agent.config import load
from agent.sync.errors import tenant_changed_detail
from agent.ui.app import build_tray
from agent.ui.details import shop_text
from agent.ui.presentation import error_text, present
from tests.ui.helpers import assert_badge, sync_until, wait_badge
from tests.ui.scenario import sell_product

INVALID = (
    "Loja inválida: de 1 a 64 letras sem acento, números, '.', '_' ou '-' (vazio = loja padrão)"
)


def open_settings(tray):
    tray.actions()["Configurações…"].trigger()
    dialog = tray.settings_dialog
    assert dialog is not None and dialog.isVisible()
    return dialog


def click_save(dialog) -> None:
    dialog.buttons.button(QDialogButtonBox.StandardButton.Save).click()


@pytest.mark.parametrize("shop", ["loja 1", "lója", "loja/1", "x" * 65])
def test_an_invalid_shop_is_explained_next_to_its_field_and_nothing_is_saved(
    agents, trays, sync_server, shop
):
    runtime = agents.start(sync_server.url)
    calls: list = []
    tray = trays.make(runtime, save_settings=lambda *a: calls.append(a))  # no restart
    dialog = open_settings(tray)
    assert dialog.tenant.editor.text() == ""
    assert dialog.tenant.editor.placeholderText() == "(vazio = loja padrão)"
    dialog.tenant.editor.setText(shop)
    click_save(dialog)
    assert dialog.tenant.error.isVisible() and dialog.tenant.error.text() == INVALID
    assert not dialog.server.error.isVisible() and not dialog.machine.error.isVisible()
    assert dialog.isVisible() and calls == []
    dialog.tenant.editor.setText("  loja-1  ")  # spaces around a valid shop are dropped
    click_save(dialog)
    assert not dialog.tenant.error.isVisible() and not dialog.isVisible()
    [(config, key, autostart)] = calls
    assert config.tenant_id == "loja-1" and key is None


def test_the_shop_is_saved_applied_and_shown_in_details(
    agents, trays, sync_server, tmp_path, qtbot
):
    runtime = agents.start(sync_server.url)
    config_path = tmp_path / "config" / "agent.json"
    tray = build_tray(
        agents.session(runtime),
        config_path=config_path,
        on_quit=lambda: None,
        clock=trays.clock,
        grace_ms=0,
    )
    trays.made.append(tray)
    tray.actions()["Detalhes…"].trigger()
    details = tray.details
    details.show_status(tray.bridge.monitor.status())
    assert details.shop_label.text() == "padrão (default)"

    # A PDV that never synced may take any shop: no warning.
    dialog = open_settings(tray)
    dialog.tenant.editor.setText("loja-centro")
    assert not dialog.tenant_note.isVisible()
    with qtbot.waitSignal(tray.runtimeReplaced, timeout=30_000):
        click_save(dialog)
    assert json.loads(config_path.read_text(encoding="utf-8")) == {"tenant_id": "loja-centro"}
    assert load({}, environ={}, config_file=config_path).tenant_id == "loja-centro"
    fresh = tray.bridge.monitor.engine
    assert fresh.tenant == "loja-centro" and fresh.status()["tenantId"] == "loja-centro"

    sell_product(agents.sessions[0].runtime)
    sync_until(agents.sessions[0].runtime, "synced")
    wait_badge(qtbot, tray, "synced")
    with sync_server.client() as c:
        shop_rows = c.get("/api/products", params={"tenantId": "loja-centro"}).json()
        default_rows = c.get("/api/products").json()
    assert len(shop_rows["products"]) == 1 and default_rows["products"] == []
    details.show_status(tray.bridge.monitor.status())
    assert details.shop_label.text() == "loja-centro"

    # Now the data is loja-centro's: another shop is warned about before saving.
    dialog = open_settings(tray)
    assert dialog.tenant.editor.text() == "loja-centro"
    dialog.tenant.editor.setText("loja-norte")
    assert dialog.tenant_note.isVisible()
    assert dialog.tenant_note.text().startswith("Este PDV tem dados da loja loja-centro")
    dialog.tenant.editor.setText("loja-centro")
    assert not dialog.tenant_note.isVisible()
    dialog.tenant.editor.setText("")  # emptied: the default shop, which is also another one
    assert dialog.tenant_note.isVisible()
    dialog.reject()


def test_a_pdv_pointed_at_another_shop_stops_with_the_reason_in_portuguese(
    agents, trays, sync_server, qtbot
):
    first = agents.start(sync_server.url, tenant_id="loja-a")
    sell_product(first)
    sync_until(first, "synced")
    first.stop()

    moved = agents.start(sync_server.url, tenant_id="loja-b")
    sell_product(moved)
    status = sync_until(moved, "offline")
    assert status["lastErrorCode"] == "tenant_changed" and status["pending"] == 1
    tray = trays.make(moved)
    wait_badge(qtbot, tray, "offline")
    assert_badge(tray, "offline", "Erro: este PDV tem dados da loja loja-a; configurado para")
    tray.actions()["Detalhes…"].trigger()
    details = tray.details
    details.refresh()
    assert details.shop_label.text() == "loja-b — os dados deste PDV são da loja loja-a"
    error = details.error_label.text()
    assert error.startswith("este PDV tem dados da loja loja-a; configurado para a loja loja-b")
    assert "separe a pasta de dados" in error
    # The pending sale is kept, and its error column is not the shop refusal of a push.
    assert details.pending_table.rowCount() == 1


def test_shop_errors_in_the_managers_words():
    detail = tenant_changed_detail("loja-a", "loja-b")
    assert error_text("tenant_changed", detail).startswith(
        "este PDV tem dados da loja loja-a; configurado para a loja loja-b. "
    )
    # From a stored text ("<code>: <detail>") as well, e.g. the local reconcile log.
    assert error_text(None, f"tenant_changed: {detail}") == error_text("tenant_changed", detail)
    # A detail this version did not write: the general words, with it.
    assert error_text("tenant_changed", "x").startswith("este PDV tem dados de outra loja")
    assert error_text("tenant_forbidden", "this key belongs to shop 'loja-a'").startswith(
        "chave de API recusada: a chave pertence a outra loja"
    )
    assert (
        error_text("tenant_refused", "tenantId: bad")
        == "o servidor recusou a loja configurada: tenantId: bad"
    )
    status = {
        "state": "offline",
        "lastErrorCode": "tenant_forbidden",
        "lastError": "this key belongs to shop 'loja-a'",
        "server": "http://10.0.0.1:3001",
    }
    p = present(status, 0)
    assert p.lines[0].startswith("Erro: chave de API recusada: a chave pertence a outra loja")
    assert len(p.tooltip) <= 127


def test_shop_text_names_the_default_shop_and_a_conflict():
    assert shop_text("default", "default") == "padrão (default)"
    assert shop_text("loja-a", None) == "loja-a"
    assert shop_text("loja-b", "loja-a") == "loja-b — os dados deste PDV são da loja loja-a"
    assert (
        shop_text("loja-a", "default") == "loja-a — os dados deste PDV são da loja padrão (default)"
    )
