"""The agent's local store: the one object the engine, the loopback API, the UI monitor and the
installer talk to. A thin facade over its parts, each in its own module:

- `writes`: the POS's writes (view row + outbox event in one FULL transaction);
- `views`: the rows the POS reads, always `shadow + pending events` (invariant 9);
- `outbox`: events in push order, failures and backoff, dead letters (a sale as a whole);
- `mirror`: the server's shadow rows and cursor, acknowledgements, pulled pages, repairs;
- `summary`: what a reconcile compares (summaries, buckets, digests, a front end's summary)
  and its local log;
- `bootstrap`, `diagnostics`: the seed's one-time fill of an empty table, and what each
  table holds;
- `context`: what they share (database, models, writer lock, the two durability levels).
Invariants are numbered as in docs/protocol.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from protocol import Change
from protocol.vocabulary import OutboxState

from .bootstrap import BootstrapAnswer, Bootstraps
from .changes import ChangeFeed
from .context import StoreContext, open_database
from .diagnostics import TableDiagnostics, diagnostics
from .listcache import Listing
from .migrations import migrate
from .mirror import BucketRepair, Mirror
from .models import StoreModels, bind_models
from .outbox import PURGE_EVERY_MS, SENT_RETENTION_MS, AckCounts, Outbox, OutboxEvent
from .state import SyncState
from .summary import BucketSummary, ClientComparison, ReconcileLogEntry, Summaries, TableSummary
from .views import ViewChanges, Views, WireRecord
from .writes import LocalWrites, WriteResult

# The outbox states under their old names, for callers that import them from here.
PENDING = OutboxState.PENDING
SENT = OutboxState.SENT
DEAD = OutboxState.DEAD

# Module-level aliases: inside `Store`, `list` names its method, not the builtin.
Records = list[WireRecord]
Events = list[OutboxEvent]
WriteResults = list[WriteResult]
History = list[ReconcileLogEntry]


class Store:
    """One agent's store file; its parts are public (`views`, `outbox`, `mirror`, ...) for
    tests that exercise one of them, but callers use these methods."""

    def __init__(self, path: Path | str, *, clock: Callable[[], int] | None = None) -> None:
        """`clock`: this machine's clock in ms (`protocol.now_ms` unless a test sets one),
        read only to stamp when view rows change, for the seed's reads by `lastSync`."""
        self.path = Path(path)
        self.db = open_database(self.path)
        with self.db.connection_context():
            migrate(self.db)
        self.m: StoreModels = bind_models(self.db)
        ctx = (
            StoreContext(self.db, self.m)
            if clock is None
            else StoreContext(self.db, self.m, clock=clock)
        )
        self._ctx = ctx
        # The token a front end waits on (`GET /api/sync/watch`), moved by every commit that
        # changed view rows.
        self.changes: ChangeFeed = ctx.changes
        self.state = SyncState(ctx)
        self.views = Views(ctx)
        self.outbox = Outbox(ctx, self.views)
        self.mirror = Mirror(ctx, self.state, self.views, self.outbox)
        self.summaries = Summaries(ctx, self.views)
        self.writes = LocalWrites(ctx, self.views, self.outbox)
        self.bootstraps = Bootstraps(ctx, self.state, self.views, self.writes)

    def close(self) -> None:
        self.changes.close()
        self.db.close()

    # -- small state -------------------------------------------------------------------

    def get_state(self, key: str, default: str | None = None) -> str | None:
        return self.state.get(key, default)

    def set_state(self, key: str, value: str) -> None:
        self.state.set(key, value)

    @property
    def cursor(self) -> int:
        return self.state.cursor

    def reached_server(self) -> bool:
        """This store has held the server's rows as of some moment (see SyncState)."""
        return self.state.reached_server()

    # -- local writes (from the POS) -----------------------------------------------------

    def write(
        self,
        items: Sequence[tuple[str, Change]],
        now: int,
        *,
        group_id: str | None = None,
        atomic: bool = True,
    ) -> WriteResults:
        return self.writes.write(items, now, group_id=group_id, atomic=atomic)

    # -- reads (what the POS sees) -------------------------------------------------------

    def get(self, table: str, row_id: str) -> WireRecord | None:
        return self.views.get(table, row_id)

    def get_many(self, table: str, row_ids: Sequence[str]) -> Records:
        return self.views.get_many(table, row_ids)

    def list(
        self, table: str, *, created_from: int | None = None, created_to: int | None = None
    ) -> Records:
        return self.views.list_records(table, created_from=created_from, created_to=created_to)

    def listing(
        self,
        table: str,
        *,
        created_from: int | None = None,
        created_to: int | None = None,
        order_id: str | None = None,
    ) -> Listing:
        """`list` (and order_items of one order) as JSON already encoded (listcache.py)."""
        return self.views.lists.listing(
            table, created_from=created_from, created_to=created_to, order_id=order_id
        )

    def since_all(self, table: str) -> Listing:
        """`since(table, None)` as JSON already encoded (listcache.py)."""
        return self.views.lists.by_change(table)

    def count(self, table: str) -> int:
        return self.views.count(table)

    def since(self, table: str, last_sync: int | None) -> Records:
        """The seed's read by `lastSync` (this machine's clock): every live row without it;
        with it, the rows and deletions changed since (minus LASTSYNC_OVERLAP_MS)."""
        return self.views.since(table, last_sync)

    def diagnostics(self) -> dict[str, TableDiagnostics]:
        return diagnostics(self._ctx)

    # -- the seed's bootstrap --------------------------------------------------------------

    def bootstrap(
        self, table: str, items: Sequence[tuple[str, Change]], now: int
    ) -> BootstrapAnswer:
        """Fill an empty table once with a front end's records, keeping their edit times."""
        return self.bootstraps.bootstrap(table, items, now)

    def bootstrap_state(self, table: str) -> str | None:
        return self.state.bootstrap_state(table)

    @property
    def _put_views(self) -> Callable[[ViewChanges], None]:
        """Every write of view rows; settable so a test can observe them all (the check
        that only mirror transactions write with synchronous=NORMAL spies on it)."""
        return self.views.put

    @_put_views.setter
    def _put_views(self, writer: Callable[[ViewChanges], None]) -> None:
        self.views.put = writer

    # -- the outbox ----------------------------------------------------------------------

    def due_events(self, now: int, limit: int = 500) -> Events:
        return self.outbox.due_events(now, limit)

    def pending_count(self) -> int:
        return self.outbox.pending_count()

    def outbox_facts(self) -> tuple[int, int | None, int]:
        return self.outbox.facts()

    def oldest_pending_at(self) -> int | None:
        return self.outbox.oldest_pending_at()

    def dead_letters(self) -> Events:
        return self.outbox.dead_letters()

    def pending_events(self, limit: int = 200) -> Events:
        return self.outbox.pending_events(limit)

    def record_failure(self, event_ids: Iterable[str], error: str, next_attempt_at: int) -> None:
        self.outbox.record_failure(event_ids, error, next_attempt_at)

    def retry_dead(self, event_id: str) -> bool:
        return self.outbox.retry_dead(event_id)

    def discard_dead(self, event_id: str) -> bool:
        return self.outbox.discard_dead(event_id)

    # -- acknowledgements and pulled changes (from the server) ------------------------

    def acknowledge(
        self,
        results: Sequence[Mapping[str, Any]],
        now: int,
        changes: Sequence[Mapping[str, Any]] = (),
        cursor: int | None = None,
    ) -> AckCounts:
        return self.mirror.acknowledge(results, now, changes, cursor)

    def apply_pulled(self, changes: Sequence[Mapping[str, Any]], cursor: int) -> int:
        return self.mirror.apply_pulled(changes, cursor)

    def reset_mirror(self) -> None:
        self.mirror.reset()

    def replace_buckets(
        self, table: str, buckets: Iterable[int], server_rows: Sequence[WireRecord]
    ) -> BucketRepair:
        return self.mirror.replace_buckets(table, buckets, server_rows)

    # -- reconcile -----------------------------------------------------------------------

    def summary(self) -> dict[str, TableSummary]:
        return self.summaries.summary()

    def compare_summary(
        self, client: Mapping[str, Mapping[str, Any]], now: int
    ) -> ClientComparison:
        """A front end's summary against the view (the seed's reconcile), logged locally."""
        return self.summaries.compare(client, now)

    def check_digests(self) -> int:
        return self.summaries.check_digests()

    def bucket_summary(self, table: str) -> dict[str, BucketSummary]:
        return self.summaries.bucket_summary(table)

    def log_reconcile(self, entry: Mapping[str, Any]) -> int:
        return self.summaries.log_reconcile(entry)

    def reconcile_history(self, limit: int = 50) -> History:
        return self.summaries.reconcile_history(limit)


__all__ = [
    "DEAD",
    "PENDING",
    "PURGE_EVERY_MS",
    "SENT",
    "SENT_RETENTION_MS",
    "AckCounts",
    "BootstrapAnswer",
    "BucketRepair",
    "ChangeFeed",
    "ClientComparison",
    "OutboxEvent",
    "ReconcileLogEntry",
    "Store",
    "TableDiagnostics",
    "TableSummary",
    "WriteResult",
    "open_database",
]
