"""The sync service: one facade over push (idempotent, last-writer-wins, counters,
tombstones), pull by cursor, the seed's reads by `lastSync`, its bootstrap, reconcile,
diagnostics and maintenance. No HTTP here; routes, the CLI and the checks call it, and each
part lives in its own module over one shared context:

- `push.py`: the unit of work of a push, receipts, the sequence head, live notices;
- `pull.py`: cursor checks, pages of changes, pull bookkeeping, plain reads;
- `seedsync.py`: the seed's reads by change time (`lastSync`);
- `bootstrap.py`: the seed's one-time fill of an empty table;
- `reconcile.py`: summaries, reconcile, history, buckets;
- `diagnostics.py`: per-table totals and missing expected fields;
- `maintenance.py`: stats and garbage collection;
- `pdvs.py`: the PDVs' reports, the panel's cards, events per minute, health, forgetting;
- `commands.py`: the panel's commands to a PDV (reconcile), delivered until done;
- `sql.py`: the raw-SQL helpers; `context.py`: what they share.

Every shop (tenant) has its own rows, sequence, cursors, receipts, reconcile log,
bootstrap state and counters. A `SyncService` acts for one shop (`tenant`, the default shop
unless built otherwise); `scoped(tenant)` gives the same service for another shop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import peewee as pw

from protocol import now_ms
from protocol.messages import PushItem, table_named
from protocol.reports import Command, PdvReport
from protocol.tenancy import DEFAULT_TENANT
from protocol.vocabulary import DivergenceStrategy

from . import bootstrap as _bootstrap
from . import commands as _commands
from . import diagnostics as _diagnostics
from . import echo as _echo
from . import listcache as _listcache
from . import maintenance as _maintenance
from . import pdvs as _pdvs
from . import presence as _presence
from . import pull as _pull
from . import push as _push
from . import reconcile as _reconcile
from . import seedsync as _seedsync
from . import sql as _sql
from .bootstrap import BOOTSTRAP_LEASE_MS, BootstrapAnswer
from .context import LiveChange, ServiceContext
from .db import Models
from .diagnostics import TableDiagnostics
from .listcache import Listing
from .maintenance import Collected, Stats
from .pdvs import Health, LastCommand, MinuteCount, PdvCard, PendingCommand
from .pull import DEFAULT_PAGE, MAX_PAGE, PULL_TOUCH_MS, ChangesPage, TablePage
from .push import (
    LIVE_CHANGES_MAX,
    MAX_EVENTS_PER_REQUEST,
    NOTIFY_CHANNEL,
    PushOutcome,
    PushResult,
)
from .reconcile import ReconcileAnswer, Summary
from .seedsync import LASTSYNC_OVERLAP_MS

__all__ = [
    "BOOTSTRAP_LEASE_MS",
    "DEFAULT_PAGE",
    "LASTSYNC_OVERLAP_MS",
    "LIVE_CHANGES_MAX",
    "MAX_EVENTS_PER_REQUEST",
    "MAX_PAGE",
    "NOTIFY_CHANNEL",
    "PULL_TOUCH_MS",
    "BootstrapAnswer",
    "ChangesPage",
    "Collected",
    "Command",
    "Health",
    "LastCommand",
    "MinuteCount",
    "PdvCard",
    "PdvReport",
    "PendingCommand",
    "LiveChange",
    "Listing",
    "PushOutcome",
    "PushResult",
    "ReconcileAnswer",
    "Stats",
    "Summary",
    "SyncService",
    "TableDiagnostics",
    "TablePage",
]


class SyncService:
    def __init__(
        self,
        models: Models,
        *,
        clock: Callable[[], int] = now_ms,
        on_commit: Callable[..., None] | None = None,
        tenant: str = DEFAULT_TENANT,
        on_command: Callable[..., None] | None = None,
    ) -> None:
        """`on_commit(tenant, tables, cursor, since=, changes=, answered=)` is called after
        each SQLite commit that changed rows (see server/push.py); on PostgreSQL the commit's
        NOTIFY payload carries `{"tenant", "tables", "cursor", "answered"?}` instead.

        `on_command(tenant, kind, machine_id, command)` likewise after each SQLite commit the
        panel or a PDV must hear of (kind `command`: `command` is the socket message to
        deliver; `report`, `finished`, `forgotten`); on PostgreSQL a NOTIFY on
        `COMMANDS_CHANNEL` carries the same (server/commands.py)."""
        self._bind(ServiceContext(models, clock, on_commit, tenant, on_command))

    def _bind(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.m = ctx.models
        self.db: pw.Database = ctx.db
        self.postgres = ctx.postgres

    @property
    def tenant(self) -> str:
        """The shop this service reads and writes."""
        return self.ctx.tenant

    def scoped(self, tenant: str) -> SyncService:
        """The same service bound to shop `tenant` (a valid id, see protocol/tenancy.py):
        it shares the database, the pool, the callback and the caches, so it is cheap."""
        if tenant == self.ctx.tenant:
            return self
        other = object.__new__(SyncService)
        other._bind(self.ctx.for_tenant(tenant))
        return other

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
        since: int | None = None,
    ) -> tuple[list[PushResult], int]:
        """Apply events in one transaction. Returns (per-event results, sequence head).

        Invalid events are rejected one by one, unless `atomic_batch`: then any invalid
        event (malformed, or refused by the merge, e.g. an increment of an unknown record)
        fails the whole push with a 422 and nothing is written.

        `since`: the pusher's pulled cursor, refused first (409) when this database cannot
        continue from it; nothing is applied then (see push.push).
        """
        outcome = _push.push(self.ctx, machine_id, events, atomic_batch=atomic_batch, since=since)
        return outcome.results, outcome.head

    def push_and_pull(
        self,
        table_name: str,
        machine_id: str | None,
        events: Sequence[PushItem],
        since: int,
        limit: int = DEFAULT_PAGE,
    ) -> tuple[list[PushResult], int, TablePage]:
        """`POST /api/sync/{table}`: the push, then the pull after `since`, on one connection;
        a `since` this database cannot continue from is refused (409) before anything is
        applied.

        When the pull's cursor check cannot depend on the machine's recorded cursor (`since`
        is 0, or between the tombstone horizon and the head), the push's own transaction
        records `since` as the machine's cursor, and the pull writes nothing: one commit per
        request instead of two (on SQLite with synchronous=FULL, one fsync instead of two).
        The cursor is still recorded before the rows are read. When the client was at the
        head, the page is the push's own rows, not read back (server/echo.py).
        """
        table_named(table_name)
        with self.connection():
            outcome = _push.push(self.ctx, machine_id, events, pulled_cursor=since, since=since)
            page = _echo.own_page(self.ctx, outcome, table_name, since, limit)
            if page is None:
                page = _pull.pull(
                    self.ctx,
                    table_name,
                    since,
                    limit,
                    machine_id=None if outcome.cursor_recorded else machine_id,
                )
        return outcome.results, outcome.head, page

    def push_and_changes(
        self,
        machine_id: str | None,
        events: Sequence[PushItem],
        since: int,
        limit: int = DEFAULT_PAGE,
    ) -> tuple[list[PushResult], int, ChangesPage]:
        """`POST /api/sync/batch` with a `cursor` (HTTP or the live socket): the push, all
        or nothing, then every table's changes after `since`, as `push_and_pull` does for
        one table: the cursor refused first (409), recorded in the push's transaction when
        it can be, and the page the push's own rows when the pusher was at the head."""
        with self.connection():
            outcome = _push.push(
                self.ctx, machine_id, events, atomic_batch=True, pulled_cursor=since, since=since
            )
            page = _echo.own_changes(self.ctx, outcome, since, limit)
            if page is None:
                page = _pull.changes(
                    self.ctx,
                    since,
                    limit,
                    machine_id=None if outcome.cursor_recorded else machine_id,
                )
        return outcome.results, outcome.head, page

    def push_and_fetch(
        self,
        table_name: str,
        machine_id: str | None,
        events: Sequence[PushItem],
        last_sync: int | None,
    ) -> tuple[list[PushResult], int, list[dict[str, Any]]]:
        """The seed's `POST /api/sync/{table}` (no cursor): the push, then `fetch_since`
        on the same connection. Returns (per-event results, sequence head, wire records)."""
        table_named(table_name)
        with self.connection():
            outcome = _push.push(self.ctx, machine_id, events)
            records = _seedsync.fetch_since(self.ctx, table_name, last_sync)
        return outcome.results, outcome.head, records

    def bootstrap(
        self, table_name: str, machine_id: str, events: Sequence[PushItem]
    ) -> BootstrapAnswer:
        """The seed's `POST /api/sync/bootstrap/{table}`: fill this shop's empty table once,
        one machine at a time. `{bootstrapped, processed, conflicts}`, or `{bootstrapped:
        False, reason}` with reason already_completed, locked_by_other_machine or
        server_not_empty (see server/bootstrap.py)."""
        return _bootstrap.bootstrap(self.ctx, table_name, machine_id, events)

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

    def live_listing(
        self,
        table_name: str,
        *,
        created_from: int | None = None,
        created_to: int | None = None,
        order_id: str | None = None,
    ) -> Listing:
        """`list_live` (and `order_items` of one order) as JSON already encoded, from this
        process's cache of the table brought up to date (server/listcache.py)."""
        return _listcache.live_listing(
            self.ctx,
            table_name,
            created_from=created_from,
            created_to=created_to,
            order_id=order_id,
        )

    def live_by_seq(self, table_name: str) -> Listing:
        """`fetch_since(table, None)` as JSON already encoded (server/listcache.py)."""
        return _listcache.live_by_seq(self.ctx, table_name)

    # -- the seed's reads by its own clock ---------------------------------------------

    def fetch_since(self, table_name: str, last_sync: int | None) -> list[dict[str, Any]]:
        """The seed's `GET /api/sync/{table}?lastSync=`: wire records, in sequence order.

        Without `last_sync`: every live row. With it: every row and tombstone whose change
        time (the server's clock when it was committed) is at or after `last_sync -
        LASTSYNC_OVERLAP_MS`, so a client clock off by up to an hour, or a commit that
        landed late, never hides a change (see server/seedsync.py)."""
        return _seedsync.fetch_since(self.ctx, table_name, last_sync)

    def diagnostics(self) -> dict[str, TableDiagnostics]:
        """`{table: {total, latestUpdatedAt, missingByField}}` of this shop's live rows."""
        return _diagnostics.diagnostics(self.ctx)

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
        """This shop's head, counters and machines."""
        return _maintenance.stats(self.ctx)

    def tenants(self) -> list[str]:
        """Every shop this database has seen (a commit, a machine or a key), sorted."""
        return _maintenance.tenants(self.ctx)

    def collect_garbage(self, *, keep_events_days: int = 30) -> Collected:
        """For every shop, purge the tombstones all of that shop's known machines have
        pulled past; and old idempotency records. `horizon` is this shop's."""
        return _maintenance.collect_garbage(self.ctx, keep_events_days=keep_events_days)

    # -- the PDVs and the panel (reports, commands) ---------------------------------------

    def record_report(self, report: PdvReport) -> list[Command]:
        """Keep a PDV's report (and its minute of history), finish the commands it says are
        done, and return its commands still to run (marked delivered)."""
        return _pdvs.record_report(self.ctx, report)

    def socket_changed(self, machine_id: str, opened: bool) -> None:
        """A PDV's live socket opened, or its last one in this process closed (the panel
        shows it offline soon after: server/presence.py)."""
        _presence.socket_changed(self.ctx, machine_id, opened, self.clock())

    def pdv_snapshot(self, now_ms: int) -> list[PdvCard]:
        """Every PDV of this shop (known machines ∪ reporting ones) as the panel shows it;
        silent for more than 90 s means state "offline" (server/pdvs.py)."""
        return _pdvs.pdv_snapshot(self.ctx, now_ms)

    def events_per_minute(self, since_ms: int, until_ms: int) -> list[MinuteCount]:
        """`[{minute, applied, stale, rejected}]`, every minute from `since_ms`'s to
        `until_ms`'s (zeros included), at most the 8 days kept."""
        return _pdvs.events_per_minute(self.ctx, since_ms, until_ms)

    def health(self, now_ms: int) -> Health:
        """`{database: ok|error, head, eventsLastMinute, conflictsLastMinute,
        eventsLast15Min, conflictsLast15Min}` (never raises; live sockets: the hub's)."""
        return _pdvs.health(self.ctx, now_ms)

    def request_reconcile(
        self,
        machine_id: str | None,
        strategy: DivergenceStrategy | str,
        requested_by: str | None,
    ) -> list[str]:
        """Ask one PDV (None: every known PDV of this shop) to reconcile with `strategy`.
        Returns the commands' ids; delivered at once to the PDV's live sockets (through
        `on_command` or NOTIFY), else on its next connect or report. 404 `unknown_machine`,
        422 `invalid_strategy`."""
        return _commands.request(self.ctx, machine_id, strategy, requested_by)

    def pending_commands(self, machine_id: str) -> list[Command]:
        """A PDV's commands not finished yet, oldest first, marked delivered (its live
        socket's connect hands them over)."""
        with self.connection(), self.db.atomic():
            return _commands.pending(self.ctx, machine_id, self.clock())

    def mark_delivered(self, command_ids: Sequence[str]) -> None:
        """These commands were handed to their PDV (the first time counts)."""
        with self.connection(), self.db.atomic():
            _commands.mark_delivered(self.ctx, command_ids, self.clock())

    def forget_machine(self, machine_id: str) -> bool:
        """Forget a retired machine (`machines forget`: its cursor no longer holds tombstones
        back) with its report, history and commands. False when the shop knew nothing of it."""
        return _pdvs.forget_machine(self.ctx, machine_id)

    def known_machines(self) -> list[str]:
        """This shop's machines: those that made a request and those that reported."""
        with self.connection():
            return _commands.known_machines(self.ctx)
