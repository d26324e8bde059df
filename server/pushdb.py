"""What one push reads and writes, and in how many round trips: the storage side of
server/push.py, per backend.

A push reads, under its shop's writer lock, the sequence state, the receipts of the events it
carries and the rows they change; merges in Python (protocol.merge stays the one rule); then
writes the rows, the receipts, the counters and the machine, and commits.

- SQLite (and a push nested in an outer transaction): the portable statements of sql.py,
  one after the other, in `ctx.write_transaction()`.
- PostgreSQL: two round trips. The reads go as one message of several statements (the
  simple query protocol, parameters bound here): BEGIN, the lock, the state, the receipts and
  the rows; PostgreSQL runs them in order, each with its own snapshot (READ COMMITTED) taken
  once the lock is granted, so server/push.py's ordering holds. The writes are ONE statement
  of data-modifying CTEs (rows, receipts, counters, machine; NOTIFY in its final SELECT),
  rows as one array literal per column (`INSERT ... SELECT FROM unnest(...)`), sent with the
  COMMIT in one pipeline. A round trip per statement on a busy machine, and the per-row work
  of `executemany`, were most of a push's time.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import peewee as pw
import psycopg
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


class Unit(ABC):
    """One push's transaction: `read` once, then `write` once (or raise to roll back)."""

    @abstractmethod
    def read(self, event_ids: list[str], wanted: dict[str, set[str]]) -> Snapshot:
        """The stored receipts of `event_ids` and the rows of `wanted` (table -> ids), under
        the shop's writer lock."""

    @abstractmethod
    def write(self, w: Writes) -> None:
        """The push's rows, receipts, counters and notice, in this transaction."""


@contextmanager
def unit_of_work(ctx: ServiceContext) -> Iterator[Unit]:
    """The push's transaction, holding its shop's writer lock once `read` returns."""
    if ctx.postgres and not ctx.db.in_transaction():
        with _batched(ctx) as unit:
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


# -- PostgreSQL: two messages, set-based ----------------------------------------------------


@contextmanager
def _batched(ctx: ServiceContext) -> Iterator[Unit]:
    conn = ctx.db.connection()
    unit = _Batched(ctx, conn)
    try:
        with sql.driver_errors:
            yield unit
    except BaseException:
        # A failed statement leaves the transaction failed (the ones after it, COMMIT
        # included, never ran); an error raised by the caller between read and write
        # leaves it open. Either way nothing of it stays. A connection the database dropped
        # (UNKNOWN) holds nothing to roll back: trying would replace the error the route
        # answers 503 for with psycopg's own "the connection is closed" (a 500).
        status = conn.pgconn.transaction_status
        if status not in (TransactionStatus.IDLE, TransactionStatus.UNKNOWN):
            conn.execute("ROLLBACK")
        raise


