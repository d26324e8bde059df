"""Operations on the sync state: the counters and known machines (`GET /api/stats`,
`machines list`), and garbage collection of tombstones and idempotency records."""

from __future__ import annotations

from typing import TypedDict

import peewee as pw

from protocol import to_iso

from . import sql
from .context import ServiceContext


class MachineInfo(TypedDict):
    machineId: str
    firstSeen: str | None
    lastSeen: str | None
    cursor: int
    eventsPushed: int


class Stats(TypedDict):
    cursor: int
    eventsProcessed: int
    conflicts: int
    rejected: int
    tombstoneHorizon: int
    machines: list[MachineInfo]


class Collected(TypedDict):
    tombstones: int  # tombstones purged
    events: int  # idempotency records purged
    horizon: int  # cursors below it now get resync_required


def stats(ctx: ServiceContext) -> Stats:
    M = ctx.models.Machine
    with ctx.connection():
        machines: list[MachineInfo] = [
            {
                "machineId": m.machine_id,
                "firstSeen": to_iso(m.first_seen),
                "lastSeen": to_iso(m.last_seen),
                "cursor": max(m.cursor, 0),  # -1: never pulled
                "eventsPushed": m.events_pushed,
            }
            for m in M.select().order_by(M.machine_id)
        ]
        head, applied, stale, rejected, horizon = sql.states(
            ctx, "seq", "events_applied", "conflicts_stale", "events_rejected", "tombstone_horizon"
        )
        return {
            "cursor": head,
            "eventsProcessed": applied,
            "conflicts": stale,
            "rejected": rejected,
            "tombstoneHorizon": horizon,
            "machines": machines,
        }


def collect_garbage(ctx: ServiceContext, *, keep_events_days: int = 30) -> Collected:
    """Purge tombstones every known machine has pulled past, and old idempotency records."""
    now = ctx.clock()
    with ctx.connection(), ctx.write_transaction():
        M = ctx.models.Machine
        low = M.select(pw.fn.MIN(M.cursor)).scalar()
        if low is None:
            low = 0
        purged = 0
        for model in ctx.models.data.values():
            tombstones = (model.deleted == True) & (model.seq <= low)  # noqa: E712 - peewee expression
            purged += model.delete().where(tombstones).execute()
        horizon = max(sql.states(ctx, "tombstone_horizon")[0], low if purged else 0)
        S = ctx.models.SyncState
        S.insert(key="tombstone_horizon", value=horizon).on_conflict(
            conflict_target=[S.key], preserve=[S.value]
        ).execute()
        cutoff = now - keep_events_days * 86_400_000
        events = ctx.models.Event.delete().where(ctx.models.Event.created_at < cutoff).execute()
    return {"tombstones": purged, "events": events, "horizon": horizon}


def tenants(ctx: ServiceContext) -> list[str]:
    """Every shop this database has seen, sorted."""
    return [ctx.tenant]
