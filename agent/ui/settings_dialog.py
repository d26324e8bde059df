"""`Configurações…`: server, machine id, shop, API key (to the OS keyring, never shown back),
intervals, divergence strategy, manager PIN, start with Windows, and `Testar conexão`.

Nothing is saved until every field validates; each problem is shown next to its field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Generic, TypeVar

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from agent.config import AgentConfig, ConfigError
from protocol.tenancy import DEFAULT_TENANT

from .bridge import EngineBridge
from .i18n import tr
from .pin import hash_pin, valid_new_pin
from .presentation import connection_text

STRATEGY_LABELS = {
    "refresh_mismatched": "Corrigir só o que diverge",
    "full_resync": "Ressincronizar tudo",
    "none": "Apenas avisar",
}


Editor = TypeVar("Editor", bound=QWidget)


class _Field(QWidget, Generic[Editor]):
    """An input with its error message right under it."""

    def __init__(self, editor: Editor) -> None:
        super().__init__()
        self.editor = editor
        self.error = QLabel()
        self.error.setStyleSheet("color: #c62828")
        self.error.setWordWrap(True)
        self.error.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(editor)
        layout.addWidget(self.error)

    def set_error(self, message: str | None) -> None:
        self.error.setText(message or "")
        self.error.setVisible(bool(message))


class SettingsDialog(QDialog):
    def __init__(
        self,
        config: AgentConfig,
        bridge: EngineBridge | None,
        save: Callable[[AgentConfig, str | None, bool], None],
        autostart_enabled: bool,
        parent=None,
        *,
        autostart_machine_wide: bool = False,
    ) -> None:
        super().__init__(parent)
        self.config = config
        self.bridge = bridge
        self._save = save
        self.setWindowTitle(tr("PDV Sync — Configurações"))
        self.setMinimumWidth(560)  # room for the hints and the connection report

        self.server = _Field(QLineEdit(config.server_url))
        self.machine = _Field(QLineEdit(config.machine_id or ""))
        shop = QLineEdit(config.tenant_id or "")
        shop.setPlaceholderText(tr("(vazio = loja padrão)"))
        self.tenant = _Field(shop)
        # The shop whose data this PDV holds, if it holds any: another one stops the sync
        # (said before saving). A PDV with nothing in it yet may take any shop.
        self._held_tenant = _held_tenant(bridge.monitor.status()) if bridge else None
        self.tenant_note = QLabel()
        self.tenant_note.setStyleSheet("color: #b26a00")
        self.tenant_note.setWordWrap(True)
        self.tenant_note.hide()
        shop.textChanged.connect(self._note_tenant)
        key = QLineEdit()
        key.setEchoMode(QLineEdit.EchoMode.Password)
        key.setPlaceholderText(tr("(guardada no cofre do sistema; deixe vazio para manter)"))
        self.api_key = _Field(key)
        self.interval = _Field(self._spin(config.interval_ms // 1000, 1, 3600, tr(" s")))
        self.reconcile_interval = _Field(
            self._spin(config.reconcile_interval_ms // 60000 or 1, 1, 1440, tr(" min"))
        )
        self.auto_reconcile = QCheckBox(tr("Reconciliar automaticamente"))
        self.auto_reconcile.setChecked(config.auto_reconcile)
        combo = QComboBox()
        for value, label in STRATEGY_LABELS.items():
            combo.addItem(tr(label), value)
        combo.setCurrentIndex(max(0, combo.findData(config.divergence_strategy)))
        self.strategy = _Field(combo)
        pin = QLineEdit()
        pin.setEchoMode(QLineEdit.EchoMode.Password)
        pin.setPlaceholderText(
            tr("(vazio = manter o atual)") if config.manager_pin_hash else tr("(sem PIN)")
        )
        self.pin = _Field(pin)
        pin2 = QLineEdit()
        pin2.setEchoMode(QLineEdit.EchoMode.Password)
        self.pin_confirm = _Field(pin2)
        self.remove_pin = QCheckBox(tr("Remover o PIN"))
        self.remove_pin.setVisible(bool(config.manager_pin_hash))
        self.autostart = QCheckBox(tr("Iniciar com o Windows"))
        self.autostart.setChecked(autostart_enabled or autostart_machine_wide)
        if autostart_machine_wide:  # the installer's, for every user: only it can change that
            self.autostart.setText(
                tr("Iniciar com o Windows (definido na instalação, para todos os usuários)")
            )
            self.autostart.setEnabled(False)

        self.test_button = QPushButton(tr("Testar conexão"))
        self.test_result = QLabel()
        self.test_result.setWordWrap(True)
        self.test_button.clicked.connect(self.test_connection)
        if bridge is not None:
            bridge.connectionTested.connect(self._tested)

        form = QFormLayout()
        form.addRow(tr("Servidor:"), self.server)
        form.addRow(tr("Nome deste PDV:"), self.machine)
        form.addRow(tr("Loja (opcional):"), self.tenant)
        form.addRow("", self.tenant_note)
        form.addRow(tr("Chave de API:"), self.api_key)
        form.addRow(tr("Intervalo de sincronização:"), self.interval)
        form.addRow(tr("Intervalo de reconciliação:"), self.reconcile_interval)
        form.addRow("", self.auto_reconcile)
        form.addRow(tr("Se houver divergência:"), self.strategy)
        form.addRow(tr("PIN do gerente:"), self.pin)
        form.addRow(tr("Confirme o PIN:"), self.pin_confirm)
        form.addRow("", self.remove_pin)
        form.addRow("", self.autostart)
        form.addRow(self.test_button, self.test_result)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setText(tr("Salvar"))
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setText(tr("Cancelar"))
        self.buttons.accepted.connect(self.try_save)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.buttons)

    @staticmethod
    def _spin(value: int, lo: int, hi: int, suffix: str) -> QSpinBox:
        s = QSpinBox()
        s.setRange(lo, hi)
        s.setValue(max(lo, min(hi, value)))
        s.setSuffix(suffix)
        return s

    def _fields(self) -> dict[str, _Field]:
        return {
            "server_url": self.server,
            "machine_id": self.machine,
            "tenant_id": self.tenant,
            "interval_ms": self.interval,
            "reconcile_interval_ms": self.reconcile_interval,
            "divergence_strategy": self.strategy,
        }

    def candidate(self) -> AgentConfig:
        """The config as edited; raises ConfigError naming the first bad field."""
        return replace(
            self.config,
            server_url=self.server.editor.text().strip(),
            machine_id=self.machine.editor.text().strip(),
            tenant_id=self._edited_tenant(),
            interval_ms=self.interval.editor.value() * 1000,
            reconcile_interval_ms=self.reconcile_interval.editor.value() * 60000,
            auto_reconcile=self.auto_reconcile.isChecked(),
            divergence_strategy=self.strategy.editor.currentData(),
        ).validate()

    def _edited_tenant(self) -> str | None:
        """The shop as edited. Emptied after one was set: the default shop by name, so the
        user's file overrides a shop in the machine-wide file (a null there would not)."""
        text = self.tenant.editor.text().strip()
        return text or (DEFAULT_TENANT if self.config.tenant_id else None)

    def _note_tenant(self) -> None:
        held = self._held_tenant
        edited = self.tenant.editor.text().strip() or DEFAULT_TENANT
        if held and edited != held:
            self.tenant_note.setText(
                tr(
                    "Este PDV tem dados da loja {held}: com outra loja a sincronização fica "
                    "parada (as vendas continuam guardadas neste PDV). Para mudar de loja, "
                    "separe antes a pasta de dados."
                ).format(held=held)
            )
            self.tenant_note.show()
        else:
            self.tenant_note.hide()

    def validate(self) -> AgentConfig | None:
        """The config to save, or None with every problem shown next to its field (all of
        them at once: a manager should not fix one field only to meet the next error)."""
        for f in (*self._fields().values(), self.pin, self.pin_confirm, self.api_key):
            f.set_error(None)
        ok = True
        config: AgentConfig | None = None
        if not self.machine.editor.text().strip():
            self.machine.set_error(tr("Informe o nome deste PDV"))
            ok = False
        try:
            config = self.candidate()
        except ConfigError as exc:
            field = self._fields().get(exc.field) or self.server
            if not field.error.text():  # keep the clearer message set above
                field.set_error(_explain(exc))
            ok = False
        pin = self.pin.editor.text()
        pin_hash = self.config.manager_pin_hash
        if pin:
            problem = valid_new_pin(pin)
            if problem:
                self.pin.set_error(tr(problem))
                ok = False
            elif pin != self.pin_confirm.editor.text():
                self.pin_confirm.set_error(tr("Os PINs não conferem"))
                ok = False
            else:
                pin_hash = hash_pin(pin)
        elif self.pin_confirm.editor.text():
            self.pin.set_error(tr("Digite o PIN nos dois campos"))
            ok = False
        elif self.remove_pin.isChecked():
            pin_hash = None
        key = self.api_key.editor.text()
        if key and (len(key) < 8 or any(c.isspace() for c in key)):
            self.api_key.set_error(tr("Chave inválida: ao menos 8 caracteres, sem espaços"))
            ok = False
        if not ok or config is None:
            return None
        return replace(config, manager_pin_hash=pin_hash)

    def try_save(self) -> None:
        config = self.validate()
        if config is None:
            return
        key = self.api_key.editor.text() or None
        try:
            self._save(config, key, self.autostart.isChecked())
        except Exception as exc:  # keyring or file errors: say so next to the key field
            self.api_key.set_error(tr("Não foi possível salvar: {e}").format(e=exc))
            return
        self.config = config
        self.accept()

    def test_connection(self) -> None:
        if self.bridge is None:
            return
        url = self.server.editor.text().strip()
        try:
            replace(self.config, server_url=url).validate()
        except ConfigError as exc:
            self.server.set_error(_explain(exc))
            return
        self.server.set_error(None)
        self.test_result.setText(tr("Testando…"))
        self.test_button.setEnabled(False)
        self.bridge.test_connection(
            url, self.api_key.editor.text() or self.bridge.monitor.engine.config.api_key
        )

    def _tested(self, report) -> None:
        self.test_button.setEnabled(True)
        self.test_result.setText(connection_text(report))


def _held_tenant(status: dict) -> str | None:
    holds_data = status.get("cursor") or status.get("pending") or status.get("deadLetters")
    return status.get("syncedTenantId") if holds_data else None


def _explain(exc: ConfigError) -> str:
    messages = {
        "server_url": tr(
            "Endereço inválido: use http://IP:PORTA, por exemplo http://192.168.1.100:3001"
        ),
        "machine_id": tr("Nome inválido: de 1 a 64 caracteres, sem espaços"),
        "tenant_id": tr(
            "Loja inválida: de 1 a 64 letras sem acento, números, '.', '_' ou '-' "
            "(vazio = loja padrão)"
        ),
        "interval_ms": tr("Intervalo inválido"),
        "reconcile_interval_ms": tr("Intervalo inválido"),
        "divergence_strategy": tr("Estratégia inválida"),
    }
    return messages.get(exc.field, exc.message)
