"""`Configurações…`: validation next to each field (nothing saved until it validates), the
API key into the OS keyring (never shown back), the PIN stored hashed, `Testar conexão`."""

from __future__ import annotations

import json

import pytest
import shiboken6
from PySide6.QtCore import QCoreApplication, QEvent
from PySide6.QtWidgets import QDialogButtonBox

from agent import autostart
from agent.config import load
from agent.secrets import SERVICE, USERNAME
from agent.ui.app import build_tray
from agent.ui.pin import verify_pin
from tests.ui.helpers import sync_until, wait_badge
from tests.ui.scenario import free_port, sell_product

KEY = "chave-da-loja-2024"


def open_settings(tray):
    tray.actions()["Configurações…"].trigger()
    dialog = tray.settings_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.windowTitle() == "PDV Sync — Configurações"
    return dialog


def click_save(dialog) -> None:
    button = dialog.buttons.button(QDialogButtonBox.StandardButton.Save)
    assert button.text() == "Salvar"
    button.click()


def shown_errors(dialog) -> dict[str, str]:
    fields = {
        "server": dialog.server,
        "machine": dialog.machine,
        "api_key": dialog.api_key,
        "pin": dialog.pin,
        "pin_confirm": dialog.pin_confirm,
        "interval": dialog.interval,
    }
    return {name: f.error.text() for name, f in fields.items() if f.error.isVisible()}


@pytest.mark.parametrize(
    ("edit", "errors"),
    [
        (
            {"server": "192.168.1.100:3001"},
            {
                "server": "Endereço inválido: use http://IP:PORTA, por exemplo http://192.168.1.100:3001"
            },
        ),
        (
            {"server": "ftp://loja"},
            {
                "server": "Endereço inválido: use http://IP:PORTA, por exemplo http://192.168.1.100:3001"
            },
        ),
        ({"machine": "  "}, {"machine": "Informe o nome deste PDV"}),
        ({"machine": "caixa 1"}, {"machine": "Nome inválido: de 1 a 64 caracteres, sem espaços"}),
        ({"pin": "1234", "pin_confirm": "1243"}, {"pin_confirm": "Os PINs não conferem"}),
        ({"pin": "12", "pin_confirm": "12"}, {"pin": "O PIN deve ter de 4 a 8 dígitos"}),
        ({"pin": "12ab", "pin_confirm": "12ab"}, {"pin": "O PIN deve ter de 4 a 8 dígitos"}),
        ({"pin_confirm": "1234"}, {"pin": "Digite o PIN nos dois campos"}),
        ({"api_key": "curta"}, {"api_key": "Chave inválida: ao menos 8 caracteres, sem espaços"}),
        (
            {"api_key": "chave com espaço"},
            {"api_key": "Chave inválida: ao menos 8 caracteres, sem espaços"},
        ),
        # Several problems at once: each one next to its field.
        (
            {"server": "nada", "machine": "", "pin": "1", "api_key": "x"},
            {
                "server": "Endereço inválido: use http://IP:PORTA, por exemplo http://192.168.1.100:3001",
                "machine": "Informe o nome deste PDV",
                "pin": "O PIN deve ter de 4 a 8 dígitos",
                "api_key": "Chave inválida: ao menos 8 caracteres, sem espaços",
            },
        ),
    ],
)
def test_invalid_input_is_explained_next_to_the_field_and_nothing_is_saved(
    agents, trays, sync_server, tmp_path, memory_keyring, edit, errors
):
    runtime = agents.start(sync_server.url)
    calls = []
    restarts = []
    tray = trays.make(runtime, save_settings=lambda *a: calls.append(a), restart=restarts.append)
    dialog = open_settings(tray)
    assert shown_errors(dialog) == {}
    for name, value in edit.items():
        getattr(dialog, name).editor.setText(value)
    click_save(dialog)
    assert shown_errors(dialog) == errors
    assert dialog.isVisible()  # still open, to fix
    assert calls == [] and restarts == []
    assert memory_keyring.passwords == {}
    assert tray.config == runtime.config

    # Fixed: the errors go away and it saves.
    for name in edit:
        field = getattr(dialog, name)
        field.editor.setText({"server": sync_server.url, "machine": "caixa-ui"}.get(name, ""))
    click_save(dialog)
    assert shown_errors(dialog) == {}
    assert not dialog.isVisible()
    assert len(calls) == 1


