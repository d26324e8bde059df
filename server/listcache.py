"""The seed's plain reads of every live row (`GET /api/products`, ..., and `GET /api/sync/{table}`
without `lastSync`) served from pre-serialised rows: per (shop, table), each live row's wire
JSON kept in this process and brought up to date by the shop's sequence numbers.

Building 10,000 wire records and their JSON on every read cost ~200 ms of CPU. Here a read
asks the database only for the rows whose sequence number is above the highest one this
process has seen of the table: every committed change of a row gives it a new, higher one
(a delete leaves a tombstone with one), on any server process, so the rows themselves say
what changed, with no notice to miss. A warm read is two indexed queries and a join of
bytes. Each fragment is `records.dumps(to_wire(...))` of the row, as the uncached path
(`pull.list_live`, `seedsync.fetch_since`) encodes it inside the whole answer, so the bytes
are the same (tests/server/test_listcache.py compares them).

Two things change rows without a higher sequence number, and each moves a `sync_state` mark
the cache is keyed by: a restore (`restore_gap_high`, server/restored.py) and the garbage
collection of tombstones (`tombstone_horizon`, server/maintenance.py), which may purge a
tombstone this cache has not read yet. When a mark moved, the table is read again whole.

Why sequence numbers can be trusted as "nothing older is missing": a shop's changes are
numbered and committed in order, one writer at a time (server/push.py), so every committed
row of the table with a number at or below the highest one a query returns was visible to
it. The list order is the database's own (`ORDER BY id`, or `createdAt DESC` for orders:
its collation and its NULLs). A row joining a list by id takes its place by a binary search
where the database compares ids as bytes (SQLite; PostgreSQL with the C collation: then
byte order is Python's order of the texts); otherwise, and when an order joins or its
`createdAt` changes, the order is asked again. A removed row just leaves it.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field
from typing import Any

from protocol import dumps, to_wire
from protocol.listing import Listing, filtered
from protocol.messages import table_named

from . import sql
from .context import ServiceContext
from .db import DataModel, dicts

# The marks a cached table is only valid under (see the module docstring).
MARKS = ("restore_gap_high", "tombstone_horizon")
# A delta and the list order read in two queries may straddle a commit: read both again at
# most this many times before reading the table whole.
_ORDER_TRIES = 3


@dataclass(frozen=True)
class _Row:
    seq: int
    json: bytes  # the wire record's JSON
    created_at: int | None  # orders: the range filter of /api/orders
    order_id: str | None  # order_items: the filter of /api/order_items?order_id=


@dataclass
class _Entry:
    """One shop's table: its live rows, the list order, and what it was read under."""

    marks: tuple[int, ...]
    version: int  # the highest sequence number of the table seen (rows and tombstones)
    rows: dict[str, _Row]
    order: list[str]  # ids in the list's order
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Whether the list is by id, compared by the database as bytes (see the module).
    python_order: bool = False
    joined: bytes | None = None  # the whole list's JSON items, comma-separated
    by_seq: bytes | None = None  # the same in sequence order


def live_listing(
    ctx: ServiceContext,
    table_name: str,
    *,
    created_from: int | None = None,
    created_to: int | None = None,
    order_id: str | None = None,
) -> Listing:
    """The shop's live rows in the list order of `pull.list_live` (orders newest first, the
    others by id), orders within [created_from, created_to], items of `order_id` only."""
    entry = _fresh(ctx, table_name)
    with entry.lock:
        if created_from is None and created_to is None and order_id is None:
            if entry.joined is None:
                entry.joined = b",".join(entry.rows[i].json for i in entry.order)
            return Listing(entry.joined, len(entry.order))
        rows = [entry.rows[i] for i in entry.order]
    return filtered(rows, order_id=order_id, created_from=created_from, created_to=created_to)


def live_by_seq(ctx: ServiceContext, table_name: str) -> Listing:
    """The shop's live rows in sequence order, as `seedsync.fetch_since(..., None)` lists them."""
    entry = _fresh(ctx, table_name)
    with entry.lock:
        if entry.by_seq is None:
            rows = sorted(entry.rows.values(), key=lambda r: r.seq)
            entry.by_seq = b",".join(r.json for r in rows)
        return Listing(entry.by_seq, len(entry.rows))


