"""The unit of work of a push: one transaction that merges the events into the stored rows
(protocol.merge), records each event's result for idempotency, moves the sequence head and
tells live clients. Everything is the shop's (the context's tenant): its rows, its receipts
(the same eventId in two shops is two events), its sequence, its notice.

Ordering: every committed change gets the next number of its shop's sequence (`seq`). A
shop's writers are serialised (a transaction-scoped advisory lock per shop on PostgreSQL,
`BEGIN IMMEDIATE` on SQLite) and the sequence head is stored in the same transaction as the
rows, so numbers become visible in commit order and a reader paging with `since` never skips
a change. The change time (`changed_at`) is read once the lock is held, as close to the
commit as the transaction allows (server/seedsync.py relies on it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _encode_str
from typing import Any, NotRequired, TypedDict, cast

import peewee as pw

from protocol import (
    TABLES,
    Change,
    ProtocolError,
    Table,
    bucket_of,
    dumps,
    row_digest,
    to_iso,
    to_signed,
    to_wire,
)
from protocol.merge import effective_edit_time, merge
from protocol.messages import PushItem
from protocol.tenancy import check_record_tenant
from protocol.vocabulary import Resolution, ResultStatus

from . import pull, pushdb
from .context import LiveChange, ServiceContext

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = pushdb.NOTIFY_CHANNEL
MAX_EVENTS_PER_REQUEST = 5000
# A commit of at most this many rows travels in its live notice (see hub.py).
LIVE_CHANGES_MAX = 100


class PushResult(TypedDict):
    """The server's answer for one pushed event (`results[]` on the wire), also stored with
    the event and replayed, with `duplicate: true`, when the event comes again."""

    eventId: str | None
    id: str | None
    table: str | None
    status: ResultStatus
    resolution: NotRequired[Resolution]  # stale and rejected results
    seq: NotRequired[int]  # applied: the change's sequence number
    reason: NotRequired[str]  # rejected: the error code
    error: NotRequired[str]  # rejected: the message
    warning: NotRequired[str]
    serverUpdatedAt: NotRequired[str]  # stale: the stored edit time
    clientUpdatedAt: NotRequired[str]  # stale: the refused edit time
    duplicate: NotRequired[bool]


@dataclass(frozen=True)
class PushOutcome:
    results: list[PushResult]  # one per event, in the order pushed
    head: int  # the sequence head after the push
    cursor_recorded: bool  # the pusher's pulled cursor was recorded as its machine's cursor
    # Every change numbered after `first_head` up to `head`, as committed (table -> id -> row):
    # the page after `first_head` needs no read (server/echo.py).
    first_head: int = 0
    changed: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    restore_gap: tuple[int, int] = (0, 0)  # the state's restore gap (see pull.check_cursor)


def check_size(events: Sequence[PushItem]) -> None:
    if len(events) > MAX_EVENTS_PER_REQUEST:
        raise ProtocolError(
            "too_many_events",
            f"at most {MAX_EVENTS_PER_REQUEST} events per request",
            status=413,
        )


def push(
    ctx: ServiceContext,
    machine_id: str | None,
    events: Sequence[PushItem],
    *,
    atomic_batch: bool = False,
    pulled_cursor: int | None = None,
    since: int | None = None,
) -> PushOutcome:
    """Apply events in one transaction, retried when a concurrent duplicate event collides.

    `pulled_cursor` (POST /api/sync/{table}): the cursor the same request pulls from; it is
    recorded as the machine's cursor in this transaction when the pull's check cannot depend
    on the recorded one (see service.push_and_pull).

    `since`: the pusher's cursor, refused (409 resync_required, pull.check_cursor) before
    anything is applied: after a restore, pushing the offline sales before pulling would
    move the head past the stale cursor, and the client would never be told that it missed
    the restore. Checked on the sync_state the push reads under its writer lock (no query
    of its own), and before the refusals made without the database (413, 422).

    A record naming another shop (`tenantId` inside it) refuses the whole push (400
    tenant_mismatch) before anything is written. With `atomic_batch`, so does an invalid
    (malformed) event: 422 invalid_batch.
    """
    try:
        check_size(events)
        invalid = [e for e in events if e.error is not None] if atomic_batch else []
        if invalid:
            raise ProtocolError(
                "invalid_batch",
                "the batch has invalid events; nothing was applied",
                invalid=[rejection(e) for e in invalid],
            )
        for e in events:
            if e.change is not None:
                check_record_tenant(e.change.tenant, ctx.tenant)
    except ProtocolError:
        if since:  # the cursor's refusal comes first
            with ctx.connection():
                pull.check_cursor(ctx, since, machine_id)
        raise
    for attempt in range(3):
        try:
            with ctx.connection():
                return _push_once(
                    ctx,
                    machine_id,
                    events,
                    atomic_batch=atomic_batch,
                    pulled_cursor=pulled_cursor,
                    since=since,
                )
        except pw.IntegrityError:
            # Only a concurrent duplicate eventId can get here (the unique key caught
            # it). The retry sees that event as a duplicate.
            if attempt == 2:
                raise
            log.info("push retried after a concurrent duplicate event")
    raise AssertionError("unreachable")


def _push_once(
    ctx: ServiceContext,
    machine_id: str | None,
    events: Sequence[PushItem],
    *,
    atomic_batch: bool,
    pulled_cursor: int | None,
    since: int | None,
) -> PushOutcome:
    valid = [(e.event_id, e.change) for e in events if e.change is not None]
    wanted: dict[str, set[str]] = {}
    for _, c in valid:
        wanted.setdefault(c.table.name, set()).add(c.id)
    event_ids = [event_id for event_id, _ in valid if event_id is not None]
    with pushdb.unit_of_work(ctx) as unit:
        state = unit.read(event_ids, wanted)
        if since:  # raised inside the transaction: it rolls back, nothing was written
            gap = (state.gap_low, state.gap_high)
            pull.check_cursor_with(ctx, since, machine_id, state.head, state.horizon, gap)
        now = ctx.clock()  # the change time: read with the shop's writer lock held
        head = first_head = state.head  # this commit's changes are the seqs after first_head
        record_cursor = (
            machine_id is not None
            and pulled_cursor is not None
            and (pulled_cursor == 0 or state.horizon <= pulled_cursor <= head)
        )
        seen = cast(dict[str, PushResult], state.seen)
        rows = state.rows
        dirty: dict[str, dict[str, dict[str, Any]]] = {}
        event_rows: list[dict[str, Any]] = []
        results: list[PushResult] = []
        stale = rejected = 0
        for e in events:
            if e.change is None or e.event_id is None:
                results.append(rejection(e))
                rejected += 1
                continue
            if e.event_id in seen:
                results.append({**seen[e.event_id], "duplicate": True})
                continue
            change = e.change
            key = (change.table.name, change.id)
            result, new_row = merge_one(change, rows.get(key), now, e.event_id)
            if new_row is not None:
                head += 1
                new_row["seq"] = head
                new_row["changed_at"] = now
                result["seq"] = head
                rows[key] = new_row
                dirty.setdefault(change.table.name, {})[change.id] = new_row
            if result["status"] is ResultStatus.STALE:
                stale += 1
            elif result["status"] is ResultStatus.REJECTED:
                rejected += 1
            seen[e.event_id] = result
            results.append(result)
            event_rows.append(
                {
                    "tenant_id": ctx.tenant,
                    "event_id": e.event_id,
                    "machine_id": machine_id,
                    "table_name": change.table.name,
                    "record_id": change.id,
                    "status": result["status"].value,
                    "result": receipt_text(result),
                    "seq": result.get("seq"),
                    "created_at": now,
                }
            )
        # The pusher's reply carries this commit's changes when it pulls after its cursor:
        # its own sockets need no notice of it (hub.py).
        answered = machine_id if pulled_cursor is not None else None
        refused = [
            r for r in results if r["status"] == ResultStatus.REJECTED and not r.get("duplicate")
        ]
        if atomic_batch and refused:
            # Raised inside the transaction: it rolls back, and nothing was written yet.
            raise ProtocolError(
                "invalid_batch",
                "the batch has invalid events; nothing was applied",
                invalid=[{**r, "resolution": Resolution.REJECTED} for r in refused],
            )
        unit.write(
            pushdb.Writes(
                now=now,
                head=head,
                dirty=dirty,
                events=event_rows,
                applied=sum(1 for r in event_rows if r["status"] == ResultStatus.APPLIED.value),
                stale=stale,
                rejected=rejected,
                machine_id=machine_id,
                cursor=pulled_cursor if record_cursor else None,
                notify=(
                    _notice_payload(ctx.tenant, sorted(dirty), head, answered)
                    if dirty and ctx.postgres
                    else None
                ),
            )
        )
    if record_cursor and not ctx.postgres:
        assert machine_id is not None and pulled_cursor is not None
        with ctx.cache_lock:  # what pull.touch_pull compares with: the cursor now recorded
            ctx.pulls_seen[(ctx.tenant, machine_id)] = (now, pulled_cursor)
    if dirty and not ctx.postgres and ctx.on_commit:
        _announce(ctx, dirty, head, first_head, answered)
    return PushOutcome(
        results,
        head,
        record_cursor,
        first_head=first_head,
        changed=dirty,
        restore_gap=(state.gap_low, state.gap_high),
    )


def _notice_payload(
    tenant: str, tables: list[str], head: int, answered: str | None
) -> dict[str, Any]:
    """PostgreSQL's NOTIFY payload of a commit (server/hub.py's listener publishes it)."""
    payload: dict[str, Any] = {"tenant": tenant, "tables": tables, "cursor": head}
    if answered is not None:
        payload["answered"] = answered
    return payload


def _announce(
    ctx: ServiceContext,
    dirty: dict[str, dict[str, dict[str, Any]]],
    head: int,
    first_head: int,
    answered: str | None,
) -> None:
    """`on_commit(tenant, tables, cursor, since=, changes=, answered=)`: a small commit's
    changes go with its notice, as the changes feed would page them after `first_head`, so
    a live client of that shop at that cursor needs no pull; `answered`, the machine whose
    push reply carries them. (PostgreSQL notices stay plain: NOTIFY payloads are small,
    and other processes publish them.)"""
    assert ctx.on_commit is not None
    live: list[LiveChange] | None = None
    if sum(len(t) for t in dirty.values()) <= LIVE_CHANGES_MAX:
        live = sorted(
            (
                LiveChange(table=name, seq=r["seq"], record=to_wire(TABLES[name], r))
                for name, t in dirty.items()
                for r in t.values()
            ),
            key=lambda c: c["seq"],
        )
    ctx.on_commit(
        ctx.tenant, sorted(dirty), head, since=first_head, changes=live, answered=answered
    )


# -- merge results ----------------------------------------------------------------------------


def merge_one(
    change: Change, row: dict[str, Any] | None, now: int, event_id: str
) -> tuple[PushResult, dict[str, Any] | None]:
    """Apply one change to the stored row by the protocol's merge rule. Returns (result,
    new row or None if unchanged). Keys in the order the wire has always had them."""
    edit = effective_edit_time(change, now)
    merged = merge(change, row, edit)
    if merged.status is ResultStatus.STALE:
        assert merged.stored_lww_at is not None
        return {
            "id": change.id,
            "table": change.table.name,
            "status": ResultStatus.STALE,
            "resolution": Resolution.STALE,
            "serverUpdatedAt": _iso(merged.stored_lww_at),
            "clientUpdatedAt": _iso(edit),
            "eventId": event_id,
        }, None
    if merged.status is ResultStatus.REJECTED:
        assert merged.reason is not None and merged.error is not None
        return {
            "id": change.id,
            "table": change.table.name,
            "status": ResultStatus.REJECTED,
            "reason": merged.reason,
            "error": merged.error,
            "eventId": event_id,
        }, None
    assert merged.row is not None
    result: PushResult
    if merged.warning:
        result = {
            "id": change.id,
            "table": change.table.name,
            "status": ResultStatus.APPLIED,
            "warning": merged.warning,
            "eventId": event_id,
        }
    else:
        result = {
            "id": change.id,
            "table": change.table.name,
            "status": ResultStatus.APPLIED,
            "eventId": event_id,
        }
    return result, _finish(change.table, merged.row)


def receipt_text(result: PushResult) -> str:
    """`dumps(result)`, the stored receipt. Most results are a plain `applied` (id, table,
    status, eventId, seq, in that order): their text is put together without the encoder's
    walk, one receipt per pushed event."""
    if len(result) == 5 and result["status"] is ResultStatus.APPLIED and "seq" in result:
        return (
            f'{{"id":{_json_str(result["id"])},"table":{_json_str(result["table"])},'
            f'"status":"applied","eventId":{_json_str(result["eventId"])},"seq":{result["seq"]}}}'
        )
    return dumps(result)


def _json_str(text: str | None) -> str:
    return "null" if text is None else _encode_str(text)


def _iso(ms: int) -> str:
    text = to_iso(ms)
    assert text is not None
    return text


def _finish(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    row["digest"] = 0 if row.get("_deleted") else to_signed(row_digest(table, row))
    row["bucket"] = bucket_of(row["id"])
    return row


def rejection(e: PushItem) -> PushResult:
    """The result of an event refused before any merge (malformed, or without an id)."""
    error = e.error or ProtocolError("missing_event_id", "eventId: required (a UUID per event)")
    return {
        "eventId": e.event_id,
        "id": e.record_id,
        "table": e.table,
        "status": ResultStatus.REJECTED,
        "resolution": Resolution.REJECTED,
        "reason": error.code,
        "error": error.message,
    }
