"""The seed's bootstrap: a front end fills this shop's empty table once, one machine at a time.

State per (shop, table) in `bootstrap_state`:
- `completed` answers `already_completed`;
- `in_progress` by another machine answers `locked_by_other_machine` while its lease
  (BOOTSTRAP_LEASE_MS, renewed between chunks) lasts, so a crashed machine does not lock
  the table forever: once the lease is over, the next machine takes it over;
- a table with live rows, and no bootstrap under way, is marked completed
  (`server_not_empty`). A bootstrap under way (resumed by its machine, or taken over) goes
  on: the rows there are its own first chunks.
Otherwise the records go through the normal push (idempotent by eventId; a record's own
`updatedAt` is its edit time, so stale bootstrap data loses to newer edits and to deletes),
in chunks of at most MAX_EVENTS_PER_REQUEST, the state `in_progress` committed before the
first chunk and its lease renewed between chunks; then `completed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NotRequired, TypedDict

import peewee as pw

from protocol.messages import PushItem, table_named
from protocol.tenancy import check_record_tenant
from protocol.vocabulary import ResultStatus

from . import push as _push
from .context import ServiceContext
from .push import MAX_EVENTS_PER_REQUEST, PushResult
from .sql import chunks

BOOTSTRAP_LEASE_MS = 5 * 60_000

IN_PROGRESS = "in_progress"
COMPLETED = "completed"
ALREADY_COMPLETED = "already_completed"
LOCKED = "locked_by_other_machine"
NOT_EMPTY = "server_not_empty"


class BootstrapAnswer(TypedDict):
    """`POST /api/sync/bootstrap/{table}` (besides success and timestamp)."""

    bootstrapped: bool
    reason: NotRequired[str]  # already_completed | locked_by_other_machine | server_not_empty
    processed: NotRequired[int]  # records applied (repeated events are not counted again)
    conflicts: NotRequired[list[PushResult]]  # results not applied (stale, rejected)


def bootstrap(
    ctx: ServiceContext, table_name: str, machine_id: str, events: Sequence[PushItem]
) -> BootstrapAnswer:
    table = table_named(table_name).name
    for e in events:  # before anything is claimed or written
        if e.change is not None:
            check_record_tenant(e.change.tenant, ctx.tenant)
    refusal = _claim(ctx, table, machine_id)
    if refusal:
        return {"bootstrapped": False, "reason": refusal}
    processed = 0
    conflicts: list[PushResult] = []
    for i, chunk in enumerate(chunks(list(events), MAX_EVENTS_PER_REQUEST)):
        if i and not _hold(ctx, table, machine_id, processed):
            return _lost(processed, conflicts)
        outcome = _push.push(ctx, machine_id, chunk)
        for result in outcome.results:
            if result.get("duplicate"):
                continue
            if result["status"] is ResultStatus.APPLIED:
                processed += 1
            else:
                conflicts.append(result)
    if not _hold(ctx, table, machine_id, processed, done=True):
        return _lost(processed, conflicts)
    return {"bootstrapped": processed > 0, "processed": processed, "conflicts": conflicts}


def _lost(processed: int, conflicts: list[PushResult]) -> BootstrapAnswer:
    """Our lease ran out and another machine took the bootstrap over: what we applied
    stays (it went through the normal push), the rest is theirs."""
    return {"bootstrapped": False, "reason": LOCKED, "processed": processed, "conflicts": conflicts}


def _claim(ctx: ServiceContext, table: str, machine_id: str) -> str | None:
    """Take the bootstrap of `table` for `machine_id` (state in_progress, committed), or say
    why not. Under the shop's writer lock, so two machines never both take it."""
    B = ctx.models.BootstrapState
    with ctx.connection(), ctx.write_transaction():
        now = ctx.clock()
        state = B.get_or_none((B.tenant_id == ctx.tenant) & (B.table_name == table))
        if state is not None and state.status == COMPLETED:
            return ALREADY_COMPLETED
        under_way = state is not None and state.status == IN_PROGRESS
        if (
            state is not None
            and under_way
            and state.machine_id != machine_id
            and now - (state.started_at or 0) < BOOTSTRAP_LEASE_MS
        ):
            return LOCKED
        if not under_way:
            model = ctx.models.data[table]
            live = (
                model.select()
                .where((model.tenant_id == ctx.tenant) & (model.deleted == False))  # noqa: E712
                .count()
            )
            if live:
                _save(ctx, table, COMPLETED, machine_id, now, completed_at=now, records=live)
                return NOT_EMPTY
        _save(ctx, table, IN_PROGRESS, machine_id, now, completed_at=None, records=0)
    return None


def _hold(
    ctx: ServiceContext, table: str, machine_id: str, processed: int, *, done: bool = False
) -> bool:
    """Renew our lease between chunks (or, `done`, mark the bootstrap completed); False when
    it is no longer ours."""
    B = ctx.models.BootstrapState
    with ctx.connection(), ctx.write_transaction():
        now = ctx.clock()
        changes: dict[pw.Field, object] = {B.records_count: processed}
        if done:
            changes.update({B.status: COMPLETED, B.completed_at: now})
        else:
            changes[B.started_at] = now
        n = (
            B.update(changes)
            .where(
                (B.tenant_id == ctx.tenant)
                & (B.table_name == table)
                & (B.status == IN_PROGRESS)
                & (B.machine_id == machine_id)
            )
            .execute()
        )
    return n == 1


def _save(
    ctx: ServiceContext,
    table: str,
    status: str,
    machine_id: str,
    now: int,
    *,
    completed_at: int | None,
    records: int,
) -> None:
    B = ctx.models.BootstrapState
    values = {
        B.status: status,
        B.machine_id: machine_id,
        B.started_at: now,
        B.completed_at: completed_at,
        B.records_count: records,
    }
    B.insert({B.tenant_id: ctx.tenant, B.table_name: table, **values}).on_conflict(
        conflict_target=[B.tenant_id, B.table_name], update=values
    ).execute()
