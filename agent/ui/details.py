"""`Detalhes…`: state, this PDV's shop, pending and refused events (retry/discard), last
sync, clock offset, and the reconcile history (local and the server's for this machine) with mismatches."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from agent.sync.errors import SyncError
from protocol import ProtocolError, now_ms, parse_ms

from .bridge import EngineBridge
from .i18n import tr
from .presentation import (
    error_text,
    mismatch_line,
    op_label,
    relative_time,
    repair_lines,
    shop_label,
    state_label,
    table_label,
)
from .settings_dialog import STRATEGY_LABELS


def _table(headers: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    t.horizontalHeader().setStretchLastSection(True)
    t.verticalHeader().setVisible(False)
    return t


def _fill(table: QTableWidget, rows: list[list[Any]]) -> None:
    table.setRowCount(len(rows))
    for r, values in enumerate(rows):
        for c, value in enumerate(values):
            table.setItem(r, c, QTableWidgetItem("" if value is None else str(value)))
    table.resizeColumnsToContents()  # dates and ids whole, on one line


class DetailsWindow(QWidget):
    closed = Signal()  # by the manager (or any close()): the tray then releases it

    def __init__(self, bridge: EngineBridge) -> None:
        super().__init__()
        self.bridge = bridge
        self.setWindowTitle(tr("PDV Sync — Detalhes"))
        self.resize(760, 520)
        self._history: list[dict[str, Any]] = []

        self.state_label = QLabel()
        self.shop_label = QLabel()
        self.shop_label.setWordWrap(True)
        self.pending_label = QLabel()
        self.last_sync_label = QLabel()
        self.offset_label = QLabel()
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        form = QFormLayout()
        form.addRow(tr("Estado:"), self.state_label)
        form.addRow(tr("Loja:"), self.shop_label)
        form.addRow(tr("Pendentes:"), self.pending_label)
        form.addRow(tr("Última sincronização:"), self.last_sync_label)
        form.addRow(tr("Diferença de relógio:"), self.offset_label)
        form.addRow(tr("Último erro:"), self.error_label)

        self.pending_table = _table(
            [
                tr("Tabela"),
                tr("Registro"),
                tr("Operação"),
                tr("Criado em"),
                tr("Tentativas"),
                tr("Erro"),
            ]
        )
        self.dead_table = _table(
            [tr("Tabela"), tr("Registro"), tr("Operação"), tr("Criado em"), tr("Motivo")]
        )
        self.retry_button = QPushButton(tr("Tentar novamente"))
        self.discard_button = QPushButton(tr("Descartar"))
        self.retry_button.clicked.connect(self._retry)
        self.discard_button.clicked.connect(self._discard)
        dead_box = QWidget()
        dead_layout = QVBoxLayout(dead_box)
        dead_layout.addWidget(self.dead_table)
        buttons = QHBoxLayout()
        buttons.addWidget(self.retry_button)
        buttons.addWidget(self.discard_button)
        buttons.addStretch()
        dead_layout.addLayout(buttons)

        self.history_table = _table(
            [tr("Quando"), tr("Origem"), tr("Resultado"), tr("Divergências"), tr("Estratégia")]
        )
        self.history_table.itemSelectionChanged.connect(self._show_mismatches)
        self.mismatch_text = QPlainTextEdit()
        self.mismatch_text.setReadOnly(True)
        history_box = QWidget()
        history_layout = QVBoxLayout(history_box)
        history_layout.addWidget(self.history_table, 3)
        history_layout.addWidget(QLabel(tr("Divergências da entrada selecionada:")))
        history_layout.addWidget(self.mismatch_text, 2)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.pending_table, tr("Pendentes"))
        self.tabs.addTab(dead_box, tr("Recusados"))
        self.tabs.addTab(history_box, tr("Reconciliações"))

        refresh = QPushButton(tr("Atualizar"))
        refresh.clicked.connect(self.refresh)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.tabs)
        layout.addWidget(refresh, alignment=Qt.AlignmentFlag.AlignRight)

        bridge.statusChanged.connect(self.show_status)
        bridge.serverHistoryReady.connect(self._server_history)

    def closeEvent(self, event: QCloseEvent) -> None:
        super().closeEvent(event)
        if event.isAccepted():
            self.closed.emit()

    def refresh(self) -> None:
        monitor = self.bridge.monitor
        self.show_status(monitor.status())
        box = monitor.outbox()
        _fill(
            self.pending_table,
            [
                [
                    table_label(e["table"]),
                    e["id"],
                    op_label(e["op"]),
                    _when(e["createdAt"]),
                    e["attempts"],
                    error_text(None, e["lastError"]),
                ]
                for e in box["pending"]
            ],
        )
        self._dead = box["dead"]
        _fill(
            self.dead_table,
            [
                [
                    table_label(e["table"]),
                    e["id"],
                    op_label(e["op"]),
                    _when(e["createdAt"]),
                    refusal_label(e.get("reason"), e["lastError"]),
                ]
                for e in self._dead
            ],
        )
        self._history = [{**h, "source": tr("local")} for h in monitor.local_history()]
        self._render_history()
        self.bridge.fetch_server_history()

    def show_status(self, status: dict[str, Any]) -> None:
        now = now_ms()
        self.state_label.setText(state_label(status["state"]))
        self.shop_label.setText(shop_text(status.get("tenantId"), status.get("syncedTenantId")))
        dead = status.get("deadLetters") or 0
        self.pending_label.setText(
            tr("{p} pendente(s), {d} recusado(s)").format(p=status.get("pending", 0), d=dead)
        )
        last = status.get("lastSuccessAt")
        self.last_sync_label.setText(relative_time(parse_ms(last) if last else None, now))
        self.offset_label.setText(
            tr("{s:+.1f} s em relação ao servidor").format(
                s=(status.get("clockOffsetMs") or 0) / 1000
            )
        )
        self.error_label.setText(
            error_text(status.get("lastErrorCode"), status.get("lastError")) or tr("nenhum")
        )

    def _server_history(self, reply: dict[str, Any]) -> None:
        server = [{**h, "source": tr("servidor")} for h in reply.get("data", [])]
        local = [h for h in self._history if h.get("source") == tr("local")]
        self._history = sorted(
            local + server, key=lambda h: h.get("created_at") or "", reverse=True
        )
        self._render_history()

    def _render_history(self) -> None:
        rows = []
        for h in self._history:
            result = h.get("status") or ("consistent" if h.get("is_consistent") else "divergent")
            strategy = h.get("strategy")
            rows.append(
                [
                    _when(h.get("created_at")),
                    h.get("source"),
                    _result_label(result),
                    h.get("mismatches_count", len(h.get("mismatches") or [])),
                    _strategy_label(strategy),
                ]
            )
        _fill(self.history_table, rows)

    def _show_mismatches(self) -> None:
        rows = self.history_table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self._history):
            self.mismatch_text.setPlainText("")
            return
        entry = self._history[rows[0].row()]
        parts = []
        for m in entry.get("mismatches") or []:
            parts.append(mismatch_line(m))
            parts.append(tr("  servidor: {s}").format(s=_counts(m.get("server"))))
            parts.append(tr("  este PDV: {c}").format(c=_counts(m.get("client"))))
        parts += repair_lines(entry.get("repair"))
        error = error_text(entry.get("errorCode"), entry.get("error"))
        if error:
            parts.append(tr("Erro: {e}").format(e=error))
        self.mismatch_text.setPlainText("\n".join(parts) or tr("Nenhuma divergência."))

    def _selected_dead(self) -> dict[str, Any] | None:
        rows = self.dead_table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self._dead):
            return None
        return self._dead[rows[0].row()]

    discard_confirm: QMessageBox | None = None

    def _retry(self) -> None:
        entry = self._selected_dead()
        if entry:
            self.bridge.monitor.retry_dead(entry["eventId"])
            self.refresh()

    def _discard(self) -> None:
        """Discarding loses the change for good (it may be a sale): asked first."""
        entry = self._selected_dead()
        if not entry:
            return
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            tr("Descartar alteração recusada"),
            tr(
                "Descartar definitivamente esta alteração? Ela nunca chegará ao servidor. "
                "Se fizer parte de uma venda, a venda inteira é descartada."
            ),
            parent=self,
        )
        discard = box.addButton(tr("Descartar"), QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(tr("Cancelar"), QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(cast(QPushButton, box.buttons()[-1]))

        def done() -> None:
            if box.clickedButton() is discard:
                self.bridge.monitor.discard_dead(entry["eventId"])
                self.refresh()

        box.finished.connect(done)
        self.discard_confirm = box
        box.open()  # not exec(): the tray's event loop keeps running


def shop_text(tenant: str | None, synced: str | None) -> str:
    """The shop this PDV syncs with, and the one its data belongs to when that differs."""
    text = shop_label(tenant)
    if synced and tenant and synced != tenant:
        text += tr(" — os dados deste PDV são da loja {s}").format(s=shop_label(synced))
    return text


def _result_label(result: str) -> str:
    return {
        "consistent": tr("Consistente"),
        "repaired": tr("Reparado"),
        "divergent": tr("Divergente"),
        "retry": tr("Repetir"),
        "error": tr("Erro"),
    }.get(result, result)


def _when(iso: str | None) -> str:
    """An ISO UTC stamp in the PDV's local time, as a Brazilian reads it: 29/11/2025 14:03:07."""
    if not iso:
        return ""
    try:
        stamp = datetime.fromtimestamp(parse_ms(iso) / 1000, tz=UTC).astimezone()
    except (ProtocolError, ValueError, OverflowError, OSError):
        return iso
    return stamp.strftime("%d/%m/%Y %H:%M:%S")


def _counts(summary: dict[str, Any] | None) -> str:
    if not summary:
        return "-"
    return tr("{c} registros, último em {u}").format(
        c=summary.get("count"), u=_when(summary.get("latestUpdatedAt")) or "-"
    )


def refusal_label(reason: str | None, error: str | None) -> str:
    """Why the server refused an event, in words a manager reads (its text as a fallback)."""
    labels = {
        "unknown_record": tr("o registro não existe no servidor"),
        "invalid_type": tr("valor de tipo inválido"),
        "invalid_value": tr("valor inválido"),
        "unknown_field": tr("campo desconhecido"),
        "unknown_operation": tr("operação desconhecida"),
        "invalid_increment": tr("alteração de estoque inválida"),
        "missing_id": tr("registro sem identificador"),
        "invalid_id": tr("identificador inválido"),
        "invalid_timestamp": tr("data inválida"),
        "value_out_of_range": tr("valor fora do limite"),
        "out_of_range": tr("o estoque ficaria fora do limite"),
        "body_too_large": tr("alteração grande demais para o servidor"),
    }
    if reason == SyncError.PART_OF_REFUSED_SALE:  # the agent's own reason: nothing to add
        return error_text(reason, error) or ""
    if reason in labels:
        return labels[reason] + (f" ({error})" if error else "")
    return error or tr("recusado pelo servidor")


def _strategy_label(strategy: str | None) -> str:
    if strategy is not None and strategy in STRATEGY_LABELS:
        return tr(STRATEGY_LABELS[strategy])
    if strategy == "client":  # the POS front end compared its data with this PDV's
        return tr("Conferência do caixa (front-end)")
    return strategy or ""
