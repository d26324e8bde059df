"""What the parts of the sync service share: the database and its models, the clock, the
backend, the caches, the live-notice callback, and the shop (tenant) they act for.

One small object passed to every part (push, pull, reconcile, maintenance) instead of a
class hierarchy: each part is a module of functions over it, and `SyncService` holds one.
`for_tenant` gives the same context bound to another shop: the database, the pool and the
caches stay shared (the caches are keyed by shop), so binding a request to its shop is cheap.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict

import peewee as pw

from protocol.tenancy import DEFAULT_TENANT

from .db import Models, is_postgres

# First key of the transaction-scoped advisory lock that serialises one shop's writers on
# PostgreSQL; the second is the hash of the shop's id (`pg_advisory_xact_lock(int, int)`),
# so two shops never wait for each other.
WRITE_LOCK = 7355607


class LiveChange(TypedDict):
    """One change as the changes feed pages it (and as a small commit's live notice carries it)."""

    table: str
    seq: int
    record: dict[str, Any]


@dataclass
class ServiceContext:
    models: Models
    clock: Callable[[], int]
    # `on_commit(tenant, tables, cursor, since=, changes=, answered=)` after each SQLite
    # commit that changed rows (hub.LiveHub.publish_threadsafe); PostgreSQL commits notify
    # through NOTIFY, with the shop in the payload (server/push.py).
    on_commit: Callable[..., None] | None = None
    # The shop every read and write of this context is for (protocol/tenancy.py).
    tenant: str = DEFAULT_TENANT
    # `on_command(tenant, kind, machine_id, command)` after each SQLite commit the panel or a
    # PDV must hear of: a command to deliver, a report, a finished command, a forgotten
    # machine (server/commands.py); PostgreSQL notifies every process through NOTIFY.
    on_command: Callable[..., None] | None = None
    db: pw.Database = field(init=False)
    postgres: bool = field(init=False)
    # Per (shop, table): ((MAX(seq), row count), its summary); see reconcile._table_summary.
    summary_cache: dict[tuple[str, str], tuple[tuple[int, int], dict[str, Any]]] = field(
        default_factory=dict
    )
    # Per (shop, table): its live rows as wire JSON (server/listcache.py `_Entry`; each
    # entry has its own lock, this dict is guarded by cache_lock).
    list_cache: dict[tuple[str, str], Any] = field(default_factory=dict)
    # Guards the caches touched by request threads: summary_cache, pulls_seen, list_cache.
    cache_lock: threading.Lock = field(default_factory=threading.Lock)
    # Statement texts built once (see sql.write_rows); only ever grows, by idempotent keys.
    sql_cache: dict[str, str] = field(default_factory=dict)
    # (shop, machine) -> (when, cursor) last recorded by this process (see pull._touch_pull).
    pulls_seen: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.db = self.models.db
        self.postgres = is_postgres(self.db)

    def for_tenant(self, tenant: str) -> ServiceContext:
        """This context bound to `tenant`: same database, pool, callback and caches."""
        return self if tenant == self.tenant else replace(self, tenant=tenant)

    @contextmanager
    def connection(self) -> Iterator[None]:
        """A pooled connection for one unit of work (one request)."""
        with self.db.connection_context():
            yield

    @contextmanager
    def write_transaction(self) -> Iterator[None]:
        """A transaction that holds this shop's writer lock: the shop's sequence numbers are
        assigned and committed in the same order (the module docstring of server/push.py).
        SQLite has one writer for every shop (`BEGIN IMMEDIATE`)."""
        with self.db.atomic():
            if self.postgres:
                self.db.execute_sql(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (WRITE_LOCK, self.tenant)
                )
            yield
