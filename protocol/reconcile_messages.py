"""The body of `POST /api/sync/reconcile`: `{machineId, clientSummary, cursor?}`.

`clientSummary` is `{table: {count?, latestUpdatedAt?, checksum?}}` (or the server's own
list shape). As the original server reads it, a missing count is 0 and a table this side
does not know is ignored, so a front end summarising more tables than we keep still
reconciles the ones we do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ProtocolError
from .messages import parse_cursor, parse_machine_id
from .schema import TABLES
from .timefmt import parse_ms


@dataclass
class ReconcileRequest:
    machine_id: str
    summary: dict[str, dict[str, Any]]  # table -> {count, latestUpdatedAt?, checksum?}
    cursor: int | None


def parse_reconcile(body: object) -> ReconcileRequest:
    if not isinstance(body, dict):
        raise ProtocolError("invalid_body", "body: expected a JSON object")
    machine_id = parse_machine_id(body.get("machineId"), required=True)
    raw = body.get("clientSummary")
    if isinstance(raw, list):  # the server's own list shape is accepted too
        raw = _from_list(raw)
    if not isinstance(raw, dict):
        raise ProtocolError(
            "invalid_summary",
            "clientSummary: expected {table: {count, latestUpdatedAt, checksum?}}",
        )
    summary: dict[str, dict[str, Any]] = {}
    for name, entry in raw.items():
        if name not in TABLES:
            continue
        summary[name] = _entry(name, entry)
    return ReconcileRequest(machine_id, summary, parse_cursor(body.get("cursor")))


def _from_list(raw: list[Any]) -> dict[str, Any]:
    entries: dict[str, Any] = {}
    for e in raw:
        if not isinstance(e, dict) or not isinstance(e.get("table"), str):
            raise ProtocolError("invalid_summary", "clientSummary[]: expected {table, count, ...}")
        name = e["table"]
        if name in entries:  # a dict cannot repeat a key, a list can: never keep one silently
            raise ProtocolError("invalid_summary", f"clientSummary: {name} given twice")
        entries[name] = {k: v for k, v in e.items() if k != "table"}
    return entries


def _entry(name: str, entry: object) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ProtocolError("invalid_summary", f"clientSummary.{name}: expected a JSON object")
    count = entry.get("count")
    if count is None:
        count = 0
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ProtocolError(
            "invalid_summary", f"clientSummary.{name}.count: expected a non-negative integer"
        )
    clean: dict[str, Any] = {"count": count}
    if "latestUpdatedAt" in entry:
        latest = entry["latestUpdatedAt"]
        if latest is not None:
            parse_ms(latest, f"clientSummary.{name}.latestUpdatedAt")
        clean["latestUpdatedAt"] = latest
    checksum = entry.get("checksum")
    if checksum is not None:
        if not isinstance(checksum, str) or len(checksum) > 64:
            raise ProtocolError(
                "invalid_summary", f"clientSummary.{name}.checksum: expected a hex string"
            )
        clean["checksum"] = checksum
    return clean
