"""The view rows the POS reads: the server's last known row with this machine's pending events
applied on top (`shadow + pending events`), so an incoming change never clobbers a local
edit still in the outbox (invariant 9), and a pending stock decrement stays counted on top
of whatever the server sends.

Hot paths use plain SQL with the conversions the peewee models would apply: building these
queries through peewee cost more than SQLite's work. Every row is written with its digest
(`protocol.row_digest`), so a summary is one aggregate query.
Invariants are numbered as in docs/protocol.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from protocol import (
    TABLES,
    Change,
    Kind,
    ProtocolError,
    bucket_of,
    from_wire,
    loads,
    row_digest,
    to_wire,
)
from protocol.merge import Row, merge
from protocol.records import parse_change
from protocol.vocabulary import OutboxState

from .context import StoreContext, chunks, dicts, tuples
from .models import column_name

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (table, row id)
WireRecord = dict[str, Any]  # a record as the POS and the server read it (protocol.to_wire)
# View rows to write: a row, or None to delete it.
ViewChanges = Mapping[Key, Row | None]


class Views:
    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx
        # An attribute, not only a method: every view row goes through it, so a test can
        # observe the durability level each kind of transaction writes with.
        self.put: Callable[[ViewChanges], None] = self._put

    # -- reads (what the POS sees) ---------------------------------------------------------

    def row(self, table: str, row_id: str) -> Row | None:
        model = self._ctx.m.views[table]
        found = list(dicts(model.select().where(model.id == row_id).limit(1)))
        return from_view(found[0]) if found else None

    def rows_many(self, keys: Iterable[Key]) -> dict[Key, Row]:
        """The view rows of these (table, id) keys that exist: one query per table and 500."""
        wanted: dict[str, set[str]] = {}
        for table, row_id in keys:
            wanted.setdefault(table, set()).add(row_id)
        out: dict[Key, Row] = {}
        for table, ids in wanted.items():
            select, convert = _VIEW_SELECT[table]
            for chunk in chunks(sorted(ids)):
                q = self._ctx.db.execute_sql(
                    f"{select} WHERE id IN ({', '.join('?' * len(chunk))})", chunk
                )
                for values in q.fetchall():
                    row = {"id": values[0], "updatedAt": values[1]}
                    for (name, conv), value in zip(convert, values[2:], strict=True):
                        row[name] = value if value is None or conv is None else conv(value)
                    out[(table, values[0])] = row
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

    # -- writes ------------------------------------------------------------------------------

    def _put(self, rows: ViewChanges) -> None:
        """Write view rows (None deletes) with one prepared statement per table and kind."""
        by_table: dict[str, tuple[list[tuple[str]], list[tuple[Any, ...]]]] = {}
        for (table, row_id), row in rows.items():
            gone, put = by_table.setdefault(table, ([], []))
            if row is None:
                gone.append((row_id,))
            else:
                put.append(view_values(table, row_id, row))
        sql = self._ctx.db.cursor()
        for table, (gone, put) in by_table.items():
            if gone:
                sql.executemany(f'DELETE FROM "{table}" WHERE id = ?', gone)
            if put:
                sql.executemany(_VIEW_INSERT[table], put)

    def rebuild(self, table: str, row_id: str) -> None:
        """View row := server's version + this machine's pending events, in order."""
        self.rebuild_many([(table, row_id)])

    def rebuild_many(
        self, keys: Iterable[Key], shadows: Mapping[Key, Row | None] | None = None
    ) -> None:
        """`rebuild` of many rows: per table and 500 rows, one query for the shadows not
        given in `shadows`, one for the pending events, one executemany for the views."""
        known = shadows or {}
        O, S = self._ctx.m.Outbox, self._ctx.m.ServerRow
        wanted: dict[str, set[str]] = {}
        for table, row_id in keys:
            wanted.setdefault(table, set()).add(row_id)
        views: dict[Key, Row | None] = {}
        for table, id_set in wanted.items():
            t = TABLES[table]
            ids = sorted(id_set)
            base: dict[str, Row | None] = {i: known[(table, i)] for i in ids if (table, i) in known}
            for chunk in chunks([i for i in ids if i not in base]):
                shadow = S.select(S.row_id, S.data, S.deleted).where(
                    (S.table_name == table) & S.row_id.in_(chunk)
                )
                for row_id, data, deleted in tuples(shadow):
                    base[row_id] = None if deleted else from_wire(t, loads(data))
            events: dict[str, list[tuple[str, int]]] = {}
            for chunk in chunks(ids):
                pending = (
                    O.select(O.record_id, O.payload, O.created_at)
                    .where(
                        (O.table_name == table)
                        & O.record_id.in_(chunk)
                        & (O.state == OutboxState.PENDING)
                    )
                    .order_by(O.id)
                )
                for record_id, payload, created_at in tuples(pending):
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
        self.put(views)


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


# -- the rows as SQLite stores them ----------------------------------------------------------


def _text(value: Any) -> Any:
    return None if value is None else str(value)


def _integer(value: Any) -> Any:
    return None if value is None else int(value)


def _decimal_text(value: Any) -> Any:
    return None if value is None else str(Decimal(value))  # as models.DecimalText stores it


def _decimal_of(value: Any) -> Decimal:
    return Decimal(str(value))  # as models.DecimalText reads it


_TO_DB: dict[Kind, Callable[[Any], Any]] = {
    Kind.TEXT: _text,
    Kind.DECIMAL: _decimal_text,
    Kind.INTEGER: _integer,
    Kind.TIMESTAMP: _integer,
}


def _insert_sql(name: str) -> str:
    t = TABLES[name]
    cols = ["id", "updated_at", *(column_name(f.name) for f in t.fields), "digest_hi", "digest_lo"]
    return (
        f'INSERT OR REPLACE INTO "{name}" ({", ".join(cols)}) VALUES ({", ".join("?" * len(cols))})'
    )


# Per view table: its INSERT OR REPLACE, and (field, to-database conversion) per column, as
# the peewee models store them (see models._view_model).
_VIEW_INSERT: dict[str, str] = {name: _insert_sql(name) for name in TABLES}
_VIEW_CONVERT: dict[str, list[tuple[str, Callable[[Any], Any]]]] = {
    name: [(f.name, _TO_DB[f.kind]) for f in t.fields] for name, t in TABLES.items()
}
# Per view table: its SELECT (id, updated_at, fields), and (field, from-database conversion).
_VIEW_SELECT: dict[str, tuple[str, list[tuple[str, Callable[[Any], Any] | None]]]] = {
    name: (
        f'SELECT id, updated_at, {", ".join(column_name(f.name) for f in t.fields)} FROM "{name}"',
        [(f.name, _decimal_of if f.kind is Kind.DECIMAL else None) for f in t.fields],
    )
    for name, t in TABLES.items()
}


def view_values(table: str, row_id: str, row: Row) -> tuple[Any, ...]:
    """The column values of a view row, its digest last. The digest is computed from the
    values as stored (what a read gives back), so it always matches the row on disk."""
    t = TABLES[table]
    stored: Row = {"id": row_id, "updatedAt": int(row["updatedAt"])}
    for name, conv in _VIEW_CONVERT[table]:
        stored[name] = conv(row.get(name))
    digest = row_digest(t, stored)
    return (*stored.values(), digest >> 32, digest & 0xFFFFFFFF)


def from_view(row: dict[str, Any]) -> Row:
    """A view row as read by peewee -> the store's row dict (updatedAt, no digest)."""
    row["updatedAt"] = row.pop("updated_at")
    del row["digest_hi"], row["digest_lo"]
    return row
