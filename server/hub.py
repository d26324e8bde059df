"""Live notifications: connected agents hear, right after each commit, that changes exist.

A message is `{"type": "changes", "tables": [...], "cursor": N}`; clients then pull. Every
socket belongs to one shop (tenant) and hears only that shop's commits: the cursor is the
shop's own sequence, and another shop's notice would tell it nothing but that the other
shop is selling. Messages
coalesce per client (only the newest cursor matters), so a slow client never slows the
others or grows a queue. On PostgreSQL every server process LISTENs, so a commit made by any
process reaches the clients of all of them; on SQLite (one process) commits publish directly.

There, a small commit also travels in its message: `"since": S, "changes": [...]` are then
every change after S up to `cursor`, as the changes feed pages them after S. A client whose
cursor is S applies them and need not pull; any other client ignores the two fields and
pulls, as a client that does not know them always does. Coalesced notices keep them only
while they stay contiguous (and small); otherwise the message is a plain notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import WebSocket

from protocol import dumps
from protocol.tenancy import DEFAULT_TENANT

log = logging.getLogger(__name__)
# Most changes one message carries (coalesced notices included).
MAX_LIVE_CHANGES = 500


class _Client:
    def __init__(self, ws: WebSocket, machine_id: str | None, tenant: str) -> None:
        self.ws = ws
        self.machine_id = machine_id
        self.tenant = tenant
        self.tables: set[str] = set()
        self.cursor = 0
        self.wake = asyncio.Event()
        # The changes of the notices not sent yet, contiguous from `since`; None: none, or
        # not contiguous (the message is then a plain notice).
        self.since: int | None = None
        self.changes: list[dict[str, Any]] | None = None


class LiveHub:
    def __init__(self) -> None:
        # The sockets of each shop: a notice is routed by its shop, never broadcast.
        self._shops: dict[str, set[_Client]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def count(self, tenant: str | None = None) -> int:
        """Open sockets of one shop (all shops when None)."""
        if tenant is not None:
            return len(self._shops.get(tenant, ()))
        return sum(len(clients) for clients in self._shops.values())

    def machines(self, tenant: str | None = None) -> list[str | None]:
        """The machine ids of one shop's open sockets (all shops when None)."""
        clients = (
            self._shops.get(tenant, set())
            if tenant is not None
            else set().union(*self._shops.values())
        )
        return sorted((c.machine_id for c in clients), key=lambda m: m or "")

    def publish_threadsafe(
        self,
        tenant: str,
        tables: list[str],
        cursor: int,
        *,
        since: int | None = None,
        changes: list[dict[str, Any]] | None = None,
    ) -> None:
        """Called from worker threads (after a SQLite commit, or by the PostgreSQL listener)
        with the committing shop. `since`/`changes`: the commit's whole content, when it is
        small (see the module)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # loop shutting down
            loop.call_soon_threadsafe(self.publish, tenant, tables, cursor, since, changes)

    def publish(
        self,
        tenant: str,
        tables: list[str],
        cursor: int,
        since: int | None = None,
        changes: list[dict[str, Any]] | None = None,
    ) -> None:
        """Tell the sockets of `tenant` (only them) about a commit of that shop."""
        for c in self._shops.get(tenant, ()):
            if changes is not None and since is not None and not c.wake.is_set():
                c.since, c.changes = since, list(changes)  # nothing waiting: this commit alone
            elif (
                changes is not None
                and c.changes is not None
                and c.cursor == since
                and len(c.changes) + len(changes) <= MAX_LIVE_CHANGES
            ):
                c.changes.extend(changes)  # right after the waiting ones: still contiguous
            else:
                c.since = c.changes = None
            c.tables.update(tables)
            c.cursor = max(c.cursor, cursor)
            c.wake.set()

    async def serve(
        self,
        ws: WebSocket,
        machine_id: str | None,
        hello: Callable[[], Awaitable[dict[str, Any]]],
        tenant: str = DEFAULT_TENANT,
    ) -> None:
        """Run one accepted connection of one shop until it closes.

        The client is subscribed before `hello()` reads the head, so a commit landing in
        between is either in the hello's cursor or announced right after it; the sender
        starts after the hello, so "hello" is always the first message.
        """
        client = _Client(ws, machine_id, tenant)
        self._shops.setdefault(tenant, set()).add(client)
        sender: asyncio.Task | None = None
        try:
            try:
                greeting = await hello()
            except Exception as exc:
                log.warning(
                    "live: cannot read the cursor, database unavailable (%s)", type(exc).__name__
                )
                await ws.close(code=1013, reason="database unavailable; retry later")
                return
            await ws.send_text(json.dumps({"type": "hello", **greeting}))
            sender = asyncio.create_task(self._send_loop(client))
            while True:
                message = await ws.receive_text()
                if message.strip().lower() in ("ping", '{"type":"ping"}', '{"type": "ping"}'):
                    await ws.send_text(json.dumps({"type": "pong"}))
        except Exception:  # disconnects arrive as various exceptions; all end the session
            pass
        finally:
            shop = self._shops.get(tenant)
            if shop is not None:
                shop.discard(client)
                if not shop:
                    del self._shops[tenant]
            if sender is not None:
                sender.cancel()

    async def _send_loop(self, client: _Client) -> None:
        try:
            while True:
                await client.wake.wait()
                client.wake.clear()
                tables, client.tables = sorted(client.tables), set()
                message: dict[str, Any] = {
                    "type": "changes",
                    "tables": tables,
                    "cursor": client.cursor,
                }
                if client.changes is not None:
                    message.update(since=client.since, changes=client.changes)
                client.since = client.changes = None
                await client.ws.send_text(dumps(message))
        except asyncio.CancelledError:
            raise
        except Exception:
            with contextlib.suppress(Exception):
                await client.ws.close()


class PgListener:
    """A thread that LISTENs on PostgreSQL and forwards notifications to the hub, each to
    the sockets of the shop its payload names."""

    def __init__(self, conninfo: dict[str, Any], channel: str, hub: LiveHub) -> None:
        self.conninfo = conninfo
        self.channel = channel
        self.hub = hub
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-listener", daemon=True)
        self.connected = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg

        delay = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(autocommit=True, connect_timeout=5, **self.conninfo) as conn:
                    conn.execute(f"LISTEN {self.channel}")
                    self.connected.set()
                    delay = 0.5
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._forward(note.payload)
            except Exception as exc:
                self.connected.clear()
                if self._stop.is_set():
                    break
                log.warning(
                    "live notifications: PostgreSQL listener lost (%s); retrying",
                    type(exc).__name__,
                )
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def _forward(self, payload: str) -> None:
        try:
            data = json.loads(payload)
            # A payload without a shop comes from a process older than tenants: its
            # database had only the default shop.
            tenant = data.get("tenant") or DEFAULT_TENANT
            if not isinstance(tenant, str):
                raise TypeError("tenant")
            self.hub.publish_threadsafe(tenant, list(data["tables"]), int(data["cursor"]))
        except (ValueError, KeyError, TypeError):
            log.warning("live notifications: ignored a malformed payload")
