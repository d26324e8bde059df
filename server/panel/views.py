"""What the panel shows, as text: a PDV card, the server's health, the chart's series, the
keys. Pure functions of the service's data and the time, in the manager's Portuguese.

The page renders these views with Jinja2 and the live stream sends the same views as JSON;
the page's script only puts their texts in place (textContent), so the words are decided
here, once, and tested without a browser.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TypedDict

from protocol.reports import STATE_LABELS

from .alerts import pending_age_ms
from .rendering import static_url
from .settings import PanelSettings
from .wording import (
    RECONCILE_LABELS,
    STRATEGY_LABELS,
    clock_text,
    duration,
    error_text,
    ms_of,
    plural,
    relative_time,
    table_list,
)

CHART_WINDOW_MS = 24 * 3600 * 1000
# The card's facts, in the order the card shows them (the template and the script use
# these names: `data-f="<name>"`).
CARD_FIELDS = (
    "machineId",
    "stateLabel",
    "hostname",
    "seen",
    "pending",
    "refused",
    "reconcile",
    "mismatches",
    "clock",
    "version",
    "lag",
    "live",
    "error",
    "command",
    "commandResult",
)


class CardView(TypedDict):
    id: str
    state: str
    icon: str
    alert: bool
    fields: dict[str, str]
    warn: list[str]  # fields shown as a problem
    commandFailed: bool


class HealthView(TypedDict):
    databaseOk: bool
    fields: dict[str, str]


class KeyView(TypedDict):
    id: int
    name: str
    machineId: str
    created: str
    revoked: str
    active: bool


class ChartView(TypedDict):
    start: int  # epoch ms of the first minute shown
    end: int  # epoch ms of the minute after the last
    # [minute (epoch ms), applied, conflicts (stale + rejected)], minutes with events only
    points: list[list[int]]


def state_icon(state: str) -> str:
    return static_url(f"icons/{state if state in STATE_LABELS else 'waiting'}.svg")


def card_view(
    card: Mapping[str, Any],
    now_ms: int,
    settings: PanelSettings,
    alerting: Iterable[str] = (),
) -> CardView:
    """One PDV's card. `alerting`: the machine ids with an alert (the card is marked)."""
    machine = str(card.get("machineId") or "")
    state = str(card.get("state") or "waiting")
    if state not in STATE_LABELS:
        state = "waiting"
    warn: list[str] = []
    fields = dict.fromkeys(CARD_FIELDS, "")
    fields["machineId"] = machine
    fields["stateLabel"] = STATE_LABELS[state]
    fields["hostname"] = str(card.get("hostname") or "")
    fields["seen"] = relative_time(ms_of(card.get("lastSeenAt")), now_ms)
    if state == "offline":
        warn.append("seen")

    pending = int(card.get("pending") or 0)
    if pending:
        age = pending_age_ms(card, now_ms)
        oldest = f" — a mais antiga há {duration(age)}" if age is not None else ""
        fields["pending"] = f"{pending}{oldest}"
        if age is not None and age > settings.pending_alert_minutes * 60_000:
            warn.append("pending")
    else:
        fields["pending"] = "nenhuma"
    dead = int(card.get("deadLetters") or 0)
    fields["refused"] = str(dead) if dead else "nenhum"
    if dead:
        warn.append("refused")

    fields["reconcile"], fields["mismatches"] = _reconcile_texts(card.get("lastReconcile"), now_ms)
    if fields["mismatches"]:
        warn.append("mismatches")

    offset = card.get("clockOffsetMs")
    fields["clock"] = clock_text(offset)
    if isinstance(offset, int | float) and abs(offset) > settings.clock_alert_seconds * 1000:
        warn.append("clock")
    fields["version"] = str(card.get("version") or "")
    lag = card.get("lag")
    if isinstance(lag, int) and not isinstance(lag, bool):
        fields["lag"] = "em dia" if lag <= 0 else plural(lag, "alteração atrás", "alterações atrás")
    live = card.get("live")
    if live is not None and state != "offline":
        fields["live"] = "conectado" if live else "sem conexão ao vivo (consulta periódica)"
    if card.get("lastError") or card.get("lastErrorCode"):
        fields["error"] = error_text(card.get("lastErrorCode"), card.get("lastError"))
        warn.append("error")

    fields["command"] = _pending_command_text(card.get("pendingCommand"), now_ms)
    fields["commandResult"], failed = _last_command_text(card.get("lastCommand"), now_ms)
    return {
        "id": machine,
        "state": state,
        "icon": state_icon(state),
        "alert": machine in set(alerting),
        "fields": fields,
        "warn": warn,
        "commandFailed": failed,
    }


