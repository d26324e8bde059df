"""The panel's alert rules and card words (server/panel/alerts.py, views.py, wording.py):
pure functions over PDV cards, the time and the PANEL_* thresholds."""

from __future__ import annotations

from typing import Any

import pytest

from server.panel.alerts import alerts, card_alerts, pending_age_ms
from server.panel.settings import PanelSettings, PanelSettingsError
from server.panel.views import card_view, chart_view, health_view, key_views
from server.panel.wording import clock_text, duration, relative_time
from server.settings import Settings, SettingsError

NOW = 1_900_000_000_000
MIN = 60_000
DEFAULTS = PanelSettings()


def card(**overrides: Any) -> dict[str, Any]:
    """A healthy PDV card as server/pdvs.py builds it, seen and reporting just now."""
    base: dict[str, Any] = {
        "machineId": "caixa-1",
        "hostname": "CAIXA1-PC",
        "version": "1.4.0",
        "state": "synced",
        "label": "Sincronizado",
        "lastSeenAt": NOW - 5_000,
        "pending": 0,
        "oldestPendingAgeMs": None,
        "deadLetters": 0,
        "clockOffsetMs": 120,
        "cursor": 40,
        "lag": 0,
        "lastReconcile": None,
        "lastError": None,
        "lastErrorCode": None,
        "live": True,
        "reportedAt": NOW - 5_000,
        "pendingCommand": None,
        "lastCommand": None,
    }
    base.update(overrides)
    return base


def kinds(found) -> list[str]:
    return [a["kind"] for a in found]


def test_a_healthy_pdv_has_no_alert():
    assert alerts([card()], NOW, DEFAULTS) == []


def test_offline_only_after_the_threshold():
    silent_4 = card(state="offline", lastSeenAt=NOW - 4 * MIN)
    silent_6 = card(state="offline", lastSeenAt=NOW - 6 * MIN, machineId="caixa-2")
    found = alerts([silent_4, silent_6], NOW, DEFAULTS)
    assert kinds(found) == ["offline"]
    assert found[0]["machineId"] == "caixa-2"
    assert found[0]["level"] == "danger"
    assert found[0]["text"] == "O PDV «caixa-2» está sem contato com o servidor há 6 min."


def test_a_fractional_threshold_reaches_an_alert_in_seconds():
    fast = PanelSettings(offline_alert_minutes=0.25)
    assert kinds(card_alerts(card(state="offline", lastSeenAt=NOW - 20_000), NOW, fast)) == [
        "offline"
    ]


def test_a_pdv_seen_long_ago_but_not_offline_is_no_offline_alert():
    # The card's state decides (server/pdvs.py computes offline after 90 s of silence).
    assert card_alerts(card(lastSeenAt=NOW - 10 * MIN), NOW, DEFAULTS) == []


def test_pending_sales_age_counts_the_time_since_the_report():
    # 8 min old when reported 3 min ago: 11 min now, over the 10 min threshold.
    c = card(pending=3, oldestPendingAgeMs=8 * MIN, reportedAt=NOW - 3 * MIN, state="waiting")
    assert pending_age_ms(c, NOW) == 11 * MIN
    found = card_alerts(c, NOW, DEFAULTS)
    assert kinds(found) == ["pending"]
    assert found[0]["text"] == "O PDV «caixa-1» tem 3 vendas/alterações pendentes há 11 min."
    assert found[0]["level"] == "warning"
    young = card(pending=3, oldestPendingAgeMs=2 * MIN, reportedAt=NOW)
    assert card_alerts(young, NOW, DEFAULTS) == []


def test_one_pending_sale_is_singular():
    c = card(pending=1, oldestPendingAgeMs=20 * MIN, reportedAt=NOW)
    assert "tem 1 venda/alteração pendente há 20 min" in card_alerts(c, NOW, DEFAULTS)[0]["text"]


def test_refused_changes_and_divergence():
    refused = card(state="divergent", deadLetters=2)
    found = card_alerts(refused, NOW, DEFAULTS)
    assert kinds(found) == ["refused"]  # divergent because of them: one alert, not two
    assert "2 alterações recusadas pelo servidor" in found[0]["text"]

    last = {
        "at": NOW - MIN,
        "status": "divergent",
        "strategy": "none",
        "isConsistent": False,
        "mismatches": [
            {"table": "products", "reason": "count_mismatch"},
            {"table": "orders", "reason": "checksum_mismatch"},
        ],
    }
    found = card_alerts(card(state="divergent", lastReconcile=last), NOW, DEFAULTS)
    assert kinds(found) == ["divergent"]
    assert found[0]["text"] == (
        "O PDV «caixa-1» está com divergência: dados diferentes do servidor "
        "(Produtos (quantidade de registros); Pedidos (conteúdo)). Use Forçar reconciliação."
    )
    # Repaired since: no alert.
    repaired = dict(last, status="repaired", isConsistent=True)
    assert card_alerts(card(lastReconcile=repaired), NOW, DEFAULTS) == []


