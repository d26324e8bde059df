"""The merge rule: how one change applies to one stored row. Pure, and the same on both sides.

The server applies it to decide (last writer wins, counters, tombstones); the agent applies
it to show the POS its own pending edits on top of the server's last known row. A row is a
dict of Python values: `id`, the table's fields, `_extra` (the fields nobody declared),
`updatedAt` (epoch ms), `_deleted`, and `lww_at`, the edit time of the last winning upsert
or delete (the conflict clock; a row without it counts as protected by its `updatedAt`).

Rules (invariants 4-6 of docs/protocol.md):
- an upsert is a patch: only the fields it carries change (undeclared ones too, key by
  key); it loses to a row whose `lww_at` is newer (`skipped_stale`), unless the caller
  does not check staleness;
- a delete leaves a tombstone, even for a row never seen, so an older upsert arriving
  later cannot bring it back;
- an increment always applies (counters commute), also to a row this side does not have:
  the delta goes onto a hidden tombstone that no edit time protects, so the record, when it
  is created, starts from the sales made meanwhile. Only a sum past what every client can
  read back is refused (`out_of_range`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ProtocolError
from .extras import check_extras
from .records import Change, Op, coerce, default_row
from .vocabulary import ResultStatus

Row = dict[str, Any]


@dataclass(frozen=True)
class Merged:
    """What a change did. `row` is the new row, or None when nothing changed."""

    status: ResultStatus
    row: Row | None
    reason: str | None = None  # why it was refused (REJECTED)
    error: str | None = None  # the refusal in words
    warning: str | None = None  # applied, but worth saying (`unknown_record`)
    stored_lww_at: int | None = None  # STALE: the newer edit time that won


def effective_edit_time(change: Change, now: int) -> int:
    """The edit time a change competes with: the client's (already corrected to the server's
    clock by the agent), or `now` when it gave none, and never later than `now`, so a
    clock in the future cannot win forever."""
    return min(change.edited_at if change.edited_at is not None else now, now)


def merge(change: Change, row: Row | None, edit_at: int, *, stale_check: bool = True) -> Merged:
    """Apply `change`, edited at `edit_at`, to `row` (None: the row does not exist here)."""
    if change.op is Op.INCREMENT:
        return _increment(change, row, edit_at)
    if change.op is Op.DELETE:
        return _delete(change, row, edit_at)
    return _upsert(change, row, edit_at, stale_check)


def _increment(change: Change, row: Row | None, edit_at: int) -> Merged:
    warning = None
    if row is None:
        row = default_row(change.table, change.id)
        row.update(updatedAt=edit_at, lww_at=0, _deleted=True)
        warning = "unknown_record"
    new = dict(row)
    for name, delta in change.values.items():
        try:
            # The sum must stay what every client can read back (past 2^53 or 15 digits
            # it would stop every pull of that row).
            new[name] = coerce(change.table.field(name), (row.get(name) or 0) + delta)
        except ProtocolError as exc:
            return Merged(
                ResultStatus.REJECTED,
                None,
                reason="out_of_range",
                error=f"{exc} after this increment; nothing was applied",
            )
    new["updatedAt"] = max(row["updatedAt"], edit_at)
    return Merged(ResultStatus.APPLIED, new, warning=warning)


def _delete(change: Change, row: Row | None, edit_at: int) -> Merged:
    if row is None:
        new = default_row(change.table, change.id)
        new.update(updatedAt=edit_at, lww_at=edit_at)
    else:
        new = dict(row)
        new["updatedAt"] = max(row["updatedAt"], edit_at)
        new["lww_at"] = max(_lww(row), edit_at)
    new["_deleted"] = True
    return Merged(ResultStatus.APPLIED, new)


def _upsert(change: Change, row: Row | None, edit_at: int, stale_check: bool) -> Merged:
    if row is not None and stale_check and edit_at < _lww(row):
        return Merged(ResultStatus.STALE, None, stored_lww_at=_lww(row))
    if row is None:
        new = default_row(change.table, change.id)
        new["updatedAt"] = edit_at
    else:
        new = dict(row)
        new["updatedAt"] = max(row["updatedAt"], edit_at)
    new.update(change.values)
    if change.extra:
        extra = {**(new.get("_extra") or {}), **change.extra}
        try:
            check_extras(extra)  # a patch may add to what the row carries already
        except ProtocolError as exc:
            return Merged(ResultStatus.REJECTED, None, reason=exc.code, error=exc.message)
        new["_extra"] = extra
    if new.get("createdAt") is None and "createdAt" in change.table.field_names:
        new["createdAt"] = edit_at
    new["lww_at"] = edit_at
    new["_deleted"] = False
    return Merged(ResultStatus.APPLIED, new)


def _lww(row: Row) -> int:
    value = row.get("lww_at")
    return int(row["updatedAt"] if value is None else value)
