"""The panel's alerts: pure rules over a shop's PDV cards and the PANEL_* thresholds.

A PDV silent for longer than PANEL_OFFLINE_ALERT_MINUTES, sales pending for longer than
PANEL_PENDING_ALERT_MINUTES, changes the server refused or data that differ from the
server's (divergence), a clock off by more than PANEL_CLOCK_ALERT_SECONDS. Each alert is a
Portuguese sentence naming the PDV, for the manager; `danger` ones come first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypedDict

from protocol.vocabulary import ReconcileStatus

from .settings import PanelSettings
from .wording import duration, ms_of, pdv_name, plural, table_list

AlertKind = Literal["offline", "pending", "refused", "divergent", "clock"]
Level = Literal["danger", "warning"]


class Alert(TypedDict):
    kind: AlertKind
    level: Level
    machineId: str
    text: str


_ORDER: dict[str, int] = {"danger": 0, "warning": 1}


def alerts(cards: Iterable[Mapping[str, Any]], now_ms: int, settings: PanelSettings) -> list[Alert]:
    """Every alert of these cards (PdvCard mappings, see server/pdvs.py), most serious first,
    then by PDV."""
    found: list[Alert] = []
    for card in cards:
        found += card_alerts(card, now_ms, settings)
    return sorted(found, key=lambda a: (_ORDER[a["level"]], a["machineId"], a["kind"]))


def card_alerts(card: Mapping[str, Any], now_ms: int, settings: PanelSettings) -> list[Alert]:
    machine = str(card.get("machineId") or "")
    name = pdv_name(machine)
    found: list[Alert] = []

    def add(kind: AlertKind, level: Level, text: str) -> None:
        found.append({"kind": kind, "level": level, "machineId": machine, "text": text})

    seen = ms_of(card.get("lastSeenAt"))
    silent_ms = None if seen is None else max(0, now_ms - seen)
    if (
        card.get("state") == "offline"
        and silent_ms is not None
        and silent_ms > settings.offline_alert_minutes * 60_000
    ):
        add(
            "offline", "danger", f"{name} está sem contato com o servidor há {duration(silent_ms)}."
        )

    pending = int(card.get("pending") or 0)
    age = pending_age_ms(card, now_ms)
    if pending and age is not None and age > settings.pending_alert_minutes * 60_000:
        what = plural(pending, "venda/alteração pendente", "vendas/alterações pendentes")
        add("pending", "warning", f"{name} tem {what} há {duration(age)}.")

    dead = int(card.get("deadLetters") or 0)
    if dead:
        what = plural(dead, "alteração recusada", "alterações recusadas")
        add(
            "refused",
            "danger",
            f"{name} tem {what} pelo servidor: veja os Detalhes no PDV "
            "(tentar de novo ou descartar).",
        )

    last = card.get("lastReconcile")
    divergent_reconcile = (
        isinstance(last, Mapping) and last.get("status") == ReconcileStatus.DIVERGENT.value
    )
    if divergent_reconcile or (card.get("state") == "divergent" and not dead):
        tables = table_list(last.get("mismatches") if isinstance(last, Mapping) else None)
        where = f" ({tables})" if tables else ""
        add(
            "divergent",
            "danger",
            f"{name} está com divergência: dados diferentes do servidor{where}. "
            "Use Forçar reconciliação.",
        )

    offset = card.get("clockOffsetMs")
    if isinstance(offset, int | float) and abs(offset) > settings.clock_alert_seconds * 1000:
        # clockOffsetMs = server clock - PDV clock: positive, the PDV's clock is behind.
        way = "atrasado" if offset > 0 else "adiantado"
        add(
            "clock",
            "warning",
            f"O relógio do PDV «{machine}» está {duration(abs(int(offset)))} {way} "
            "em relação ao servidor.",
        )
    return found


def pending_age_ms(card: Mapping[str, Any], now_ms: int) -> int | None:
    """How old the oldest pending sale is now: its age when the PDV reported, plus the time
    since (a silent PDV's sales keep waiting)."""
    age = card.get("oldestPendingAgeMs")
    if not isinstance(age, int | float):
        return None
    reported = ms_of(card.get("reportedAt"))
    since = max(0, now_ms - reported) if reported is not None else 0
    return int(age) + since
