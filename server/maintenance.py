"""Operations on the sync state: the counters and known machines of a shop (`GET /api/stats`,
`machines list`), the shops a database holds, and garbage collection of tombstones (per shop)
and idempotency records."""

from __future__ import annotations

from typing import TypedDict

import peewee as pw

from protocol import to_iso

from . import sql
from .context import ServiceContext
from .db import tuples


class MachineInfo(TypedDict):
    machineId: str
    firstSeen: str | None
    lastSeen: str | None
    cursor: int
    eventsPushed: int


class Stats(TypedDict):
    """One shop's (the API adds which: `tenantId`)."""

    cursor: int
    eventsProcessed: int
    conflicts: int
    rejected: int
    tombstoneHorizon: int
    machines: list[MachineInfo]


class ShopCollected(TypedDict):
    tombstones: int
    horizon: int


class Collected(TypedDict):
    tombstones: int  # tombstones purged, every shop
    events: int  # idempotency records purged
    horizon: int  # this shop's: its cursors below it now get resync_required
    shops: dict[str, ShopCollected]  # per shop that has a sequence


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
            for m in M.select().where(M.tenant_id == ctx.tenant).order_by(M.machine_id)
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


def tenants(ctx: ServiceContext) -> list[str]:
    """Every shop this database has seen: a commit, a machine or a key of it, sorted."""
    m = ctx.models
    found: set[str] = set()
    with ctx.connection():
        for model in (m.SyncState, m.Machine, m.ApiKey):
            query = model.select(model.tenant_id).distinct()
            found.update(t for (t,) in tuples(query))
    found.discard("")  # sync_state's row of the database itself (its identity)
    return sorted(found)


def collect_garbage(ctx: ServiceContext, *, keep_events_days: int = 30) -> Collected:
    """For every shop, purge the tombstones all of its known machines have pulled past (each
    shop in its own transaction, under its writer lock); then old idempotency records."""
    now = ctx.clock()
    shops: dict[str, ShopCollected] = {}
    with ctx.connection():
        S = ctx.models.SyncState
        query = S.select(S.tenant_id).where((S.key == "seq") & (S.tenant_id != "")).distinct()
        for (tenant,) in list(tuples(query)):
            shops[tenant] = _collect_shop(ctx.for_tenant(tenant))
        with ctx.db.atomic():
            cutoff = now - keep_events_days * 86_400_000
            events = ctx.models.Event.delete().where(ctx.models.Event.created_at < cutoff).execute()
        mine = shops.get(ctx.tenant)
        horizon = mine["horizon"] if mine else sql.states(ctx, "tombstone_horizon")[0]
    return {
        "tombstones": sum(s["tombstones"] for s in shops.values()),
        "events": events,
        "horizon": horizon,
        "shops": shops,
    }


def _collect_shop(ctx: ServiceContext) -> ShopCollected:
    with ctx.write_transaction():
        M = ctx.models.Machine
        low = M.select(pw.fn.MIN(M.cursor)).where(M.tenant_id == ctx.tenant).scalar()
        if low is None:
            low = 0
        purged = 0
        for model in ctx.models.data.values():
            tombstones = (
                (model.tenant_id == ctx.tenant)
                & (model.deleted == True)  # noqa: E712 - peewee expression
                & (model.seq <= low)
            )
            purged += model.delete().where(tombstones).execute()
        horizon = max(sql.states(ctx, "tombstone_horizon")[0], low if purged else 0)
        sql.set_state(ctx, "tombstone_horizon", horizon)
    return {"tombstones": purged, "horizon": horizon}
