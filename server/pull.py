"""Reading changes by cursor: the cursor checks (restore gap, ahead of head, tombstone
horizon), pages of one table or of all of them in sequence order, the bookkeeping of each
machine's pulled cursor, and the seed's plain reads of live rows. All of one shop (the
context's tenant): its rows, its sequence, its machines.
"""

from __future__ import annotations

from typing import Any, TypedDict

from protocol import TABLES, ProtocolError, to_wire
from protocol.messages import table_named

from . import sql
from .context import LiveChange, ServiceContext
from .db import DataModel, dicts

DEFAULT_PAGE = 500
MAX_PAGE = 5000
# A pull that repeats the cursor this machine recorded less than this long ago writes nothing.
PULL_TOUCH_MS = 5000


class TablePage(TypedDict):
    """`GET /api/sync/{table}`: the table's changes after `since`, oldest first."""

    synced: list[dict[str, Any]]  # wire records; tombstones are {id, _deleted, updatedAt}
    cursor: int  # where the next page starts (the head when `hasMore` is false)
    hasMore: bool


class ChangesPage(TypedDict):
    """`GET /api/sync/changes`: every table's changes after `since`, in sequence order."""

    changes: list[LiveChange]
    cursor: int
    hasMore: bool


def page_size(limit: int) -> int:
    if limit < 1:
        raise ProtocolError("invalid_limit", "limit: must be >= 1", status=400)
    return min(limit, MAX_PAGE)


def pull(
    ctx: ServiceContext, table_name: str, since: int, limit: int, machine_id: str | None
) -> TablePage:
    """Changes of one table after `since`, oldest first."""
    table = table_named(table_name)
    limit = page_size(limit)
    with ctx.connection():
        head = start_read(ctx, since, machine_id)
        model = ctx.models.data[table.name]
        limit = _first_page_past_horizon(ctx, since, machine_id, head, limit, [model])
        found = list(
            dicts(
                model.select()
                .where((model.tenant_id == ctx.tenant) & (model.seq > since) & (model.seq <= head))
                .order_by(model.seq)
                .limit(limit + 1)
            )
        )
        has_more = len(found) > limit
        found = found[:limit]
        cursor = found[-1]["seq"] if has_more else head
    return {
        "synced": [to_wire(table, sql.from_db(r)) for r in found],
        "cursor": cursor,
        "hasMore": has_more,
    }


def changes(ctx: ServiceContext, since: int, limit: int, machine_id: str | None) -> ChangesPage:
    """Changes of every table after `since`, in sequence order, for one-cursor clients.

    The tables are read one query each, so a commit may land between two queries: every
    query stops at the head read first (all of it committed, see server/push.py), or a
    later change seen in one table would move the cursor past an earlier change of the same
    commit not seen in another table.
    """
    limit = page_size(limit)
    with ctx.connection():
        head = start_read(ctx, since, machine_id)
        models = list(ctx.models.data.values())
        limit = _first_page_past_horizon(ctx, since, machine_id, head, limit, models)
        merged: list[tuple[int, str, dict[str, Any]]] = []
        for name, model in ctx.models.data.items():
            q = (
                model.select()
                .where((model.tenant_id == ctx.tenant) & (model.seq > since) & (model.seq <= head))
                .order_by(model.seq)
                .limit(limit + 1)
            )
            merged += [(r["seq"], name, r) for r in dicts(q)]
        merged.sort(key=lambda t: t[0])
        has_more = len(merged) > limit
        merged = merged[:limit]
        cursor = merged[-1][0] if has_more else head
    return {
        "changes": [
            {"table": name, "seq": seq, "record": to_wire(TABLES[name], sql.from_db(r))}
            for seq, name, r in merged
        ],
        "cursor": cursor,
        "hasMore": has_more,
    }


def _first_page_past_horizon(
    ctx: ServiceContext,
    since: int,
    machine_id: str | None,
    head: int,
    limit: int,
    models: list[type[DataModel]],
) -> int:
    """The page size of a full pull (since 0) by a client the server does not track.

    After tombstones are purged, a cursor below the horizon is refused (it may have
    missed deletes). A known machine paging through a full pull is recognised by its
    recorded cursor; an anonymous client is not, so its first page reaches past the
    horizon instead: every cursor it is handed is then one the server accepts."""
    if since != 0 or machine_id:
        return limit
    horizon = min(sql.states(ctx, "tombstone_horizon")[0], head)
    if horizon <= 0:
        return limit
    below = sum(
        m.select().where((m.tenant_id == ctx.tenant) & (m.seq <= horizon)).count() for m in models
    )
    return max(limit, below)


def start_read(ctx: ServiceContext, since: int, machine_id: str | None) -> int:
    """Check the cursor, then record it as the machine's (before reading, so a garbage
    collection that does not see this machine yet ran before the rows are read)."""
    head = check_cursor(ctx, since, machine_id)
    if machine_id:
        _touch_pull(ctx, machine_id, since)
    return head


def _touch_pull(ctx: ServiceContext, machine_id: str, cursor: int) -> None:
    """Record a pull's cursor, except when this process recorded the same cursor for this
    machine less than PULL_TOUCH_MS ago: a pull is a read, and each record is a commit
    (on SQLite an fsync, and the one write lock). Only `last_seen` can lag, by at most
    that long; the cursor that garbage collection relies on is already the recorded one.
    On PostgreSQL other server processes record cursors too: always written there.
    If the row was removed meanwhile (`machines forget`), the machine's next pull below
    the tombstone horizon is told to resync in full: never a silent gap.
    """
    now = ctx.clock()
    if not ctx.postgres:
        with ctx.cache_lock:
            last = ctx.pulls_seen.get((ctx.tenant, machine_id))
            if last is not None and last[1] == cursor and 0 <= now - last[0] < PULL_TOUCH_MS:
                return
            ctx.pulls_seen[(ctx.tenant, machine_id)] = (now, cursor)
    sql.touch_machine(ctx, machine_id, now, cursor=cursor)


def check_cursor(ctx: ServiceContext, since: int, machine_id: str | None = None) -> int:
    """Refuse (409 resync_required) a cursor this database cannot continue from; the head
    otherwise. Runs on the caller's connection."""
    head, horizon, gap_low, gap_high = sql.states(
        ctx, "seq", "tombstone_horizon", "restore_gap_low", "restore_gap_high"
    )
    check_cursor_with(ctx, since, machine_id, head, horizon, (gap_low, gap_high))
    return head


def check_cursor_with(
    ctx: ServiceContext,
    since: int,
    machine_id: str | None,
    head: int,
    horizon: int,
    gap: tuple[int, int],
) -> None:
    """`check_cursor` against sync_state values already read (a push reads them under its
    writer lock: server/push.py)."""
    gap_low, gap_high = gap
    if since < 0:
        raise ProtocolError("invalid_cursor", "since: must be >= 0", status=400)
    if gap_low < since < gap_high:
        # No change was ever numbered in this gap (server/backup.py leaves it after a
        # restore): such a cursor was handed out before the restore, by the database as
        # it was then, and may have seen changes the restore undid.
        raise _resync("cursor predates a restore of this database: resync in full", head)
    if since > head:
        raise _resync(
            "cursor is ahead of this server (was the database restored?): resync in full", head
        )
    if 0 < since < horizon and not _resuming_full_pull(ctx, machine_id, since):
        raise _resync("cursor is older than the purged tombstones: resync in full", head)


def _resync(message: str, head: int) -> ProtocolError:
    return ProtocolError("resync_required", message, status=409, resyncRequired=True, cursor=head)


def _resuming_full_pull(ctx: ServiceContext, machine_id: str | None, since: int) -> bool:
    """True when `since` below the tombstone horizon is a page of a full pull this machine
    began at 0, not an old cursor.

    A known machine's recorded cursor is the `since` of its last pull, and garbage
    collection never purges past the lowest recorded cursor. A known machine's cursor is
    below the horizon only if it pulled from 0 after that purge; while it pages forward
    from there, no tombstone above its cursor can be purged, so it misses nothing. An old
    cursor (a restored local database, a forgotten machine, one that never pulled: -1)
    is not at or above the recorded one and gets resync_required.
    """
    if not machine_id:
        return False
    M = ctx.models.Machine
    recorded = (
        M.select(M.cursor)
        .where((M.tenant_id == ctx.tenant) & (M.machine_id == machine_id))
        .scalar()
    )
    return recorded is not None and 0 <= recorded <= since


# -- plain reads (the seed's GET /api/products, /api/orders, /api/supplies) -------------------


def list_live(
    ctx: ServiceContext,
    table_name: str,
    *,
    created_from: int | None = None,
    created_to: int | None = None,
) -> list[dict[str, Any]]:
    table = table_named(table_name)
    model = ctx.models.data[table.name]
    q = model.select().where((model.tenant_id == ctx.tenant) & (model.deleted == False))  # noqa: E712 - peewee expression
    if created_from is not None:
        q = q.where(model.createdAt >= created_from)
    if created_to is not None:
        q = q.where(model.createdAt <= created_to)
    q = q.order_by(model.createdAt.desc() if table.name == "orders" else model.id)
    with ctx.connection():
        return [to_wire(table, sql.from_db(r)) for r in dicts(q)]


def get_live(ctx: ServiceContext, table_name: str, row_id: str) -> dict[str, Any] | None:
    table = table_named(table_name)
    model = ctx.models.data[table.name]
    with ctx.connection():
        row: dict[str, Any] | None = (
            model.select()
            .where((model.tenant_id == ctx.tenant) & (model.id == row_id))
            .dicts()
            .first()
        )
    if row is None or row["deleted"]:
        return None
    return to_wire(table, sql.from_db(row))
