"""The sync service: one facade over push (idempotent, last-writer-wins, counters,
tombstones), pull by cursor, reconcile and maintenance. No HTTP here; routes, the CLI and
the checks call it, and each part lives in its own module over one shared context:

- `push.py`: the unit of work of a push, receipts, the sequence head, live notices;
- `pull.py`: cursor checks, pages of changes, pull bookkeeping, plain reads;
- `reconcile.py`: summaries, reconcile, history, buckets;
- `maintenance.py`: stats and garbage collection;
- `sql.py`: the raw-SQL helpers; `context.py`: what they share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import peewee as pw

from protocol import ProtocolError, now_ms
from protocol.messages import PushItem, table_named

from . import maintenance as _maintenance
from . import pull as _pull
from . import push as _push
from . import reconcile as _reconcile
from . import sql as _sql
from .context import LiveChange, ServiceContext
from .db import Models
from .maintenance import Collected, Stats
from .pull import DEFAULT_PAGE, MAX_PAGE, PULL_TOUCH_MS, ChangesPage, TablePage
from .push import (
    LIVE_CHANGES_MAX,
    MAX_EVENTS_PER_REQUEST,
    NOTIFY_CHANNEL,
    PushOutcome,
    PushResult,
)
from .reconcile import ReconcileAnswer, Summary

__all__ = [
    "DEFAULT_PAGE",
    "LIVE_CHANGES_MAX",
    "MAX_EVENTS_PER_REQUEST",
    "MAX_PAGE",
    "NOTIFY_CHANNEL",
    "PULL_TOUCH_MS",
    "ChangesPage",
    "Collected",
    "LiveChange",
    "PushOutcome",
    "PushResult",
    "ReconcileAnswer",
    "Stats",
    "Summary",
    "SyncService",
    "TablePage",
]


class SyncService:
    def __init__(
        self,
        models: Models,
        *,
        clock: Callable[[], int] = now_ms,
        on_commit: Callable[..., None] | None = None,
    ) -> None:
        self.ctx = ServiceContext(models, clock, on_commit)
        self.m = models
        self.db: pw.Database = models.db
        self.postgres = self.ctx.postgres

    @property
    def clock(self) -> Callable[[], int]:
        return self.ctx.clock

    @property
    def on_commit(self) -> Callable[..., None] | None:
        return self.ctx.on_commit

    # -- connections -------------------------------------------------------------------

    @contextmanager
    def connection(self) -> Iterator[None]:
        """A pooled connection for one unit of work (one request)."""
        with self.ctx.connection():
            yield

    def ping(self) -> None:
        with self.connection():
            self.db.execute_sql("SELECT 1").fetchone()

    # -- push --------------------------------------------------------------------------

    def push(
        self,
        machine_id: str | None,
        events: Sequence[PushItem],
        *,
        atomic_batch: bool = False,
    ) -> tuple[list[PushResult], int]:
        """Apply events in one transaction. Returns (per-event results, sequence head).

        Invalid events are rejected one by one, unless `atomic_batch`: then any invalid
        event (malformed, or refused by the merge, e.g. an increment of an unknown record)
        fails the whole push with a 422 and nothing is written.
        """
        _push.check_size(events)
        invalid = [e for e in events if e.error is not None]
        if atomic_batch and invalid:
            raise ProtocolError(
                "invalid_batch",
                "the batch has invalid events; nothing was applied",
                invalid=[_push.rejection(e) for e in invalid],
            )
        outcome = _push.push(self.ctx, machine_id, events, atomic_batch=atomic_batch)
        return outcome.results, outcome.head

    def push_and_pull(
        self,
        table_name: str,
        machine_id: str | None,
        events: Sequence[PushItem],
        since: int,
        limit: int = DEFAULT_PAGE,
    ) -> tuple[list[PushResult], int, TablePage]:
        """`POST /api/sync/{table}`: the push, then the pull after `since`, on one connection.

        When the pull's cursor check cannot depend on the machine's recorded cursor (`since`
        is 0, or between the tombstone horizon and the head), the push's own transaction
        records `since` as the machine's cursor, and the pull writes nothing: one commit per
        request instead of two (on SQLite with synchronous=FULL, one fsync instead of two).
        The cursor is still recorded before the rows are read.
        """
        table_named(table_name)
        with self.connection():
            outcome = _push.push(self.ctx, machine_id, events, pulled_cursor=since)
            page = _pull.pull(
                self.ctx,
                table_name,
                since,
                limit,
                machine_id=None if outcome.cursor_recorded else machine_id,
            )
        return outcome.results, outcome.head, page

    # -- pull --------------------------------------------------------------------------

    def pull(
        self,
        table_name: str,
        since: int,
        limit: int = DEFAULT_PAGE,
        *,
        machine_id: str | None = None,
    ) -> TablePage:
        """Changes of one table after `since`, oldest first: `{synced, cursor, hasMore}`."""
        return _pull.pull(self.ctx, table_name, since, limit, machine_id)

    def changes(
        self, since: int, limit: int = DEFAULT_PAGE, *, machine_id: str | None = None
    ) -> ChangesPage:
        """Changes of every table after `since`, in sequence order, for one-cursor clients."""
        return _pull.changes(self.ctx, since, limit, machine_id)

    def check_cursor(self, since: int, machine_id: str | None = None) -> None:
        """Refuse (409 resync_required) a cursor this database cannot continue from. A push
        that carries the pusher's cursor is checked first: after a restore, pushing the
        offline sales before pulling would move the head past the stale cursor, and the
        client would never be told that it missed the restore."""
        with self.connection():
            _pull.check_cursor(self.ctx, since, machine_id)

    def head(self) -> int:
        with self.connection():
            return _sql.head(self.ctx)

    # -- plain reads (the seed's GET /api/products, /api/orders, /api/supplies) -------

    def list_live(
        self, table_name: str, *, created_from: int | None = None, created_to: int | None = None
    ) -> list[dict[str, Any]]:
        return _pull.list_live(
            self.ctx, table_name, created_from=created_from, created_to=created_to
        )

    def get_live(self, table_name: str, row_id: str) -> dict[str, Any] | None:
        return _pull.get_live(self.ctx, table_name, row_id)

    # -- summaries and reconcile ---------------------------------------------------------

    def summary(self) -> Summary:
        """Per-table summaries, the head they describe, and whether no commit landed while
        they were computed: `(tables, head, stable)`."""
        return _reconcile.summary(self.ctx)

    def reconcile(
        self, machine_id: str, client_summary: dict[str, dict[str, Any]], client_cursor: int | None
    ) -> ReconcileAnswer:
        """Compare a client's summary with ours, log it, and say consistent/divergent/retry."""
        return _reconcile.reconcile(self.ctx, machine_id, client_summary, client_cursor)

    def history(
        self, *, limit: int = 50, machine_id: str | None = None, only_inconsistent: bool = False
    ) -> list[dict[str, Any]]:
        return _reconcile.history(
            self.ctx, limit=limit, machine_id=machine_id, only_inconsistent=only_inconsistent
        )

    def buckets(self, table_name: str) -> dict[str, Any]:
        return _reconcile.buckets(self.ctx, table_name)

    def bucket_rows(self, table_name: str, buckets: list[int]) -> dict[str, Any]:
        return _reconcile.bucket_rows(self.ctx, table_name, buckets)

    # -- operations --------------------------------------------------------------------

    def stats(self) -> Stats:
        return _maintenance.stats(self.ctx)

    def collect_garbage(self, *, keep_events_days: int = 30) -> Collected:
        """Purge tombstones every known machine has pulled past, and old idempotency records."""
        return _maintenance.collect_garbage(self.ctx, keep_events_days=keep_events_days)
