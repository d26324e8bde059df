"""The PostgreSQL connection pool: peewee's, without a round trip per checkout.

peewee's pool checks that an idle PostgreSQL connection is still alive by running
`SELECT 1` on it each time it is taken from the pool: one more round trip to the database
per request, on the hot path of every push. A connection given back moments ago is taken
as it is here; one that sat idle longer is still checked. A connection that died meanwhile
(the database restarted) fails its first statement: the request is answered 503
`database_unavailable` (webapi/errors.py), nothing of it applied, and the broken connection
is not given back to the pool.
"""

from __future__ import annotations

import time
from typing import Any

from playhouse.pool import PooledPostgresqlDatabase
from psycopg.pq import TransactionStatus

# A connection returned to the pool less than this long ago is handed out unchecked.
FRESH_SECONDS = 1.0


class PooledPostgres(PooledPostgresqlDatabase):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._returned_at: dict[int, float] = {}  # id(connection) -> when it came back

    def _close(self, conn: Any, close_conn: bool = False) -> None:
        """A connection given back (or closed for good: then `_close_raw` forgets it)."""
        self._returned_at[id(conn)] = time.monotonic()
        super()._close(conn, close_conn)

    def _close_raw(self, conn: Any) -> None:
        self._returned_at.pop(id(conn), None)
        super()._close_raw(conn)

    def _is_closed(self, conn: Any) -> bool:
        returned = self._returned_at.pop(id(conn), None)
        if (
            returned is not None
            and time.monotonic() - returned < FRESH_SECONDS
            and not conn.closed
            and conn.pgconn.transaction_status == TransactionStatus.IDLE
        ):
            return False
        return bool(super()._is_closed(conn))
