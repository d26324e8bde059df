"""Reconcile: compare this PDV's data with the server's at the head (invariant 8), retry while
the server moves, repair a difference per the strategy, and log every attempt.

A comparison only proves something when the outbox is drained and the pull is at the head;
the server answers "retry" when it moved since our pull, never a false "divergent".
Invariants are numbered as in docs/protocol.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, TypedDict

from protocol import TABLE_NAMES
from protocol.vocabulary import DivergenceStrategy, ReconcileStatus

from .context import SyncContext
from .cycle import SyncCycle
from .errors import ServerError, SyncError, Unreachable, failure_text

log = logging.getLogger(__name__)

_ATTEMPTS = 5  # comparisons before giving up on a server that keeps moving
_DIGEST_CHECK_EVERY_MS = 3_600_000
_ROWS_PER_REQUEST = 64  # buckets per request for their rows
_OK = (ReconcileStatus.CONSISTENT, ReconcileStatus.REPAIRED)


class RepairReport(TypedDict):
    strategy: DivergenceStrategy
    # refresh_mismatched: what `Store.replace_buckets` did per table; full_resync: the names
    tables: list[Any]


class ReconcileReport(TypedDict):
    """What a reconcile answers (the loopback API, the tray) and the status keeps."""

    status: ReconcileStatus
    isConsistent: bool
    mismatches: list[dict[str, Any]]
    repair: RepairReport | None
    strategy: DivergenceStrategy
    error: str | None  # English detail
    errorCode: SyncError | None  # the UI words it for the manager
    id: int  # in the local reconcile log
    serverLogId: int | None  # in the server's reconcile log


@dataclass
class _Attempt:
    """One reconcile as it goes, then as it is logged."""

    created_at: int
    strategy: DivergenceStrategy
    status: ReconcileStatus = ReconcileStatus.ERROR
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    repair: RepairReport | None = None
    server_log_id: int | None = None
    error_code: SyncError | None = None
    error: str | None = None

    def fail(self, code: SyncError, detail: str) -> None:
        self.error_code, self.error = code, detail

    def log_entry(self) -> dict[str, Any]:
        """The row of the local reconcile log (`Store.log_reconcile`)."""
        return {
            "created_at": self.created_at,
            "status": self.status.value,
            "strategy": self.strategy.value,
            "mismatches": self.mismatches,
            "repair": self.repair,
            "server_log_id": self.server_log_id,
            "error": failure_text(self.error_code, self.error)
            if self.error_code and self.error
            else None,
        }


class Reconciler:
    def __init__(self, context: SyncContext, cycle: SyncCycle) -> None:
        self.context = context
        self.cycle = cycle
        self.next_at = 0  # when the next automatic reconcile is due
        self.next_digest_check_at = 0  # see _compare

    async def run(
        self, strategy: DivergenceStrategy | str | None, *, manual: bool = False
    ) -> ReconcileReport:
        """Compare with the server only when drained and at head; repair per the strategy.
        `manual`: asked for by a person (the manager, the CLI, the POS)."""
        ctx = self.context
        chosen = _strategy(strategy or ctx.settings.divergence_strategy)
        if manual and ctx.client.accept_other_database():
            # The server came back on another database and a person asked to reconcile: that
            # is the manager accepting it. The old database's cursor and mirror mean nothing
            # there; the pending sales are kept and go to the new one.
            log.warning("the manager accepted the server's new database: full resync")
            ctx.store.set_state("server_database", "")
            async with ctx.work_lock:
                await self.cycle.full_resync()
        self.next_at = ctx.clock.local_now() + ctx.settings.reconcile_interval_ms
        attempt = _Attempt(created_at=ctx.clock.local_now(), strategy=chosen)
        try:
            await self._compare(attempt)
            if (
                attempt.status is ReconcileStatus.DIVERGENT
                and chosen is not DivergenceStrategy.NONE
            ):
                attempt.repair = await self._repair(chosen, attempt.mismatches)
                after = _Attempt(created_at=attempt.created_at, strategy=chosen)
                await self._compare(after)
                if after.status is ReconcileStatus.CONSISTENT:
                    attempt.status = ReconcileStatus.REPAIRED
        except ServerError as exc:
            attempt.status = ReconcileStatus.ERROR
            attempt.fail(exc.code, exc.detail)
        report: ReconcileReport = {
            "status": attempt.status,
            "isConsistent": attempt.status in _OK,
            "mismatches": attempt.mismatches,
            "repair": attempt.repair,
            "strategy": chosen,
            "error": attempt.error,
            "errorCode": attempt.error_code,
            "id": ctx.store.log_reconcile(attempt.log_entry()),
            "serverLogId": attempt.server_log_id,
        }
        if attempt.status in _OK:
            ctx.board.update(divergent=False, last_reconcile=report)
        elif attempt.status is ReconcileStatus.DIVERGENT:
            log.warning("reconcile: divergent tables %s", [m["table"] for m in attempt.mismatches])
            ctx.board.update(divergent=True, last_reconcile=report)
        else:
            ctx.board.update(last_reconcile=report)
        return report

    async def _compare(self, attempt: _Attempt) -> None:
        """One comparison at head; fills `attempt` with the status, mismatches and the id of
        the server's log entry."""
        ctx = self.context
        for _ in range(_ATTEMPTS):
            await self.cycle.run(force=True)
            facts = ctx.board.facts
            if facts.online is False:
                raise Unreachable(
                    facts.last_error or "server unreachable",
                    facts.last_error_code or SyncError.UNREACHABLE,
                )
            if facts.last_error_code is SyncError.SERVER_BUSY:
                # The server said "not now" (429): no comparison can be at its head.
                raise Unreachable(facts.last_error or "server busy", SyncError.SERVER_BUSY)
            async with ctx.work_lock:
                if ctx.store.pending_count() > 0:
                    continue  # a sale came in meanwhile: push it first
                self._check_digests()
                summary = ctx.store.summary()
                reply = await ctx.client.reconcile(ctx.machine_id, summary, ctx.store.cursor)
            attempt.server_log_id = reply.get("id")
            if reply.get("status") == ReconcileStatus.RETRY:
                continue  # the server moved on since our pull
            attempt.status = (
                ReconcileStatus.CONSISTENT
                if reply.get("isConsistent")
                else ReconcileStatus.DIVERGENT
            )
            attempt.mismatches = reply.get("mismatches", [])
            return
        attempt.status = ReconcileStatus.RETRY
        attempt.fail(SyncError.SERVER_MOVED, "the server changed during the comparison; try again")

    def _check_digests(self) -> None:
        """The summary adds up the digests stored with the rows. The first reconcile after a
        start, and one an hour after that, checks them against the rows (~10 ms per 1,000
        rows): an edit of the file made outside the agent cannot hide behind a stale digest
        for longer."""
        ctx = self.context
        if ctx.clock.local_now() < self.next_digest_check_at:
            return
        fixed = ctx.store.check_digests()
        if fixed:
            log.warning("reconcile: %d local rows changed outside the agent", fixed)
        self.next_digest_check_at = ctx.clock.local_now() + _DIGEST_CHECK_EVERY_MS

    async def _repair(
        self, strategy: DivergenceStrategy, mismatches: list[dict[str, Any]]
    ) -> RepairReport:
        ctx = self.context
        if strategy is DivergenceStrategy.FULL_RESYNC:
            async with ctx.work_lock:
                await self.cycle.full_resync()
            return {"strategy": strategy, "tables": list(TABLE_NAMES)}
        repaired: list[Any] = []
        async with ctx.work_lock:
            for mismatch in mismatches:
                table = mismatch["table"]
                server = (await ctx.client.buckets(table))["buckets"]
                local = ctx.store.bucket_summary(table)
                differing = sorted(
                    int(b) for b in set(server) | set(local) if server.get(b) != local.get(b)
                )
                if not differing:
                    continue
                rows: list[dict[str, Any]] = []
                for i in range(0, len(differing), _ROWS_PER_REQUEST):
                    chunk = differing[i : i + _ROWS_PER_REQUEST]
                    rows += (await ctx.client.bucket_rows(table, chunk))["rows"]
                repaired.append(ctx.store.replace_buckets(table, differing, rows))
        ctx.refresh_local_facts()
        return {"strategy": strategy, "tables": repaired}

    async def server_history(self) -> dict[str, Any]:
        return await self.context.client.reconcile_history(self.context.machine_id)


def _strategy(value: DivergenceStrategy | str) -> DivergenceStrategy:
    try:
        return DivergenceStrategy(value)
    except ValueError:
        raise ValueError(f"unknown strategy {value!r}") from None
