"""PDV reports (what an agent tells the server about itself) and commands (what the panel asks
a PDV to do): their parsing, their bounds and their wire forms, for both sides.

Report (`POST /api/sync/report`, camelCase like the rest of the wire): `{machineId,
tenantId?, state, label, pending, oldestPendingAgeMs, deadLetters, live, lastError,
lastErrorCode, lastSuccessAt, clockOffsetMs, cursor, version, hostname, lastReconcile: {at,
status, strategy, isConsistent, mismatches: [{table, reason}], serverLogId?, commandId?} |
null, commandResults: [{id, status, detail?}]?}`. Free texts longer than `TEXT_MAX` are
cut (an error's detail may be long; the report still counts); a value of the wrong type is
refused (422 `invalid_report`); unknown keys are ignored, so a newer agent's report still
reaches an older server.

Command: `{"type": "command", "id", "kind": "reconcile", "strategy"}` on the live socket,
and `{id, kind, strategy}` in a report's reply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .errors import ProtocolError
from .messages import parse_machine_id
from .timefmt import parse_ms
from .vocabulary import DivergenceStrategy, ReconcileStatus, choices

# The badge states an agent reports (agent/sync/status.py's SyncState values), with the
# words its tray shows for each.
PDV_STATES = ("waiting", "syncing", "synced", "divergent", "offline")
STATE_LABELS = {
    "waiting": "Aguardando",
    "syncing": "Sincronizando",
    "synced": "Sincronizado",
    "divergent": "Com Divergência",
    "offline": "Offline/Erro",
}
# An agent reports at least this often while the server answers (and at once, debounced,
# when its state, pending count, dead letters or last reconcile change).
REPORT_EVERY_MS = 30_000

TEXT_MAX = 200  # free texts (label, errors, host name, version, reasons): longer ones are cut
CODE_MAX = 64  # codes and ids (error codes, command ids, table names)
MISMATCHES_MAX = 20  # mismatches kept of a reconcile (the first ones)
COMMAND_RESULTS_MAX = 20  # command results taken from one report (the first ones)
_COUNT_MAX = 10**12  # pending, dead letters, cursor: anything larger is not a real PDV's
_OFFSET_MAX = 10 * 365 * 86_400_000  # a clock offset beyond ten years is not a clock


class CommandKind(StrEnum):
    """What the panel may ask a PDV to do."""

    RECONCILE = "reconcile"


def _invalid(message: str) -> ProtocolError:
    return ProtocolError("invalid_report", message)


def _text(value: object, name: str, limit: int = TEXT_MAX) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(f"{name}: expected a string")
    return value[:limit]


def _count(value: object, name: str, *, default: int | None = 0) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _COUNT_MAX:
        raise _invalid(f"{name}: expected a non-negative integer")
    return value


def _flag(value: object, name: str) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _invalid(f"{name}: expected true or false")
    return value


def _time(value: object, name: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_ms(value, name)
    except ProtocolError as exc:
        raise _invalid(exc.message) from None


def _object(value: object, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(f"{name}: expected a JSON object")
    return value


def _list(value: object, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid(f"{name}: expected a list")
    return value


@dataclass(frozen=True)
class LastReconcile:
    """The PDV's last reconcile, as it reports it."""

    at: int | None  # epoch ms
    status: str  # a ReconcileStatus value (a word this side does not know is kept as text)
    strategy: str | None  # a DivergenceStrategy value, or a word this side does not know
    is_consistent: bool | None
    mismatches: list[dict[str, str]]  # [{table, reason}], at most MISMATCHES_MAX
    server_log_id: int | None = None
    command_id: str | None = None  # the command it ran for, if any

    def wire(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "status": self.status,
            "strategy": self.strategy,
            "isConsistent": self.is_consistent,
            "mismatches": [dict(m) for m in self.mismatches],
            "serverLogId": self.server_log_id,
            "commandId": self.command_id,
        }


