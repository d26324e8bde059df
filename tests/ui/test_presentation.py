"""The pure parts of the badge: status -> icon, title and reasons; transitions -> messages."""

from __future__ import annotations

import pytest

from agent.sync.errors import SyncError, failure_text
from agent.ui.notify import NotificationPolicy
from agent.ui.presentation import (
    TOOLTIP_LIMIT,
    error_text,
    icon_path,
    menu_status_line,
    next_text_change,
    present,
    relative_time,
)

NOW = 1_750_000_000_000
MIN = 60_000


def iso(ms: int) -> str:
    from protocol import to_iso

    return to_iso(ms)


@pytest.mark.parametrize(
    ("status", "title", "reasons"),
    [
        (
            {"state": "waiting", "server": "http://10.0.0.5:3001"},
            "PDV Sync — Aguardando",
            ["Última sincronização: nunca", "Servidor: http://10.0.0.5:3001"],
        ),
        (
            {
                "state": "syncing",
                "pending": 3,
                "oldestPendingAgeMs": 2 * MIN,
                "lastSuccessAt": iso(NOW - 5 * MIN),
            },
            "PDV Sync — Sincronizando",
            ["3 alterações pendentes, a mais antiga há 2 min", "Última sincronização: há 5 min"],
        ),
        (
            {"state": "synced", "lastSuccessAt": iso(NOW - 2_000)},
            "PDV Sync — Sincronizado",
            ["Última sincronização: agora"],
        ),
        (
            {"state": "divergent", "lastSuccessAt": iso(NOW - 40_000)},
            "PDV Sync — Com Divergência",
            ["Dados diferentes do servidor — ver Detalhes", "Última sincronização: há 40 s"],
        ),
        (
            {
                "state": "offline",
                "lastError": "server unreachable (connection refused or network unavailable)",
                "lastErrorCode": "unreachable",
                "pending": 1,
                "oldestPendingAgeMs": 3 * 3_600_000,
                "lastSuccessAt": iso(NOW - 2 * 86_400_000),
            },
            "PDV Sync — Offline/Erro",
            [
                "1 venda/alteração pendente (há 3 h)",
                "Erro: servidor inacessível (conexão recusada ou rede indisponível)",
                "Última sincronização: há 2 dias",
            ],
        ),
        (
            {
                "state": "divergent",
                "deadLetters": 2,
                "reconcileDivergent": False,
                "lastSuccessAt": iso(NOW),
            },
            "PDV Sync — Com Divergência",
            ["2 recusada(s) pelo servidor — ver Detalhes"],
        ),
    ],
)
def test_each_state_maps_to_its_icon_title_and_reasons(status, title, reasons):
    p = present(status, NOW)
    assert p.state == status["state"]
    assert p.icon == icon_path(status["state"]) and p.icon.is_file()
    assert p.title == title
    assert p.tooltip.splitlines()[0] == title
    for reason in reasons:
        assert reason in p.lines
    assert menu_status_line(p) == f"{title} · {p.lines[0]}"


def test_the_error_line_only_when_offline():
    p = present({"state": "synced", "lastError": "antigo", "lastSuccessAt": iso(NOW)}, NOW)
    assert not any(line.startswith("Erro:") for line in p.lines)


def test_tooltip_fits_the_windows_limit_most_important_lines_first():
    status = {
        "state": "offline",
        "lastError": "server unreachable (connection refused or network unavailable)",
        "lastErrorCode": "unreachable",
        "lastSuccessAt": iso(NOW - 3 * MIN),
        "server": "http://192.168.100.200:3001",
        "pending": 2,
        "oldestPendingAgeMs": 3 * MIN,
    }
    p = present(status, NOW)
    assert len("\n".join((p.title, *p.lines))) > TOOLTIP_LIMIT
    tooltip = p.tooltip
    assert len(tooltip) == TOOLTIP_LIMIT
    # Pending sales whole, then the gist of the error; last sync and server give way.
    title, pending, error = tooltip.splitlines()
    assert (title, pending) == (p.title, "2 alterações pendentes, a mais antiga há 3 min")
    assert error.startswith("Erro: servidor inacessível (conexão") and error.endswith("…")


def test_tooltip_leaves_out_a_line_rather_than_showing_a_stump():
    status = {
        "state": "divergent",
        "lastSuccessAt": iso(NOW - 3 * MIN),
        "server": "http://192.168.100.200:3001",
    }
    p = present(status, NOW)
    assert p.tooltip.splitlines() == [
        p.title,
        "Dados diferentes do servidor — ver Detalhes",
        "Última sincronização: há 3 min",
    ]