def test_a_valid_save_writes_the_file_keeps_the_key_in_the_keyring_and_the_pin_hashed(
    agents, trays, server_factory, tmp_path, memory_keyring, qtbot
):
    server = server_factory(
        database_url=f"sqlite:///{tmp_path / 's.db'}", env={"API_SECRET_KEY": KEY}
    )
    runtime = agents.start(server.url)  # no key yet: the server refuses it
    sync_until(runtime, "offline")
    config_path = tmp_path / "config" / "agent.json"
    tray = build_tray(
        agents.session(runtime),
        config_path=config_path,
        on_quit=lambda: None,
        clock=trays.clock,
        grace_ms=0,
    )
    trays.made.append(tray)
    wait_badge(qtbot, tray, "offline")
    assert "chave de API recusada" in tray.tray.toolTip()

    dialog = open_settings(tray)
    assert dialog.server.editor.text() == server.url
    assert dialog.machine.editor.text() == "caixa-ui"
    assert dialog.api_key.editor.text() == ""
    assert (
        dialog.api_key.editor.placeholderText()
        == "(guardada no cofre do sistema; deixe vazio para manter)"
    )
    assert not dialog.autostart.isChecked()
    assert not dialog.remove_pin.isVisible()
    dialog.machine.editor.setText("caixa-9")
    dialog.api_key.editor.setText(KEY)
    dialog.pin.editor.setText("2468")
    dialog.pin_confirm.editor.setText("2468")
    dialog.interval.editor.setValue(7)
    dialog.strategy.editor.setCurrentIndex(dialog.strategy.editor.findData("full_resync"))
    dialog.autostart.setChecked(True)
    old_monitor = tray.bridge.monitor
    with qtbot.waitSignal(tray.runtimeReplaced, timeout=30_000):
        click_save(dialog)
    assert not dialog.isVisible()
    assert old_monitor._pool._shutdown  # the stopped engine's helper threads are let go

    # The file: the settings, the PIN as a salted hash, never the key nor the PIN's digits.
    text = config_path.read_text(encoding="utf-8")
    data = json.loads(text)
    assert (
        "server_url" not in data
    )  # unchanged: the installer's machine-wide address still reaches it
    assert data["machine_id"] == "caixa-9"
    assert data["interval_ms"] == 7000
    assert data["divergence_strategy"] == "full_resync"
    assert data["manager_pin_hash"].startswith("pbkdf2_sha256$")
    assert verify_pin("2468", data["manager_pin_hash"]) and not verify_pin(
        "2469", data["manager_pin_hash"]
    )
    assert "2468" not in data.values()
    assert KEY not in text and "api_key" not in data
    assert load({}, environ={}, config_file=config_path).machine_id == "caixa-9"
    # The key: in the OS keyring (in memory here). Autostart: the logon entry.
    assert memory_keyring.passwords == {(SERVICE, USERNAME): KEY}
    assert autostart.is_enabled()

    # The agent restarted with the new settings and the key from the keyring: synced.
    monitor = tray.bridge.monitor
    assert monitor.engine.config.machine_id == "caixa-9"
    assert monitor.engine.config.api_key == KEY
    assert monitor.engine.config.interval_ms == 7000
    fresh = agents.sessions[0].runtime
    assert fresh is not runtime and fresh.engine is monitor.engine
    assert tray.config.manager_pin_hash == data["manager_pin_hash"]
    pid = sell_product(fresh)
    sync_until(fresh, "synced")  # (these tests' agents sync only when asked)
    wait_badge(qtbot, tray, "synced")
    with server.client(api_key=KEY) as c:
        assert pid in {p["id"] for p in c.get("/api/products").json()["products"]}

    # Reopened: the key is never shown back; the PIN neither; they are kept when left empty.
    dialog = open_settings(tray)
    assert dialog.api_key.editor.text() == ""
    assert dialog.pin.editor.text() == "" and dialog.pin_confirm.editor.text() == ""
    assert dialog.pin.editor.placeholderText() == "(vazio = manter o atual)"
    assert dialog.remove_pin.isVisible()
    assert dialog.machine.editor.text() == "caixa-9"
    assert dialog.autostart.isChecked()
    with qtbot.assertNotEmitted(tray.runtimeReplaced, wait=500):
        click_save(dialog)  # nothing changed: no restart needed
    assert not dialog.isVisible()
    assert memory_keyring.passwords == {(SERVICE, USERNAME): KEY}
    assert (
        json.loads(config_path.read_text(encoding="utf-8"))["manager_pin_hash"]
        == data["manager_pin_hash"]
    )

    # The PIN now guards the forced reconcile.
    tray.actions()["Forçar reconciliação"].trigger()
    assert tray.pin_dialog is not None and tray.pin_dialog.isVisible()

    # Removing the PIN.
    dialog = open_settings(tray)
    dialog.remove_pin.setChecked(True)
    dialog.autostart.setChecked(False)
    with qtbot.waitSignal(tray.runtimeReplaced, timeout=30_000):
        click_save(dialog)
    assert json.loads(config_path.read_text(encoding="utf-8"))["manager_pin_hash"] is None
    assert not autostart.is_enabled()