@dataclass(frozen=True)
class CommandResult:
    """How a command the PDV ran ended (for a reconcile: its status)."""

    id: str
    status: str
    detail: str | None = None

    def wire(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class PdvReport:
    """One report, parsed and bounded. Times are epoch ms."""

    machine_id: str
    state: str  # one of PDV_STATES
    label: str
    pending: int = 0
    oldest_pending_age_ms: int | None = None
    dead_letters: int = 0
    live: bool = False
    last_error: str | None = None
    last_error_code: str | None = None
    last_success_at: int | None = None
    clock_offset_ms: int = 0
    cursor: int = 0
    version: str | None = None
    hostname: str | None = None
    last_reconcile: LastReconcile | None = None
    command_results: list[CommandResult] = field(default_factory=list)

    def wire(self) -> dict[str, Any]:
        """The report as the server keeps it (its command results are not kept: they finish
        commands). Times are epoch ms."""
        return {
            "machineId": self.machine_id,
            "state": self.state,
            "label": self.label,
            "pending": self.pending,
            "oldestPendingAgeMs": self.oldest_pending_age_ms,
            "deadLetters": self.dead_letters,
            "live": self.live,
            "lastError": self.last_error,
            "lastErrorCode": self.last_error_code,
            "lastSuccessAt": self.last_success_at,
            "clockOffsetMs": self.clock_offset_ms,
            "cursor": self.cursor,
            "version": self.version,
            "hostname": self.hostname,
            "lastReconcile": self.last_reconcile.wire() if self.last_reconcile else None,
        }


def parse_report(body: object) -> PdvReport:
    """A report's body (already decoded JSON) -> `PdvReport`; 422 `invalid_report` (or the
    machine id's own codes) when a value is of the wrong type."""
    if not isinstance(body, dict):
        raise ProtocolError("invalid_body", "body: expected a JSON object")
    machine_id = parse_machine_id(body.get("machineId"), required=True)
    state = body.get("state")
    if state not in PDV_STATES:
        raise _invalid(f"state: expected one of {', '.join(PDV_STATES)}")
    assert isinstance(state, str)
    offset = body.get("clockOffsetMs")
    if offset is None:
        offset = 0
    if isinstance(offset, bool) or not isinstance(offset, int) or abs(offset) > _OFFSET_MAX:
        raise _invalid("clockOffsetMs: expected an integer (milliseconds)")
    pending = _count(body.get("pending"), "pending")
    dead = _count(body.get("deadLetters"), "deadLetters")
    cursor = _count(body.get("cursor"), "cursor")
    assert pending is not None and dead is not None and cursor is not None
    results = _list(body.get("commandResults"), "commandResults")[:COMMAND_RESULTS_MAX]
    reconcile = body.get("lastReconcile")
    return PdvReport(
        machine_id=machine_id,
        state=state,
        label=_text(body.get("label"), "label") or STATE_LABELS[state],
        pending=pending,
        oldest_pending_age_ms=_count(
            body.get("oldestPendingAgeMs"), "oldestPendingAgeMs", default=None
        ),
        dead_letters=dead,
        live=bool(_flag(body.get("live"), "live")),
        last_error=_text(body.get("lastError"), "lastError"),
        last_error_code=_text(body.get("lastErrorCode"), "lastErrorCode", CODE_MAX),
        last_success_at=_time(body.get("lastSuccessAt"), "lastSuccessAt"),
        clock_offset_ms=offset,
        cursor=cursor,
        version=_text(body.get("version"), "version"),
        hostname=_text(body.get("hostname"), "hostname"),
        last_reconcile=None if reconcile is None else _last_reconcile(reconcile),
        command_results=[_command_result(r, i) for i, r in enumerate(results)],
    )


def _last_reconcile(value: object) -> LastReconcile:
    raw = _object(value, "lastReconcile")
    # Words this side may not know yet (a newer agent's) are kept as text, not refused: a
    # report must not be lost over one word.
    status = _text(raw.get("status"), "lastReconcile.status", CODE_MAX)
    if not status:
        raise _invalid(f"lastReconcile.status: expected one of {choices(ReconcileStatus)}")
    mismatches: list[dict[str, str]] = []
    for i, m in enumerate(_list(raw.get("mismatches"), "lastReconcile.mismatches")):
        if i >= MISMATCHES_MAX:
            break
        entry = _object(m, f"lastReconcile.mismatches[{i}]")
        mismatches.append(
            {
                "table": _text(entry.get("table"), "mismatches[].table", CODE_MAX) or "?",
                "reason": _text(entry.get("reason"), "mismatches[].reason") or "",
            }
        )
    log_id = raw.get("serverLogId")
    if log_id is not None and (isinstance(log_id, bool) or not isinstance(log_id, int)):
        raise _invalid("lastReconcile.serverLogId: expected an integer")
    return LastReconcile(
        at=_time(raw.get("at"), "lastReconcile.at"),
        status=status,
        strategy=_text(raw.get("strategy"), "lastReconcile.strategy", CODE_MAX),
        is_consistent=_flag(raw.get("isConsistent"), "lastReconcile.isConsistent"),
        mismatches=mismatches,
        server_log_id=log_id,
        command_id=_text(raw.get("commandId"), "lastReconcile.commandId", CODE_MAX),
    )


def _command_result(value: object, index: int) -> CommandResult:
    raw = _object(value, f"commandResults[{index}]")
    command_id = _text(raw.get("id"), f"commandResults[{index}].id", CODE_MAX)
    status = _text(raw.get("status"), f"commandResults[{index}].status", CODE_MAX)
    if not command_id or not status:
        raise _invalid(f"commandResults[{index}]: id and status are required")
    return CommandResult(command_id, status, _text(raw.get("detail"), "commandResults[].detail"))


# -- commands -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A command for one PDV: its id (random text, never reused), kind and strategy."""

    id: str
    kind: str  # a CommandKind value (an agent refuses kinds it does not know)
    strategy: DivergenceStrategy

    def wire(self) -> dict[str, Any]:
        """As a report's reply lists it."""
        return {"id": self.id, "kind": self.kind, "strategy": self.strategy.value}

    def message(self) -> dict[str, Any]:
        """As the live socket sends it."""
        return {"type": "command", **self.wire()}


def parse_command(data: object) -> Command:
    """A command from the live socket or a report's reply (`type` optional); ProtocolError
    `invalid_command` when it is not one. The kind is kept as sent: the agent answers a kind
    it does not know with a result, not silence."""
    if not isinstance(data, dict):
        raise ProtocolError("invalid_command", "command: expected a JSON object")
    command_id, kind = data.get("id"), data.get("kind")
    if not isinstance(command_id, str) or not command_id or len(command_id) > CODE_MAX:
        raise ProtocolError("invalid_command", "command.id: expected a short string")
    if not isinstance(kind, str) or not kind or len(kind) > CODE_MAX:
        raise ProtocolError("invalid_command", "command.kind: expected a short string")
    try:
        strategy = DivergenceStrategy(data.get("strategy") or DivergenceStrategy.NONE)
    except ValueError:
        raise ProtocolError(
            "invalid_command", f"command.strategy: expected one of {choices(DivergenceStrategy)}"
        ) from None
    return Command(command_id, kind, strategy)
