"""The view rows the POS reads: the server's last known row with this machine's pending events
applied on top (`shadow + pending events`), so an incoming change never clobbers a local
edit still in the outbox (invariant 9), and a pending stock decrement stays counted on top
of whatever the server sends.

Hot paths use plain SQL with the conversions the peewee models would apply: building these
queries through peewee cost more than SQLite's work. Every row is written with its digest
(`protocol.row_digest`), so a summary is one aggregate query, and with the local time of
the write (`changed_at`); a row that leaves the view leaves a local tombstone for a while
(`view_tombstones`), so the seed's reads by `lastSync` (`since`) see every change.
Invariants are numbered as in docs/protocol.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from protocol import (
    TABLES,
    Change,
    ProtocolError,
    bucket_of,
    from_wire,
    loads,
    to_wire,
)
from protocol.merge import Row, merge
from protocol.messages import LASTSYNC_OVERLAP_MS
from protocol.records import parse_change
from protocol.timefmt import to_iso
from protocol.vocabulary import OutboxState

from .context import StoreContext, chunks, dicts, tuples
from .listcache import ListCache
from .view_sql import (
    VIEW_INSERT,
    VIEW_SELECT,
    VIEW_STORED_SELECT,
    from_view,
    marks,
    row_of,
    stored_values,
    view_values,
)

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (table, row id)
WireRecord = dict[str, Any]  # a record as the POS and the server read it (protocol.to_wire)
# View rows to write: a row, or None to delete it.
ViewChanges = Mapping[Key, Row | None]

# A local tombstone is kept this long: a front end that has not read a table for a month
# reads it whole again anyway (its lastSync is that old: every row changed since is sent).
TOMBSTONE_RETENTION_MS = 30 * 86_400_000
# The purge scans the tombstones: once an hour is enough.
_PURGE_EVERY_MS = 3_600_000


class Views:
    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx
        # An attribute, not only a method: every view row goes through it, so a test can
        # observe the durability level each kind of transaction writes with.
        self.put: Callable[[ViewChanges], None] = self._put
        self._next_purge_at = 0  # when `_put` next deletes old tombstones
        # Whole tables kept serialised for the POS's list reads; told of every row written.
        self.lists = ListCache(ctx, VIEW_SELECT, row_of)

    # -- reads (what the POS sees) ---------------------------------------------------------

    def row(self, table: str, row_id: str) -> Row | None:
        # Plain SQL: a POS polling one record, and every update's existence check, read
        # here; peewee's query building cost more than SQLite's work.
        select, convert = VIEW_SELECT[table]
        found = self._ctx.db.execute_sql(f"{select} WHERE id = ?", (row_id,)).fetchone()
        return None if found is None else row_of(convert, found)

    def rows_many(self, keys: Iterable[Key]) -> dict[Key, Row]:
        """The view rows of these (table, id) keys that exist: one query per table and 500."""
        wanted: dict[str, set[str]] = {}
        for table, row_id in keys:
            wanted.setdefault(table, set()).add(row_id)
        out: dict[Key, Row] = {}
        for table, ids in wanted.items():
            select, convert = VIEW_SELECT[table]
            for chunk in chunks(sorted(ids)):
                q = self._ctx.db.execute_sql(
                    f"{select} WHERE id IN ({', '.join('?' * len(chunk))})", chunk
                )
                for values in q.fetchall():
                    out[(table, values[0])] = row_of(convert, values)
        return out

    def get(self, table: str, row_id: str) -> WireRecord | None:
        row = self.row(table, row_id)
        return None if row is None else to_wire(TABLES[table], row)

    def get_many(self, table: str, row_ids: Sequence[str]) -> list[WireRecord]:
        """The wire records of those ids that exist, in the order asked."""
        rows = self.rows_many((table, i) for i in row_ids)
        return [to_wire(TABLES[table], rows[(table, i)]) for i in row_ids if (table, i) in rows]

    def list_records(
        self, table: str, *, created_from: int | None = None, created_to: int | None = None
    ) -> list[WireRecord]:
        """A table's records, orders newest first, the others by id."""
        model = self._ctx.m.views[table]
        q = model.select()
        if created_from is not None:
            q = q.where(model.createdAt >= created_from)
        if created_to is not None:
            q = q.where(model.createdAt <= created_to)
        q = q.order_by(model.createdAt.desc() if table == "orders" else model.id)
        return [to_wire(TABLES[table], from_view(row)) for row in dicts(q)]

    def count(self, table: str) -> int:
        return int(self._ctx.m.views[table].select().count())

    def live_rows(self, table: str) -> Iterator[Row]:
        """Every row of a table, read through the models (slow: for checks, not hot paths)."""
        model = self._ctx.m.views[table]
        for row in dicts(model.select()):
            yield from_view(row)

    def ids_in_buckets(self, table: str, buckets: set[int]) -> list[str]:
        model = self._ctx.m.views[table]
        ids = (rid for (rid,) in tuples(model.select(model.id)))
        return [rid for rid in ids if bucket_of(rid) in buckets]

    def since(self, table: str, last_sync: int | None) -> list[WireRecord]:
        """The seed's read of a table by its client's clock (`lastSync`, epoch ms), as the
        server answers it but by this machine's clock: without `last_sync`, every live row;
        with it, every row written and every row gone (`{id, _deleted, updatedAt}`) at or
        after `last_sync - LASTSYNC_OVERLAP_MS` (a front end's clock off by up to an hour,
        a write that waited on the store's lock: nothing is missed; duplicates are
        harmless, the client replaces records by id). Oldest change first."""
        t = TABLES[table]
        select, convert = VIEW_SELECT[table]
        found: list[tuple[int, WireRecord]] = []
        db = self._ctx.db
        with db.atomic("DEFERRED"):  # one read snapshot: a row is either live or gone
            if last_sync is None:
                q = db.execute_sql(select)
            else:
                start = last_sync - LASTSYNC_OVERLAP_MS
                q = db.execute_sql(f"{select} WHERE changed_at >= ?", (start,))
                for row_id, changed_at in db.execute_sql(
                    "SELECT row_id, changed_at FROM view_tombstones "
                    "WHERE table_name = ? AND changed_at >= ?",
                    (table, start),
                ).fetchall():
                    gone = {"id": row_id, "_deleted": True, "updatedAt": to_iso(changed_at)}
                    found.append((changed_at, gone))
            found += [(values[-1], to_wire(t, row_of(convert, values))) for values in q]
        found.sort(key=lambda pair: pair[0])
        return [record for _, record in found]

    # -- writes ------------------------------------------------------------------------------

    def _put(self, rows: ViewChanges) -> None:
        """Write view rows (None deletes) with one prepared statement per table and kind,
        each stamped with this machine's time; a row deleted leaves a tombstone, a row
        written drops its own. The tables written are marked on the change feed, which moves
        once the writer lock, held by every caller around its transaction, is let go (taken
        here too: reentrant, and a caller without it has its statements settled on return)."""
        if not rows:
            return
        with self._ctx.lock:
            self._write(rows)

    def _write(self, rows: ViewChanges) -> None:
        now = self._ctx.clock()
        by_table: dict[str, tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]] = {}
        for (table, row_id), row in rows.items():
            gone, put = by_table.setdefault(table, ([], []))
            if row is None:
                gone.append((table, now, row_id))
            else:
                put.append(view_values(table, row_id, row, now))
        self._ctx.changes.mark(by_table)
        sql = self._ctx.db.cursor()
        for table, (gone, put) in by_table.items():
            self.lists.touched(table, [g[2] for g in gone] + [values[0] for values in put])
            if gone:
                # Only a row that was in the view leaves a tombstone.
                sql.executemany(
                    "INSERT OR REPLACE INTO view_tombstones (table_name, row_id, changed_at) "
                    f'SELECT ?, id, ? FROM "{table}" WHERE id = ?',
                    gone,
                )
                sql.executemany(f'DELETE FROM "{table}" WHERE id = ?', [(g[2],) for g in gone])
            if put:
                sql.executemany(VIEW_INSERT[table], put)
                sql.executemany(
                    "DELETE FROM view_tombstones WHERE table_name = ? AND row_id = ?",
                    [(table, values[0]) for values in put],
                )
        if now >= self._next_purge_at:
            sql.execute(
                "DELETE FROM view_tombstones WHERE changed_at < ?", (now - TOMBSTONE_RETENTION_MS,)
            )
            self._next_purge_at = now + _PURGE_EVERY_MS

    def forget_all(self) -> None:
        """Empty every view (a full resync starts again from the server's rows): each row
        leaves a tombstone, dropped again as the resync brings the row back."""
        with self._ctx.lock:
            self._forget_all()

    def _forget_all(self) -> None:
        now = self._ctx.clock()
        self.lists.forget()
        self._ctx.changes.mark(TABLES)
        for table in TABLES:
            self._ctx.db.execute_sql(
                "INSERT OR REPLACE INTO view_tombstones (table_name, row_id, changed_at) "
                f'SELECT ?, id, ? FROM "{table}"',
                (table, now),
            )
            self._ctx.db.execute_sql(f'DELETE FROM "{table}"')

    def rebuild(self, table: str, row_id: str) -> None:
        """View row := server's version + this machine's pending events, in order."""
        self.rebuild_many([(table, row_id)])

    def rebuild_many(
        self, keys: Iterable[Key], shadows: Mapping[Key, Row | None] | None = None
    ) -> None:
        """`rebuild` of many rows: per table and 500 rows, one query for the shadows not
        given in `shadows`, one for the pending events, one executemany for the views."""
        known = shadows or {}
        db = self._ctx.db
        wanted: dict[str, set[str]] = {}
        for table, row_id in keys:
            wanted.setdefault(table, set()).add(row_id)
        views: dict[Key, Row | None] = {}
        for table, id_set in wanted.items():
            t = TABLES[table]
            ids = sorted(id_set)
            base: dict[str, Row | None] = {i: known[(table, i)] for i in ids if (table, i) in known}
            # Plain SQL: building these queries through peewee cost more than running them.
            for chunk in chunks([i for i in ids if i not in base]):
                for row_id, data, deleted in db.execute_sql(
                    "SELECT row_id, data, deleted FROM server_rows "
                    f"WHERE table_name = ? AND row_id IN ({marks(chunk)})",
                    (table, *chunk),
                ).fetchall():
                    base[row_id] = None if deleted else from_wire(t, loads(data))
            events: dict[str, list[tuple[str, int]]] = {}
            for chunk in chunks(ids):
                for record_id, payload, created_at in db.execute_sql(
                    "SELECT record_id, payload, created_at FROM outbox WHERE table_name = ? "
                    f"AND state = ? AND record_id IN ({marks(chunk)}) ORDER BY id",
                    (table, OutboxState.PENDING.value, *chunk),
                ).fetchall():
                    events.setdefault(record_id, []).append((payload, created_at))
            for row_id in ids:
                row = base.get(row_id)
                for payload, created_at in events.get(row_id, ()):
                    try:
                        change = parse_change(t, loads(payload))
                    except (ProtocolError, ValueError) as exc:
                        # Written by another version of the agent (a field since removed):
                        # it still goes to the server, which refuses it into the dead
                        # letters; here it must not stop every rebuild of this row.
                        log.warning(
                            "pending event for %s/%s left out of the view: %s", table, row_id, exc
                        )
                        continue
                    row = apply_change(row, change, change.edited_at or created_at)
                views[(table, row_id)] = row
            self._drop_unchanged(table, ids, views)
        self.put(views)

    def _drop_unchanged(self, table: str, ids: Sequence[str], views: dict[Key, Row | None]) -> None:
        """Leave out of `views` the rows the view already holds exactly as they are (the
        same stored values, hence the same digest): an acknowledgement mostly brings back
        what this machine wrote itself, and rewriting it (digest, row, tombstone) was most of
        the cost of an acknowledgement. Their local change time stays, as nothing changed."""
        wanted = [i for i in ids if views.get((table, i)) is not None]
        select = VIEW_STORED_SELECT[table]
        for chunk in chunks(wanted):
            for values in self._ctx.db.execute_sql(
                f"{select} WHERE id IN ({marks(chunk)})", chunk
            ).fetchall():
                key = (table, values[0])
                row = views[key]
                assert row is not None
                if stored_values(table, values[0], row) == tuple(values):
                    del views[key]


def apply_change(row: Row | None, change: Change, edited_at: int) -> Row | None:
    """A change applied to a view row by the protocol's merge rule, as the server will apply
    it but without staleness: a pending local edit always shows (invariant 9). None: the
    row is not visible (deleted, or never created)."""
    merged = merge(change, row, edited_at, stale_check=False)
    if merged.row is None:  # refused (a counter out of range): the server refuses it too
        return row
    if merged.row.get("_deleted"):
        return None
    new = merged.row
    new.pop("_deleted", None)
    new.pop("lww_at", None)
    return new