def test_a_very_long_first_reason_is_shortened_not_lost():
    p = present(
        {"state": "offline", "lastError": "x" * 400, "server": "http://192.168.100.200:3001"}, NOW
    )
    assert len(p.tooltip) == TOOLTIP_LIMIT
    assert p.tooltip.startswith("PDV Sync — Offline/Erro\nErro: xxx")
    assert p.tooltip.endswith("…")


def test_mismatches_and_repairs_in_portuguese():
    from agent.ui.presentation import mismatch_line, op_label, repair_lines, table_label

    assert (
        mismatch_line({"table": "order_items", "reason": "count_mismatch, checksum_mismatch"})
        == "Tabela Itens de pedido: diferem quantidade de registros, conteúdo"
    )
    assert (
        mismatch_line({"table": "supplies", "reason": "latestUpdatedAt_mismatch"})
        == "Tabela Insumos: diferem última alteração"
    )
    assert (
        mismatch_line({"table": "novidade", "reason": "new_mismatch"})
        == "Tabela novidade: diferem new_mismatch"
    )
    assert table_label("orders") == "Pedidos" and op_label("delete") == "exclusão"
    assert repair_lines(
        {"tables": [{"table": "products", "fixed": ["a"], "removed": ["b", "c"]}]}
    ) == [
        "Reparo em Produtos: 1 corrigido(s), 2 removido(s)",
        "  corrigido: a",
        "  removido: b",
        "  removido: c",
    ]
    assert repair_lines({"tables": ["products", "orders"]}) == [
        "Ressincronização completa: Produtos",
        "Ressincronização completa: Pedidos",
    ]
    many = repair_lines(
        {"tables": [{"table": "products", "fixed": [str(i) for i in range(25)], "removed": []}]},
        limit=20,
    )
    assert len(many) == 1 + 20 + 1 and many[-1] == "  … e mais 5"
    assert repair_lines(None) == []


@pytest.mark.parametrize(
    ("ago_ms", "text"),
    [
        (None, "nunca"),
        (1_000, "agora"),
        (30_000, "há 30 s"),
        (5 * MIN, "há 5 min"),
        (2 * 3_600_000, "há 2 h"),
        (86_400_000, "há 1 dia"),
        (3 * 86_400_000, "há 3 dias"),
        (-5_000, "agora"),  # a timestamp slightly in the future (clocks): never "há -5 s"
    ],
)
def test_relative_time(ago_ms, text):
    assert relative_time(None if ago_ms is None else NOW - ago_ms, NOW) == text


class TestNotificationPolicy:
    def test_nothing_in_the_grace_period_then_the_lasting_state_once(self):
        policy = NotificationPolicy(0, grace_ms=15_000, debounce_ms=8_000)
        policy.observe("offline", 1_000)
        assert policy.due(10_000) is None  # debounced but within grace
        notice = policy.due(15_000)
        assert notice is not None and (notice.category, notice.previous) == ("offline", "normal")
        assert policy.due(16_000) is None
        assert policy.due(600_000) is None

    def test_a_flap_shorter_than_the_debounce_says_nothing(self):
        policy = NotificationPolicy(0, grace_ms=0, debounce_ms=8_000)
        policy.observe("synced", 0)
        policy.observe("offline", 10_000)
        assert policy.due(15_000) is None
        policy.observe("synced", 16_000)
        assert policy.due(30_000) is None
        assert policy.due(60_000) is None

    def test_back_to_normal_once_and_waiting_or_syncing_count_as_normal(self):
        policy = NotificationPolicy(0, grace_ms=0, debounce_ms=1_000)
        policy.observe("divergent", 0)
        assert policy.due(1_000).category == "divergent"
        policy.observe("syncing", 2_000)
        policy.observe("waiting", 2_500)
        policy.observe("synced", 2_800)
        assert policy.due(2_900) is None  # debounced from the first normal state on
        notice = policy.due(3_000)
        assert (notice.category, notice.previous) == ("normal", "divergent")
        assert policy.due(10_000) is None

    def test_offline_then_divergent_are_two_messages(self):
        policy = NotificationPolicy(0, grace_ms=0, debounce_ms=1_000)
        policy.observe("offline", 0)
        assert policy.due(1_000).category == "offline"
        policy.observe("divergent", 2_000)
        assert policy.due(3_000).category == "divergent"

    def test_wake_restarts_the_grace_period(self):
        policy = NotificationPolicy(0, grace_ms=5_000, debounce_ms=1_000)
        policy.wake(100_000)
        policy.observe("offline", 100_000)
        assert policy.due(104_000) is None
        assert policy.due(105_000).category == "offline"


