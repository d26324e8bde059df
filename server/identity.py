"""The database's identity on the wire.

Every response carries `X-PDVSync-Database: <id>` (see migration 0002). A client that sends
the identity it expects in the same header is refused with 409 `database_changed` before the
route runs when the server is on another database: nothing of the request is applied, so a
PDV's sales never land in a database that is not the shop's, and its cursor is never applied
to a sequence it does not belong to. Clients that send no header (the seed's, scripts) are
unaffected. A restore keeps the identity (it is a row of the backed-up `sync_state`).
"""

from __future__ import annotations

from typing import Any

import peewee as pw

from protocol.envelope import send_json
from protocol.headers import DATABASE_HEADER as HEADER

_HEADER_BYTES = HEADER.encode()


def read_database_id(db: pw.Database) -> str:
    with db.connection_context():
        # The database's own row of sync_state: the reserved shop '' (migration 0003).
        row = db.execute_sql(
            "SELECT value FROM sync_state WHERE tenant_id = '' AND key = 'database_id'"
        ).fetchone()
    if row is None:
        raise RuntimeError("the database has no identity: run the migrations")
    return format(int(row[0]), "016x")


class DatabaseIdentity:
    """ASGI middleware; `current()` gives the identity once the app has started (None before)."""

    def __init__(self, app: Any, current: Any) -> None:
        self.app = app
        self.current = current

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        ident = self.current() if scope["type"] in ("http", "websocket") else None
        if ident is None:
            await self.app(scope, receive, send)
            return
        expected = next(
            (
                v.decode("latin-1").strip().lower()
                for k, v in scope.get("headers", [])
                if k.lower() == _HEADER_BYTES
            ),
            None,
        )
        if expected and expected != ident:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4409})
                return
            await send_json(
                send,
                409,
                {
                    "success": False,
                    "code": "database_changed",
                    "database": ident,
                    "expected": expected,
                    "error": "this server is on another database than the one this client synced with; "
                    "nothing was applied",
                },
                ((_HEADER_BYTES, ident.encode()),),
            )
            return

        async def send_with_identity(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (_HEADER_BYTES, ident.encode())],
                }
            await send(message)

        await self.app(scope, receive, send_with_identity)
