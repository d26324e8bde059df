"""The manager's dialogs: PIN gate, and the progress and result of a forced reconcile."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QVBoxLayout,
)

from .i18n import tr
from .pin import verify_pin
from .presentation import error_text, mismatch_line, repair_lines


class PinDialog(QDialog):
    """Asks for the manager PIN; `accepted` only with the right one."""

    def __init__(self, pin_hash: str, parent=None) -> None:
        super().__init__(parent)
        self.pin_hash = pin_hash
        self.setWindowTitle(tr("PIN do gerente"))
        self.field = QLineEdit()
        self.field.setEchoMode(QLineEdit.EchoMode.Password)
        self.field.setMaxLength(8)
        self.error = QLabel()
        self.error.setStyleSheet("color: #c62828")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.check)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(tr("Digite o PIN do gerente para forçar a reconciliação:")))
        layout.addWidget(self.field)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def check(self) -> None:
        if verify_pin(self.field.text(), self.pin_hash):
            self.accept()
        else:
            self.error.setText(tr("PIN incorreto"))
            self.field.clear()


class ReconcileDialog(QDialog):
    """Shows progress while the reconcile runs, then its result in plain words."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle(tr("Forçar reconciliação"))
        self.resize(520, 360)
        self.headline = QLabel(tr("Comparando os dados deste PDV com o servidor…"))
        self.headline.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy indicator
        self.progress.setTextVisible(False)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.reject)
        self.buttons.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.headline)
        layout.addWidget(self.progress)
        layout.addWidget(self.details)
        layout.addWidget(self.buttons, alignment=Qt.AlignmentFlag.AlignRight)
        self.outcome: dict[str, Any] | None = None  # not `result`: QDialog.result() is a method

    def show_result(self, result: dict[str, Any]) -> None:
        self.outcome = result
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.buttons.setEnabled(True)
        self.headline.setText(describe_result(result))
        lines = [mismatch_line(m) for m in result.get("mismatches") or []]
        lines += repair_lines(result.get("repair"))
        error = error_text(result.get("errorCode"), result.get("error"))
        if error:
            lines.append(tr("Erro: {e}").format(e=error))
        if lines:
            self.details.setPlainText("\n".join(lines))
            self.details.show()

    def show_failure(self, message: str) -> None:
        self.show_result({"status": "error", "error": message})


def describe_result(result: dict[str, Any]) -> str:
    status = result.get("status")
    if status == "consistent":
        return tr("Tudo certo: os dados deste PDV são iguais aos do servidor.")
    if status == "repaired":
        return tr("Havia diferenças; foram corrigidas com os dados do servidor.")
    if status == "divergent":
        return tr("Os dados deste PDV são diferentes dos do servidor.")
    if status == "retry":
        return tr("O servidor recebeu vendas durante a comparação; tente novamente em instantes.")
    return tr("Não foi possível reconciliar: {e}").format(
        e=error_text(result.get("errorCode"), result.get("error")) or tr("erro desconhecido")
    )
