"""What every part of the agent's store shares: the database, its models, the writer lock and
the two durability levels of a transaction (FULL for what the POS is told; NORMAL for the
mirror of what the server already holds). Invariants are numbered as in docs/protocol.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import peewee as pw

from protocol import now_ms

from .changes import ChangeFeed, WriterLock
from .models import StoreModels

# Rows per `IN (...)` query: well under SQLite's limit of bound parameters.
CHUNK = 500

T = TypeVar("T")


def open_database(path: Path | str) -> pw.SqliteDatabase:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return pw.SqliteDatabase(
        str(path),
        # synchronous=FULL: a write acknowledged to the POS must survive a power cut; in WAL
        # mode NORMAL can lose the last commits. IMMEDIATE: writers queue, never deadlock.
        pragmas={
            "journal_mode": "wal",
            "synchronous": "full",
            "foreign_keys": 1,
            "busy_timeout": 10_000,
        },
        lock_type="IMMEDIATE",
        timeout=10,
    )


@dataclass
class StoreContext:
    """The handles the store's components share (each component gets this, not the others'
    internals)."""

    db: pw.SqliteDatabase
    m: StoreModels
    # This machine's own clock (ms), the one a front end on it reads too: when view rows
    # change (`changed_at`), for the seed's reads by `lastSync`. The store is otherwise
    # told the time by its callers; a test sets this one.
    clock: Callable[[], int] = now_ms
    # The token a front end waits on: moved after each commit that changed view rows.
    changes: ChangeFeed = field(default_factory=ChangeFeed)
    # One writer at a time inside this process (SQLite's own lock orders the processes);
    # its last release settles `changes` (the holder's transaction is over by then).
    lock: WriterLock = field(init=False)

    def __post_init__(self) -> None:
        self.lock = WriterLock(self.changes)

    @contextmanager
    def mirror_transaction(self) -> Iterator[None]:
        """A transaction holding only what the server already has: its rows and cursor, and
        its answers to events already pushed. Committed with synchronous=NORMAL (no fsync of
        its own), and only those: a POS write and its outbox event (`LocalWrites.write`) are
        never in one, they always commit with FULL.

        Why that is safe: in WAL mode a NORMAL commit is atomic and ordered, but a power cut
        may lose it (never a later FULL commit: the WAL is appended in order and the next
        FULL commit's fsync makes every earlier frame durable with it). Losing one only takes
        the store back a little: pulled rows and the cursor go back, and are pulled again;
        an acknowledged event is pending again, is pushed again, and the server answers it
        "duplicate" with its original result (invariant 2). Nothing the POS was told is
        stored depends on it.
        """
        conn = self.db.connection()
        if self.db.transaction_depth() > 0:  # inside a caller's transaction: its rules
            with self.db.atomic():
                yield
            return
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            with self.db.atomic():
                yield
        finally:
            conn.execute("PRAGMA synchronous=FULL")


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """`items` in slices of `size`: one `IN (...)` query each."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


# peewee's stubs type every row of a query as a model instance, also after `.tuples()` or
# `.dicts()`: these say what the rows are.


def tuples(query: pw.BaseQuery) -> Iterator[tuple[Any, ...]]:
    """The rows of `query` as tuples."""
    return cast(Iterator[tuple[Any, ...]], iter(query.tuples()))


def dicts(query: pw.BaseQuery) -> Iterator[dict[str, Any]]:
    """The rows of `query` as `{field name: value}`."""
    return cast(Iterator[dict[str, Any]], iter(query.dicts()))