def test_a_keyring_failure_is_shown_next_to_the_key_and_nothing_else_changes(
    agents, trays, sync_server, tmp_path, monkeypatch
):
    import keyring
    from keyring.backends.fail import Keyring as FailKeyring

    # Headless Linux: no usable keyring (the fixture restores the previous one).
    keyring.set_keyring(FailKeyring())
    runtime = agents.start(sync_server.url)
    config_path = tmp_path / "agent.json"
    tray = build_tray(
        agents.session(runtime), config_path=config_path, on_quit=lambda: None, clock=trays.clock
    )
    trays.made.append(tray)
    dialog = open_settings(tray)
    dialog.api_key.editor.setText(KEY)
    click_save(dialog)
    assert dialog.isVisible()
    assert dialog.api_key.error.text().startswith(
        "Não foi possível salvar: nenhum cofre de senhas do sistema"
    )
    assert not config_path.exists()
    assert tray.bridge.monitor.engine is runtime.engine


@pytest.fixture
def keyed_server(server_factory, tmp_path):
    return server_factory(
        database_url=f"sqlite:///{tmp_path / 'k.db'}", env={"API_SECRET_KEY": KEY}
    )


def _test(dialog, qtbot, url: str, key: str | None) -> str:
    dialog.server.editor.setText(url)
    dialog.api_key.editor.setText(key or "")
    with qtbot.waitSignal(dialog.bridge.connectionTested, timeout=20_000):
        dialog.test_button.click()
        assert dialog.test_result.text() == "Testando…"
        assert not dialog.test_button.isEnabled()
    assert dialog.test_button.isEnabled()
    return dialog.test_result.text()


def test_connection_test_reports_reachability_authentication_and_clock_offset(
    agents, trays, keyed_server, sync_server, qtbot
):
    runtime = agents.start(keyed_server.url)
    tray = trays.make(runtime)
    dialog = open_settings(tray)

    assert (
        _test(dialog, qtbot, keyed_server.url, "chave-errada-000")
        == "Servidor acessível, mas a chave de API foi recusada"
    )
    assert (
        _test(dialog, qtbot, keyed_server.url, None)
        == "Servidor acessível, mas a chave de API foi recusada"
    )
    ok = _test(dialog, qtbot, keyed_server.url, KEY)
    assert ok.startswith("Conexão OK, chave aceita; diferença de relógio: ") and ok.endswith(" s")
    assert _test(dialog, qtbot, sync_server.url, None).startswith(
        "Conexão OK, chave aceita"
    )  # no key needed there
    assert _test(dialog, qtbot, f"http://127.0.0.1:{free_port()}", KEY).startswith(
        "Servidor inacessível: "
    )

    # An invalid address is explained next to the field; nothing is tried.
    dialog.server.editor.setText("não é um endereço")
    dialog.test_result.setText("")
    dialog.test_button.click()
    assert dialog.server.error.isVisible()
    assert dialog.test_result.text() == ""
    assert dialog.test_button.isEnabled()


def test_connection_test_uses_the_saved_key_when_the_field_is_empty(
    agents, trays, keyed_server, qtbot
):
    runtime = agents.start(keyed_server.url, api_key=KEY)
    tray = trays.make(runtime)
    dialog = open_settings(tray)
    assert _test(dialog, qtbot, keyed_server.url, None).startswith("Conexão OK, chave aceita")


