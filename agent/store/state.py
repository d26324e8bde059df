"""Small named facts of the agent's store (`sync_state`): the pull cursor, the machine id, the
server's database identity, the saved clock offset, whether a pull ever reached the server's
head, and the seed's bootstrap of each table."""

from __future__ import annotations

from .context import StoreContext

# "1" once a pull reached the server's head (an empty page); "0" again after a reset.
_AT_HEAD = "pulled_to_head"
# Per table: "completed" once the seed's bootstrap of it is done (or no longer possible).
_BOOTSTRAP = "bootstrap:"
COMPLETED = "completed"


class SyncState:
    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx
        self._at_head: bool | None = None  # `_AT_HEAD` as last read or written

    def get(self, key: str, default: str | None = None) -> str | None:
        # Plain SQL: the cursor is read several times per sync cycle and per notice.
        row = self._ctx.db.execute_sql(
            "SELECT value FROM sync_state WHERE key = ?", (key,)
        ).fetchone()
        return row[0] if row else default

    def set(self, key: str, value: str) -> None:
        # Plain SQL: the cursor is written by every acknowledgement and live notice, and
        # peewee's building of this upsert cost more than SQLite's work.
        self._ctx.db.execute_sql(
            "INSERT INTO sync_state (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @property
    def cursor(self) -> int:
        """The server sequence number up to which this store holds the server's changes."""
        return int(self.get("cursor", "0") or 0)

    def set_cursor(self, cursor: int) -> None:
        self.set("cursor", str(cursor))

    # -- has this store ever caught up with the server? -----------------------------------

    def reached_server(self) -> bool:
        """True once this store holds the server's rows as of some moment: it pulled
        something (a cursor above 0), or a pull reached the head of a server with nothing
        (an empty page). What the seed's bootstrap needs before it may fill a table that is
        empty here: otherwise "empty" may only mean "not pulled yet"."""
        if self._at_head is None:
            self._at_head = self.get(_AT_HEAD) == "1"
        return self._at_head or self.cursor > 0

    def mark_at_head(self) -> None:
        """A pull reached the server's head (written once, not on every idle poll)."""
        if self._at_head is not True:
            self.set(_AT_HEAD, "1")
            self._at_head = True

    def forget_head(self) -> None:
        """The mirror was reset: the next pull must reach the head again."""
        self.set(_AT_HEAD, "0")
        self._at_head = False

    # -- the seed's bootstrap, per table ---------------------------------------------------

    def bootstrap_state(self, table: str) -> str | None:
        """`completed`, or None while the table may still be bootstrapped."""
        return self.get(_BOOTSTRAP + table)

    def set_bootstrap_state(self, table: str, state: str) -> None:
        self.set(_BOOTSTRAP + table, state)
