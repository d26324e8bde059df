"""The sync service: push (idempotent, last-writer-wins, counters, tombstones), pull by
cursor, summaries and reconcile. No HTTP here; routes are thin wrappers around it.

Ordering: every committed change gets the next number of one server-wide sequence (`seq`).
Writers are serialised (a transaction-scoped advisory lock on PostgreSQL, `BEGIN IMMEDIATE`
on SQLite) and the sequence head is stored in the same transaction as the rows, so numbers
become visible in commit order and a reader paging with `since` never skips a change.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from typing import Any

import peewee as pw

from protocol import (
    TABLES,
    Change,
    ProtocolError,
    Table,
    bucket_of,
    bucket_summaries,
    compare_summaries,
    dumps,
    loads,
    now_ms,
    parse_ms,
    row_digest,
    summarize,
    to_iso,
    to_signed,
    to_wire,
)
from protocol.merge import effective_edit_time, merge
from protocol.messages import PushItem
from protocol.vocabulary import ResultStatus

from .db import META_COLUMNS, Models, is_postgres

log = logging.getLogger(__name__)

# Key of the transaction-scoped advisory lock that serialises writers on PostgreSQL.
_WRITE_LOCK = 7355607
NOTIFY_CHANNEL = "pdvsync_changes"
DEFAULT_PAGE = 500
MAX_PAGE = 5000
MAX_EVENTS_PER_REQUEST = 5000
_CHUNK = 500
# A pull that repeats the cursor this machine recorded less than this long ago writes nothing.
PULL_TOUCH_MS = 5000
# A commit of at most this many rows travels in its live notice (see hub.py).
LIVE_CHANGES_MAX = 100

APPLIED = ResultStatus.APPLIED.value
STALE = ResultStatus.STALE.value
REJECTED = ResultStatus.REJECTED.value


class SyncService:
    def __init__(
        self,
        models: Models,
        *,
        clock: Callable[[], int] = now_ms,
        on_commit: Callable[..., None] | None = None,
    ) -> None:
        self.m = models
        self.db = models.db
        self.clock = clock
        self.on_commit = on_commit
        self.postgres = is_postgres(self.db)
        self._summary_cache: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}
        self._cache_lock = threading.Lock()
        self._sql_cache: dict[str, str] = {}  # statement texts built once (see _write_rows)
        self._pulls_seen: dict[str, tuple[int, int]] = {}  # machine -> (when, cursor) last recorded

    # -- connections -------------------------------------------------------------------

    @contextmanager
    def connection(self):
        """A pooled connection for one unit of work (one request)."""
        with self.db.connection_context():
            yield

    def ping(self) -> None:
        with self.connection():
            self.db.execute_sql("SELECT 1").fetchone()

    # -- push --------------------------------------------------------------------------

    def push(
        self,
        machine_id: str | None,
        events: Sequence[PushItem],
        *,
        atomic_batch: bool = False,
    ) -> tuple[list[dict[str, Any]], int]:
        """Apply events in one transaction. Returns (per-event results, sequence head).

        Invalid events are rejected one by one, unless `atomic_batch`: then any invalid
        event (malformed, or refused by the merge, e.g. an increment of an unknown record)
        fails the whole push with a 422 and nothing is written.
        """
        if len(events) > MAX_EVENTS_PER_REQUEST:
            raise ProtocolError(
                "too_many_events",
                f"at most {MAX_EVENTS_PER_REQUEST} events per request",
                status=413,
            )
        invalid = [e for e in events if e.error is not None]
        if atomic_batch and invalid:
            raise ProtocolError(
                "invalid_batch",
                "the batch has invalid events; nothing was applied",
                invalid=[_rejection(e) for e in invalid],
            )
        results, head, _ = self._push(machine_id, events, atomic_batch=atomic_batch)
        return results, head

    def push_and_pull(
        self,
        table_name: str,
        machine_id: str | None,
        events: Sequence[PushItem],
        since: int,
        limit: int = DEFAULT_PAGE,
    ) -> tuple[list[dict[str, Any]], int, dict[str, Any]]:
        """`POST /api/sync/{table}`: the push, then the pull after `since`, on one connection.

        When the pull's cursor check cannot depend on the machine's recorded cursor (`since`
        is 0, or between the tombstone horizon and the head), the push's own transaction
        records `since` as the machine's cursor, and the pull writes nothing: one commit per
        request instead of two (on SQLite with synchronous=FULL, one fsync instead of two).
        The cursor is still recorded before the rows are read.
        """
        _table(table_name)
        with self.connection():
            results, head, recorded = self._push(machine_id, events, pulled_cursor=since)
            page = self.pull(table_name, since, limit, machine_id=None if recorded else machine_id)
        return results, head, page

    def _push(
        self,
        machine_id: str | None,
        events: Sequence[PushItem],
        *,
        atomic_batch: bool = False,
        pulled_cursor: int | None = None,
    ) -> tuple[list[dict[str, Any]], int, bool]:
        if len(events) > MAX_EVENTS_PER_REQUEST:
            raise ProtocolError(
                "too_many_events",
                f"at most {MAX_EVENTS_PER_REQUEST} events per request",
                status=413,
            )
        for attempt in range(3):
            try:
                with self.connection():
                    return self._push_once(
                        machine_id, events, atomic_batch=atomic_batch, pulled_cursor=pulled_cursor
                    )
            except pw.IntegrityError:
                # Only a concurrent duplicate eventId can get here (the unique key caught
                # it). The retry sees that event as a duplicate.
                if attempt == 2:
                    raise
                log.info("push retried after a concurrent duplicate event")
        raise AssertionError("unreachable")

    @contextmanager
    def _write_transaction(self):
        with self.db.atomic():
            if self.postgres:
                self.db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            yield

    def _push_once(
        self,
        machine_id: str | None,
        events: Sequence[PushItem],
        *,
        atomic_batch: bool = False,
        pulled_cursor: int | None = None,
    ) -> tuple[list[dict[str, Any]], int, bool]:
        """One attempt. The bool: `pulled_cursor` was recorded as the machine's cursor."""
        now = self.clock()
        valid = [e for e in events if e.change is not None]
        with self._write_transaction():
            head, horizon = self._states("seq", "tombstone_horizon")
            first_head = head  # this commit's changes are the seqs after it
            record_cursor = (
                machine_id is not None
                and pulled_cursor is not None
                and (pulled_cursor == 0 or horizon <= pulled_cursor <= head)
            )
            seen = self._stored_results([e.event_id for e in valid])
            rows = self._load_rows(e.change for e in valid)
            dirty: dict[str, dict[str, dict[str, Any]]] = {}
            event_rows: list[dict[str, Any]] = []
            results: list[dict[str, Any]] = []
            stale = rejected = 0
            for e in events:
                if e.error is not None:
                    results.append(_rejection(e))
                    rejected += 1
                    continue
                if e.event_id in seen:
                    results.append({**seen[e.event_id], "duplicate": True})
                    continue
                change = e.change
                assert change is not None
                key = (change.table.name, change.id)
                result, new_row = _merge(change, rows.get(key), now)
                result["eventId"] = e.event_id
                if new_row is not None:
                    head += 1
                    new_row["seq"] = head
                    result["seq"] = head
                    rows[key] = new_row
                    dirty.setdefault(change.table.name, {})[change.id] = new_row
                if result["status"] == STALE:
                    stale += 1
                elif result["status"] == REJECTED:
                    rejected += 1
                seen[e.event_id] = result
                results.append(result)
                event_rows.append(
                    {
                        "event_id": e.event_id,
                        "machine_id": machine_id,
                        "table_name": change.table.name,
                        "record_id": change.id,
                        "status": result["status"],
                        "result": dumps(result),
                        "seq": result.get("seq"),
                        "created_at": now,
                    }
                )
            refused = [r for r in results if r["status"] == REJECTED and not r.get("duplicate")]
            if atomic_batch and refused:
                # Raised inside the transaction: it rolls back, and nothing was written yet.
                raise ProtocolError(
                    "invalid_batch",
                    "the batch has invalid events; nothing was applied",
                    invalid=[{**r, "resolution": REJECTED} for r in refused],
                )
            for table_name, table_rows in dirty.items():
                self._write_rows(table_name, list(table_rows.values()))
            self._insert_events(event_rows)
            self._bump_state(head, applied=len(event_rows), stale=stale, rejected=rejected)
            if machine_id:
                self._touch_machine(
                    machine_id,
                    now,
                    pushed=len(event_rows),
                    cursor=pulled_cursor if record_cursor else None,
                )
            if dirty and self.postgres:
                payload = json.dumps({"tables": sorted(dirty), "cursor": head})
                self.db.execute_sql("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, payload))
        if record_cursor and not self.postgres:
            assert machine_id is not None and pulled_cursor is not None
            with self._cache_lock:  # what _touch_pull compares with: the cursor now recorded
                self._pulls_seen[machine_id] = (now, pulled_cursor)
        if dirty and not self.postgres and self.on_commit:
            # `on_commit(tables, cursor, since=, changes=)`: a small commit's changes go with
            # its notice, as the changes feed would page them after `first_head`, so a live
            # client at that cursor needs no pull. (PostgreSQL notices stay plain: NOTIFY
            # payloads are small, and other processes publish them.)
            live = None
            if sum(len(t) for t in dirty.values()) <= LIVE_CHANGES_MAX:
                live = sorted(
                    (
                        {"table": name, "seq": r["seq"], "record": to_wire(TABLES[name], r)}
                        for name, t in dirty.items()
                        for r in t.values()
                    ),
                    key=lambda c: c["seq"],
                )
            self.on_commit(sorted(dirty), head, since=first_head, changes=live)
        return results, head, record_cursor

    # The small statements every push and pull runs, as fixed SQL texts: built through
    # peewee they cost more Python than the database needs to run them.

    def _head(self) -> int:
        return self._states("seq")[0]

    def _states(self, *keys: str) -> list[int]:
        """Values of sync_state keys (0 when absent), in one query."""
        p = self.db.param
        cursor = self.db.execute_sql(
            f"SELECT key, value FROM sync_state WHERE key IN ({', '.join([p] * len(keys))})", keys
        )
        found = dict(cursor.fetchall())
        return [int(found.get(k) or 0) for k in keys]

    def _bump_state(self, head: int, *, applied: int, stale: int, rejected: int) -> None:
        """The new sequence head and the counters, in one statement."""
        rows: list[Any] = ["seq", head]
        for key, n in (
            ("events_applied", applied),
            ("conflicts_stale", stale),
            ("events_rejected", rejected),
        ):
            if n:
                rows += [key, n]
        p = self.db.param
        values = ", ".join([f"({p}, {p})"] * (len(rows) // 2))
        self.db.execute_sql(
            f"INSERT INTO sync_state (key, value) VALUES {values} ON CONFLICT (key) DO UPDATE SET value = "
            "CASE WHEN excluded.key = 'seq' THEN excluded.value ELSE sync_state.value + excluded.value END",
            rows,
        )

    def _touch_machine(
        self, machine_id: str, now: int, *, pushed: int = 0, cursor: int | None = None
    ) -> None:
        # A machine first seen pushing or reconciling has pulled nothing yet: cursor -1
        # holds back garbage collection like 0, and never passes for a pull that began at 0.
        p = self.db.param
        self.db.execute_sql(
            "INSERT INTO sync_machines (machine_id, first_seen, last_seen, cursor, events_pushed) "
            f"VALUES ({p}, {p}, {p}, {p}, {p}) ON CONFLICT (machine_id) DO UPDATE SET "
            "last_seen = excluded.last_seen, "
            "events_pushed = sync_machines.events_pushed + excluded.events_pushed, "
            f"cursor = COALESCE({p}, sync_machines.cursor)",
            (machine_id, now, now, -1 if cursor is None else cursor, pushed, cursor),
        )

    def _stored_results(self, event_ids: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        E = self.m.Event
        for chunk in _chunks(sorted(set(event_ids))):
            for event_id, result in self._select_by_keys(
                E, [E.event_id, E.result], E.event_id, chunk
            ):
                out[event_id] = loads(result)
        return out

    def _load_rows(self, changes: Iterable[Change]) -> dict[tuple[str, str], dict[str, Any]]:
        wanted: dict[str, set[str]] = {}
        for c in changes:
            wanted.setdefault(c.table.name, set()).add(c.id)
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for table_name, ids in wanted.items():
            model = self.m.data[table_name]
            fields = list(model._meta.sorted_fields)
            for chunk in _chunks(sorted(ids)):
                for values in self._select_by_keys(model, fields, model.id, chunk):
                    row = {f.name: f.python_value(v) for f, v in zip(fields, values, strict=True)}
                    rows[(table_name, row["id"])] = _from_db(row)
        return rows

    def _select_by_keys(
        self, model: type[pw.Model], fields: list[pw.Field], key: pw.Field, keys: list[str]
    ) -> list[tuple]:
        """Rows whose `key` is one of `keys`, as tuples of `fields`.

        On PostgreSQL the statement is sent unprepared, so it is planned for the table as it
        is now. Through peewee, psycopg prepares it after 5 runs and PostgreSQL then keeps a
        generic plan costed on the table of that moment: on a young database, a sequential
        scan that every push repeats over a table that keeps growing. One array parameter
        keeps the text short, so psycopg caches its parsing.
        """
        cols = ", ".join(_quote(f.column_name) for f in fields)
        head = (
            f"SELECT {cols} FROM {_quote(model._meta.table_name)} WHERE {_quote(key.column_name)}"
        )
        with pw.__exception_wrapper__:  # driver errors as peewee's, like every other query
            cursor = self.db.cursor()
            if self.postgres:
                cursor.execute(f"{head} = ANY(%s)", [keys], prepare=False)
            else:
                cursor.execute(f"{head} IN ({', '.join('?' * len(keys))})", keys)
            return cursor.fetchall()

    def _write_rows(self, table_name: str, rows: list[dict[str, Any]]) -> None:
        """Upsert whole rows: one statement text per table, `executemany`.

        peewee's `insert_many` renders every value of every row through its query builder,
        and psycopg then re-parses the long statement it makes (too long for its cache): that
        was most of a push's CPU time. psycopg 3 runs `executemany` as a pipeline (one round
        trip); sqlite3 runs it in C.
        """
        table = TABLES[table_name]
        sql, fields = self._upsert_statement(table_name)
        params = []
        for r in rows:
            row = _to_db(table, r)
            params.append([f.db_value(row[f.name]) for f in fields])
        self._executemany(sql, params)

    def _insert_events(self, event_rows: list[dict[str, Any]]) -> None:
        if not event_rows:
            return
        E = self.m.Event
        fields = list(E._meta.sorted_fields)
        sql = self._sql_cache.get("events")
        if sql is None:
            sql = self._sql_cache["events"] = (
                f"INSERT INTO {_quote(E._meta.table_name)} ({', '.join(_quote(f.column_name) for f in fields)}) "
                f"VALUES ({', '.join([self.db.param] * len(fields))})"
            )
        self._executemany(sql, [[f.db_value(r[f.name]) for f in fields] for r in event_rows])

    def _executemany(self, sql: str, params: list[list[Any]]) -> None:
        with pw.__exception_wrapper__:  # a duplicate eventId still raises pw.IntegrityError
            self.db.cursor().executemany(sql, params)

    def _upsert_statement(self, table_name: str) -> tuple[str, list[pw.Field]]:
        model = self.m.data[table_name]
        fields = [
            model.id,
            *(getattr(model, c) for c in META_COLUMNS),
            *(getattr(model, f) for f in TABLES[table_name].field_names),
        ]
        sql = self._sql_cache.get(table_name)
        if sql is None:
            cols = ", ".join(_quote(f.column_name) for f in fields)
            sets = ", ".join(
                f"{_quote(f.column_name)} = excluded.{_quote(f.column_name)}" for f in fields[1:]
            )
            sql = self._sql_cache[table_name] = (
                f"INSERT INTO {_quote(model._meta.table_name)} ({cols}) "
                f"VALUES ({', '.join([self.db.param] * len(fields))}) "
                f"ON CONFLICT ({_quote(model.id.column_name)}) DO UPDATE SET {sets}"
            )
        return sql, fields

    # -- pull --------------------------------------------------------------------------

    def pull(
        self,
        table_name: str,
        since: int,
        limit: int = DEFAULT_PAGE,
        *,
        machine_id: str | None = None,
    ) -> dict[str, Any]:
        """Changes of one table after `since`, oldest first: `{synced, cursor, hasMore}`."""
        table = _table(table_name)
        limit = _page(limit)
        with self.connection():
            head = self._start_read(since, machine_id)
            model = self.m.data[table.name]
            limit = self._first_page_past_horizon(since, machine_id, head, limit, [model])
            found = list(
                model.select()
                .where((model.seq > since) & (model.seq <= head))
                .order_by(model.seq)
                .limit(limit + 1)
                .dicts()
            )
            has_more = len(found) > limit
            found = found[:limit]
            cursor = found[-1]["seq"] if has_more else head
        return {
            "synced": [to_wire(table, _from_db(r)) for r in found],
            "cursor": cursor,
            "hasMore": has_more,
        }

    def changes(
        self, since: int, limit: int = DEFAULT_PAGE, *, machine_id: str | None = None
    ) -> dict[str, Any]:
        """Changes of every table after `since`, in sequence order, for one-cursor clients.

        The tables are read one query each, so a commit may land between two queries: every
        query stops at the head read first (all of it committed, see the module docstring),
        or a later change seen in one table would move the cursor past an earlier change of
        the same commit not seen in another table.
        """
        limit = _page(limit)
        with self.connection():
            head = self._start_read(since, machine_id)
            limit = self._first_page_past_horizon(
                since, machine_id, head, limit, list(self.m.data.values())
            )
            merged: list[tuple[int, str, dict[str, Any]]] = []
            for name, model in self.m.data.items():
                q = (
                    model.select()
                    .where((model.seq > since) & (model.seq <= head))
                    .order_by(model.seq)
                    .limit(limit + 1)
                )
                merged += [(r["seq"], name, r) for r in q.dicts()]
            merged.sort(key=lambda t: t[0])
            has_more = len(merged) > limit
            merged = merged[:limit]
            cursor = merged[-1][0] if has_more else head
        return {
            "changes": [
                {"table": name, "seq": seq, "record": to_wire(TABLES[name], _from_db(r))}
                for seq, name, r in merged
            ],
            "cursor": cursor,
            "hasMore": has_more,
        }

    def _first_page_past_horizon(
        self, since: int, machine_id: str | None, head: int, limit: int, models: list
    ) -> int:
        """The page size of a full pull (since 0) by a client the server does not track.

        After tombstones are purged, a cursor below the horizon is refused (it may have
        missed deletes). A known machine paging through a full pull is recognised by its
        recorded cursor; an anonymous client is not, so its first page reaches past the
        horizon instead: every cursor it is handed is then one the server accepts."""
        if since != 0 or machine_id:
            return limit
        horizon = min(self._state("tombstone_horizon"), head)
        if horizon <= 0:
            return limit
        below = sum(m.select().where(m.seq <= horizon).count() for m in models)
        return max(limit, below)

    def _start_read(self, since: int, machine_id: str | None) -> int:
        """Check the cursor, then record it as the machine's (before reading, so a garbage
        collection that does not see this machine yet ran before the rows are read)."""
        head = self._check_cursor(since, machine_id)
        if machine_id:
            self._touch_pull(machine_id, since)
        return head

    def _touch_pull(self, machine_id: str, cursor: int) -> None:
        """Record a pull's cursor, except when this process recorded the same cursor for this
        machine less than PULL_TOUCH_MS ago: a pull is a read, and each record is a commit
        (on SQLite an fsync, and the one write lock). Only `last_seen` can lag, by at most
        that long; the cursor that garbage collection relies on is already the recorded one.
        On PostgreSQL other server processes record cursors too: always written there.
        If the row was removed meanwhile (`machines forget`), the machine's next pull below
        the tombstone horizon is told to resync in full: never a silent gap.
        """
        now = self.clock()
        if not self.postgres:
            with self._cache_lock:
                last = self._pulls_seen.get(machine_id)
                if last is not None and last[1] == cursor and 0 <= now - last[0] < PULL_TOUCH_MS:
                    return
                self._pulls_seen[machine_id] = (now, cursor)
        self._touch_machine(machine_id, now, cursor=cursor)

    def check_cursor(self, since: int, machine_id: str | None = None) -> None:
        """Refuse (409 resync_required) a cursor this database cannot continue from. A push
        that carries the pusher's cursor is checked first: after a restore, pushing the
        offline sales before pulling would move the head past the stale cursor, and the
        client would never be told that it missed the restore."""
        with self.connection():
            self._check_cursor(since, machine_id)

    def _check_cursor(self, since: int, machine_id: str | None = None) -> int:
        head, horizon, gap_low, gap_high = self._states(
            "seq", "tombstone_horizon", "restore_gap_low", "restore_gap_high"
        )
        if since < 0:
            raise ProtocolError("invalid_cursor", "since: must be >= 0", status=400)
        if gap_low < since < gap_high:
            # No change was ever numbered in this gap (server/backup.py leaves it after a
            # restore): such a cursor was handed out before the restore, by the database as
            # it was then, and may have seen changes the restore undid.
            raise ProtocolError(
                "resync_required",
                "cursor predates a restore of this database: resync in full",
                status=409,
                resyncRequired=True,
                cursor=head,
            )
        if since > head:
            raise ProtocolError(
                "resync_required",
                "cursor is ahead of this server (was the database restored?): resync in full",
                status=409,
                resyncRequired=True,
                cursor=head,
            )
        if 0 < since < horizon and not self._resuming_full_pull(machine_id, since):
            raise ProtocolError(
                "resync_required",
                "cursor is older than the purged tombstones: resync in full",
                status=409,
                resyncRequired=True,
                cursor=head,
            )
        return head

    def _resuming_full_pull(self, machine_id: str | None, since: int) -> bool:
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
        M = self.m.Machine
        recorded = M.select(M.cursor).where(M.machine_id == machine_id).scalar()
        return recorded is not None and 0 <= recorded <= since

    def _state(self, key: str) -> int:
        row = self.m.SyncState.get_or_none(self.m.SyncState.key == key)
        return int(row.value) if row else 0

    def head(self) -> int:
        with self.connection():
            return self._head()

    # -- plain reads (the seed's GET /api/products, /api/orders, /api/supplies) -------

    def list_live(
        self, table_name: str, *, created_from: int | None = None, created_to: int | None = None
    ) -> list[dict[str, Any]]:
        table = _table(table_name)
        model = self.m.data[table.name]
        q = model.select().where(model.deleted == False)  # noqa: E712 - peewee expression
        if created_from is not None:
            q = q.where(model.createdAt >= created_from)
        if created_to is not None:
            q = q.where(model.createdAt <= created_to)
        q = q.order_by(model.createdAt.desc() if table.name == "orders" else model.id)
        with self.connection():
            return [to_wire(table, _from_db(r)) for r in q.dicts()]

    def get_live(self, table_name: str, row_id: str) -> dict[str, Any] | None:
        table = _table(table_name)
        model = self.m.data[table.name]
        with self.connection():
            row = model.select().where(model.id == row_id).dicts().first()
        if row is None or row["deleted"]:
            return None
        return to_wire(table, _from_db(row))

    # -- summaries and reconcile ---------------------------------------------------------

    def summary(self) -> tuple[list[dict[str, Any]], int, bool]:
        """Per-table summaries and the head they describe.

        The head is read before and after: when a commit landed in between, the summaries
        may mix two states, and `stable` is False (reconcile then answers "retry").
        """
        with self.connection():
            for _ in range(3):
                before = self._head()
                result = [self._table_summary(name) for name in TABLES]
                after = self._head()
                if before == after:
                    return result, after, True
            return result, after, False

    def _table_summary(self, table_name: str) -> dict[str, Any]:
        model = self.m.data[table_name]
        # Every write gives a row a new, higher seq, but a purge of tombstones (by any process,
        # e.g. `machines gc`) can bring MAX(seq) back to a value already cached while the
        # live rows differ: the row count tells those states apart (rows at or below a seq
        # can only go away, never come back).
        top, rows_now = model.select(pw.fn.MAX(model.seq), pw.fn.COUNT(model.id)).tuples().get()
        table_head = (top or 0, rows_now)
        with self._cache_lock:
            cached = self._summary_cache.get(table_name)
        if cached and cached[0] == table_head:
            return dict(cached[1])
        rows = model.select(model.updated_at, model.digest).where(model.deleted == False).tuples()  # noqa: E712
        result = summarize(table_name, rows)
        with self._cache_lock:
            self._summary_cache[table_name] = (table_head, result)
        return dict(result)

    def reconcile(
        self, machine_id: str, client_summary: dict[str, dict[str, Any]], client_cursor: int | None
    ) -> dict[str, Any]:
        """Compare a client's summary with ours, log it, and say consistent/divergent/retry."""
        server_summary, head, stable = self.summary()
        by_table = {s["table"]: s for s in server_summary}
        mismatches = []
        for table_name, client in client_summary.items():
            server = by_table[table_name]
            reasons = compare_summaries(server, client)
            if reasons:
                mismatches.append(
                    {
                        "table": table_name,
                        "reason": ", ".join(f"{r}_mismatch" for r in reasons),
                        "server": server,
                        "client": {"table": table_name, **client},
                    }
                )
        if not mismatches:
            status = "consistent"
        elif not stable or (client_cursor is not None and client_cursor < head):
            # The server moved after the client's last pull: a difference now proves nothing.
            status = "retry"
        else:
            status = "divergent"
        now = self.clock()
        with self.connection(), self.db.atomic():
            entry = self.m.ReconcileLog.create(
                machine_id=machine_id,
                status=status,
                is_consistent=status == "consistent",
                mismatches_count=len(mismatches),
                mismatches=dumps(mismatches),
                client_summary=dumps(client_summary),
                server_summary=dumps(server_summary),
                cursor=head,
                created_at=now,
            )
            # Only a machine we already know gets its last_seen moved: a one-off checker (the
            # `smoke` command, a seed client) must not become a machine whose cursor holds
            # back tombstone garbage collection forever.
            M = self.m.Machine
            M.update(last_seen=now).where(M.machine_id == machine_id).execute()
        return {
            "isConsistent": status == "consistent",
            "status": status,
            "retry": status == "retry",
            "mismatches": mismatches,
            "serverSummary": server_summary,
            "cursor": head,
            "id": entry.id,
        }

    def history(
        self, *, limit: int = 50, machine_id: str | None = None, only_inconsistent: bool = False
    ) -> list[dict[str, Any]]:
        L = self.m.ReconcileLog
        q = L.select().order_by(L.id.desc()).limit(max(1, min(limit, 1000)))
        if machine_id:
            q = q.where(L.machine_id == machine_id)
        if only_inconsistent:
            q = q.where(L.status == "divergent")
        with self.connection():
            return [
                {
                    "id": e.id,
                    "machine_id": e.machine_id,
                    "is_consistent": e.is_consistent,
                    "status": e.status,
                    "mismatches_count": e.mismatches_count,
                    "mismatches": loads(e.mismatches),
                    "cursor": e.cursor,
                    "created_at": to_iso(e.created_at),
                }
                for e in q
            ]

    def buckets(self, table_name: str) -> dict[str, Any]:
        table = _table(table_name)
        model = self.m.data[table.name]
        with self.connection():
            head = self._head()
            rows = model.select(model.bucket, model.digest).where(model.deleted == False).tuples()  # noqa: E712
            per_bucket = bucket_summaries(rows)
        return {
            "table": table.name,
            "buckets": {str(b): v for b, v in per_bucket.items()},
            "cursor": head,
        }

    def bucket_rows(self, table_name: str, buckets: list[int]) -> dict[str, Any]:
        table = _table(table_name)
        model = self.m.data[table.name]
        with self.connection():
            head = self._head()
            q = model.select().where((model.deleted == False) & (model.bucket.in_(buckets)))  # noqa: E712
            rows = [to_wire(table, _from_db(r)) for r in q.order_by(model.id).dicts()]
        return {"table": table.name, "buckets": buckets, "rows": rows, "cursor": head}

    # -- operations --------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        M = self.m.Machine
        with self.connection():
            machines = [
                {
                    "machineId": m.machine_id,
                    "firstSeen": to_iso(m.first_seen),
                    "lastSeen": to_iso(m.last_seen),
                    "cursor": max(m.cursor, 0),  # -1: never pulled
                    "eventsPushed": m.events_pushed,
                }
                for m in M.select().order_by(M.machine_id)
            ]
            return {
                "cursor": self._head(),
                "eventsProcessed": self._state("events_applied"),
                "conflicts": self._state("conflicts_stale"),
                "rejected": self._state("events_rejected"),
                "tombstoneHorizon": self._state("tombstone_horizon"),
                "machines": machines,
            }

    def collect_garbage(self, *, keep_events_days: int = 30) -> dict[str, int]:
        """Purge tombstones every known machine has pulled past, and old idempotency records."""
        now = self.clock()
        with self.connection(), self._write_transaction():
            M = self.m.Machine
            low = M.select(pw.fn.MIN(M.cursor)).scalar()
            if low is None:
                low = 0
            purged = 0
            for model in self.m.data.values():
                tombstones = (model.deleted == True) & (model.seq <= low)  # noqa: E712 - peewee expression
                purged += model.delete().where(tombstones).execute()
            horizon = max(self._state("tombstone_horizon"), low if purged else 0)
            S = self.m.SyncState
            S.insert(key="tombstone_horizon", value=horizon).on_conflict(
                conflict_target=[S.key], preserve=[S.value]
            ).execute()
            cutoff = now - keep_events_days * 86_400_000
            events = self.m.Event.delete().where(self.m.Event.created_at < cutoff).execute()
        return {"tombstones": purged, "events": events, "horizon": horizon}


# -- merge rules -------------------------------------------------------------------------


def _merge(
    change: Change, row: dict[str, Any] | None, now: int
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Apply one change to the stored row by the protocol's merge rule. Returns (result,
    new row or None if unchanged)."""
    edit = effective_edit_time(change, now)
    merged = merge(change, row, edit)
    base: dict[str, Any] = {"id": change.id, "table": change.table.name}
    if merged.status is ResultStatus.STALE:
        assert merged.stored_lww_at is not None
        return {
            **base,
            "status": STALE,
            "resolution": STALE,
            "serverUpdatedAt": to_iso(merged.stored_lww_at),
            "clientUpdatedAt": to_iso(edit),
        }, None
    if merged.status is ResultStatus.REJECTED:
        return {**base, "status": REJECTED, "reason": merged.reason, "error": merged.error}, None
    assert merged.row is not None
    result = {**base, "status": APPLIED}
    if merged.warning:
        result["warning"] = merged.warning
    return result, _finish(change.table, merged.row)


def _finish(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    row["digest"] = 0 if row.get("_deleted") else to_signed(row_digest(table, row))
    row["bucket"] = bucket_of(row["id"])
    return row


def _rejection(e: PushItem) -> dict[str, Any]:
    assert e.error is not None
    return {
        "eventId": e.event_id,
        "id": e.record_id,
        "table": e.table,
        "status": REJECTED,
        "resolution": REJECTED,
        "reason": e.error.code,
        "error": e.error.message,
    }


def _from_db(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["updatedAt"] = out.pop("updated_at")
    out["_deleted"] = bool(out.pop("deleted"))
    return out


def _to_db(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    out = {
        "id": row["id"],
        "updated_at": row["updatedAt"],
        "lww_at": row["lww_at"],
        "deleted": bool(row.get("_deleted")),
        "seq": row["seq"],
        "digest": row["digest"],
        "bucket": row["bucket"],
    }
    for name in table.field_names:
        out[name] = row.get(name)
    return out


def _table(name: str) -> Table:
    table = TABLES.get(name)
    if table is None:
        raise ProtocolError(
            "unknown_table",
            f"unknown table '{str(name)[:40]}' (expected one of: {', '.join(TABLES)})",
            status=404,
        )
    return table


def _page(limit: int) -> int:
    if limit < 1:
        raise ProtocolError("invalid_limit", "limit: must be >= 1", status=400)
    return min(limit, MAX_PAGE)


def _chunks(items: list, size: int = _CHUNK) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def parse_day_range(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    """`start_date=2024-01-01&end_date=2024-01-31` -> inclusive epoch-ms bounds (UTC days)."""
    lo = hi = None
    if start:
        lo = (
            parse_ms(start.strip()[:10] + "T00:00:00Z", "start_date")
            if len(start.strip()) == 10
            else parse_ms(start, "start_date")
        )
    if end:
        hi = (
            parse_ms(end.strip()[:10] + "T23:59:59.999Z", "end_date")
            if len(end.strip()) == 10
            else parse_ms(end, "end_date")
        )
    if lo is not None and hi is not None and lo > hi:
        raise ProtocolError("invalid_date_range", "start_date is after end_date", status=400)
    return lo, hi


def _quote(name: str) -> str:
    """An SQL identifier, double-quoted (SQLite and PostgreSQL alike)."""
    return '"' + name.replace('"', '""') + '"'