def test_cancel_saves_nothing(agents, trays, sync_server, memory_keyring):
    runtime = agents.start(sync_server.url)
    calls = []
    tray = trays.make(runtime, save_settings=lambda *a: calls.append(a))
    dialog = open_settings(tray)
    dialog.machine.editor.setText("outro")
    dialog.api_key.editor.setText(KEY)
    cancel = dialog.buttons.button(QDialogButtonBox.StandardButton.Cancel)
    assert cancel.text() == "Cancelar"
    cancel.click()
    assert not dialog.isVisible()
    assert calls == [] and memory_keyring.passwords == {}
    assert tray.config == runtime.config


def test_saving_writes_only_what_changed_so_the_machine_file_keeps_counting(tmp_path):
    """A PDV where someone once saved the interval must still follow a new server address
    the installer later writes into the machine-wide file."""
    from dataclasses import replace

    from agent.config import update_file
    from agent.ui.app import settings_saver

    site = tmp_path / "site.json"
    update_file(site, {"server_url": "http://10.0.0.1:3001", "machine_id": "caixa-1"})
    user = tmp_path / "user" / "agent.json"
    user.parent.mkdir()
    user.write_text(json.dumps({"local_port": 4100}), encoding="utf-8")
    current = load({}, environ={}, config_file=user, site_file=site)

    settings_saver(user, lambda: current)(replace(current, interval_ms=7000), None, False)
    assert json.loads(user.read_text(encoding="utf-8")) == {"local_port": 4100, "interval_ms": 7000}

    update_file(site, {"server_url": "http://10.0.0.2:3001"})  # the installer, on upgrade
    after = load({}, environ={}, config_file=user, site_file=site)
    assert (after.server_url, after.machine_id, after.local_port, after.interval_ms) == (
        "http://10.0.0.2:3001",
        "caixa-1",
        4100,
        7000,
    )
    assert not autostart.is_enabled()  # the logon entry follows the checkbox


def test_a_machine_wide_logon_entry_shows_locked_and_is_never_doubled(
    agents, trays, sync_server, tmp_path, qtbot
):
    """The installer starts the agent for every user; a per-user entry as well would start it
    twice at each logon (and the second start opens Detalhes)."""
    system_entry = (
        tmp_path / "xdg-site" / "autostart" / "pdvsync-agent.desktop"
    )  # XDG_CONFIG_DIRS (conftest)
    system_entry.parent.mkdir(parents=True)
    system_entry.write_text(
        "[Desktop Entry]\nType=Application\nName=PDV Sync\nExec=pdvsync-agent\n", encoding="utf-8"
    )
    user_entry = tmp_path / "xdg-config" / "autostart" / "pdvsync-agent.desktop"
    assert autostart.machine_wide() and not autostart.is_enabled()

    runtime = agents.start(sync_server.url)
    config_path = tmp_path / "agent.json"
    tray = build_tray(
        agents.session(runtime), config_path=config_path, on_quit=lambda: None, clock=trays.clock
    )
    trays.made.append(tray)
    dialog = open_settings(tray)
    assert dialog.autostart.isChecked() and not dialog.autostart.isEnabled()
    assert "definido na instalação" in dialog.autostart.text()
    dialog.interval.editor.setValue(9)
    with qtbot.waitSignal(tray.runtimeReplaced, timeout=30_000):
        click_save(dialog)
    assert json.loads(config_path.read_text(encoding="utf-8")) == {"interval_ms": 9000}
    assert not user_entry.exists()

    # A per-user entry from before the installer's is dropped (as the tray does at start).
    system_entry.unlink()
    autostart.set_enabled(True)
    assert user_entry.exists()
    system_entry.write_text("[Desktop Entry]\n", encoding="utf-8")
    assert autostart.drop_duplicate() is True
    assert not user_entry.exists() and autostart.machine_wide()
    assert autostart.drop_duplicate() is False


def test_opening_settings_again_deletes_the_old_dialog_on_the_gui_thread(
    agents, trays, sync_server, memory_keyring
):
    # Left to the garbage collector, the old dialog's widgets would be deleted by whichever
    # thread collects (the engine's included): Qt's own deleteLater does it here instead.
    runtime = agents.start(sync_server.url)
    tray = trays.make(runtime)
    first = open_settings(tray)
    second = open_settings(tray)
    assert second is not first and second.isVisible()
    assert not first.isVisible()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert not shiboken6.isValid(first)  # deleted by Qt, not waiting for a collection
    assert shiboken6.isValid(second) and second.isVisible()
