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

Commands from the panel (server/commands.py) travel on the same sockets, to the machine
they are for: `{"type": "command", "id", "kind", "strategy"}`, right away when it is
connected to this process (`notice`, from this process's commits or from NOTIFY on
`pdvsync_commands`, so a command asked on any process reaches the PDV's socket on any
other), and on connect for those not finished yet. A PDV runs each id once, so a command
handed over twice is harmless.

`panel_events` is how the panel's live page learns that something changed in a shop (a
commit, a report, a command asked or finished, a machine forgotten): see `PanelEvents`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import WebSocket

from protocol import dumps
from protocol.tenancy import DEFAULT_TENANT

from .panel_events import PANEL_KINDS, PanelEvents, PanelSubscription

__all__ = ["PANEL_KINDS", "LiveHub", "PanelEvents", "PanelSubscription", "PgListener"]

log = logging.getLogger(__name__)
# Most changes one message carries (coalesced notices included).
MAX_LIVE_CHANGES = 500
# A client's text keep-alive, answered with a pong.
_PINGS = ("ping", '{"type":"ping"}', '{"type": "ping"}')


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
        self.changed = False  # a notice of changes is waiting to be sent
        self.commands: list[dict[str, Any]] = []  # command messages waiting to be sent


class LiveHub:
    def __init__(self) -> None:
        # The sockets of each shop: a notice is routed by its shop, never broadcast.
        self._shops: dict[str, set[_Client]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.panel_events = PanelEvents()
        # `on_delivered(tenant, command_ids)` after commands went out on a socket (run in a
        # worker thread: it writes their delivery time, SyncService.mark_delivered).
        self.on_delivered: Callable[[str, list[str]], None] | None = None
        # `on_socket(tenant, machine_id, opened)` when a machine's socket opened, or its last
        # one in this process closed (run in a worker thread: server/presence.py).
        self.on_socket: Callable[[str, str, bool], None] | None = None
        # One thread for them, so a quick open-then-close is recorded in that order.
        self._socket_writer = ThreadPoolExecutor(1, thread_name_prefix="pdvsync-sockets")
        self._background: set[asyncio.Future[None]] = set()

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

    def _on_loop(self, callback: Callable[..., object], *args: Any) -> None:
        """Run `callback(*args)` on the hub's loop, from any thread (nothing once it closed)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # loop shutting down
            loop.call_soon_threadsafe(callback, *args)

    def publish_threadsafe(
        self,
        tenant: str,
        tables: list[str],
        cursor: int,
        *,
        since: int | None = None,
        changes: list[dict[str, Any]] | None = None,
        answered: str | None = None,
    ) -> None:
        """Called from worker threads (after a SQLite commit, or by the PostgreSQL listener)
        with the committing shop. `since`/`changes`: the commit's whole content, when it is
        small (see the module). `answered`: the machine that pushed it and gets its changes
        in the push's reply."""
        self._on_loop(self.publish, tenant, tables, cursor, since, changes, answered)

    def publish(
        self,
        tenant: str,
        tables: list[str],
        cursor: int,
        since: int | None = None,
        changes: list[dict[str, Any]] | None = None,
        answered: str | None = None,
    ) -> None:
        """Tell the sockets of `tenant` (only them) about a commit of that shop; not those of
        the machine `answered`, whose push reply carries the commit's changes (telling it
        again cost the other PDVs' notices a message's time, and that PDV ignores it)."""
        self.panel_events.notify(tenant, "commit")
        for c in self._shops.get(tenant, ()):
            if answered is not None and c.machine_id == answered:
                continue
            if changes is not None and since is not None and not c.changed:
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
            c.changed = True
            c.wake.set()

    def notice_threadsafe(
        self,
        tenant: str,
        kind: str,
        machine_id: str | None,
        command: dict[str, Any] | None = None,
    ) -> None:
        """`notice` from a worker thread (SyncService's `on_command`, the PostgreSQL
        listener)."""
        self._on_loop(self.notice, tenant, kind, machine_id, command)

    def notice(
        self,
        tenant: str,
        kind: str,
        machine_id: str | None,
        command: dict[str, Any] | None = None,
    ) -> None:
        """Something of shop `tenant` the panel must hear of (server/commands.py's kinds);
        a `command` (its socket message) goes to the machine's sockets in this process."""
        self.panel_events.notify(tenant, kind)
        if command is not None and machine_id is not None:
            self.send_command(tenant, machine_id, command)

    def send_command(self, tenant: str, machine_id: str, message: dict[str, Any]) -> int:
        """Queue a command message on the sockets of `machine_id` of shop `tenant` in this
        process. Returns how many sockets got it."""
        sent = 0
        for c in self._shops.get(tenant, ()):
            if c.machine_id != machine_id:
                continue
            if all(m.get("id") != message.get("id") for m in c.commands):
                c.commands.append(message)
            c.wake.set()
            sent += 1
        return sent

    async def serve(
        self,
        ws: WebSocket,
        machine_id: str | None,
        hello: Callable[[], Awaitable[dict[str, Any]]],
        tenant: str = DEFAULT_TENANT,
        commands: Callable[[], Awaitable[list[dict[str, Any]]]] | None = None,
        answer: Callable[[str], Awaitable[str | None]] | None = None,
    ) -> None:
        """Run one accepted connection of one shop until it closes.

        The client is subscribed before `hello()` reads the head, so a commit landing in
        between is either in the hello's cursor or announced right after it; the sender
        starts after the hello, so "hello" is always the first message. `commands()` then
        gives the machine's commands not finished yet (sent right after the hello; a
        command asked meanwhile may come twice, which a PDV ignores). `answer(message)`
        gives the reply to any other message the client sends (None: no reply): a push
        (server/api/live_push.py), answered before the next message is read, so one
        socket's pushes apply one at a time, in order, as a client's HTTP requests would.
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
            if machine_id:
                self._socket_changed(tenant, machine_id, True)
            if commands is not None:
                try:
                    for command in await commands():
                        if all(m.get("id") != command.get("id") for m in client.commands):
                            client.commands.append(command)
                except Exception as exc:  # the report's reply hands them over later
                    log.warning("live: cannot read the commands (%s)", type(exc).__name__)
                if client.commands:
                    client.wake.set()
            sender = asyncio.create_task(self._send_loop(client))
            while True:
                message = await ws.receive_text()
                if len(message) < 32 and message.strip().lower() in _PINGS:
                    await ws.send_text(json.dumps({"type": "pong"}))
                elif answer is not None:
                    reply = await answer(message)
                    if reply is not None:
                        await ws.send_text(reply)
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
            if machine_id and all(c.machine_id != machine_id for c in shop or ()):
                self._socket_changed(tenant, machine_id, False)

    async def _send_loop(self, client: _Client) -> None:
        try:
            while True:
                await client.wake.wait()
                client.wake.clear()
                commands, client.commands = client.commands, []
                for command in commands:
                    await client.ws.send_text(dumps(command))
                if commands:
                    self._delivered(client.tenant, [str(c.get("id")) for c in commands])
                if not client.changed:
                    continue
                client.changed = False
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

    def _socket_changed(self, tenant: str, machine_id: str, opened: bool) -> None:
        """Record (in a worker thread) that a machine's socket opened or closed, then tell
        the panel; a failure only leaves the panel to the reports' silence rule."""
        callback = self.on_socket
        if callback is None:
            return
        loop = asyncio.get_running_loop()

        def record() -> None:
            try:
                callback(tenant, machine_id, opened)
            except Exception as exc:
                log.warning("live: cannot record a socket's state (%s)", type(exc).__name__)
                return
            self._on_loop(self.panel_events.notify, tenant, "socket")

        with contextlib.suppress(RuntimeError):  # the executor is shutting down
            task = loop.run_in_executor(self._socket_writer, record)
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _delivered(self, tenant: str, ids: list[str]) -> None:
        """Record (in a worker thread) that commands went out; a failure only leaves their
        delivery time unset (the next report's reply sets it)."""
        callback = self.on_delivered
        if callback is None:
            return

        def record() -> None:
            try:
                callback(tenant, ids)
            except Exception as exc:
                log.warning("live: cannot record a delivery (%s)", type(exc).__name__)

        task = asyncio.get_running_loop().run_in_executor(None, record)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


class PgListener:
    """A thread that LISTENs on PostgreSQL and forwards notifications to the hub, each to
    the sockets of the shop its payload names: commits on `channel`, and (when given) the
    commands and panel notices of `commands_channel` (server/commands.py)."""

    def __init__(
        self,
        conninfo: dict[str, Any],
        channel: str,
        hub: LiveHub,
        commands_channel: str | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.channel = channel
        self.commands_channel = commands_channel
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
                    if self.commands_channel:
                        conn.execute(f"LISTEN {self.commands_channel}")
                    self.connected.set()
                    delay = 0.5
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            if note.channel == self.commands_channel:
                                self._forward_notice(note.payload)
                            else:
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
            answered = data.get("answered")
            self.hub.publish_threadsafe(
                tenant,
                list(data["tables"]),
                int(data["cursor"]),
                answered=answered if isinstance(answered, str) else None,
            )
        except (ValueError, KeyError, TypeError):
            log.warning("live notifications: ignored a malformed payload")

    def _forward_notice(self, payload: str) -> None:
        try:
            data = json.loads(payload)
            tenant, kind, machine = data["tenant"], data["kind"], data.get("machineId")
            command = data.get("command")
            if not isinstance(tenant, str) or not isinstance(kind, str):
                raise TypeError("tenant")
            if machine is not None and not isinstance(machine, str):
                raise TypeError("machineId")
            if command is not None and not isinstance(command, dict):
                raise TypeError("command")
            self.hub.notice_threadsafe(tenant, kind, machine, command)
        except (ValueError, KeyError, TypeError):
            log.warning("commands: ignored a malformed payload")
