"""The badge driven by a real engine against a real server: every state, its icon, its
tooltip (the label and why), and which transitions notify the cashier."""

from __future__ import annotations

import pytest

from agent.ui.presentation import next_text_change
from protocol import parse_ms
from tests.ui.helpers import assert_badge, badge, restart_server, sync_until, wait_badge
from tests.ui.scenario import free_port, plant_divergence, sell_product, server_products


def record(tray) -> list[tuple[str, str]]:
    notes: list[tuple[str, str]] = []
    tray.notified.connect(lambda title, text: notes.append((title, text)))
    return notes


def test_each_state_has_its_own_icon(agents, trays, sync_server):
    tray = trays.make(agents.start(sync_server.url))
    keys = {state: icon.cacheKey() for state, icon in tray.icons.items()}
    assert set(keys) == {"waiting", "syncing", "synced", "divergent", "offline"}
    assert len(set(keys.values())) == 5
    for state, icon in tray.icons.items():
        assert not icon.isNull(), state
        assert not icon.pixmap(16, 16).isNull(), state  # drawn from the bundled SVG at 16 px


def test_waiting_before_the_first_sync_then_synced_then_waiting_with_pending_events(
    agents, trays, sync_server, qtbot
):
    runtime = agents.start(sync_server.url)
    tray = trays.make(runtime)
    notes = record(tray)
    assert_badge(tray, "waiting", "Última sincronização: nunca", f"Servidor: {sync_server.url}")

    sync_until(runtime, "synced")
    wait_badge(qtbot, tray, "synced")
    assert_badge(tray, "synced", "Última sincronização: agora", f"Servidor: {sync_server.url}")

    sell_product(runtime)
    wait_badge(qtbot, tray, "waiting")
    assert_badge(tray, "waiting", "1 venda/alteração pendente", "Última sincronização: agora")
    sell_product(runtime)
    qtbot.waitUntil(lambda: "2 alterações pendentes" in tray.tray.toolTip())

    sync_until(runtime, "synced")
    wait_badge(qtbot, tray, "synced")
    assert "pendente" not in tray.tray.toolTip()
    trays.clock.to_wall()
    trays.clock.advance(61_000)
    tray.tick()
    assert_badge(tray, "synced", "Última sincronização: há 1 min")
    assert notes == []  # waiting and synced are both normal: nothing to tell the cashier


def test_syncing_only_while_work_lasts_then_offline_when_the_server_drops(
    agents, trays, hanging_server, qtbot
):
    runtime = agents.start(hanging_server.url, auto_sync=True)
    tray = trays.make(runtime)
    notes = record(tray)
    # The pull hangs: after 1.5 s of work the badge says so (the tray's 1 s tick re-reads it).
    wait_badge(qtbot, tray, "syncing")
    sell_product(runtime)  # the POS keeps selling while the server hangs
    qtbot.waitUntil(lambda: "1 venda/alteração pendente" in tray.tray.toolTip())
    assert_badge(
        tray,
        "syncing",
        "1 venda/alteração pendente",
        "Última sincronização: nunca",
        f"Servidor: {hanging_server.url}",
    )

    hanging_server.close()  # connections dropped: the engine gets an error at once
    wait_badge(qtbot, tray, "offline")
    assert_badge(tray, "offline", "Erro: ")
    trays.clock.advance(10_000)
    tray.tick()
    assert [title for title, _ in notes] == ["PDV Sync: sem conexão"]


def test_offline_when_the_server_is_killed_and_synced_when_it_is_back(
    agents, trays, sync_server, server_factory, qtbot
):
    runtime = agents.start(sync_server.url)
    tray = trays.make(runtime, debounce_ms=5_000)
    notes = record(tray)
    sync_until(runtime, "synced")
    wait_badge(qtbot, tray, "synced")

    # A flap: offline, back within the debounce. The cashier is not told anything.
    sync_server.kill()
    sync_until(runtime, "offline")
    wait_badge(qtbot, tray, "offline")
    assert_badge(tray, "offline", "Erro: servidor inacessível", "Última sincronização:")
    trays.clock.advance(1_000)
    tray.tick()
    server = restart_server(server_factory, sync_server)
    sync_until(runtime, "synced")
    wait_badge(qtbot, tray, "synced")
    trays.clock.advance(20_000)
    tray.tick()
    assert notes == []

    # A lasting outage: exactly one message, however long it lasts.
    server.kill()
    pid = None
    sync_until(runtime, "offline")
    wait_badge(qtbot, tray, "offline")
    trays.clock.advance(4_000)
    tray.tick()
    assert notes == []  # not yet: still within the debounce
    trays.clock.advance(1_000)
    tray.tick()
    assert [title for title, _ in notes] == ["PDV Sync: sem conexão"]
    assert "serão enviadas quando a conexão voltar" in notes[0][1]
    pid = sell_product(runtime)  # sales go on offline
    for _ in range(3):
        trays.clock.advance(60_000)
        tray.tick()
    assert len(notes) == 1
    assert_badge(tray, "offline", "1 venda/alteração pendente", "Erro: servidor inacessível")

    # Back to normal: one message, and the sale made offline reaches the server.
    server = restart_server(server_factory, server)
    sync_until(runtime, "synced")
    wait_badge(qtbot, tray, "synced")
    assert pid in server_products(server)
    trays.clock.advance(5_000)
    tray.tick()
    tray.tick()
    assert [title for title, _ in notes] == ["PDV Sync: sem conexão", "PDV Sync: tudo certo"]


