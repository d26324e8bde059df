"""What one push reads and writes, and in how many round trips: the storage side of
server/push.py, per backend.

A push reads, under its shop's writer lock, the sequence state, the receipts of the events it
carries and the rows they change; merges in Python (protocol.merge stays the one rule); then
writes the rows, the receipts, the counters and the machine, and commits.

- SQLite (and a push nested in an outer transaction): the portable statements of sql.py,
  one after the other, in `ctx.write_transaction()`.
- PostgreSQL: two round trips. psycopg's pipeline mode sends statements without waiting
  for each answer: BEGIN, the lock and the reads go together, the writes and the COMMIT
  together. PostgreSQL still runs them one after the other, each with its own snapshot
  (READ COMMITTED) taken once the lock is granted, so server/push.py's ordering holds. Rows
  and receipts are written by one `INSERT ... SELECT FROM unnest(<one array per column>)`
  per table instead of one execution per row: a round trip per statement on a busy machine,
  and the per-row work of `executemany`, were most of a push's time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import peewee as pw
from psycopg.pq import TransactionStatus

from protocol import loads

from . import pdvs, sql
from .context import WRITE_LOCK, ServiceContext

NOTIFY_CHANNEL = "pdvsync_changes"

# sync_state keys a push reads under the lock.
STATE_KEYS = ("seq", "tombstone_horizon", "restore_gap_low", "restore_gap_high")


@dataclass
class Snapshot:
    """What a push read under its shop's writer lock."""

    head: int
    horizon: int
    gap_low: int
    gap_high: int
    seen: dict[str, dict[str, Any]]  # receipts of events already applied: event id -> result
    rows: dict[tuple[str, str], dict[str, Any]]  # stored rows (in-memory form) by (table, id)


@dataclass
class Writes:
    """What a push writes, in its transaction."""

    now: int
    head: int
    dirty: dict[str, dict[str, dict[str, Any]]]  # table -> id -> merged row
    events: list[dict[str, Any]]  # receipt rows of sync_events (field names of its model)
    applied: int = 0
    stale: int = 0
    rejected: int = 0
    machine_id: str | None = None
    cursor: int | None = None  # the pusher's pulled cursor to record, if any
    notify: dict[str, Any] | None = field(default=None)  # PostgreSQL: the NOTIFY payload


class Unit:
    """One push's transaction: `read` once, then `write` once (or raise to roll back)."""

    def read(self, event_ids: list[str], wanted: dict[str, set[str]]) -> Snapshot:
        raise NotImplementedError

    def write(self, w: Writes) -> None:
        raise NotImplementedError


@contextmanager
def unit_of_work(ctx: ServiceContext) -> Iterator[Unit]:
    """The push's transaction, holding its shop's writer lock once `read` returns."""
    if ctx.postgres and not ctx.db.in_transaction():
        with _pipelined(ctx) as unit:
            yield unit
    else:
        with ctx.write_transaction():
            yield _Portable(ctx)


def parse_receipt(text: str) -> dict[str, Any]:
    return cast(dict[str, Any], loads(text))


# -- portable: one statement at a time ------------------------------------------------------


