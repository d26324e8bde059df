"""What a reconcile compares, computed from the view as the server computes it: per-table
summaries and per-bucket checksums from the digests stored with the rows; the check that
those digests still match their rows; a front end's summary compared with the view (the
seed's reconcile on the loopback API); and the local log of reconciles.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

from protocol import (
    TABLES,
    bucket_of,
    bucket_summaries,
    combine,
    dumps,
    loads,
    mismatch_reason,
    row_digest,
    to_iso,
)
from protocol.vocabulary import DivergenceStrategy, ReconcileStatus

from .context import StoreContext, dicts, tuples
from .views import Views, from_view


class TableSummary(TypedDict):
    """One table of `Summaries.summary` (the reconcile request's `summary`)."""

    count: int
    latestUpdatedAt: str | None
    checksum: str


class BucketSummary(TypedDict):
    count: int
    checksum: str


class ReconcileLogEntry(TypedDict):
    """One reconcile of this machine, as `reconcile_history` lists it."""

    id: int
    created_at: str | None
    status: str  # a ReconcileStatus value
    is_consistent: bool
    strategy: str  # a DivergenceStrategy value, or "client" (a front end's comparison)
    mismatches: list[Any]  # as the server (or `compare`) reported them
    repair: Any  # what the repair did (JSON), or None
    server_log_id: int | None
    error: str | None


class ListedSummary(TypedDict):
    """One table's summary in a list, as the server answers `serverSummary`."""

    table: str
    count: int
    latestUpdatedAt: str | None
    checksum: str


class Mismatch(TypedDict):
    """How a front end's summary of one table differs from the view's (the seed's shape)."""

    table: str
    reason: str  # protocol.checksum's words: count_mismatch, missing_client_table, ...
    server: ListedSummary  # the view's
    client: dict[str, Any] | None  # {count, latestUpdatedAt, checksum?} as the front end said
    checksumMismatch: NotRequired[bool]


class ClientComparison(TypedDict):
    """`compare`: the seed's reconcile answer, with the view in the server's place."""

    isConsistent: bool
    status: ReconcileStatus
    mismatches: list[Mismatch]
    serverSummary: list[ListedSummary]


# The strategy a front end's comparison is logged with (it repairs nothing here).
CLIENT_STRATEGY = "client"

# A reconcile's outcome that counts as "the store agrees with the server".
_CONSISTENT = (ReconcileStatus.CONSISTENT, ReconcileStatus.REPAIRED)


class Summaries:
    def __init__(self, ctx: StoreContext, views: Views) -> None:
        self._ctx = ctx
        self._views = views

    def summary(self) -> dict[str, TableSummary]:
        """`{table: {count, latestUpdatedAt, checksum}}` of the view, as the server computes it.

        Each view row carries its digest (written with the row, see `views.view_values`), so
        this is one aggregate query per table, all in one read snapshot.
        """
        db = self._ctx.db
        out: dict[str, TableSummary] = {}
        with db.atomic("DEFERRED"):  # a read snapshot (WAL): blocks no POS write
            for name in TABLES:
                count, latest, hi, lo = db.execute_sql(
                    f"SELECT COUNT(*), MAX(updated_at), COALESCE(SUM(digest_hi), 0), COALESCE(SUM(digest_lo), 0) "
                    f'FROM "{name}"'
                ).fetchone()
                out[name] = TableSummary(
                    count=count,
                    latestUpdatedAt=to_iso(latest),
                    checksum=combine([(int(hi) << 32) + int(lo)]),
                )
        return out

    def compare(self, client: Mapping[str, Mapping[str, Any]], now: int) -> ClientComparison:
        """A front end's summary (`{table: {count, latestUpdatedAt?, checksum?}}`, parsed by
        protocol.reconcile_messages) against the view, as the server compares an agent's
        with its own (protocol.mismatch_reason); logged with strategy `client`."""
        listed = [ListedSummary(table=name, **s) for name, s in self.summary().items()]
        mismatches: list[Mismatch] = []
        for mine in listed:
            theirs = client.get(mine["table"])
            reason, checksum_differs = mismatch_reason(dict(mine), _dict(theirs))
            if reason is None:
                continue
            shown: dict[str, Any] | None = None
            if theirs is not None:
                shown = {
                    "count": theirs.get("count") or 0,
                    "latestUpdatedAt": theirs.get("latestUpdatedAt"),
                }
                if theirs.get("checksum") is not None:
                    shown["checksum"] = theirs["checksum"]
            mismatch = Mismatch(table=mine["table"], reason=reason, server=mine, client=shown)
            if checksum_differs:
                mismatch["checksumMismatch"] = True
            mismatches.append(mismatch)
        status = ReconcileStatus.DIVERGENT if mismatches else ReconcileStatus.CONSISTENT
        self.log_reconcile(
            {
                "created_at": now,
                "status": status,
                "strategy": CLIENT_STRATEGY,
                "mismatches": mismatches,
            }
        )
        return ClientComparison(
            isConsistent=not mismatches,
            status=status,
            mismatches=mismatches,
            serverSummary=listed,
        )

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
            model = self._ctx.m.views[name]
            for row in dicts(model.select()):
                stored = (row["digest_hi"] << 32) + row["digest_lo"]
                if row_digest(t, from_view(row)) != stored:
                    stale.append((name, row["id"]))
        if not stale:
            return 0
        with self._ctx.lock, self._ctx.db.atomic():
            # Again, inside the transaction: the current content.
            rows = self._views.rows_many(stale)
            sql = self._ctx.db.cursor()
            for (name, row_id), row in rows.items():
                digest = row_digest(TABLES[name], row)
                sql.execute(
                    f'UPDATE "{name}" SET digest_hi = ?, digest_lo = ? WHERE id = ?',
                    (digest >> 32, digest & 0xFFFFFFFF, row_id),
                )
        return len(stale)

    def bucket_summary(self, table: str) -> dict[str, BucketSummary]:
        """`{bucket: {count, checksum}}` of a table's view (`protocol.bucket_summaries`)."""
        model = self._ctx.m.views[table]
        q = model.select(model.id, model.digest_hi, model.digest_lo)
        rows = ((bucket_of(row_id), (hi << 32) + lo) for row_id, hi, lo in tuples(q))
        return {
            str(b): BucketSummary(count=v["count"], checksum=v["checksum"])
            for b, v in bucket_summaries(rows).items()
        }

    # -- reconcile log -------------------------------------------------------------------------

    def log_reconcile(self, entry: Mapping[str, Any]) -> int:
        """Record one reconcile: `created_at` (epoch ms), `status`, and optionally `strategy`,
        `mismatches`, `repair`, `server_log_id`, `error`. Returns its id."""
        L = self._ctx.m.ReconcileLog
        with self._ctx.lock:
            row = L.create(
                created_at=entry["created_at"],
                status=entry["status"],
                is_consistent=entry["status"] in _CONSISTENT,
                strategy=entry.get("strategy", DivergenceStrategy.NONE),
                mismatches=dumps(entry.get("mismatches", [])),
                repair=dumps(entry["repair"]) if entry.get("repair") is not None else None,
                server_log_id=entry.get("server_log_id"),
                error=entry.get("error"),
            )
        return int(row.id)

    def reconcile_history(self, limit: int = 50) -> list[ReconcileLogEntry]:
        L = self._ctx.m.ReconcileLog
        return [
            ReconcileLogEntry(
                id=r.id,
                created_at=to_iso(r.created_at),
                status=r.status,
                is_consistent=r.is_consistent,
                strategy=r.strategy,
                mismatches=loads(r.mismatches),
                repair=loads(r.repair) if r.repair else None,
                server_log_id=r.server_log_id,
                error=r.error,
            )
            for r in L.select().order_by(L.id.desc()).limit(limit)
        ]


def _dict(entry: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if entry is None else dict(entry)
