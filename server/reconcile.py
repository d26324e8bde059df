"""Reconcile on the server: per-table summaries (cached per table state), the comparison
with a client's summary (consistent, divergent or retry), its log and history, and the
bucketed checksums that narrow a difference down to rows. All of one shop (the context's
tenant): its rows, its head, its log.
"""

from __future__ import annotations

from typing import Any, NamedTuple, NotRequired, TypedDict, cast

import peewee as pw

from protocol import (
    TABLES,
    bucket_summaries,
    dumps,
    loads,
    mismatch_reason,
    summarize,
    to_iso,
    to_wire,
)
from protocol.messages import table_named
from protocol.vocabulary import ReconcileStatus

from . import sql
from .context import ServiceContext
from .db import dicts, tuples


class Summary(NamedTuple):
    """Per-table summaries and the head they describe; `stable` is False when a commit
    landed while they were computed (they may then mix two states)."""

    tables: list[dict[str, Any]]
    head: int
    stable: bool


class Mismatch(TypedDict):
    table: str
    # The original server's words (protocol.checksum.mismatch_reason): missing_client_table,
    # count_and_latest_updatedAt_mismatch, count_mismatch, latest_updatedAt_mismatch; ours,
    # checksum_mismatch, when only the checksum differs.
    reason: str
    server: dict[str, Any]
    client: dict[str, Any] | None  # {count, latestUpdatedAt, checksum?}; None: not summarised
    checksumMismatch: NotRequired[bool]  # the checksums differ (also beside another reason)


class ReconcileAnswer(TypedDict):
    """`POST /api/sync/reconcile` (besides success and timestamp)."""

    isConsistent: bool
    status: ReconcileStatus
    retry: bool
    mismatches: list[Mismatch]
    serverSummary: list[dict[str, Any]]
    cursor: int
    id: int


def summary(ctx: ServiceContext) -> Summary:
    """The head is read before and after: when a commit landed in between, try again
    (twice), then answer unstable (reconcile then says "retry")."""
    with ctx.connection():
        for _ in range(3):
            before = sql.head(ctx)
            result = [_table_summary(ctx, name) for name in TABLES]
            after = sql.head(ctx)
            if before == after:
                return Summary(result, after, True)
        return Summary(result, after, False)


def _table_summary(ctx: ServiceContext, table_name: str) -> dict[str, Any]:
    model = ctx.models.data[table_name]
    mine = model.tenant_id == ctx.tenant
    # Every write gives a row a new, higher seq, but a purge of tombstones (by any process,
    # e.g. `machines gc`) can bring MAX(seq) back to a value already cached while the
    # live rows differ: the row count tells those states apart (rows at or below a seq
    # can only go away, never come back).
    counts = model.select(pw.fn.MAX(model.seq), pw.fn.COUNT(model.id)).where(mine).tuples().get()
    top, rows_now = cast(tuple[int | None, int], counts)  # a tuple (the stubs say a model)
    table_head = (top or 0, rows_now)
    key = (ctx.tenant, table_name)
    with ctx.cache_lock:
        cached = ctx.summary_cache.get(key)
    if cached and cached[0] == table_head:
        return dict(cached[1])
    rows = model.select(model.updated_at, model.digest).where(mine & (model.deleted == False))  # noqa: E712
    result = summarize(table_name, tuples(rows))
    with ctx.cache_lock:
        ctx.summary_cache[key] = (table_head, result)
    return dict(result)


def reconcile(
    ctx: ServiceContext,
    machine_id: str,
    client_summary: dict[str, dict[str, Any]],
    client_cursor: int | None,
) -> ReconcileAnswer:
    """Compare a client's summary with ours, log it, and say consistent/divergent/retry."""
    server_summary, head, stable = summary(ctx)
    mismatches = [
        m
        for server in server_summary
        if (m := _mismatch(server, client_summary.get(server["table"])))
    ]
    if not mismatches:
        status = ReconcileStatus.CONSISTENT
    elif not stable or (client_cursor is not None and client_cursor < head):
        # The server moved after the client's last pull: a difference now proves nothing.
        status = ReconcileStatus.RETRY
    else:
        status = ReconcileStatus.DIVERGENT
    now = ctx.clock()
    with ctx.connection(), ctx.db.atomic():
        entry = ctx.models.ReconcileLog.create(
            tenant_id=ctx.tenant,
            machine_id=machine_id,
            status=status.value,
            is_consistent=status is ReconcileStatus.CONSISTENT,
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
        M = ctx.models.Machine
        M.update(last_seen=now).where(
            (M.tenant_id == ctx.tenant) & (M.machine_id == machine_id)
        ).execute()
    return {
        "isConsistent": status is ReconcileStatus.CONSISTENT,
        "status": status,
        "retry": status is ReconcileStatus.RETRY,
        "mismatches": mismatches,
        "serverSummary": server_summary,
        "cursor": head,
        "id": entry.id,
    }


def _mismatch(server: dict[str, Any], client: dict[str, Any] | None) -> Mismatch | None:
    """How a client's summary of one table differs from ours, as the original server says
    it (`client: null` for a table the client did not summarise); None when they agree."""
    reason, checksum_differs = mismatch_reason(server, client)
    if reason is None:
        return None
    shown: dict[str, Any] | None = None
    if client is not None:
        shown = {
            "count": client.get("count") or 0,
            "latestUpdatedAt": client.get("latestUpdatedAt"),
        }
        if client.get("checksum") is not None:
            shown["checksum"] = client["checksum"]
    mismatch: Mismatch = {
        "table": server["table"],
        "reason": reason,
        "server": server,
        "client": shown,
    }
    if checksum_differs:
        mismatch["checksumMismatch"] = True
    return mismatch


def history(
    ctx: ServiceContext, *, limit: int, machine_id: str | None, only_inconsistent: bool
) -> list[dict[str, Any]]:
    """This shop's reconcile log, newest first (`GET /api/sync/reconcile/history`)."""
    L = ctx.models.ReconcileLog
    q = (
        L.select()
        .where(L.tenant_id == ctx.tenant)
        .order_by(L.id.desc())
        .limit(max(1, min(limit, 1000)))
    )
    if machine_id:
        q = q.where(L.machine_id == machine_id)
    if only_inconsistent:
        q = q.where(L.status == ReconcileStatus.DIVERGENT.value)
    with ctx.connection():
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


def buckets(ctx: ServiceContext, table_name: str) -> dict[str, Any]:
    """Per-bucket `{count, checksum}` of a table's live rows, and the head they describe."""
    table = table_named(table_name)
    model = ctx.models.data[table.name]
    with ctx.connection():
        head = sql.head(ctx)
        rows = model.select(model.bucket, model.digest).where(
            (model.tenant_id == ctx.tenant) & (model.deleted == False)  # noqa: E712
        )
        per_bucket = bucket_summaries(tuples(rows))
    return {
        "table": table.name,
        "buckets": {str(b): v for b, v in per_bucket.items()},
        "cursor": head,
    }


def bucket_rows(ctx: ServiceContext, table_name: str, wanted: list[int]) -> dict[str, Any]:
    """The live rows of some buckets of a table, to repair only the rows that differ."""
    table = table_named(table_name)
    model = ctx.models.data[table.name]
    with ctx.connection():
        head = sql.head(ctx)
        q = model.select().where(
            (model.tenant_id == ctx.tenant)
            & (model.deleted == False)  # noqa: E712
            & (model.bucket.in_(wanted))
        )
        rows = [to_wire(table, sql.from_db(r)) for r in dicts(q.order_by(model.id))]
    return {"table": table.name, "buckets": wanted, "rows": rows, "cursor": head}