class _Portable(Unit):
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def read(self, event_ids: list[str], wanted: dict[str, set[str]]) -> Snapshot:
        ctx = self.ctx
        head, horizon, gap_low, gap_high = sql.states(ctx, *STATE_KEYS)
        seen: dict[str, dict[str, Any]] = {}
        E = ctx.models.Event
        fields = E._meta.fields
        for chunk in sql.chunks(sorted(set(event_ids))):
            for event_id, result in sql.select_by_keys(
                ctx, E, [fields["event_id"], fields["result"]], fields["event_id"], chunk
            ):
                seen[event_id] = parse_receipt(result)
        rows = sql.load_rows(ctx, wanted)
        return Snapshot(head, horizon, gap_low, gap_high, seen, rows)

    def write(self, w: Writes) -> None:
        ctx = self.ctx
        for table_name, table_rows in w.dirty.items():
            sql.write_rows(ctx, table_name, table_rows.values())
        sql.insert_rows(ctx, ctx.models.Event, w.events)
        _counters(ctx, w)
        if w.notify is not None:
            ctx.db.execute_sql("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, json.dumps(w.notify)))


def _counters(ctx: ServiceContext, w: Writes) -> None:
    sql.bump_state(ctx, w.head, applied=len(w.events), stale=w.stale, rejected=w.rejected)
    pdvs.bump_minute(ctx, w.now, w.applied, w.stale, w.rejected)  # the panel's chart
    if w.machine_id:
        sql.touch_machine(ctx, w.machine_id, w.now, pushed=len(w.events), cursor=w.cursor)


# -- PostgreSQL: pipelined, set-based -------------------------------------------------------


@contextmanager
def _pipelined(ctx: ServiceContext) -> Iterator[Unit]:
    conn = ctx.db.connection()
    try:
        with sql.driver_errors, conn.pipeline():
            conn.execute("BEGIN")
            unit = _Pipelined(ctx, conn)
            yield unit
            if unit.written:
                conn.execute("COMMIT")
            else:  # raised by the caller before writing: nothing to keep
                conn.execute("ROLLBACK")
    except BaseException:
        # An error inside the pipeline leaves the transaction failed (the statements after
        # it, COMMIT included, were skipped); one raised by the caller leaves it open.
        if conn.pgconn.transaction_status != TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
        raise


class _Pipelined(Unit):
    def __init__(self, ctx: ServiceContext, conn: Any) -> None:
        self.ctx = ctx
        self.conn = conn
        self.written = False

    def read(self, event_ids: list[str], wanted: dict[str, set[str]]) -> Snapshot:
        ctx, conn = self.ctx, self.conn
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (WRITE_LOCK, ctx.tenant))
        states = conn.execute(
            "SELECT key, value FROM sync_state WHERE tenant_id = %s AND key = ANY(%s)",
            (ctx.tenant, list(STATE_KEYS)),
        )
        # Unprepared, so each is planned for the table as it is now (see sql.select_by_keys).
        receipts = None
        if event_ids:
            receipts = conn.cursor().execute(
                "SELECT event_id, result FROM sync_events WHERE tenant_id = %s "
                "AND event_id = ANY(%s)",
                (ctx.tenant, list(set(event_ids))),
                prepare=False,
            )
        reads = []
        for table_name, ids in wanted.items():
            model = ctx.models.data[table_name]
            fields = list(model._meta.sorted_fields)
            cols = ", ".join(sql.quote(f.column_name) for f in fields)
            cursor = conn.cursor().execute(
                f"SELECT {cols} FROM {sql.quote(table_name)} WHERE tenant_id = %s AND id = ANY(%s)",
                (ctx.tenant, list(ids)),
                prepare=False,
            )
            reads.append((table_name, fields, cursor))
        found = dict(states.fetchall())  # waits for the answers of everything sent so far
        head, horizon, gap_low, gap_high = (int(found.get(k) or 0) for k in STATE_KEYS)
        seen = {}
        if receipts is not None:
            seen = {event_id: parse_receipt(result) for event_id, result in receipts.fetchall()}
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for table_name, fields, cursor in reads:
            for values in cursor.fetchall():
                row = {f.name: f.python_value(v) for f, v in zip(fields, values, strict=True)}
                rows[(table_name, row["id"])] = sql.from_db(row)
        return Snapshot(head, horizon, gap_low, gap_high, seen, rows)

    def write(self, w: Writes) -> None:
        ctx, conn = self.ctx, self.conn
        for table_name, table_rows in w.dirty.items():
            statement, columns = _upsert(ctx, table_name)
            conn.execute(statement, _arrays(ctx, columns, table_rows.values()))
        if w.events:
            statement, columns = _insert_events(ctx)
            conn.execute(statement, _arrays(ctx, columns, w.events))
        _counters(ctx, w)  # sql.py's statements: queued in the pipeline like the others
        if w.notify is not None:
            conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, json.dumps(w.notify)))
        self.written = True


