"""The mirror of the server in the agent's store: the server's last known version of every row
(the shadow, `server_rows`), the pull cursor (and whether a pull ever reached the server's
head), and what the server answers: acknowledgements of pushed events, pulled pages, the
rows of a repair, a full resync.

Acknowledgements and pulled pages commit in mirror transactions (synchronous=NORMAL, see
`StoreContext.mirror_transaction`): the server holds all of it, so a power cut that loses
one only makes the agent pull or push again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict

from protocol import TABLES, dumps, from_wire, parse_ms
from protocol.merge import Row

from .context import StoreContext
from .outbox import AckCounts, Outbox
from .state import SyncState
from .views import Key, Views, WireRecord


class BucketRepair(TypedDict):
    """What `replace_buckets` changed in one table's view."""

    table: str
    buckets: list[int]
    fixed: list[str]  # rows added or corrected
    removed: list[str]


class Mirror:
    def __init__(self, ctx: StoreContext, state: SyncState, views: Views, outbox: Outbox) -> None:
        self._ctx = ctx
        self._state = state
        self._views = views
        self._outbox = outbox

    def acknowledge(
        self,
        results: Sequence[Mapping[str, Any]],
        now: int,
        changes: Sequence[Mapping[str, Any]] = (),
        cursor: int | None = None,
    ) -> AckCounts:
        """Apply the server's per-event results (`Outbox.settle`), and pulled changes, in
        one transaction."""
        # The changes are converted before taking the writer lock: a POS write waits for
        # this transaction, not for that work.
        params, shadows = _prepared(changes)
        with self._ctx.lock, self._ctx.mirror_transaction():
            # Server changes up to this sequence number are already in the shadow rows (or
            # arrive in `changes` now).
            known_seq = max(self._state.cursor, cursor if cursor is not None else 0)
            counts, touched = self._outbox.settle(results, now, known_seq)
            self._store_shadows(params)
            touched.update(shadows)
            self._views.rebuild_many(touched, shadows)
            if cursor is not None:
                self._state.set_cursor(cursor)
            self._outbox.purge_sent(now)
        if cursor is not None and not changes:
            self._state.mark_at_head()  # the push reply's page: nothing after our cursor
        return counts

    def apply_pulled(self, changes: Sequence[Mapping[str, Any]], cursor: int) -> int:
        """Store a page of pulled changes and the new cursor, atomically."""
        if not changes and cursor == self._state.cursor:
            self._state.mark_at_head()  # an empty page: the server has nothing after it
            return 0  # nothing new (an idle poll): no transaction, no commit
        params, shadows = _prepared(changes)
        with self._ctx.lock, self._ctx.mirror_transaction():
            self._store_shadows(params)
            self._views.rebuild_many(shadows, shadows)
            self._state.set_cursor(cursor)
        if not changes:
            self._state.mark_at_head()
        return len(changes)

    def _apply_changes(
        self, changes: Iterable[Mapping[str, Any]], touched: set[Key]
    ) -> dict[Key, Row | None]:
        """Store the server's versions (one executemany); returns them as rows, None for a
        tombstone, so the rebuild that follows need not read them back."""
        params, shadows = _prepared(changes)
        self._store_shadows(params)
        touched.update(shadows)
        return shadows

    def _store_shadows(self, params: Sequence[tuple[Any, ...]]) -> None:
        """Write the server rows `_prepared` made (one executemany)."""
        if params:
            self._ctx.db.cursor().executemany(
                "INSERT OR REPLACE INTO server_rows (table_name, row_id, data, deleted, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                params,
            )

    # -- resync and repair -----------------------------------------------------------------

    def reset(self) -> None:
        """Forget the server's state (before a full resync); pending events are kept."""
        with self._ctx.lock, self._ctx.db.atomic():
            self._ctx.m.ServerRow.delete().execute()
            self._views.forget_all()
            self._state.set_cursor(0)
            self._state.forget_head()
            self._views.rebuild_many(self._outbox.pending_keys())

    def replace_buckets(
        self, table: str, buckets: Iterable[int], server_rows: Sequence[WireRecord]
    ) -> BucketRepair:
        """Make the given buckets of a table equal to the server's rows (pending edits kept)."""
        wanted = set(buckets)
        S = self._ctx.m.ServerRow
        views = self._views
        with self._ctx.lock, self._ctx.db.atomic():
            before = {
                r["id"]: r
                for r in (views.get(table, rid) for rid in views.ids_in_buckets(table, wanted))
                if r
            }
            incoming = {str(r["id"]): r for r in server_rows}
            fixed, removed = [], []
            for row_id in set(before) - set(incoming):
                S.delete().where((S.table_name == table) & (S.row_id == row_id)).execute()
                views.rebuild(table, row_id)
                after = views.get(table, row_id)
                if after is None:
                    removed.append(row_id)
                elif after != before[row_id]:  # a pending edit keeps it, on a fresh base
                    fixed.append(row_id)
            touched: set[Key] = set()
            self._apply_changes(({"table": table, "record": r} for r in incoming.values()), touched)
            for _, row_id in touched:
                views.rebuild(table, row_id)
                if before.get(row_id) != views.get(table, row_id):
                    fixed.append(row_id)
        return BucketRepair(
            table=table, buckets=sorted(wanted), fixed=sorted(fixed), removed=sorted(removed)
        )


def _prepared(
    changes: Iterable[Mapping[str, Any]],
) -> tuple[list[tuple[Any, ...]], dict[Key, Row | None]]:
    """The server's versions as `server_rows` parameters, and as rows (None for a tombstone),
    so the rebuild that follows need not read them back. No database access: callers run
    it before they take the writer lock."""
    params: list[tuple[Any, ...]] = []
    shadows: dict[Key, Row | None] = {}
    for c in changes:
        table = c["table"]
        record = c["record"]
        t = TABLES[table]  # unknown table from a newer server: KeyError, refuse the page
        row_id = str(record["id"])
        deleted = bool(record.get("_deleted"))
        params.append(
            (table, row_id, dumps(record), deleted, parse_ms(record["updatedAt"], "updatedAt"))
        )
        # A row twice in one page: the later version wins, here and in server_rows.
        shadows[(table, row_id)] = None if deleted else from_wire(t, record)
    return params, shadows
