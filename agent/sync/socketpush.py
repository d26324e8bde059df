"""Pushes on the live WebSocket: a request id per push, a future per id, the server's
`pushed` reply resolving it (protocol/messages.py describes both messages).

The live socket (live.py) opens one `PushChannel` per connection whose hello says
`"push": true` and hands it to the HTTP client (client.py), which then sends its batch
pushes here instead of `POST /api/sync/batch`; the answer is the route's own status and
body, classified by the same code as an HTTP answer. No answer (the socket closed, the
timeout) is `Unreachable`, as for HTTP: the events stay pending and go again, and the
server's receipts make a repeated event apply once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from protocol.messages import SOCKET_PUSH
from protocol.records import dumps_with

from .errors import SyncError, Unreachable

# `send(text)`: one text message on the socket; raises `Unreachable` when it cannot.
Send = Callable[[str], Awaitable[None]]


class PushChannel:
    """One socket's pushes. `database`: the server database its hello named (lower case),
    so a push never reaches a database the agent does not sync with."""

    def __init__(self, send: Send, database: str | None) -> None:
        self._send = send
        self.database = database
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[tuple[int, dict[str, Any]]]] = {}
        self.closed = False

    def serves(self, database: str | None) -> bool:
        """Whether a push for `database` (the one the agent syncs with) may go here. None
        (not known yet) goes over HTTP, whose answer names the database to adopt."""
        return not self.closed and database is not None and database == self.database

    async def push(
        self, fields: dict[str, Any], events_json: str, timeout: float
    ) -> tuple[int, dict[str, Any]]:
        """Send `{"type": "push", "id", **fields, "events": <events_json>}` and wait for its
        reply: (HTTP status, body). `Unreachable` when there is none within `timeout`."""
        if self.closed:
            raise _lost()
        ident = next(self._ids)
        reply: asyncio.Future[tuple[int, dict[str, Any]]] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting[ident] = reply
        try:
            # `type` and `id` first: a server answers even a push too large to parse (413).
            await self._send(
                dumps_with({"type": SOCKET_PUSH, "id": ident, **fields}, events=events_json)
            )
            async with asyncio.timeout(timeout):
                return await reply
        except TimeoutError:
            raise Unreachable("the server did not answer in time", SyncError.TIMEOUT) from None
        finally:
            self._waiting.pop(ident, None)

    def answered(self, message: dict[str, Any]) -> None:
        """A `pushed` message from the server: resolves the push it answers (a late reply,
        to a push that timed out, is dropped; its events are pending and go again)."""
        reply = self._waiting.get(message.get("id"))  # type: ignore[arg-type]
        if reply is None or reply.done():
            return
        status, body = message.get("status"), message.get("body")
        if isinstance(status, bool) or not isinstance(status, int) or not isinstance(body, dict):
            reply.set_exception(
                Unreachable("malformed reply to a push on the live socket", SyncError.NETWORK)
            )
            return
        reply.set_result((status, body))

    def close(self) -> None:
        """The socket is gone: every push still waiting ends `Unreachable`."""
        self.closed = True
        for reply in self._waiting.values():
            if not reply.done():
                reply.set_exception(_lost())
        self._waiting.clear()

    @property
    def waiting(self) -> int:
        """Pushes sent and not answered yet."""
        return len(self._waiting)


def _lost() -> Unreachable:
    return Unreachable(
        "the live connection closed before the server answered the push", SyncError.NETWORK
    )
