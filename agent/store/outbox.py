"""The outbox: this machine's events for the server, in push order. Pending until the server
answers, then sent (kept a while, so a POS retry is answered "duplicate") or dead (refused:
a dead letter the manager retries or discards, a sale always as a whole).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple, TypedDict

import peewee as pw

from protocol import dumps, loads
from protocol.records import dumps_with
from protocol.vocabulary import OutboxState, ResultStatus

from .context import StoreContext, chunks, tuples
from .view_sql import marks
from .views import Key, Views

# Sent events are kept this long so a POS retrying an old request is answered "duplicate".
SENT_RETENTION_MS = 7 * 86_400_000
# The purge of those scans every sent event: once an hour is enough, not on every ack.
PURGE_EVERY_MS = 3_600_000


@dataclass
class OutboxEvent:
    id: int
    event_id: str
    table: str
    record_id: str
    op: str
    payload_json: str  # the wire record as stored: JSON text from `protocol.dumps`
    group_id: str | None
    created_at: int
    attempts: int
    next_attempt_at: int
    last_error: str | None
    state: OutboxState
    reason: str | None = None  # the server's reason code for a refusal (dead letters)

    @cached_property
    def payload(self) -> dict[str, Any]:
        """The wire record, parsed when first asked for (a push sends the stored text)."""
        record: dict[str, Any] = loads(self.payload_json)
        return record

    def wire(self) -> dict[str, Any]:
        return {"eventId": self.event_id, "table": self.table, "record": self.payload}

    def wire_json(self) -> str:
        """`wire()` as JSON text, with the stored record as it is: no parse and re-encode
        of every record on every push (the bulk of a push's CPU on the agent)."""
        return dumps_with({"eventId": self.event_id, "table": self.table}, record=self.payload_json)


class NewEvent(NamedTuple):
    """An outbox row to insert, in the column order of `Outbox.append`'s statement."""

    event_id: str
    table: str
    record_id: str
    op: str
    payload: str  # the wire record as JSON text
    group_id: str | None
    created_at: int
    state: OutboxState = OutboxState.PENDING
    next_attempt_at: int = 0


class AckCounts(TypedDict):
    """What one acknowledgement did to the pending events it named."""

    applied: int  # applied or duplicate: done
    stale: int  # skipped_stale: done, the server's newer version shows
    rejected: int  # now dead letters


class Outbox:
    def __init__(self, ctx: StoreContext, views: Views) -> None:
        self._ctx = ctx
        self._views = views
        self._next_purge_at = 0  # when `purge_sent` next deletes old sent events

    # -- the local write path's side -----------------------------------------------------

    def states_of(self, event_ids: Sequence[str]) -> dict[str, OutboxState]:
        """The state of each of these events the outbox holds: one query per 500."""
        known: dict[str, OutboxState] = {}
        for chunk in chunks(event_ids):
            # Plain SQL: on every POS write, and peewee's query building cost more than SQLite.
            q = self._ctx.db.execute_sql(
                f"SELECT event_id, state FROM outbox WHERE event_id IN ({marks(chunk)})", chunk
            )
            known.update((event_id, OutboxState(state)) for event_id, state in q.fetchall())
        return known

    def append(self, events: Sequence[NewEvent]) -> None:
        """Insert events (one executemany). Their ids (AUTOINCREMENT) follow this order, which
        is the push order."""
        self._ctx.db.cursor().executemany(
            "INSERT INTO outbox (event_id, table_name, record_id, op, payload, group_id, "
            "created_at, state, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            events,
        )

    # -- reads -----------------------------------------------------------------------------

    def due_events(self, now: int, limit: int = 500) -> list[OutboxEvent]:
        """The oldest pending events, in order, without splitting an atomic group.

        If the oldest pending event is not due yet (backoff), nothing is due: events are
        pushed in order so a later edit never overtakes an earlier one.
        """
        O = self._ctx.m.Outbox
        # Plain tuples: this runs before every push, and model instances cost more than SQLite.
        events = [
            _event_of(*row)
            for row in self._ctx.db.execute_sql(
                f"SELECT {_EVENT_COLUMNS} FROM outbox WHERE state = ? ORDER BY id LIMIT ?",
                (OutboxState.PENDING, limit + 1),
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
                    group = O.select().where(
                        (O.state == OutboxState.PENDING) & (O.group_id == last_group)
                    )
                    trimmed = [_event(r) for r in group.order_by(O.id)]
                events = trimmed
        return events

    def pending_count(self) -> int:
        O = self._ctx.m.Outbox
        return int(O.select().where(O.state == OutboxState.PENDING).count())

    def facts(self) -> tuple[int, int | None, int]:
        """(pending count, oldest pending created_at, dead letter count) in one indexed query."""
        found = {
            state: (count, oldest)
            for state, count, oldest in self._ctx.db.execute_sql(
                "SELECT state, COUNT(*), MIN(created_at) FROM outbox WHERE state IN (?, ?) GROUP BY state",
                (OutboxState.PENDING, OutboxState.DEAD),
            ).fetchall()
        }
        pending, oldest = found.get(OutboxState.PENDING, (0, None))
        return pending, oldest, found.get(OutboxState.DEAD, (0, None))[0]

    def oldest_pending_at(self) -> int | None:
        O = self._ctx.m.Outbox
        oldest = O.select(pw.fn.MIN(O.created_at)).where(O.state == OutboxState.PENDING).scalar()
        return None if oldest is None else int(oldest)

    def dead_letters(self) -> list[OutboxEvent]:
        O = self._ctx.m.Outbox
        return [_event(r) for r in O.select().where(O.state == OutboxState.DEAD).order_by(O.id)]

    def pending_events(self, limit: int = 200) -> list[OutboxEvent]:
        # Plain tuples: the engine asks for the first one after every cycle (its retry time).
        return [
            _event_of(*row)
            for row in self._ctx.db.execute_sql(
                f"SELECT {_EVENT_COLUMNS} FROM outbox WHERE state = ? ORDER BY id LIMIT ?",
                (OutboxState.PENDING, limit),
            ).fetchall()
        ]

    def pending_keys(self) -> list[Key]:
        """The (table, id) of every row with a pending event."""
        O = self._ctx.m.Outbox
        q = O.select(O.table_name, O.record_id).where(O.state == OutboxState.PENDING)
        return [(table, record_id) for table, record_id in tuples(q.distinct())]

    # -- a push that failed ------------------------------------------------------------------

    def record_failure(self, event_ids: Iterable[str], error: str, next_attempt_at: int) -> None:
        O = self._ctx.m.Outbox
        ids = list(event_ids)
        if not ids:
            return
        with self._ctx.lock, self._ctx.db.atomic():
            O.update(
                attempts=O.attempts + 1, last_error=error[:500], next_attempt_at=next_attempt_at
            ).where(O.event_id.in_(ids) & (O.state == OutboxState.PENDING)).execute()

    # -- dead letters ------------------------------------------------------------------------

    def retry_dead(self, event_id: str) -> bool:
        """Put a dead letter back in line at its original place (its effect shows again in
        the view). A sale goes back whole: never an item without its order."""
        O = self._ctx.m.Outbox
        with self._ctx.lock, self._ctx.db.atomic():
            rows = self._dead_with_its_sale(event_id)
            if not rows:
                return False
            O.update(
                state=OutboxState.PENDING, attempts=0, next_attempt_at=0, last_error=None
            ).where(O.id.in_([r.id for r in rows])).execute()
            self._views.rebuild_many((r.table_name, r.record_id) for r in rows)
        return True

    def discard_dead(self, event_id: str) -> bool:
        """Drop a dead letter for good; a sale's dead letters go together."""
        O = self._ctx.m.Outbox
        with self._ctx.lock, self._ctx.db.atomic():
            rows = self._dead_with_its_sale(event_id)
            if not rows:
                return False
            O.delete().where(O.id.in_([r.id for r in rows])).execute()
            self._views.rebuild_many((r.table_name, r.record_id) for r in rows)
        return True

    def _dead_with_its_sale(self, event_id: str) -> list[Any]:
        """The dead letter `event_id` and the other dead events of its atomic group."""
        O = self._ctx.m.Outbox
        row = O.get_or_none((O.event_id == event_id) & (O.state == OutboxState.DEAD))
        if row is None:
            return []
        if not row.group_id:
            return [row]
        same_sale = (O.group_id == row.group_id) & (O.state == OutboxState.DEAD)
        return list(O.select().where(same_sale).order_by(O.id))

    # -- the server's answers ----------------------------------------------------------------

    def settle(
        self, results: Sequence[Mapping[str, Any]], now: int, known_seq: int
    ) -> tuple[AckCounts, set[Key]]:
        """Apply the server's per-event results to the pending events they name. Returns the
        counts, and the rows whose view must be rebuilt now.

        applied/duplicate: the event is sent; its row is rebuilt when the server's version
        arrives, so the view never flickers back, unless that version is already here
        (`seq` <= `known_seq`) or none will come (no `seq`).
        skipped_stale: sent; the row is rebuilt from the server's version now.
        rejected: the event becomes a dead letter, and stops showing in the view.
        """
        counts = AckCounts(applied=0, stale=0, rejected=0)
        touched: set[Key] = set()
        # The pending events named by the results: one query per 500, not one per result.
        ids = [r.get("eventId") for r in results if isinstance(r.get("eventId"), str)]
        pending: dict[str, tuple[int, str, str]] = {}
        for chunk in chunks(list(dict.fromkeys(ids))):
            q = self._ctx.db.execute_sql(
                "SELECT event_id, id, table_name, record_id FROM outbox "
                f"WHERE state = ? AND event_id IN ({marks(chunk)})",
                (OutboxState.PENDING.value, *chunk),
            )
            pending.update((e, (pk, t, rid)) for e, pk, t, rid in q.fetchall())
        dead: list[tuple[Any, ...]] = []
        sent: list[tuple[Any, ...]] = []
        for r in results:
            # pop: a result repeated in one reply counts once, as the event is no longer
            # pending after the first.
            event_id = r.get("eventId")
            found = pending.pop(event_id, None) if isinstance(event_id, str) else None
            if found is None:
                continue
            pk, table_name, record_id = found
            status = r.get("status")
            if status == ResultStatus.REJECTED:
                reason = r.get("error") or r.get("reason") or "rejected by the server"
                dead.append((OutboxState.DEAD, str(reason)[:500], dumps(r), pk))
                counts["rejected"] += 1
                touched.add((table_name, record_id))
                continue
            sent.append((OutboxState.SENT, now, dumps(r), pk))
            if status == ResultStatus.STALE:
                counts["stale"] += 1
                touched.add((table_name, record_id))
                continue
            counts["applied"] += 1
            seq = r.get("seq")
            # Rebuild now when no row will come (nothing changed on the server), or when it
            # came already: a duplicate acknowledged after a pull that carried its effect
            # (the first reply was lost) would otherwise leave that effect counted twice
            # (shadow + the event) in the view.
            if seq is None or int(seq) <= known_seq:
                touched.add((table_name, record_id))
        sql = self._ctx.db.cursor()
        if dead:
            sql.executemany(
                "UPDATE outbox SET state = ?, last_error = ?, result = ? WHERE id = ?", dead
            )
        if sent:
            sql.executemany(
                "UPDATE outbox SET state = ?, sent_at = ?, result = ?, last_error = NULL WHERE id = ?",
                sent,
            )
        return counts, touched

    def purge_sent(self, now: int) -> None:
        """Delete sent events past their retention; at most once an hour (it scans them all)."""
        if now < self._next_purge_at:
            return
        O = self._ctx.m.Outbox
        O.delete().where(
            (O.state == OutboxState.SENT) & (O.sent_at < now - SENT_RETENTION_MS)
        ).execute()
        self._next_purge_at = now + PURGE_EVERY_MS


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
    """An OutboxEvent from a row of `SELECT {_EVENT_COLUMNS}`."""
    return OutboxEvent(
        pk,
        event_id,
        table,
        record_id,
        op,
        payload,
        group_id,
        created_at,
        attempts,
        next_attempt_at,
        last_error,
        OutboxState(state),
        _reason(result) if state == OutboxState.DEAD else None,
    )


def _event(r: Any) -> OutboxEvent:
    """An OutboxEvent from an Outbox model instance."""
    return _event_of(
        r.id,
        r.event_id,
        r.table_name,
        r.record_id,
        r.op,
        r.payload,
        r.group_id,
        r.created_at,
        r.attempts,
        r.next_attempt_at,
        r.last_error,
        r.state,
        r.result,
    )


def _reason(result: str | None) -> str | None:
    try:
        value = loads(result).get("reason") if result else None
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