def test_refused_changes_alone_do_not_claim_the_data_differs_after_a_reconcile():
    refused = present({"state": "divergent", "deadLetters": 1, "reconcileDivergent": False}, NOW)
    assert "Dados diferentes do servidor — ver Detalhes" not in refused.lines
    both = present({"state": "divergent", "deadLetters": 1, "reconcileDivergent": True}, NOW)
    assert "Dados diferentes do servidor — ver Detalhes" in both.lines


# -- sync errors: codes from the sync layer, Portuguese only here ----------------------------


@pytest.mark.parametrize(
    ("code", "detail", "text"),
    [
        (
            "unreachable",
            "server unreachable (connection refused or network unavailable)",
            "servidor inacessível (conexão recusada ou rede indisponível)",
        ),
        ("timeout", "the server did not answer in time", "servidor não respondeu a tempo"),
        ("network", "ReadError", "erro de rede (ReadError)"),
        ("auth_refused", "invalid API key", "chave de API recusada: invalid API key"),
        (
            "key_of_other_machine",
            "the API key belongs to another PDV",
            "chave de API recusada: a chave de API pertence a outro PDV; use a chave emitida "
            "para este nome de PDV",
        ),
        ("server_refused", "HTTP 400", "servidor recusou o envio: HTTP 400"),
        ("unexpected", "KeyError: 'x'", "erro inesperado: KeyError: 'x'"),
        (
            "server_moved",
            "the server changed during the comparison; try again",
            "o servidor mudou durante a comparação; tente novamente",
        ),
    ],
)
def test_a_sync_error_code_is_worded_in_portuguese(code, detail, text):
    assert error_text(code, detail) == text
    # The same from the text the store keeps for an outbox event or a reconcile entry.
    assert error_text(None, failure_text(SyncError(code), detail)) == text


def test_every_sync_error_code_has_its_words_and_other_texts_are_shown_as_they_are():
    for code in SyncError:
        text = error_text(code.value, "detail")
        assert text and not text.startswith(code.value), code
    assert "outro banco de dados" in error_text("database_changed", "another database")
    assert error_text(None, "products/p1 does not exist") == "products/p1 does not exist"
    assert error_text(None, "servidor inacessível") == "servidor inacessível"  # older versions
    assert error_text(None, None) is None
    assert error_text("a_newer_code", "its detail") == "its detail"


def test_a_connection_test_is_worded_for_the_manager():
    from agent.sync.monitor import ConnectionOutcome, ConnectionReport
    from agent.ui.presentation import connection_text

    def text(outcome, detail="", offset=None):
        return connection_text(ConnectionReport(True, None, offset, outcome, detail))

    assert text(ConnectionOutcome.OK) == "Conexão OK, chave aceita"
    assert (
        text(ConnectionOutcome.OK, offset=-1_250)
        == "Conexão OK, chave aceita; diferença de relógio: -1.2 s"
    )
    assert (
        text(ConnectionOutcome.UNREACHABLE, "ConnectError") == "Servidor inacessível: ConnectError"
    )
    assert text(ConnectionOutcome.KEY_REFUSED) == (
        "Servidor acessível, mas a chave de API foi recusada"
    )
    assert text(ConnectionOutcome.HTTP_ERROR, "HTTP 500") == "Servidor respondeu com erro HTTP 500"
    assert text(ConnectionOutcome.NOT_A_SERVER) == (
        "O endereço não responde como um servidor PDV Sync"
    )


@pytest.mark.parametrize(
    ("ago_ms", "text", "next_change_ms"),
    [
        (None, "nunca", None),
        (1_000, "agora", 4_000),
        (30_000, "há menos de 1 min", 30_000),
        (61_000, "há 1 min", 59_000),
        (2 * 3_600_000 + 5_000, "há 2 h", 3_595_000),
        (3 * 86_400_000, "há 3 dias", 86_400_000),
    ],
)
def test_the_tooltip_ages_to_the_minute_and_says_when_its_text_changes(
    ago_ms, text, next_change_ms
):
    then = None if ago_ms is None else NOW - ago_ms
    assert relative_time(then, NOW, seconds=False) == text
    assert next_text_change(then, NOW) == next_change_ms
    if next_change_ms is not None:  # the same text until then, another one from then on
        assert relative_time(then, NOW + next_change_ms - 1, seconds=False) == text
        assert relative_time(then, NOW + next_change_ms, seconds=False) != text


def test_the_notification_policy_says_when_to_look_again():
    policy = NotificationPolicy(0, grace_ms=15_000, debounce_ms=8_000)
    assert policy.next_due() is None  # nothing to tell
    policy.observe("offline", 1_000)
    assert policy.next_due() == 15_000  # debounced at 9 s, but in the grace period
    assert policy.due(14_999) is None and policy.due(15_000) is not None
    assert policy.next_due() is None  # told
    policy.observe("synced", 20_000)
    assert policy.next_due() == 28_000
