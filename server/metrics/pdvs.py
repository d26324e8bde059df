"""The gauges read at scrape time: each PDV's last report (pdv_reports, so every server
process tells the same), each shop's head and live sockets, and whether the database answers.

Label cardinality is bounded: the `max_pdvs` machines seen most recently get series of
their own; the others are folded, per shop, into machine="_other" (counts summed, ages, lags
and clock offsets at their worst), so a flood of machine ids cannot flood Prometheus.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from protocol.tenancy import DEFAULT_TENANT

from ..hub import LiveHub
from ..pdvs import OFFLINE_AFTER_MS
from ..presence import socket_gone
from ..service import SyncService

log = logging.getLogger(__name__)

OTHER_MACHINE = "_other"

# Each PDV that reported; last seen: its report or its last request, whichever is later.
_REPORTS_SQL = (
    "SELECT r.tenant_id, r.machine_id, r.received_at, m.last_seen, r.pending, "
    "r.oldest_pending_age_ms, r.dead_letters, r.clock_offset_ms, r.cursor, "
    "s.opened_at, s.closed_at "
    "FROM pdv_reports r LEFT JOIN sync_machines m "
    "ON m.tenant_id = r.tenant_id AND m.machine_id = r.machine_id "
    "LEFT JOIN pdv_sockets s ON s.tenant_id = r.tenant_id AND s.machine_id = r.machine_id"
)
_HEADS_SQL = "SELECT tenant_id, value FROM sync_state WHERE key = 'seq' AND tenant_id <> ''"


@dataclass(frozen=True)
class Pdv:
    """One PDV's figures now (or, under machine="_other", several PDVs' together)."""

    tenant: str
    machine: str
    last_seen: int  # epoch ms
    up: int  # 1 or 0; under "_other", how many are up
    pending: int
    oldest_pending_s: float  # 0 with nothing pending
    dead_letters: int
    clock_offset_s: float
    lag: int  # the shop's head minus the PDV's cursor


def read_pdv(row: Sequence[Any], now: int, heads: dict[str, int]) -> Pdv:
    """A row of `_REPORTS_SQL` as of `now`: a report's oldest pending age was its age when it
    was received, so the time since is added (a silent PDV's wait keeps growing)."""
    tenant, machine, received, machine_seen, pending, oldest, dead, offset, cursor = row[:9]
    opened, closed = row[9:11] if len(row) > 9 else (None, None)
    last_seen = max(int(received), int(machine_seen or 0))
    socket = {"opened_at": opened, "closed_at": closed} if opened is not None else None
    pending = int(pending or 0)
    waited = int(oldest) + max(0, now - int(received)) if pending and oldest is not None else 0
    return Pdv(
        tenant=tenant,
        machine=machine,
        last_seen=last_seen,
        # Down by the panel's rules: silent for longer than it allows (a PDV reports every
        # 30 s), or its live socket closed and nothing heard since (server/presence.py).
        up=int(now - last_seen <= OFFLINE_AFTER_MS and not socket_gone(socket, last_seen, now)),
        pending=pending,
        oldest_pending_s=waited / 1000,
        dead_letters=int(dead or 0),
        clock_offset_s=int(offset or 0) / 1000,
        lag=max(0, heads.get(tenant, 0) - int(cursor or 0)),
    )


def bounded(pdvs: Iterable[Pdv], max_pdvs: int) -> list[Pdv]:
    """The `max_pdvs` PDVs seen most recently, then one "_other" per shop for the rest."""
    ordered = sorted(pdvs, key=lambda p: (-p.last_seen, p.tenant, p.machine))
    kept, others = ordered[:max_pdvs], ordered[max_pdvs:]
    folded: dict[str, Pdv] = {}
    for p in others:
        seen = folded.get(p.tenant)
        folded[p.tenant] = replace(p, machine=OTHER_MACHINE) if seen is None else _fold(seen, p)
    return kept + [folded[t] for t in sorted(folded)]


def _fold(a: Pdv, b: Pdv) -> Pdv:
    return replace(
        a,
        last_seen=max(a.last_seen, b.last_seen),
        up=a.up + b.up,
        pending=a.pending + b.pending,
        oldest_pending_s=max(a.oldest_pending_s, b.oldest_pending_s),
        dead_letters=a.dead_letters + b.dead_letters,
        clock_offset_s=max(a.clock_offset_s, b.clock_offset_s, key=abs),
        lag=max(a.lag, b.lag),
    )


# name, help, the figure: the per-PDV gauges.
_PDV_GAUGES = (
    (
        "pdvsync_pdv_up",
        "1 when the PDV reported or made a request in the last 90 s "
        '(under machine="_other": how many of those PDVs).',
        "up",
    ),
    ("pdvsync_pdv_pending", "Sales and other events waiting in the PDV's outbox.", "pending"),
    (
        "pdvsync_pdv_oldest_pending_seconds",
        "How long the oldest waiting event has waited (0 with none).",
        "oldest_pending_s",
    ),
    (
        "pdvsync_pdv_dead_letters",
        "Events the server refused, kept aside on the PDV.",
        "dead_letters",
    ),
    (
        "pdvsync_pdv_clock_offset_seconds",
        "The server's clock minus the PDV's, as the PDV measures it (positive: the PDV is behind).",
        "clock_offset_s",
    ),
    (
        "pdvsync_pdv_lag",
        "Changes of the shop the PDV has not pulled yet (head minus its cursor).",
        "lag",
    ),
)


class PdvCollector:
    """A prometheus_client collector; `collect()` runs in the thread rendering /metrics."""

    def __init__(self, service: SyncService, hub: LiveHub, max_pdvs: int) -> None:
        self.service = service
        self.hub = hub
        self.max_pdvs = max_pdvs
        # The shops of the last good read: their live sockets are still told while the
        # database does not answer.
        self._tenants: set[str] = {DEFAULT_TENANT}

    def describe(self) -> Iterable[Metric]:
        return []  # everything is read at scrape time; no name to reserve

    def collect(self) -> Iterator[Metric]:
        database = GaugeMetricFamily(
            "pdvsync_database_up", "1 when this process's query to its database succeeded."
        )
        try:
            heads, pdvs = self._read()
        except Exception as exc:  # the database is down: the rest of /metrics still answers
            log.warning("metrics: cannot read the database (%s)", type(exc).__name__)
            database.add_metric([], 0)
            yield database
            yield self._sockets()
            return
        database.add_metric([], 1)
        yield database
        self._tenants = {DEFAULT_TENANT, *heads, *(p.tenant for p in pdvs)}
        yield self._sockets()
        head = GaugeMetricFamily(
            "pdvsync_head",
            "The shop's sequence head (its last change's number).",
            labels=["tenant"],
        )
        for tenant, value in sorted(heads.items()):
            head.add_metric([tenant], value)
        yield head
        shown = bounded(pdvs, self.max_pdvs)
        for name, text, figure in _PDV_GAUGES:
            family = GaugeMetricFamily(name, text, labels=["tenant", "machine"])
            for p in shown:
                family.add_metric([p.tenant, p.machine], getattr(p, figure))
            yield family

    def _sockets(self) -> Metric:
        family = GaugeMetricFamily(
            "pdvsync_live_sockets",
            "Live sockets (PDVs listening for changes) open on this server process, per shop.",
            labels=["tenant"],
        )
        for tenant in sorted(self._tenants):
            # count() reads one entry of the hub's dict: safe from this thread.
            family.add_metric([tenant], self.hub.count(tenant))
        return family

    def _read(self) -> tuple[dict[str, int], list[Pdv]]:
        now = self.service.clock()
        db = self.service.db
        with self.service.connection():
            heads = {t: int(v or 0) for t, v in db.execute_sql(_HEADS_SQL).fetchall()}
            raw = db.execute_sql(_REPORTS_SQL).fetchall()
        return heads, [read_pdv(r, now, heads) for r in raw]