@pytest.mark.parametrize(
    ("offset", "expected"),
    [(121_000, "2 min atrasado"), (-300_000, "5 min adiantado"), (119_000, None)],
)
def test_clock_alert_beyond_the_threshold(offset, expected):
    found = card_alerts(card(clockOffsetMs=offset), NOW, DEFAULTS)
    if expected is None:
        assert found == []
    else:
        assert kinds(found) == ["clock"]
        assert found[0]["text"] == (
            f"O relógio do PDV «caixa-1» está {expected} em relação ao servidor."
        )


def test_alerts_sorted_danger_first_then_by_pdv():
    cards = [
        card(machineId="b", clockOffsetMs=500_000),
        card(machineId="c", state="offline", lastSeenAt=NOW - 30 * MIN),
        card(machineId="a", deadLetters=1),
    ]
    found = alerts(cards, NOW, DEFAULTS)
    assert [(a["level"], a["machineId"]) for a in found] == [
        ("danger", "a"),
        ("danger", "c"),
        ("warning", "b"),
    ]


def test_thresholds_come_from_settings():
    s = Settings.from_mapping(
        {
            "PANEL_OFFLINE_ALERT_MINUTES": "1",
            "PANEL_PENDING_ALERT_MINUTES": "0.5",
            "PANEL_CLOCK_ALERT_SECONDS": "30",
        }
    ).panel
    assert s == PanelSettings(1.0, 0.5, 30.0)
    assert Settings.from_mapping({}).panel == PanelSettings(5.0, 10.0, 120.0)
    c = card(pending=1, oldestPendingAgeMs=40_000, reportedAt=NOW, clockOffsetMs=31_000)
    assert kinds(card_alerts(c, NOW, s)) == ["pending", "clock"]


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf"])
def test_bad_thresholds_are_refused_by_name(value):
    with pytest.raises(SettingsError, match="PANEL_CLOCK_ALERT_SECONDS"):
        Settings.from_mapping({"PANEL_CLOCK_ALERT_SECONDS": value})
    with pytest.raises(PanelSettingsError):
        PanelSettings.from_mapping({"PANEL_CLOCK_ALERT_SECONDS": value})


# -- the card's words ----------------------------------------------------------------------


def test_card_view_words():
    c = card(
        state="waiting",
        pending=3,
        oldestPendingAgeMs=12 * MIN,
        reportedAt=NOW,
        deadLetters=1,
        clockOffsetMs=-1_500,
        lag=7,
        lastReconcile={
            "at": NOW - 5 * MIN,
            "status": "consistent",
            "strategy": "refresh_mismatched",
            "isConsistent": True,
            "mismatches": [],
        },
        pendingCommand={
            "id": "c1",
            "strategy": "full_resync",
            "createdAt": NOW - 2 * MIN,
            "deliveredAt": None,
        },
        lastCommand={"id": "c0", "finishedAt": NOW - 30_000, "result": {"status": "repaired"}},
    )
    v = card_view(c, NOW, DEFAULTS, alerting=["caixa-1"])
    f = v["fields"]
    assert v["state"] == "waiting" and v["alert"] is True
    assert v["icon"].startswith("/painel/static/icons/waiting.svg")
    assert f["stateLabel"] == "Aguardando"
    assert f["seen"] == "há 5 s"
    assert f["pending"] == "3 — a mais antiga há 12 min"
    assert f["refused"] == "1"
    assert f["reconcile"] == "há 5 min · consistente · estratégia: corrigir as tabelas divergentes"
    assert f["mismatches"] == ""
    assert f["clock"] == "1,5 s adiantado"
    assert f["lag"] == "7 alterações atrás"
    assert f["command"] == (
        "Reconciliação solicitada há 2 min (ressincronização completa): aguardando o PDV "
        "(será entregue quando ele se conectar)."
    )
    assert f["commandResult"] == "Reconciliação solicitada pelo painel concluída há 30 s: reparada."
    assert v["commandFailed"] is False
    assert set(v["warn"]) == {"pending", "refused"}


