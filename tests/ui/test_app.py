"""Behaviour of the tray application as a whole: one instance per session, waiting for a
tray that is not there (yet) while syncing, and the crash handler."""

from __future__ import annotations

import gc
import logging
import sys
import uuid

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox, QSystemTrayIcon

from agent.ui.app import install_crash_handler
from agent.ui.single_instance import SingleInstance, instance_name, send_to_running
from tests.ui.helpers import sync_until, wait_badge
from tests.ui.scenario import sell_product, server_products


@pytest.fixture
def instance_name_for_test():
    return f"pdvsync-test-{uuid.uuid4().hex[:10]}"


def test_instance_name_is_per_user_and_safe_for_a_socket_name():
    name = instance_name()
    assert name.startswith("pdvsync-agent-")
    assert all(c.isalnum() or c in "-_" for c in name)


def test_a_second_start_brings_the_running_ones_details_forward(
    agents, trays, sync_server, qtbot, instance_name_for_test
):
    tray = trays.make(agents.start(sync_server.url))
    single = SingleInstance(instance_name_for_test)
    try:
        single.messageReceived.connect(tray.handle_message)
        assert tray.details is None
        with qtbot.waitSignal(single.messageReceived, timeout=10_000) as blocker:
            assert send_to_running(instance_name_for_test)  # what a second start does first
        assert blocker.args == ["show-details"]
        assert tray.details is not None and tray.details.isVisible()
        assert tray.details.state_label.text() == "Aguardando"

        # Another message and another: the same window, raised again.
        window = tray.details
        window.hide()
        with qtbot.waitSignal(single.messageReceived, timeout=10_000):
            assert send_to_running(instance_name_for_test, "show-details")
        assert tray.details is window and window.isVisible()
    finally:
        single.close()
    assert not send_to_running(instance_name_for_test, timeout_ms=500)  # nobody listens any more


def test_quit_message_from_the_installer_quits_the_tray(
    agents, trays, sync_server, qtbot, instance_name_for_test
):
    quits = []
    tray = trays.make(agents.start(sync_server.url), quit_app=lambda: quits.append(1))
    single = SingleInstance(instance_name_for_test)
    try:
        single.messageReceived.connect(tray.handle_message)
        with qtbot.waitSignal(single.messageReceived, timeout=10_000):
            assert send_to_running(instance_name_for_test, "quit")
    finally:
        single.close()
    assert quits == [1]
    assert tray.details is None


def test_a_stale_socket_left_by_a_crash_does_not_block_the_next_start(
    instance_name_for_test, qtbot
):
    first = SingleInstance(instance_name_for_test)
    # A crash leaves the socket file behind; the next start removes it and listens.
    second = SingleInstance(instance_name_for_test)
    try:
        with qtbot.waitSignal(second.messageReceived, timeout=10_000) as blocker:
            assert send_to_running(instance_name_for_test)
        assert blocker.args == ["show-details"]
    finally:
        second.close()
        first.close()


def test_without_a_tray_it_waits_for_one_and_keeps_syncing(
    agents, trays, sync_server, qtbot, monkeypatch
):
    runtime = agents.start(sync_server.url)
    tray = trays.make(runtime)
    assert not QSystemTrayIcon.isSystemTrayAvailable()  # offscreen: no tray at all
    tray.show(wait_for_tray=True)
    assert tray._tray_wait.isActive()
    assert not tray.tray.isVisible()

    # Meanwhile the agent syncs and the badge (not shown yet) follows it.
    pid = sell_product(runtime)
    sync_until(runtime, "synced")
    assert pid in server_products(sync_server)
    wait_badge(qtbot, tray, "synced")
    tray.show_details()  # the details stay reachable (from the command line: `details`)
    assert tray.details.isVisible()

    # The tray appears (a desktop shell started late): the icon shows, the wait ends.
    monkeypatch.setattr(QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: True))
    qtbot.waitUntil(lambda: not tray._tray_wait.isActive(), timeout=10_000)
    assert tray.tray.isVisible()


def test_show_without_waiting_shows_the_icon_at_once(agents, trays, sync_server):
    tray = trays.make(agents.start(sync_server.url))
    tray.show(wait_for_tray=False)
    assert tray.tray.isVisible()
    assert not tray._tray_wait.isActive()


def crash_boxes() -> list[QMessageBox]:
    return [
        w
        for w in QApplication.topLevelWidgets()
        if isinstance(w, QMessageBox)
        and w.isVisible()
        and w.windowTitle() == "PDV Sync: erro inesperado"
    ]


def _raise_and_report(message: str) -> None:
    try:
        raise ValueError(message)
    except ValueError:
        sys.excepthook(*sys.exc_info())


@pytest.mark.parametrize("with_tray", [True, False])
def test_an_unexpected_error_is_logged_shown_once_and_the_sync_goes_on(
    agents, trays, sync_server, qtbot, caplog, with_tray
):
    runtime = agents.start(sync_server.url)
    tray = trays.make(runtime)
    previous = sys.excepthook
    try:
        install_crash_handler(tray if with_tray else None)
        with caplog.at_level(logging.ERROR, logger="agent.ui.app"):
            _raise_and_report("primeiro defeito")
            _raise_and_report("segundo defeito")
        logged = [r.getMessage() for r in caplog.records if r.name == "agent.ui.app"]
        assert len(logged) == 2
        assert "ValueError: primeiro defeito" in logged[0] and "Traceback" in logged[0]
        assert "ValueError: segundo defeito" in logged[1]
        gc.collect()  # the box must be held by someone, or it vanishes at once
        boxes = crash_boxes()
        assert len(boxes) == 1
        box = boxes[0]
        assert not box.isModal()
        assert "A sincronização continua funcionando" in box.text()
        assert runtime.engine._thread.is_alive()
        pid = sell_product(runtime)
        sync_until(runtime, "synced")
        assert pid in server_products(sync_server)
    finally:
        sys.excepthook = previous
        for box in crash_boxes():
            box.close()