def _reconcile_texts(last: Any, now_ms: int) -> tuple[str, str]:
    if not isinstance(last, Mapping):
        return "nunca", ""
    when = relative_time(ms_of(last.get("at")), now_ms)
    status = str(last.get("status") or "")
    parts = [when, RECONCILE_LABELS.get(status, status)]
    strategy = last.get("strategy")
    if strategy:
        parts.append(f"estratégia: {STRATEGY_LABELS.get(str(strategy), str(strategy))}")
    mismatches = last.get("mismatches")
    tables = table_list(mismatches if isinstance(mismatches, list) else None)
    return " · ".join(p for p in parts if p), (f"Divergem: {tables}" if tables else "")


def _pending_command_text(command: Any, now_ms: int) -> str:
    if not isinstance(command, Mapping):
        return ""
    strategy = STRATEGY_LABELS.get(str(command.get("strategy")), str(command.get("strategy")))
    asked = relative_time(ms_of(command.get("createdAt")), now_ms)
    delivered = ms_of(command.get("deliveredAt"))
    where = (
        f"entregue ao PDV {relative_time(delivered, now_ms)}, aguardando o resultado"
        if delivered is not None
        else "aguardando o PDV (será entregue quando ele se conectar)"
    )
    return f"Reconciliação solicitada {asked} ({strategy}): {where}."


def _last_command_text(command: Any, now_ms: int) -> tuple[str, bool]:
    """The last finished command's result, and whether it failed."""
    if not isinstance(command, Mapping):
        return "", False
    result = command.get("result")
    result = result if isinstance(result, Mapping) else {}
    status = str(result.get("status") or "")
    when = relative_time(ms_of(command.get("finishedAt")), now_ms)
    words = RECONCILE_LABELS.get(status, status or "sem resultado")
    text = f"Reconciliação solicitada pelo painel concluída {when}: {words}"
    detail = result.get("detail")
    if detail:
        text += f" ({detail})"
    return text + ".", status in ("error", "divergent", "retry", "failed", "rejected")


def health_view(
    health: Mapping[str, Any] | None,
    *,
    live_pdvs: int,
    started_at_ms: int,
    now_ms: int,
) -> HealthView:
    """The server's health for the manager. `health` None: the database did not answer."""
    ok = health is not None and health.get("database") in ("ok", True)
    h: Mapping[str, Any] = health or {}
    events_15 = h.get("eventsLast15Min")
    fields = {
        "database": "ok" if ok else "erro: sem resposta",
        "head": _count(h.get("head")),
        "eventsLastMinute": _count(h.get("eventsLastMinute")),
        "conflictsLastMinute": _count(h.get("conflictsLastMinute")),
        "eventsPerMinute15": (
            f"{events_15 / 15:.1f}".replace(".", ",") if isinstance(events_15, int) else "—"
        ),
        "conflicts15": _count(h.get("conflictsLast15Min")),
        "livePdvs": str(live_pdvs),
        # In minutes: a text that changed every second would resend the snapshot each time.
        "uptime": _uptime(now_ms - started_at_ms),
    }
    return {"databaseOk": ok, "fields": fields}


def _uptime(ms: int) -> str:
    return "menos de 1 min" if ms < 60_000 else duration(ms)


def _count(value: Any) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else "—"


def chart_view(minutes: Iterable[Mapping[str, Any]], now_ms: int) -> ChartView:
    """The last 24 h of events per minute; minutes without events are left out (zeros)."""
    end = now_ms - now_ms % 60_000 + 60_000
    start = end - CHART_WINDOW_MS
    points = [
        [
            int(m["minute"]),
            int(m.get("applied") or 0),
            int(m.get("stale") or 0) + int(m.get("rejected") or 0),
        ]
        for m in minutes
        if start <= int(m["minute"]) < end
    ]
    points = sorted(p for p in points if p[1] or p[2])  # the quiet minutes are the zeros
    return {"start": start, "end": end, "points": points}


def date_text(ms: int | None) -> str:
    """'04/12/2026 15:10' in the server's local time (the shop's)."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000).strftime("%d/%m/%Y %H:%M")


def key_views(keys: Iterable[Mapping[str, Any]], tenant: str) -> list[KeyView]:
    """The shop's machine keys (server/auth.py's list), newest first; never any character of
    a key: a key is named by its number."""
    rows: list[KeyView] = [
        {
            "id": int(k["id"]),
            "name": f"pdv_… nº {k['id']}",
            "machineId": str(k.get("machineId") or ""),
            "created": date_text(ms_of(k.get("createdAt"))),
            "revoked": date_text(ms_of(k.get("revokedAt"))),
            "active": bool(k.get("active")),
        }
        for k in keys
        if k.get("tenantId") == tenant
    ]
    return sorted(rows, key=lambda k: (not k["active"], -k["id"]))
