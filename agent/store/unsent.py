"""How many local changes are not on the server, read without touching the store: what the
uninstaller asks before offering to delete the local data.

Read-only on purpose: the uninstaller may run while the agent still has the file open, or
before an upgraded agent has migrated it, and a count must never write (nor migrate) it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from protocol.vocabulary import OutboxState


class StoreUnreadable(Exception):
    """The store exists but could not be read (damaged, locked, not a store)."""


def count_unsent(path: Path) -> int:
    """Pending events plus dead letters (refused, still not on the server); 0 when no store."""
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        raise StoreUnreadable(str(exc)) from None
    try:
        (count,) = db.execute(
            "SELECT count(*) FROM outbox WHERE state IN (?, ?)",
            (OutboxState.PENDING, OutboxState.DEAD),
        ).fetchone()
        return int(count)
    except sqlite3.Error as exc:
        raise StoreUnreadable(str(exc)) from None
    finally:
        db.close()
