"""The POS's reads of whole tables (`GET /api/products`, ..., and `GET /api/sync/{table}`
without `lastSync`) served from pre-serialised rows: each view row's wire JSON, kept in this
process and brought up to date from the rows the store itself wrote.

Building 10,000 wire records and their JSON on every read cost ~200 ms of CPU, in the process
whose GIL the sync engine needs too. Every write of a view row goes through `Views._put` (or
`forget_all`), which tells this cache the (table, id) it wrote, while holding the store's
writer lock until its transaction commits; a read catches up under that lock, by reading
again only the rows written since, so it never caches a row of a transaction still open (a
rolled-back write just makes it read a row again); a read of a table with nothing written
since needs no lock at all (`_ready`). One agent process owns its store file
(the single-instance guard), so no other writer is missed. A fragment is
`records.dumps(to_wire(...))` of the row, as the uncached reads (`Views.list_records`,
`Views.since`) encode it inside the whole answer: the bytes are the same
(tests/agent/store/test_listcache.py compares them).

The list order is SQLite's own (`ORDER BY id`, orders by `created_at DESC`). A row joining a
list by id takes its place by a binary search (SQLite compares ids as bytes: UTF-8's byte
order is Python's order of the texts); when an order joins or its `createdAt` changes, the
order is asked again. `since`'s order is the change time, ties in table order (rowid), as
its uncached query returns them.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from protocol import TABLES, dumps, to_wire
from protocol.listing import Listing, filtered, joined

from .context import StoreContext, chunks

Converters = list[tuple[str, Callable[[Any], Any] | None]]
# How views.py reads a view row: per table, its SELECT (id, updated_at, fields, extra,
# changed_at) and the fields' conversions; and the row dict of one result.
Selects = Mapping[str, tuple[str, Converters]]
RowOf = Callable[[Converters, Sequence[Any]], dict[str, Any]]

# More rows written than this since the last read: read the table whole.
_WHOLE_AFTER = 2000


@dataclass(frozen=True)
class _Row:
    json: bytes  # the wire record's JSON
    changed_at: int  # when the view row was written (this machine's clock)
    rowid: int  # SQLite's table order: `since`'s order among equal change times
    created_at: int | None  # orders: the range filter of /api/orders
    order_id: str | None  # order_items: the filter of /api/order_items?order_id=


@dataclass
class _Entry:
    rows: dict[str, _Row]
    order: list[str]  # ids in the list's order
    joined: Listing | None = None  # the whole list
    by_change: Listing | None = None  # the same in `since`'s order


@dataclass
class ListCache:
    """Every table's serialised rows; `touched` and `forget` are called by the view writers,
    under the store's writer lock."""

    ctx: StoreContext
    selects: Selects
    row_of: RowOf
    _entries: dict[str, _Entry] = field(default_factory=dict)
    # Per table, the ids written since the last catch-up; a table absent from `_entries` is
    # read whole.
    _dirty: dict[str, set[str]] = field(default_factory=dict)

    def touched(self, table: str, ids: Iterable[str]) -> None:
        """These rows of `table` were written (or deleted) in the current transaction."""
        if table in self._entries:
            self._dirty.setdefault(table, set()).update(ids)

    def forget(self) -> None:
        """Every table changed: read each whole next time."""
        self._entries.clear()
        self._dirty.clear()

    def listing(
        self,
        table: str,
        *,
        created_from: int | None = None,
        created_to: int | None = None,
        order_id: str | None = None,
    ) -> Listing:
        """`Views.list_records` (and order_items of one order) as JSON already encoded."""
        whole = created_from is None and created_to is None and order_id is None
        ready = self._ready(table) if whole else None
        if ready is not None and ready.joined is not None:
            return ready.joined
        with self.ctx.lock:
            entry = self._fresh(table)
            if whole:
                if entry.joined is None:
                    entry.joined = joined([entry.rows[i] for i in entry.order])
                return entry.joined
            rows = [entry.rows[i] for i in entry.order]
        return filtered(rows, order_id=order_id, created_from=created_from, created_to=created_to)

    def by_change(self, table: str) -> Listing:
        """`Views.since(table, None)` as JSON already encoded: oldest change first."""
        ready = self._ready(table)
        if ready is not None and ready.by_change is not None:
            return ready.by_change
        with self.ctx.lock:
            entry = self._fresh(table)
            if entry.by_change is None:
                rows = sorted(entry.rows.values(), key=lambda r: (r.changed_at, r.rowid))
                entry.by_change = joined(rows)
            return entry.by_change

    def _ready(self, table: str) -> _Entry | None:
        """The table's entry if no row of it was written since it caught up, read without
        the writer lock, so a read does not wait for the engine's transactions.

        Why that is safe: a writer marks its rows (`touched`) before it commits, and a
        catch-up removes the mark only after the entry holds them. No mark now means every
        commit before this read is in the entry read next (a write not yet marked is not
        committed yet either). The mark is checked first: checked after reading the entry,
        a catch-up finishing in between could leave an older entry in hand.
        """
        if table in self._dirty:
            return None
        return self._entries.get(table)

    # -- catching up (under the writer lock: no write of this process is open) ------------

    def _fresh(self, table: str) -> _Entry:
        entry = self._entries.get(table)
        dirty = self._dirty.get(table, set())
        if entry is None or len(dirty) > _WHOLE_AFTER:
            entry = self._entries[table] = self._read_whole(table)
        elif dirty:
            self._catch_up(table, entry, dirty)
        self._dirty.pop(table, None)  # only now: see `_ready`
        return entry

    def _read_whole(self, table: str) -> _Entry:
        select, convert = self._select(table)
        rows: dict[str, _Row] = {}
        order: list[str] = []
        for values in self.ctx.db.execute_sql(f"{select} ORDER BY {_ORDER[table]}"):
            row = self._row(table, convert, values)
            rows[values[1]] = row
            order.append(values[1])
        return _Entry(rows, order)

    def _catch_up(self, table: str, entry: _Entry, ids: set[str]) -> None:
        select, convert = self._select(table)
        found: dict[str, _Row] = {}
        for chunk in chunks(sorted(ids)):
            q = self.ctx.db.execute_sql(
                f"{select} WHERE id IN ({', '.join('?' * len(chunk))})", chunk
            )
            for values in q.fetchall():
                found[values[1]] = self._row(table, convert, values)
        by_id = table != "orders"
        reorder = False
        joined: list[str] = []
        for row_id in ids:
            old = entry.rows.pop(row_id, None)
            new = found.get(row_id)
            if new is not None:
                entry.rows[row_id] = new
                if old is None:
                    joined.append(row_id)
                reorder = reorder or (
                    not by_id and (old is None or old.created_at != new.created_at)
                )
        if reorder:
            q = self.ctx.db.execute_sql(f'SELECT id FROM "{table}" ORDER BY {_ORDER[table]}')
            entry.order = [i for (i,) in q.fetchall()]
        else:  # the rows that left leave the order; a row joining a list by id takes its place
            entry.order = [i for i in entry.order if i in entry.rows]
            for row_id in joined:
                bisect.insort(entry.order, row_id)
        entry.joined = entry.by_change = None  # before the mark goes: see `_ready`

    def _select(self, table: str) -> tuple[str, Converters]:
        """The view's SELECT with SQLite's rowid first (`since`'s order among ties)."""
        select, convert = self.selects[table]
        return "SELECT rowid, " + select.removeprefix("SELECT "), convert

    def _row(self, table: str, convert: Converters, values: Sequence[Any]) -> _Row:
        row = self.row_of(convert, values[1:])
        return _Row(
            json=dumps(to_wire(TABLES[table], row)).encode("utf-8"),
            changed_at=values[-1],
            rowid=values[0],
            created_at=row.get("createdAt"),
            order_id=row.get("order_id") if table == "order_items" else None,
        )


# `Views.list_records`'s order, on the same columns (so the same index, and the same ties).
_ORDER = {name: ("created_at DESC" if name == "orders" else "id") for name in TABLES}
