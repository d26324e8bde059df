"""Small named facts of the agent's store (`sync_state`): the pull cursor, the machine id, the
server's database identity, the saved clock offset."""

from __future__ import annotations

from .context import StoreContext


class SyncState:
    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

    def get(self, key: str, default: str | None = None) -> str | None:
        # Plain SQL: the cursor is read several times per sync cycle and per notice.
        row = self._ctx.db.execute_sql(
            "SELECT value FROM sync_state WHERE key = ?", (key,)
        ).fetchone()
        return row[0] if row else default

    def set(self, key: str, value: str) -> None:
        S = self._ctx.m.State
        S.insert(key=key, value=value).on_conflict(
            conflict_target=[S.key], preserve=[S.value]
        ).execute()

    @property
    def cursor(self) -> int:
        """The server sequence number up to which this store holds the server's changes."""
        return int(self.get("cursor", "0") or 0)

    def set_cursor(self, cursor: int) -> None:
        self.set("cursor", str(cursor))
