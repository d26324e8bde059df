"""A shop's panel snapshot: cards, alerts, health, chart and keys, as the page shows them.

Built from the sync service (the PDV reports, the events per minute, the health), the live
hub (sockets) and the key store; blocking (database reads): call it from a worker thread.
The page renders it once; the live stream (`live.py`) sends it again whenever it changes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

import peewee as pw

from ..db import tuples
from .alerts import Alert, alerts
from .views import (
    CHART_WINDOW_MS,
    CardView,
    ChartView,
    HealthView,
    KeyView,
    card_view,
    chart_view,
    health_view,
    key_views,
)

if TYPE_CHECKING:  # server.app imports the panel: the type only
    from ..app import ServerState

log = logging.getLogger(__name__)


class Snapshot(TypedDict):
    tenant: str
    serverNow: int  # epoch ms when it was built
    databaseOk: bool
    cards: list[CardView]
    alerts: list[Alert]
    health: HealthView
    chart: ChartView
    keys: list[KeyView]


def build_snapshot(state: ServerState, tenant: str, now_ms: int) -> Snapshot:
    """Everything the panel shows of shop `tenant` at `now_ms`. A database that does not
    answer gives an empty snapshot saying so (the page stays up and says it)."""
    settings = state.settings.panel
    service = state.service.scoped(tenant)
    ok = True
    cards: Sequence[Mapping[str, Any]] = ()
    minutes: Sequence[Mapping[str, Any]] = ()
    health: Any = None
    keys: list[dict[str, Any]] = []
    try:
        cards = service.pdv_snapshot(now_ms)
        minutes = service.events_per_minute(now_ms - CHART_WINDOW_MS, now_ms)
        health = service.health(now_ms)
        keys = state.keys.list()
    except (pw.DatabaseError, pw.InterfaceError) as exc:  # down: say so, keep the page
        log.warning("panel: cannot read shop %s (%s)", tenant, type(exc).__name__)
        ok = False
    found = alerts(cards, now_ms, settings)
    alerting = {a["machineId"] for a in found}
    chart = chart_view(minutes, now_ms)
    return {
        "tenant": tenant,
        "serverNow": now_ms,
        "databaseOk": ok,
        "cards": [card_view(c, now_ms, settings, alerting) for c in cards],
        "alerts": found,
        "health": health_view(
            health if ok else None,
            live_pdvs=state.hub.count(tenant),
            started_at_ms=state.started_at,
            now_ms=now_ms,
        ),
        "chart": chart,
        "keys": key_views(keys, tenant),
    }


def shops_of(state: ServerState) -> list[str]:
    """Every shop the server knows, for an all-shops admin's selector: those with data, a
    machine or a key (`SyncService.tenants`), a reporting PDV, or a manager of their own."""
    m = state.models
    shops: set[str] = set()
    try:
        shops.update(state.service.tenants())
        with m.db.connection_context():
            for model in (m.PdvReport, m.Admin):
                query = model.select(model.tenant_id).where(model.tenant_id.is_null(False))
                shops.update(t for (t,) in tuples(query.distinct()))
    except (pw.DatabaseError, pw.InterfaceError) as exc:
        log.warning("panel: cannot list the shops (%s)", type(exc).__name__)
    return sorted(shops)
