"""The agent's local store: the POS's writes, the outbox and the mirror of the server.

Every local write commits its row change and its outbox event in one SQLite transaction
(WAL, synchronous=FULL): once the POS gets its answer, a power cut loses nothing.

The view rows the POS reads are always `shadow + pending events`: the server's last known
version of the row with this machine's unacknowledged edits applied on top. So an incoming
change never clobbers a local edit still in the outbox (invariant 9), and a pending stock
decrement stays counted on top of whatever the server sends.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import peewee as pw

from protocol import (
    TABLES,
    Change,
    Kind,
    Op,
    ProtocolError,
    bucket_of,
    bucket_summaries,
    combine,
    dumps,
    from_wire,
    loads,
    parse_ms,
    row_digest,
    to_iso,
    to_wire,
)
from protocol.merge import merge
from protocol.records import parse_change
from protocol.vocabulary import ResultStatus

from .migrations import migrate
from .models import StoreModels, bind_models, column_name

log = logging.getLogger(__name__)

PENDING, SENT, DEAD = "pending", "sent", "dead"
# Sent events are kept this long so a POS retrying an old request is answered "duplicate".
SENT_RETENTION_MS = 7 * 86_400_000
# The purge of those scans every sent event: once an hour is enough, not on every ack.
PURGE_EVERY_MS = 3_600_000
# Rows per `IN (...)` query: well under SQLite's limit of bound parameters.
_CHUNK = 500


@dataclass
class OutboxEvent:
    id: int
    event_id: str
    table: str
    record_id: str
    op: str
    payload: dict[str, Any]
    group_id: str | None
    created_at: int
    attempts: int
    next_attempt_at: int
    last_error: str | None
    state: str
    reason: str | None = None  # the server's reason code for a refusal (dead letters)

    def wire(self) -> dict[str, Any]:
        return {"eventId": self.event_id, "table": self.table, "record": self.payload}


def open_database(path: Path | str) -> pw.SqliteDatabase:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return pw.SqliteDatabase(
        str(path),
        # synchronous=FULL: a write acknowledged to the POS must survive a power cut; in WAL
        # mode NORMAL can lose the last commits. IMMEDIATE: writers queue, never deadlock.
        pragmas={
            "journal_mode": "wal",
            "synchronous": "full",
            "foreign_keys": 1,
            "busy_timeout": 10_000,
        },
        lock_type="IMMEDIATE",
        timeout=10,
    )


class Store:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.db = open_database(self.path)
        with self.db.connection_context():
            migrate(self.db)
        self.m: StoreModels = bind_models(self.db)
        self._lock = threading.RLock()  # one writer at a time inside this process
        self._next_purge_at = 0  # when acknowledge() next purges old sent events

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _mirror_transaction(self) -> Iterator[None]:
        """A transaction holding only what the server already has: its rows and cursor, and
        its answers to events already pushed. Committed with synchronous=NORMAL (no fsync of
        its own), and only those: a POS write and its outbox event (`write`) are never in
        one, they always commit with FULL.

        Why that is safe: in WAL mode a NORMAL commit is atomic and ordered, but a power cut
        may lose it (never a later FULL commit: the WAL is appended in order and the next
        FULL commit's fsync makes every earlier frame durable with it). Losing one only takes
        the store back a little: pulled rows and the cursor go back, and are pulled again;
        an acknowledged event is pending again, is pushed again, and the server answers it
        "duplicate" with its original result (invariant 2). Nothing the POS was told is
        stored depends on it.
        """
        conn = self.db.connection()
        if self.db.transaction_depth() > 0:  # inside a caller's transaction: its rules
            with self.db.atomic():
                yield
            return
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            with self.db.atomic():
                yield
        finally:
            conn.execute("PRAGMA synchronous=FULL")

    # -- small state -------------------------------------------------------------------

    def get_state(self, key: str, default: str | None = None) -> str | None:
        # Plain SQL: the cursor is read several times per sync cycle and per notice.
        row = self.db.execute_sql("SELECT value FROM sync_state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_state(self, key: str, value: str) -> None:
        S = self.m.State
        S.insert(key=key, value=value).on_conflict(
            conflict_target=[S.key], preserve=[S.value]
        ).execute()

    @property
    def cursor(self) -> int:
        return int(self.get_state("cursor", "0") or 0)

    # -- local writes (from the POS) -----------------------------------------------------

    def write(
        self,
        items: Sequence[tuple[str, Change]],
        now: int,
        *,
        group_id: str | None = None,
        atomic: bool = True,
    ) -> list[dict[str, Any]]:
        """Record local writes: view row + outbox event, in one transaction per call.

        A change that cannot apply (an increment of an unknown record) raises ProtocolError
        and nothing of the call is stored when `atomic`; otherwise it alone is answered
        "rejected". A repeated eventId is answered "duplicate" and changes nothing.
        """
        results: list[dict[str, Any]] = []
        with self._lock, self.db.atomic():
            O = self.m.Outbox
            # Set-based: the known eventIds and the current view rows in one query per 500,
            # then the outbox rows and the view rows written with executemany.
            known: dict[str, str] = {}
            for chunk in _chunks(list(dict.fromkeys(e for e, _ in items))):
                known.update(O.select(O.event_id, O.state).where(O.event_id.in_(chunk)).tuples())
            views = self._view_rows_many({(c.table.name, c.id) for _, c in items})
            outbox: list[tuple[Any, ...]] = []
            changed: dict[tuple[str, str], dict[str, Any] | None] = {}
            seen: set[str] = set()
            for event_id, change in items:
                base = {"eventId": event_id, "id": change.id, "table": change.table.name}
                if event_id in known or event_id in seen:
                    results.append(
                        {**base, "status": "duplicate", "state": known.get(event_id, PENDING)}
                    )
                    continue
                key = (change.table.name, change.id)
                current = views.get(key)
                edited_at = change.edited_at if change.edited_at is not None else now
                error = None
                if change.op is Op.INCREMENT and current is None:
                    error = ProtocolError(
                        "unknown_record",
                        f"{change.table.name}/{change.id} does not exist",
                        status=404,
                    )
                elif change.op is Op.INCREMENT:
                    error = _out_of_range(change, current, edited_at)
                if error is not None:
                    if atomic:
                        raise error
                    results.append(
                        {**base, "status": "rejected", "reason": error.code, "error": error.message}
                    )
                    continue
                seen.add(event_id)
                outbox.append(
                    (
                        event_id,
                        change.table.name,
                        change.id,
                        change.op.value,
                        dumps(_payload(change, edited_at)),
                        group_id,
                        PENDING,
                        now,
                        0,
                    )
                )
                # A later change of the same row in this call applies on top of this one.
                new = _apply(change.table.name, current, change, edited_at)
                changed[key] = new
                if new is None:
                    views.pop(key, None)
                else:
                    views[key] = new
                results.append({**base, "status": "accepted"})
            if outbox:
                # The outbox ids (AUTOINCREMENT) follow the order of `items`: push order.
                self.db.cursor().executemany(
                    "INSERT INTO outbox (event_id, table_name, record_id, op, payload, group_id, state, "
                    "created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    outbox,
                )
            self._put_views(changed)
        return results

    # -- reads (what the POS sees) -------------------------------------------------------

    def _view_row(self, table: str, row_id: str) -> dict[str, Any] | None:
        model = self.m.views[table]
        row = model.select().where(model.id == row_id).dicts().first()
        return None if row is None else _from_view(row)

    def _view_rows_many(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """The view rows of these (table, id) keys that exist: one query per table and 500."""
        wanted: dict[str, set[str]] = {}
        for table, row_id in keys:
            wanted.setdefault(table, set()).add(row_id)
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for table, ids in wanted.items():
            # Plain SQL and conversions (as the models read them): building this query
            # through peewee cost more than running it.
            select, convert = _VIEW_SELECT[table]
            for chunk in _chunks(sorted(ids)):
                q = self.db.execute_sql(
                    f"{select} WHERE id IN ({', '.join('?' * len(chunk))})", chunk
                )
                for values in q.fetchall():
                    row = {"id": values[0], "updatedAt": values[1]}
                    for (name, conv), value in zip(convert, values[2:], strict=True):
                        row[name] = value if value is None or conv is None else conv(value)
                    out[(table, values[0])] = row
        return out

    def get_many(self, table: str, row_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The wire records of those ids that exist, in the order asked."""
        rows = self._view_rows_many((table, i) for i in row_ids)
        return [to_wire(TABLES[table], rows[(table, i)]) for i in row_ids if (table, i) in rows]

    def get(self, table: str, row_id: str) -> dict[str, Any] | None:
        row = self._view_row(table, row_id)
        return None if row is None else to_wire(TABLES[table], row)

    def list(
        self, table: str, *, created_from: int | None = None, created_to: int | None = None
    ) -> list[dict[str, Any]]:
        model = self.m.views[table]
        q = model.select()
        if created_from is not None:
            q = q.where(model.createdAt >= created_from)
        if created_to is not None:
            q = q.where(model.createdAt <= created_to)
        q = q.order_by(model.createdAt.desc() if table == "orders" else model.id)
        out = []
        for row in q.dicts():
            out.append(to_wire(TABLES[table], _from_view(row)))
        return out

    def count(self, table: str) -> int:
        return self.m.views[table].select().count()

    def _put_views(self, rows: dict[tuple[str, str], dict[str, Any] | None]) -> None:
        """Write view rows (None deletes) with one prepared statement per table and kind:
        building the SQL of every row through peewee cost more than SQLite's work."""
        by_table: dict[str, tuple[list[tuple[str]], list[tuple[Any, ...]]]] = {}
        for (table, row_id), row in rows.items():
            gone, put = by_table.setdefault(table, ([], []))
            if row is None:
                gone.append((row_id,))
            else:
                put.append(_view_values(table, row_id, row))
        sql = self.db.cursor()
        for table, (gone, put) in by_table.items():
            if gone:
                sql.executemany(f'DELETE FROM "{table}" WHERE id = ?', gone)
            if put:
                sql.executemany(_VIEW_INSERT[table], put)

    # -- the outbox ----------------------------------------------------------------------

    def _event(self, r: Any) -> OutboxEvent:
        return OutboxEvent(
            r.id,
            r.event_id,
            r.table_name,
            r.record_id,
            r.op,
            loads(r.payload),
            r.group_id,
            r.created_at,
            r.attempts,
            r.next_attempt_at,
            r.last_error,
            r.state,
            _reason(r.result) if r.state == DEAD else None,
        )

    def due_events(self, now: int, limit: int = 500) -> list[OutboxEvent]:
        """The oldest pending events, in order, without splitting an atomic group.

        If the oldest pending event is not due yet (backoff), nothing is due: events are
        pushed in order so a later edit never overtakes an earlier one.
        """
        O = self.m.Outbox
        # Plain tuples: this runs before every push, and model instances cost more than SQLite.
        events = [
            _event_of(*row)
            for row in self.db.execute_sql(
                f"SELECT {_EVENT_COLUMNS} FROM outbox WHERE state = ? ORDER BY id LIMIT ?",
                (PENDING, limit + 1),
            ).fetchall()
        ]
        if not events or events[0].next_attempt_at > now:
            return []
        if len(events) > limit:
            last_group = events[limit].group_id
            events = events[:limit]
            if last_group is not None:
                trimmed = [e for e in events if e.group_id != last_group]
                if not trimmed:
                    # A group bigger than a page goes alone, whole: the server commits a
                    # batch as one transaction, so a sale split in two is no longer atomic.
                    group = O.select().where((O.state == PENDING) & (O.group_id == last_group))
                    trimmed = [self._event(r) for r in group.order_by(O.id)]
                events = trimmed
        return events

    def pending_count(self) -> int:
        O = self.m.Outbox
        return O.select().where(O.state == PENDING).count()

    def outbox_facts(self) -> tuple[int, int | None, int]:
        """(pending count, oldest pending created_at, dead letter count) in one indexed query."""
        found = {
            state: (count, oldest)
            for state, count, oldest in self.db.execute_sql(
                "SELECT state, COUNT(*), MIN(created_at) FROM outbox WHERE state IN (?, ?) GROUP BY state",
                (PENDING, DEAD),
            ).fetchall()
        }
        pending, oldest = found.get(PENDING, (0, None))
        return pending, oldest, found.get(DEAD, (0, None))[0]

    def oldest_pending_at(self) -> int | None:
        O = self.m.Outbox
        return O.select(pw.fn.MIN(O.created_at)).where(O.state == PENDING).scalar()

    def dead_letters(self) -> list[OutboxEvent]:
        O = self.m.Outbox
        return [self._event(r) for r in O.select().where(O.state == DEAD).order_by(O.id)]

    def pending_events(self, limit: int = 200) -> list[OutboxEvent]:
        O = self.m.Outbox
        return [
            self._event(r) for r in O.select().where(O.state == PENDING).order_by(O.id).limit(limit)
        ]

    def record_failure(self, event_ids: Iterable[str], error: str, next_attempt_at: int) -> None:
        O = self.m.Outbox
        ids = list(event_ids)
        if not ids:
            return
        with self._lock, self.db.atomic():
            O.update(
                attempts=O.attempts + 1, last_error=error[:500], next_attempt_at=next_attempt_at
            ).where(O.event_id.in_(ids) & (O.state == PENDING)).execute()

    def retry_dead(self, event_id: str) -> bool:
        """Put a dead letter back in line at its original place (its effect shows again in
        the view). A sale goes back whole: never an item without its order."""
        O = self.m.Outbox
        with self._lock, self.db.atomic():
            rows = self._dead_with_its_sale(event_id)
            if not rows:
                return False
            O.update(state=PENDING, attempts=0, next_attempt_at=0, last_error=None).where(
                O.id.in_([r.id for r in rows])
            ).execute()
            for row in rows:
                self._rebuild(row.table_name, row.record_id)
        return True

    def discard_dead(self, event_id: str) -> bool:
        """Drop a dead letter for good; a sale's dead letters go together."""
        O = self.m.Outbox
        with self._lock, self.db.atomic():
            rows = self._dead_with_its_sale(event_id)
            if not rows:
                return False
            O.delete().where(O.id.in_([r.id for r in rows])).execute()
            for row in rows:
                self._rebuild(row.table_name, row.record_id)
        return True

    def _dead_with_its_sale(self, event_id: str) -> list[Any]:
        """The dead letter `event_id` and the other dead events of its atomic group."""
        O = self.m.Outbox
        row = O.get_or_none((O.event_id == event_id) & (O.state == DEAD))
        if row is None:
            return []
        if not row.group_id:
            return [row]
        return list(
            O.select().where((O.group_id == row.group_id) & (O.state == DEAD)).order_by(O.id)
        )

    # -- acknowledgements and pulled changes (from the server) ------------------------

    def acknowledge(
        self,
        results: Sequence[dict[str, Any]],
        now: int,
        changes: Sequence[dict[str, Any]] = (),
        cursor: int | None = None,
    ) -> dict[str, int]:
        """Apply the server's per-event results, and pulled changes, in one transaction.

        applied/duplicate: the event is done; its row is rebuilt when the server's version
        arrives (in `changes`, or in the next pull), so the view never flickers back.
        skipped_stale: done; the row is rebuilt from the server's version now.
        rejected: the event becomes a dead letter, and stops showing in the view.
        """
        O = self.m.Outbox
        counts = {"applied": 0, "stale": 0, "rejected": 0}
        with self._lock, self._mirror_transaction():
            # Server changes up to this sequence number are already in the shadow rows (or
            # arrive in `changes` now).
            known_seq = max(self.cursor, cursor if cursor is not None else 0)
            touched: set[tuple[str, str]] = set()
            # The pending events named by the results: one query per 500, not one per result.
            ids = [r.get("eventId") for r in results if isinstance(r.get("eventId"), str)]
            pending: dict[str, tuple[int, str, str]] = {}
            for chunk in _chunks(list(dict.fromkeys(ids))):
                q = O.select(O.event_id, O.id, O.table_name, O.record_id).where(
                    O.event_id.in_(chunk) & (O.state == PENDING)
                )
                pending.update((e, (pk, t, rid)) for e, pk, t, rid in q.tuples())
            dead: list[tuple[Any, ...]] = []
            sent: list[tuple[Any, ...]] = []
            for r in results:
                # pop: a result repeated in one reply counts once, as the event is no longer
                # pending after the first.
                found = pending.pop(r.get("eventId"), None)
                if found is None:
                    continue
                pk, table_name, record_id = found
                status = r.get("status")
                if status == "rejected":
                    reason = r.get("error") or r.get("reason") or "rejected by the server"
                    dead.append((DEAD, str(reason)[:500], dumps(r), pk))
                    counts["rejected"] += 1
                    touched.add((table_name, record_id))
                else:
                    sent.append((SENT, now, dumps(r), pk))
                    if status == "skipped_stale":
                        counts["stale"] += 1
                        touched.add((table_name, record_id))
                    else:
                        counts["applied"] += 1
                        seq = r.get("seq")
                        # Rebuild now when no row will come (nothing changed on the server),
                        # or when it came already: a duplicate acknowledged after a pull
                        # that carried its effect (the first reply was lost) would otherwise
                        # leave that effect counted twice (shadow + the event) in the view.
                        if seq is None or int(seq) <= known_seq:
                            touched.add((table_name, record_id))
            sql = self.db.cursor()
            if dead:
                sql.executemany(
                    "UPDATE outbox SET state = ?, last_error = ?, result = ? WHERE id = ?", dead
                )
            if sent:
                sql.executemany(
                    "UPDATE outbox SET state = ?, sent_at = ?, result = ?, last_error = NULL WHERE id = ?",
                    sent,
                )
            shadows = self._apply_changes(changes, touched)
            self._rebuild_many(touched, shadows)
            if cursor is not None:
                self.set_state("cursor", str(cursor))
            if now >= self._next_purge_at:
                O.delete().where(
                    (O.state == SENT) & (O.sent_at < now - SENT_RETENTION_MS)
                ).execute()
                self._next_purge_at = now + PURGE_EVERY_MS
        return counts

    def apply_pulled(self, changes: Sequence[dict[str, Any]], cursor: int) -> int:
        """Store a page of pulled changes and the new cursor, atomically."""
        if not changes and cursor == self.cursor:
            return 0  # nothing new (an idle poll): no transaction, no commit
        with self._lock, self._mirror_transaction():
            touched: set[tuple[str, str]] = set()
            shadows = self._apply_changes(changes, touched)
            self._rebuild_many(touched, shadows)
            self.set_state("cursor", str(cursor))
        return len(changes)

    def _apply_changes(
        self, changes: Iterable[dict[str, Any]], touched: set[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, Any] | None]:
        """Store the server's versions (one executemany); returns them as rows, None for a
        tombstone, so the rebuild that follows need not read them back."""
        params: list[tuple[Any, ...]] = []
        shadows: dict[tuple[str, str], dict[str, Any] | None] = {}
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
            touched.add((table, row_id))
        if params:
            self.db.cursor().executemany(
                "INSERT OR REPLACE INTO server_rows (table_name, row_id, data, deleted, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                params,
            )
        return shadows

    def _rebuild(self, table: str, row_id: str) -> None:
        """View row := server's version + this machine's pending events, in order."""
        self._rebuild_many([(table, row_id)])

    def _rebuild_many(
        self,
        keys: Iterable[tuple[str, str]],
        shadows: dict[tuple[str, str], dict[str, Any] | None] | None = None,
    ) -> None:
        """`_rebuild` of many rows: per table and 500 rows, one query for the shadows not
        given in `shadows`, one for the pending events, one executemany for the views."""
        known = shadows or {}
        O, S = self.m.Outbox, self.m.ServerRow
        wanted: dict[str, set[str]] = {}
        for table, row_id in keys:
            wanted.setdefault(table, set()).add(row_id)
        views: dict[tuple[str, str], dict[str, Any] | None] = {}
        for table, id_set in wanted.items():
            t = TABLES[table]
            ids = sorted(id_set)
            base: dict[str, dict[str, Any] | None] = {
                i: known[(table, i)] for i in ids if (table, i) in known
            }
            for chunk in _chunks([i for i in ids if i not in base]):
                q = S.select(S.row_id, S.data, S.deleted).where(
                    (S.table_name == table) & S.row_id.in_(chunk)
                )
                for row_id, data, deleted in q.tuples():
                    base[row_id] = None if deleted else from_wire(t, loads(data))
            events: dict[str, list[tuple[str, int]]] = {}
            for chunk in _chunks(ids):
                q = (
                    O.select(O.record_id, O.payload, O.created_at)
                    .where((O.table_name == table) & O.record_id.in_(chunk) & (O.state == PENDING))
                    .order_by(O.id)
                )
                for record_id, payload, created_at in q.tuples():
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
                    row = _apply(table, row, change, change.edited_at or created_at)
                views[(table, row_id)] = row
        self._put_views(views)

    # -- resync and repair -----------------------------------------------------------------

    def reset_mirror(self) -> None:
        """Forget the server's state (before a full resync); pending events are kept."""
        with self._lock, self.db.atomic():
            self.m.ServerRow.delete().execute()
            for model in self.m.views.values():
                model.delete().execute()
            self.set_state("cursor", "0")
            O = self.m.Outbox
            q = O.select(O.table_name, O.record_id).where(O.state == PENDING).distinct().tuples()
            self._rebuild_many(list(q))

    def replace_buckets(
        self, table: str, buckets: Iterable[int], server_rows: Sequence[dict[str, Any]]
    ) -> dict[str, Any]:
        """Make the given buckets of a table equal to the server's rows (pending edits kept).

        Returns what changed: rows fixed (added or corrected) and rows removed.
        """
        wanted = set(buckets)
        S = self.m.ServerRow
        with self._lock, self.db.atomic():
            before = {
                r["id"]: r
                for r in (
                    self._view_as_wire(table, rid) for rid in self._view_ids_in(table, wanted)
                )
                if r
            }
            incoming = {str(r["id"]): r for r in server_rows}
            fixed, removed = [], []
            for row_id in set(before) - set(incoming):
                S.delete().where((S.table_name == table) & (S.row_id == row_id)).execute()
                self._rebuild(table, row_id)
                after = self._view_as_wire(table, row_id)
                if after is None:
                    removed.append(row_id)
                elif after != before[row_id]:  # a pending edit keeps it, on a fresh base
                    fixed.append(row_id)
            touched: set[tuple[str, str]] = set()
            self._apply_changes(({"table": table, "record": r} for r in incoming.values()), touched)
            for _, row_id in touched:
                self._rebuild(table, row_id)
                if before.get(row_id) != self._view_as_wire(table, row_id):
                    fixed.append(row_id)
        return {
            "table": table,
            "buckets": sorted(wanted),
            "fixed": sorted(fixed),
            "removed": sorted(removed),
        }

    def _view_ids_in(self, table: str, buckets: set[int]) -> list[str]:
        model = self.m.views[table]
        return [rid for (rid,) in model.select(model.id).tuples() if bucket_of(rid) in buckets]

    def _view_as_wire(self, table: str, row_id: str) -> dict[str, Any] | None:
        return self.get(table, row_id)

    # -- summaries (reconcile) ---------------------------------------------------------------

    def _live_rows(self, table: str) -> Iterable[dict[str, Any]]:
        model = self.m.views[table]
        for row in model.select().dicts():
            yield _from_view(row)

    def summary(self) -> dict[str, dict[str, Any]]:
        """`{table: {count, latestUpdatedAt, checksum}}` of the view, as the server computes it.

        Each view row carries its digest (written with the row, see `_view_values`), so this
        is one aggregate query per table, all in one read snapshot.
        """
        out = {}
        with self.db.atomic("DEFERRED"):  # a read snapshot (WAL): blocks no POS write
            for name in TABLES:
                count, latest, hi, lo = self.db.execute_sql(
                    f"SELECT COUNT(*), MAX(updated_at), COALESCE(SUM(digest_hi), 0), COALESCE(SUM(digest_lo), 0) "
                    f'FROM "{name}"'
                ).fetchone()
                checksum = combine([(int(hi) << 32) + int(lo)])
                out[name] = {
                    "count": count,
                    "latestUpdatedAt": to_iso(latest),
                    "checksum": checksum,
                }
        return out

    def check_digests(self) -> int:
        """Make every stored digest match its row's content again; returns how many did not.

        The store writes a row and its digest together, so they only disagree after an edit
        of the file that bypassed the store (a manual fix, a foreign tool). The summary reads
        the digests, so the engine runs this before a reconcile now and then: such an edit
        then shows up as the divergence it is, instead of hiding behind a stale digest.
        Reads without a write lock; rewrites only the rows found stale.
        """
        stale: list[tuple[str, str]] = []
        for name, t in TABLES.items():
            model = self.m.views[name]
            for row in model.select().dicts():
                stored = (row["digest_hi"] << 32) + row["digest_lo"]
                if row_digest(t, _from_view(row)) != stored:
                    stale.append((name, row["id"]))
        if not stale:
            return 0
        with self._lock, self.db.atomic():
            rows = self._view_rows_many(stale)  # again, inside the transaction: current content
            sql = self.db.cursor()
            for (name, row_id), row in rows.items():
                digest = row_digest(TABLES[name], row)
                sql.execute(
                    f'UPDATE "{name}" SET digest_hi = ?, digest_lo = ? WHERE id = ?',
                    (digest >> 32, digest & 0xFFFFFFFF, row_id),
                )
        return len(stale)

    def bucket_summary(self, table: str) -> dict[str, dict[str, Any]]:
        model = self.m.views[table]
        q = model.select(model.id, model.digest_hi, model.digest_lo).tuples()
        rows = ((bucket_of(row_id), (hi << 32) + lo) for row_id, hi, lo in q)
        return {str(b): v for b, v in bucket_summaries(rows).items()}

    # -- reconcile log -------------------------------------------------------------------------

    def log_reconcile(self, entry: dict[str, Any]) -> int:
        L = self.m.ReconcileLog
        with self._lock:
            row = L.create(
                created_at=entry["created_at"],
                status=entry["status"],
                is_consistent=entry["status"] in ("consistent", "repaired"),
                strategy=entry.get("strategy", "none"),
                mismatches=dumps(entry.get("mismatches", [])),
                repair=dumps(entry["repair"]) if entry.get("repair") is not None else None,
                server_log_id=entry.get("server_log_id"),
                error=entry.get("error"),
            )
        return row.id

    def reconcile_history(self, limit: int = 50) -> list[dict[str, Any]]:
        L = self.m.ReconcileLog
        return [
            {
                "id": r.id,
                "created_at": to_iso(r.created_at),
                "status": r.status,
                "is_consistent": r.is_consistent,
                "strategy": r.strategy,
                "mismatches": loads(r.mismatches),
                "repair": loads(r.repair) if r.repair else None,
                "server_log_id": r.server_log_id,
                "error": r.error,
            }
            for r in L.select().order_by(L.id.desc()).limit(limit)
        ]


_EVENT_COLUMNS = (
    "id, event_id, table_name, record_id, op, payload, group_id, created_at, attempts, "
    "next_attempt_at, last_error, state, result"
)


def _event_of(
    pk: int,
    event_id: str,
    table: str,
    record_id: str,
    op: str,
    payload: str,
    group_id: str | None,
    created_at: int,
    attempts: int,
    next_attempt_at: int,
    last_error: str | None,
    state: str,
    result: str | None,
) -> OutboxEvent:
    """An OutboxEvent from a row of `SELECT {_EVENT_COLUMNS}` (as Store._event builds it)."""
    return OutboxEvent(
        pk,
        event_id,
        table,
        record_id,
        op,
        loads(payload),
        group_id,
        created_at,
        attempts,
        next_attempt_at,
        last_error,
        state,
        _reason(result) if state == DEAD else None,
    )


def _reason(result: str | None) -> str | None:
    try:
        value = loads(result).get("reason") if result else None
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _payload(change: Change, edited_at: int) -> dict[str, Any]:
    """The wire record of a local change, stamped with its (clock-corrected) edit time."""
    table = change.table
    record: dict[str, Any] = {"id": change.id}
    if change.op is Op.DELETE:
        record["_op"] = "delete"
    elif change.op is Op.INCREMENT:
        record["_op"] = "increment"
        record.update(change.values)
    else:
        for name, value in change.values.items():
            f = table.field(name)
            record[name] = (
                to_iso(value) if f.kind.value == "timestamp" and value is not None else value
            )
    record["updatedAt"] = to_iso(edited_at)
    return record


def _out_of_range(
    change: Change, row: dict[str, Any] | None, edited_at: int
) -> ProtocolError | None:
    """An increment whose result the server would refuse (past what clients read back)."""
    merged = merge(change, row, edited_at, stale_check=False)
    if merged.status is ResultStatus.REJECTED:
        return ProtocolError("out_of_range", merged.error or "out of range", status=422)
    return None


def _apply(
    table: str, row: dict[str, Any] | None, change: Change, edited_at: int
) -> dict[str, Any] | None:
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


def _text(value: Any) -> Any:
    return None if value is None else str(value)


def _integer(value: Any) -> Any:
    return None if value is None else int(value)


def _decimal_text(value: Any) -> Any:
    return None if value is None else str(Decimal(value))  # as models.DecimalText stores it


_TO_DB = {
    Kind.TEXT: _text,
    Kind.DECIMAL: _decimal_text,
    Kind.INTEGER: _integer,
    Kind.TIMESTAMP: _integer,
}
# Per view table: its INSERT OR REPLACE, and (field, to-database conversion) per column, as
# the peewee models store them (see models._view_model).
_VIEW_INSERT: dict[str, str] = {}
_VIEW_CONVERT: dict[str, list[tuple[str, Callable[[Any], Any]]]] = {}
for _name, _t in TABLES.items():
    _cols = [
        "id",
        "updated_at",
        *(column_name(f.name) for f in _t.fields),
        "digest_hi",
        "digest_lo",
    ]
    _VIEW_INSERT[_name] = (
        f'INSERT OR REPLACE INTO "{_name}" ({", ".join(_cols)}) VALUES ({", ".join("?" * len(_cols))})'
    )
    _VIEW_CONVERT[_name] = [(f.name, _TO_DB[f.kind]) for f in _t.fields]


def _decimal_of(value: Any) -> Decimal:
    return Decimal(str(value))  # as models.DecimalText reads it


# Per view table: its SELECT (id, updated_at, fields), and (field, from-database conversion).
_VIEW_SELECT: dict[str, tuple[str, list[tuple[str, Callable[[Any], Any] | None]]]] = {
    name: (
        f'SELECT id, updated_at, {", ".join(column_name(f.name) for f in t.fields)} FROM "{name}"',
        [(f.name, _decimal_of if f.kind is Kind.DECIMAL else None) for f in t.fields],
    )
    for name, t in TABLES.items()
}


def _view_values(table: str, row_id: str, row: dict[str, Any]) -> tuple[Any, ...]:
    """The column values of a view row, its digest last. The digest is computed from the
    values as stored (what a read gives back), so it always matches the row on disk."""
    t = TABLES[table]
    stored = {"id": row_id, "updatedAt": int(row["updatedAt"])}
    for name, conv in _VIEW_CONVERT[table]:
        stored[name] = conv(row.get(name))
    digest = row_digest(t, stored)
    return (*stored.values(), digest >> 32, digest & 0xFFFFFFFF)


def _from_view(row: dict[str, Any]) -> dict[str, Any]:
    """A view row as read by peewee -> the store's row dict (updatedAt, no digest)."""
    row["updatedAt"] = row.pop("updated_at")
    del row["digest_hi"], row["digest_lo"]
    return row


def _chunks(items: list, size: int = _CHUNK) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


__all__ = ["Store", "OutboxEvent", "PENDING", "SENT", "DEAD", "json"]