class _Batched(Unit):
    """Each phase is one simple-protocol message of several statements, their parameters
    bound here (psycopg's ClientCursor): PostgreSQL runs them in order and answers once."""

    def __init__(self, ctx: ServiceContext, conn: Any) -> None:
        self.ctx = ctx
        self.cursor = psycopg.ClientCursor(conn)

    def _send(self, statements: list[tuple[str, Sequence[Any]]]) -> None:
        text = ";\n".join(self.cursor.mogrify(q, p) for q, p in statements)
        self.cursor.execute(text, prepare=False)

    def read(self, event_ids: list[str], wanted: dict[str, set[str]]) -> Snapshot:
        ctx = self.ctx
        t = ctx.tenant
        statements: list[tuple[str, Sequence[Any]]] = [
            ("BEGIN", ()),
            ("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (WRITE_LOCK, t)),
            (
                "SELECT key, value FROM sync_state WHERE tenant_id = %s AND key = ANY(%s)",
                (t, list(STATE_KEYS)),
            ),
        ]
        # Keys travel as one array literal each (see _by_keys).
        if event_ids:
            statements.append(
                (
                    _by_keys("sync_events", "event_id", "event_id, result"),
                    (_text_array(set(event_ids)), t),
                )
            )
        reads = []
        for table_name, ids in wanted.items():
            model = ctx.models.data[table_name]
            fields = list(model._meta.sorted_fields)
            cols = ", ".join(sql.quote(f.column_name) for f in fields)
            statements.append((_by_keys(table_name, "id", cols), (_text_array(ids), t)))
            reads.append((table_name, fields))
        self._send(statements)
        cursor = self.cursor
        cursor.nextset()  # BEGIN
        cursor.nextset()  # the lock
        found = dict(cursor.fetchall())
        head, horizon, gap_low, gap_high = (int(found.get(k) or 0) for k in STATE_KEYS)
        seen = {}
        if event_ids:
            cursor.nextset()
            seen = {event_id: parse_receipt(result) for event_id, result in cursor.fetchall()}
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for table_name, fields in reads:
            cursor.nextset()
            for values in cursor.fetchall():
                row = {f.name: f.python_value(v) for f, v in zip(fields, values, strict=True)}
                rows[(table_name, row["id"])] = sql.from_db(row)
        return Snapshot(head, horizon, gap_low, gap_high, seen, rows)

    def write(self, w: Writes) -> None:
        """Every write in ONE statement (data-modifying CTEs, binary arrays, prepared by
        psycopg once it repeats), and COMMIT, in one round trip."""
        ctx = self.ctx
        parts: list[tuple[str, Sequence[Any]]] = []
        for table_name, table_rows in w.dirty.items():
            statement, columns = _upsert(ctx, table_name)
            parts.append((statement, _arrays(ctx, columns, table_rows.values())))
        if w.events:
            statement, columns = _insert_events(ctx)
            parts.append((statement, _arrays(ctx, columns, w.events)))
        pushed = len(w.events)
        parts.append(
            sql.bump_state_statement(
                ctx, w.head, applied=pushed, stale=w.stale, rejected=w.rejected
            )
        )
        if w.applied or w.stale or w.rejected:
            parts.append(pdvs.bump_minute_statement(ctx, w.now, w.applied, w.stale, w.rejected))
        if w.machine_id:
            parts.append(
                sql.touch_machine_statement(
                    ctx, w.machine_id, w.now, pushed=pushed, cursor=w.cursor
                )
            )
        # Each sub-statement changes its own table; none reads what another writes.
        query = "WITH " + ", ".join(f"w{i} AS ({q})" for i, (q, _) in enumerate(parts))
        params = [p for _, ps in parts for p in ps]
        if w.notify is not None:
            query += " SELECT pg_notify(%s, %s)"
            params += [NOTIFY_CHANNEL, json.dumps(w.notify)]
        else:
            query += " SELECT 1"
        conn = self.cursor.connection
        with conn.pipeline():
            conn.execute(query, params)
            conn.execute("COMMIT")


def _by_keys(table: str, key: str, columns: str) -> str:
    """The rows of one shop whose `key` is in an array: one index probe per key (its
    (tenant_id, key) primary key), whatever the planner believes of the table.

    `key = ANY(array)` lets the planner choose, and on a young table (grown since its last
    ANALYZE, e.g. the first minutes of a shop, or after an import) it believes the shop has
    a handful of rows and scans all of them on every push: most of a push's PostgreSQL time.
    The LIMIT keeps the lateral subquery from being flattened into a join it could plan the
    same way; it changes nothing else, the key being unique in the shop."""
    return (
        f"SELECT {columns} FROM unnest(%s::text[]) AS k(key) CROSS JOIN LATERAL "
        f"(SELECT {columns} FROM {sql.quote(table)} WHERE tenant_id = %s "
        f"AND {sql.quote(key)} = k.key LIMIT 1) AS found"
    )


def _text_array(values: Any) -> str:
    """A `text[]` literal of strings (ids: printable, any other character quoted)."""
    return (
        "{"
        + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
        + "}"
    )


# Each column: (its key in the row dicts written, how a value is stored, how a list of
# stored values is written as an array literal).
_Column = tuple[str, Any, Any]

# The merged rows' keys of the meta columns (see sql.to_db).
_ROW_KEYS = {"updated_at": "updatedAt", "deleted": "_deleted", "extra": "_extra"}


def _arrays(ctx: ServiceContext, columns: list[_Column], rows: Any) -> list[Any]:
    """The statement's parameters: the shop, then one array literal per column."""
    rows = list(rows)
    out: list[Any] = [ctx.tenant]
    for key, convert, literal in columns:
        values = [row.get(key) for row in rows]
        if convert is not None:
            values = [convert(v) for v in values]
        out.append(literal(values))
    return out


# Array literals built here: psycopg dumps a list element by element in Python, which was a
# quarter of a push's CPU. Inside double quotes only `"` and `\` need a backslash.
def _texts(values: list[Any]) -> str:
    if values and None not in values:
        joined = "".join(values)
        if '"' not in joined and "\\" not in joined:  # most columns: nothing to escape
            return '{"' + '","'.join(values) + '"}'
    return (
        "{"
        + ",".join(
            "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
            for v in values
        )
        + "}"
    )


def _ints(values: list[Any]) -> str:
    if None in values:
        return "{" + ",".join("NULL" if v is None else str(int(v)) for v in values) + "}"
    return "{" + ",".join(map(str, map(int, values))) + "}"


def _bools(values: list[Any]) -> str:
    return "{" + ",".join("NULL" if v is None else ("t" if v else "f") for v in values) + "}"


def _columns(fields: list[pw.Field], row_keys: dict[str, str]) -> list[_Column]:
    out: list[_Column] = []
    for f in fields:
        convert: Any = f.db_value
        literal: Any = _texts
        if f.name == "deleted":
            convert, literal = bool, _bools  # never NULL: a row without `_deleted` is live
        elif isinstance(f, pw.BooleanField):
            literal = _bools
        elif type(f).db_value is pw.Field.db_value and isinstance(f, pw.IntegerField):
            convert, literal = None, _ints
        elif type(f).db_value is pw.Field.db_value and isinstance(f, (pw.CharField, pw.TextField)):
            convert = None  # text is stored as the merged row holds it
        out.append((row_keys.get(f.name, str(f.name)), convert, literal))
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
    """`INSERT INTO <model's table> SELECT <shop>, * FROM unnest(<one array per column>)` and
    its columns; the statement text is built once per database."""
    fields = [f for f in model._meta.sorted_fields if f.name != "tenant_id"]
    table = model._meta.table_name
    key = f"unnest:{table}"
    statement = ctx.sql_cache.get(key)
    if statement is None:
        types = _column_types(ctx, table)
        names = [sql.quote(f.column_name) for f in fields]
        unnest = ", ".join(f"%s::{types[f.column_name]}[]" for f in fields)
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