def test_refused_api_key_is_offline_with_the_reason(agents, trays, server_factory, tmp_path, qtbot):
    server = server_factory(
        database_url=f"sqlite:///{tmp_path / 's.db'}", env={"API_SECRET_KEY": "chave-certa-123"}
    )
    runtime = agents.start(server.url, api_key="chave-errada-456")
    tray = trays.make(runtime)
    sync_until(runtime, "offline")
    wait_badge(qtbot, tray, "offline")
    assert_badge(tray, "offline", "Erro: chave de API recusada")


def test_divergent_after_a_reconcile_that_finds_a_planted_row_then_repaired(
    agents, trays, sync_server, qtbot
):
    runtime = agents.start(sync_server.url)
    tray = trays.make(runtime, debounce_ms=2_000)
    notes = record(tray)
    sell_product(runtime)
    sync_until(runtime, "synced")
    wait_badge(qtbot, tray, "synced")

    plant_divergence(runtime)
    report = runtime.engine.reconcile_now("none")
    assert report["status"] == "divergent"
    wait_badge(qtbot, tray, "divergent")
    assert_badge(tray, "divergent", "Dados diferentes do servidor", "Última sincronização: agora")
    trays.clock.advance(2_000)
    tray.tick()
    assert [title for title, _ in notes] == ["PDV Sync: dados divergentes"]
    assert "Avise o gerente" in notes[0][1]

    # Divergence outranks pending events and syncing: still divergent with a sale waiting.
    sell_product(runtime)
    qtbot.waitUntil(lambda: "1 venda/alteração pendente" in tray.tray.toolTip())
    assert badge(tray) == "divergent"

    report = runtime.engine.reconcile_now("refresh_mismatched")
    assert report["status"] == "repaired"
    wait_badge(qtbot, tray, "synced")
    trays.clock.advance(2_000)
    tray.tick()
    assert [title for title, _ in notes] == ["PDV Sync: dados divergentes", "PDV Sync: tudo certo"]


def test_no_message_during_the_grace_period_after_start(agents, trays, qtbot):
    runtime = agents.start(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    tray = trays.make(runtime, grace_ms=30_000, debounce_ms=2_000)
    notes = record(tray)
    sync_until(runtime, "offline")
    wait_badge(qtbot, tray, "offline")
    trays.clock.advance(20_000)  # well past the debounce, still in the grace period
    tray.tick()
    assert notes == []
    trays.clock.advance(10_000)
    tray.tick()
    assert [title for title, _ in notes] == ["PDV Sync: sem conexão"]


@pytest.mark.parametrize("wake", [True, False])
def test_a_wake_up_gives_a_fresh_grace_period(agents, trays, sync_server, qtbot, wake):
    runtime = agents.start(sync_server.url)
    tray = trays.make(runtime, grace_ms=10_000, debounce_ms=1_000)
    notes = record(tray)
    trays.clock.advance(60_000)  # long after start
    if wake:
        tray.policy.wake(trays.clock())
    sync_server.kill()
    sync_until(runtime, "offline")
    wait_badge(qtbot, tray, "offline")
    trays.clock.advance(2_000)
    tray.tick()
    assert len(notes) == (0 if wake else 1)


def test_an_idle_tray_has_no_periodic_tick_only_a_shot_when_its_text_changes(
    agents, trays, sync_server, qtbot
):
    """Issue 12: idle, the tray sleeps until its tooltip's text would change by time alone
    (after 5 s, then each minute), never once a second."""
    runtime = agents.start(sync_server.url, auto_reconcile=False)
    tray = trays.make(runtime)
    sync_until(runtime, "synced")
    wait_badge(qtbot, tray, "synced")
    trays.clock.to_wall()
    tray.tick()
    assert tray.timer.isSingleShot() and tray.timer.isActive()
    # Armed no later than the tooltip's next change: 'agora' turns into 'há menos de 1 min'
    # 5 s after the sync (on a slow machine that may already have passed: then 'há 1 min').
    synced_at = parse_ms(tray.status["lastSuccessAt"])
    next_change = next_text_change(synced_at, trays.clock())
    assert next_change is not None
    assert 0 < tray.timer.remainingTime() <= next_change * 1.05  # a coarse timer: ±5%
    trays.clock.advance(10_000)
    tray.tick()
    assert_badge(tray, "synced", "Última sincronização: há menos de 1 min")
    assert tray.timer.remainingTime() > 40_000  # next: 'há 1 min'
    trays.clock.advance(3 * 3_600_000)
    tray.tick()
    assert_badge(tray, "synced", "Última sincronização: há 3 h")
    assert tray.timer.remainingTime() > 3_000_000  # next: 'há 4 h'