# Each column: (its key in the row dicts written, how a value is stored: None when as it is).
_Column = tuple[str, Any]

# The merged rows' keys of the meta columns (see sql.to_db).
_ROW_KEYS = {"updated_at": "updatedAt", "deleted": "_deleted", "extra": "_extra"}


def _arrays(ctx: ServiceContext, columns: list[_Column], rows: Any) -> list[Any]:
    """The statement's parameters: the shop, then one list per column."""
    lists: list[list[Any]] = [[] for _ in columns]
    pairs = [(lst, key, convert) for lst, (key, convert) in zip(lists, columns, strict=True)]
    for row in rows:
        for lst, key, convert in pairs:
            value = row.get(key)
            lst.append(value if convert is None else convert(value))
    return [ctx.tenant, *lists]


def _columns(fields: list[pw.Field], row_keys: dict[str, str]) -> list[_Column]:
    out: list[_Column] = []
    for f in fields:
        convert: Any = f.db_value
        if f.name == "deleted":
            convert = bool  # never NULL: a merged row without `_deleted` is live
        elif type(f).db_value is pw.Field.db_value and isinstance(
            f, (pw.CharField, pw.TextField, pw.IntegerField)
        ):
            convert = None  # text and integers are stored as the merged row holds them
        out.append((row_keys.get(f.name, str(f.name)), convert))
    return out


def _column_types(ctx: ServiceContext, table: str) -> dict[str, str]:
    """Each column's type as PostgreSQL has it (what the migrations made)."""
    cursor = ctx.db.execute_sql(
        "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute "
        "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        (sql.quote(table),),
    )
    return dict(cursor.fetchall())


def _insert_select(
    ctx: ServiceContext, model: type[pw.Model], row_keys: dict[str, str], conflict: str
) -> tuple[str, list[_Column]]:
    """`INSERT INTO <model's table> SELECT <shop>, * FROM unnest(<one array per column>)`
    and its columns; the statement text is built once per database."""
    fields = [f for f in model._meta.sorted_fields if f.name != "tenant_id"]
    table = model._meta.table_name
    key = f"unnest:{table}"
    statement = ctx.sql_cache.get(key)
    if statement is None:
        # In a pipeline a read waits for everything queued: fine, this runs once.
        types = _column_types(ctx, table)
        names = [sql.quote(f.column_name) for f in fields]
        # Binary arrays: psycopg dumps their elements in C (text arrays escape each in Python).
        unnest = ", ".join(f"%b::{types[f.column_name]}[]" for f in fields)
        statement = ctx.sql_cache[key] = (
            f"INSERT INTO {sql.quote(table)} (tenant_id, {', '.join(names)}) "
            f"SELECT %s, * FROM unnest({unnest}){conflict}"
        )
    return statement, _columns(fields, row_keys)


def _upsert(ctx: ServiceContext, table_name: str) -> tuple[str, list[_Column]]:
    """Whole rows of a synchronised table, replacing the stored ones."""
    model = ctx.models.data[table_name]
    names = [sql.quote(f.column_name) for f in model._meta.sorted_fields]
    sets = ", ".join(f"{n} = excluded.{n}" for n in names if n not in ('"tenant_id"', '"id"'))
    return _insert_select(
        ctx, model, _ROW_KEYS, f" ON CONFLICT (tenant_id, id) DO UPDATE SET {sets}"
    )


def _insert_events(ctx: ServiceContext) -> tuple[str, list[_Column]]:
    """Receipts; a concurrent duplicate event fails on the key (push.py retries)."""
    return _insert_select(ctx, ctx.models.Event, {}, "")
