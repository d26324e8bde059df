"""JSON Schemas of a PDV's report (`POST /api/sync/report`), its answer, and the commands it
carries (protocol/reports.py is the judge: the schemas describe what it accepts)."""

from __future__ import annotations

from ..reports import (
    CODE_MAX,
    COMMAND_RESULTS_MAX,
    MISMATCHES_MAX,
    PDV_STATES,
    TEXT_MAX,
    CommandKind,
)
from ..vocabulary import DivergenceStrategy, ReconcileStatus
from .answers import success_schema
from .values import Schema, iso_schema, machine_id_schema, timestamp_schema


def _text(limit: int = TEXT_MAX) -> Schema:
    return {
        "type": ["string", "null"],
        "description": f"longer than {limit} characters: cut to {limit}",
    }


def _count(*, nullable: bool = False) -> Schema:
    kind = ["integer", "null"] if nullable else "integer"
    return {"type": kind, "minimum": 0, "maximum": 10**12}


def last_reconcile_schema() -> Schema:
    """The PDV's last reconcile (null: none since it started)."""
    mismatch = {
        "type": "object",
        "properties": {"table": _text(CODE_MAX), "reason": _text()},
    }
    return {
        "type": "object",
        "properties": {
            "at": {"anyOf": [timestamp_schema(), {"type": "null"}]},
            "status": {
                "type": "string",
                "minLength": 1,
                "description": "one of " + ", ".join(s.value for s in ReconcileStatus),
            },
            "strategy": {
                **_text(CODE_MAX),
                "description": "one of " + ", ".join(s.value for s in DivergenceStrategy),
            },
            "isConsistent": {"type": ["boolean", "null"]},
            "mismatches": {
                "type": "array",
                "items": mismatch,
                "description": f"the first {MISMATCHES_MAX} are kept",
            },
            "serverLogId": {"type": ["integer", "null"]},
            "commandId": _text(CODE_MAX),
        },
        "required": ["status"],
    }


def report_schema() -> Schema:
    """`POST /api/sync/report`: what a PDV tells the server about itself. Unknown keys are
    ignored; free texts are cut to their bound."""
    result = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "minLength": 1},
            "status": {"type": "string", "minLength": 1},
            "detail": _text(),
        },
        "required": ["id", "status"],
    }
    return {
        "title": "PDV report",
        "type": "object",
        "properties": {
            "machineId": machine_id_schema(required=True),
            "state": {"type": "string", "enum": list(PDV_STATES)},
            "label": _text(),
            "pending": _count(nullable=True),
            "oldestPendingAgeMs": _count(nullable=True),
            "deadLetters": _count(nullable=True),
            "live": {"type": ["boolean", "null"]},
            "lastError": _text(),
            "lastErrorCode": _text(CODE_MAX),
            "lastSuccessAt": {"anyOf": [timestamp_schema(), {"type": "null"}]},
            "clockOffsetMs": {"type": ["integer", "null"], "description": "server minus PDV"},
            "cursor": _count(nullable=True),
            "version": _text(),
            "hostname": _text(),
            "lastReconcile": {"anyOf": [last_reconcile_schema(), {"type": "null"}]},
            "commandResults": {
                "type": ["array", "null"],
                "items": result,
                "description": f"the first {COMMAND_RESULTS_MAX} are taken",
            },
        },
        "required": ["machineId", "state"],
    }


def command_schema() -> Schema:
    """A command for the PDV: `{id, kind, strategy}` (on the live socket with `type:
    "command"`)."""
    return {
        "type": "object",
        "properties": {
            "id": {"type": "string", "maxLength": CODE_MAX},
            "kind": {"type": "string", "enum": [k.value for k in CommandKind]},
            "strategy": {"type": "string", "enum": [s.value for s in DivergenceStrategy]},
        },
        "required": ["id", "kind", "strategy"],
    }


def report_answer_schema() -> Schema:
    """The answer to a report: the PDV's commands not finished yet."""
    return success_schema(
        {
            "commands": {"type": "array", "items": command_schema()},
            "timestamp": iso_schema(),
        }
    )
