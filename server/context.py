"""What the parts of the sync service share: the database and its models, the clock, the
backend, the caches and the live-notice callback.

One small object passed to every part (push, pull, reconcile, maintenance) instead of a
class hierarchy: each part is a module of functions over it, and `SyncService` holds one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypedDict

import peewee as pw

from .db import Models, is_postgres

# Key of the transaction-scoped advisory lock that serialises writers on PostgreSQL.
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
    # `on_commit(tables, cursor, since=, changes=)` after each SQLite commit that changed
    # rows (hub.LiveHub.publish_threadsafe); PostgreSQL commits notify through NOTIFY.
    on_commit: Callable[..., None] | None = None
    db: pw.Database = field(init=False)
    postgres: bool = field(init=False)
    # Per table: ((MAX(seq), row count), its summary); see reconcile.table_summary.
    summary_cache: dict[str, tuple[tuple[int, int], dict[str, Any]]] = field(default_factory=dict)
    # Guards the two caches touched by request threads: summary_cache and pulls_seen.
    cache_lock: threading.Lock = field(default_factory=threading.Lock)
    # Statement texts built once (see sql.write_rows); only ever grows, by idempotent keys.
    sql_cache: dict[str, str] = field(default_factory=dict)
    # machine -> (when, cursor) last recorded by this process (see pull.touch_pull).
    pulls_seen: dict[str, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.db = self.models.db
        self.postgres = is_postgres(self.db)

    @contextmanager
    def connection(self) -> Iterator[None]:
        """A pooled connection for one unit of work (one request)."""
        with self.db.connection_context():
            yield

    @contextmanager
    def write_transaction(self) -> Iterator[None]:
        """A transaction that holds the one writer's lock: sequence numbers are assigned and
        committed in the same order (the module docstring of server/service.py)."""
        with self.db.atomic():
            if self.postgres:
                self.db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield
