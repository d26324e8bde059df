"""The POS's writes: each call commits its view rows and their outbox events in ONE SQLite
transaction with synchronous=FULL (invariant 1): once the POS gets its answer, a power cut
loses nothing, and a repeated eventId changes nothing (invariant 2; see docs/protocol.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict

from protocol import Change, Op, ProtocolError, dumps, to_iso
from protocol.merge import Row, merge
from protocol.vocabulary import LocalWriteStatus, OutboxState, ResultStatus

from .context import StoreContext
from .outbox import NewEvent, Outbox
from .views import Key, Views, WireRecord, apply_change


class WriteResult(TypedDict):
    """The store's answer to one write of the POS."""

    eventId: str
    id: str
    table: str
    status: LocalWriteStatus
    state: NotRequired[OutboxState]  # duplicate: where the first write's event stands
    reason: NotRequired[str]  # rejected: the error code
    error: NotRequired[str]  # rejected: the error in words


class LocalWrites:
    def __init__(self, ctx: StoreContext, views: Views, outbox: Outbox) -> None:
        self._ctx = ctx
        self._views = views
        self._outbox = outbox

    def write(
        self,
        items: Sequence[tuple[str, Change]],
        now: int,
        *,
        group_id: str | None = None,
        atomic: bool = True,
    ) -> list[WriteResult]:
        """Record local writes: view row + outbox event, in one transaction per call.

        A change that cannot apply (an increment of an unknown record) raises ProtocolError
        and nothing of the call is stored when `atomic`; otherwise it alone is answered
        "rejected". A repeated eventId is answered "duplicate" and changes nothing.
        """
        results: list[WriteResult] = []
        with self._ctx.lock, self._ctx.db.atomic():
            # Set-based: the known eventIds and the current view rows in one query per 500,
            # then the outbox rows and the view rows written with executemany.
            known = self._outbox.states_of(list(dict.fromkeys(e for e, _ in items)))
            views = self._views.rows_many({(c.table.name, c.id) for _, c in items})
            events: list[NewEvent] = []
            changed: dict[Key, Row | None] = {}
            seen: set[str] = set()
            for event_id, change in items:
                table = change.table.name
                if event_id in known or event_id in seen:
                    results.append(
                        WriteResult(
                            eventId=event_id,
                            id=change.id,
                            table=table,
                            status=LocalWriteStatus.DUPLICATE,
                            state=known.get(event_id, OutboxState.PENDING),
                        )
                    )
                    continue
                key = (table, change.id)
                current = views.get(key)
                edited_at = change.edited_at if change.edited_at is not None else now
                error = None
                if change.op is Op.INCREMENT and current is None:
                    error = ProtocolError(
                        "unknown_record", f"{table}/{change.id} does not exist", status=404
                    )
                elif change.op is Op.INCREMENT:
                    error = _out_of_range(change, current, edited_at)
                if error is not None:
                    if atomic:
                        raise error
                    results.append(
                        WriteResult(
                            eventId=event_id,
                            id=change.id,
                            table=table,
                            status=LocalWriteStatus.REJECTED,
                            reason=error.code,
                            error=error.message,
                        )
                    )
                    continue
                seen.add(event_id)
                payload = dumps(_payload(change, edited_at))
                events.append(
                    NewEvent(event_id, table, change.id, change.op.value, payload, group_id, now)
                )
                # A later change of the same row in this call applies on top of this one.
                new = apply_change(current, change, edited_at)
                changed[key] = new
                if new is None:
                    views.pop(key, None)
                else:
                    views[key] = new
                results.append(
                    WriteResult(
                        eventId=event_id,
                        id=change.id,
                        table=table,
                        status=LocalWriteStatus.ACCEPTED,
                    )
                )
            if events:
                self._outbox.append(events)  # in the order of `items`: push order
            self._views.put(changed)
        return results


def _payload(change: Change, edited_at: int) -> WireRecord:
    """The wire record of a local change, stamped with its edit time (clock-corrected, or a
    bootstrapped record's own)."""
    table = change.table
    record: dict[str, Any] = {"id": change.id}
    if change.op is Op.DELETE:
        record["_op"] = "delete"
    elif change.op is Op.INCREMENT:
        record["_op"] = "increment"
        record.update(change.values)
    else:
        # The fields nobody declared go with it, as they came: the server keeps them too.
        record.update(change.extra)
        for name, value in change.values.items():
            f = table.field(name)
            record[name] = (
                to_iso(value) if f.kind.value == "timestamp" and value is not None else value
            )
    record["updatedAt"] = to_iso(edited_at)
    return record


def _out_of_range(change: Change, row: Row | None, edited_at: int) -> ProtocolError | None:
    """An increment whose result the server would refuse (past what clients read back)."""
    merged = merge(change, row, edited_at, stale_check=False)
    if merged.status is ResultStatus.REJECTED:
        return ProtocolError("out_of_range", merged.error or "out of range", status=422)
    return None