def _fresh(ctx: ServiceContext, table_name: str) -> _Entry:
    """The shop's cached table, brought up to date with the database (under its lock)."""
    table = table_named(table_name)
    key = (ctx.tenant, table.name)
    with ctx.cache_lock:
        entry = ctx.list_cache.get(key)
        if entry is None:
            entry = ctx.list_cache[key] = _Entry((), -1, {}, [])
    with entry.lock, ctx.connection():
        if entry.version >= 0:
            # The delta first, then the marks: a purge or restore that the delta may have
            # missed moved a mark the check below sees.
            reorder = _apply_delta(ctx, table.name, entry)
            marks = tuple(sql.states(ctx, *MARKS))
            if marks == entry.marks:
                if reorder and not _reorder(ctx, table.name, entry):
                    _rebuild(ctx, table.name, entry)
                return entry
        _rebuild(ctx, table.name, entry)
    return entry


def _rebuild(ctx: ServiceContext, table_name: str, entry: _Entry) -> None:
    """Read the shop's live rows whole, in list order: one query, one snapshot."""
    marks = tuple(sql.states(ctx, *MARKS))  # before the rows: a later move is seen next time
    model = ctx.models.data[table_name]
    rows: dict[str, _Row] = {}
    order: list[str] = []
    version = 0
    for r in dicts(_live(ctx, model).order_by(*_list_order(model, table_name))):
        rows[r["id"]] = _row(table_name, r)
        order.append(r["id"])
        version = max(version, r["seq"])
    entry.marks, entry.version, entry.rows, entry.order = marks, version, rows, order
    entry.python_order = table_name != "orders" and _ids_as_bytes(ctx)
    entry.joined = entry.by_seq = None


def _apply_delta(ctx: ServiceContext, table_name: str, entry: _Entry) -> bool:
    """Apply the rows changed since `entry.version`. True when the list order must be asked
    again (a row joined a list the database orders, or an order's `createdAt` changed)."""
    model = ctx.models.data[table_name]
    found = dicts(
        model.select()
        .where((model.tenant_id == ctx.tenant) & (model.seq > entry.version))
        .order_by(model.seq)
    )
    reorder = False
    changed = False
    for r in found:
        changed = True
        entry.version = max(entry.version, r["seq"])
        old = entry.rows.get(r["id"])
        if r["deleted"]:
            if old is not None:
                del entry.rows[r["id"]]
            continue
        new = entry.rows[r["id"]] = _row(table_name, r)
        if old is None and entry.python_order:
            bisect.insort(entry.order, r["id"])
        elif old is None or (table_name == "orders" and old.created_at != new.created_at):
            reorder = True
    if changed:
        entry.joined = entry.by_seq = None
        if not reorder:  # rows left, none joined: the order stays, without them
            entry.order = [i for i in entry.order if i in entry.rows]
    return reorder


def _reorder(ctx: ServiceContext, table_name: str, entry: _Entry) -> bool:
    """The list order from the database. It must list exactly the cached rows at the
    versions cached: a commit between the delta and this query means one more delta."""
    model = ctx.models.data[table_name]
    for _ in range(_ORDER_TRIES):
        q = _live(ctx, model, model.id, model.seq).order_by(*_list_order(model, table_name))
        # Raw tuples: peewee's own row processing was most of a reorder's time.
        listed = ctx.db.execute_sql(*q.sql()).fetchall()
        rows = entry.rows
        if len(listed) == len(rows) and all(
            (row := rows.get(i)) is not None and row.seq == seq for i, seq in listed
        ):
            entry.order = [i for i, _ in listed]
            return True
        _apply_delta(ctx, table_name, entry)
    return False


def _ids_as_bytes(ctx: ServiceContext) -> bool:
    """Whether `ORDER BY id` compares bytes: SQLite's BINARY collation, PostgreSQL's C."""
    if not ctx.postgres:
        return True
    collation = ctx.db.execute_sql(
        "SELECT datcollate FROM pg_database WHERE datname = current_database()"
    ).fetchone()[0]
    return collation in ("C", "POSIX")


def _live(ctx: ServiceContext, model: type[DataModel], *columns: Any) -> Any:
    return model.select(*columns).where(
        (model.tenant_id == ctx.tenant) & (model.deleted == False)  # noqa: E712 - peewee expression
    )


def _list_order(model: type[DataModel], table_name: str) -> list[Any]:
    """`pull.list_live`'s order (the same expression, so the same collation and NULLs)."""
    return [model.createdAt.desc() if table_name == "orders" else model.id]


def _row(table_name: str, r: dict[str, Any]) -> _Row:
    table = table_named(table_name)
    record = to_wire(table, sql.from_db(r))
    return _Row(
        seq=r["seq"],
        json=dumps(record).encode("utf-8"),
        created_at=r.get("createdAt"),
        order_id=record.get("order_id") if table_name == "order_items" else None,
    )