def test_card_view_of_a_silent_pdv_that_never_reported():
    v = card_view(
        {"machineId": "velho", "state": "offline", "lastSeenAt": NOW - 3 * 86_400_000},
        NOW,
        DEFAULTS,
    )
    assert v["fields"]["stateLabel"] == "Offline/Erro"
    assert v["fields"]["seen"] == "há 3 dias"
    assert v["fields"]["reconcile"] == "nunca"
    assert v["fields"]["live"] == ""  # not said of an offline PDV
    assert "seen" in v["warn"]


def test_an_unknown_state_is_shown_as_waiting():
    assert card_view(card(state="<b>x</b>"), NOW, DEFAULTS)["state"] == "waiting"


def test_error_words():
    v = card_view(card(lastErrorCode="server_busy", lastError="429"), NOW, DEFAULTS)
    assert v["fields"]["error"] == "servidor ocupado: as vendas aguardam no PDV"
    # A code this side has no words for (a newer agent's): the PDV's own detail.
    v = card_view(card(lastErrorCode="new_code", lastError="something odd"), NOW, DEFAULTS)
    assert v["fields"]["error"] == "something odd"
    v = card_view(card(lastError="something odd"), NOW, DEFAULTS)
    assert v["fields"]["error"] == "something odd"


def test_durations_and_times():
    assert duration(45_000) == "45 s"
    assert duration(7 * MIN) == "7 min"
    assert duration(125 * MIN) == "2 h 5 min"
    assert duration(120 * MIN) == "2 h"
    assert duration(72 * 60 * MIN) == "3 dias"
    assert relative_time(None, NOW) == "nunca"
    assert relative_time(NOW - 2_000, NOW) == "agora"
    assert relative_time(NOW - 40_000, NOW) == "há 40 s"
    assert relative_time(NOW - 86_400_000, NOW) == "há 1 dia"
    assert clock_text(200) == "certo (0,2 s de diferença)"
    assert clock_text(None) == "desconhecido"


def test_health_view():
    h = {
        "database": "ok",
        "head": 120,
        "eventsLastMinute": 4,
        "conflictsLastMinute": 1,
        "eventsLast15Min": 30,
        "conflictsLast15Min": 2,
    }
    v = health_view(h, live_pdvs=3, started_at_ms=NOW - 65 * MIN, now_ms=NOW)
    assert v["databaseOk"] is True
    assert v["fields"] == {
        "database": "ok",
        "head": "120",
        "eventsLastMinute": "4",
        "conflictsLastMinute": "1",
        "eventsPerMinute15": "2,0",
        "conflicts15": "2",
        "livePdvs": "3",
        "uptime": "1 h 5 min",
    }
    down = health_view(None, live_pdvs=0, started_at_ms=NOW, now_ms=NOW)
    assert down["databaseOk"] is False and down["fields"]["head"] == "—"


def test_chart_keeps_the_last_24_hours_minutes_with_events():
    minute = NOW - NOW % MIN
    rows = [
        {"minute": minute, "applied": 5, "stale": 1, "rejected": 1},
        {"minute": minute - MIN, "applied": 0, "stale": 0, "rejected": 0},
        {"minute": minute - 25 * 60 * MIN, "applied": 9, "stale": 0, "rejected": 0},
    ]
    chart = chart_view(rows, NOW)
    assert chart["end"] == minute + MIN
    assert chart["end"] - chart["start"] == 24 * 60 * MIN
    assert chart["points"] == [[minute, 5, 2]]


def test_keys_of_the_shop_only_never_a_key():
    keys = [
        {
            "id": 1,
            "tenantId": "default",
            "machineId": "caixa-1",
            "createdAt": "2030-01-01T12:00:00.000Z",
            "revokedAt": None,
            "active": True,
        },
        {
            "id": 2,
            "tenantId": "outra",
            "machineId": "caixa-9",
            "createdAt": "2030-01-01T12:00:00.000Z",
            "revokedAt": None,
            "active": True,
        },
        {
            "id": 3,
            "tenantId": "default",
            "machineId": "caixa-2",
            "createdAt": "2030-01-01T12:00:00.000Z",
            "revokedAt": "2030-01-02T12:00:00.000Z",
            "active": False,
        },
    ]
    views = key_views(keys, "default")
    assert [k["id"] for k in views] == [1, 3]
    assert views[0]["name"] == "pdv_… nº 1" and views[0]["revoked"] == ""
    assert views[1]["revoked"] != "" and views[1]["active"] is False
