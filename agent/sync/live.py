"""The live WebSocket to the server: each notice of a commit wakes the engine to pull, or is
applied at once when it carries that commit's changes starting at our cursor. Polling takes
over while the socket is down; it reconnects with a growing, jittered delay. The socket is
our shop's (query `tenantId` and `x-tenant-id`), and never opened while the store holds
another shop's data. The panel's commands for this PDV come on it too (`on_command`), and
the outbox's pushes go on it when the server's hello says it takes them (socketpush.py).

Keep-alive: a ping every `KEEPALIVE_INTERVAL_S`; no pong within `KEEPALIVE_TIMEOUT_S` means
the link is gone without a word (a silent loss: packets dropped, no RST). The socket is then
dropped at once (no closing handshake over a dead link) and the server is asked over HTTP
with a short timeout (`PROBE_TIMEOUT_S`): no answer either, and the badge turns Offline now
rather than when the cycle's own request times out; an answer, and it stays as it is while
polling takes over. Worst case from the loss to Offline: interval + timeout + probe (12 s)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from protocol.headers import DATABASE_HEADER
from protocol.messages import SOCKET_PUSHED
from protocol.tenancy import TENANT_HEADER

from .context import SyncContext
from .errors import ServerError, SyncError, TenantChanged, Throttled, Unreachable
from .socketpush import PushChannel

log = logging.getLogger(__name__)

_FIRST_DELAY_S = 0.5
_MAX_DELAY_S = 30.0
# Sized for "a silent loss noticed in <= 15 s" (issue 12): 5 + 4 + 3 s at worst. The pings
# are also the agent's only periodic wake-up while idle (two a period: ping, pong).
KEEPALIVE_INTERVAL_S = 5.0
KEEPALIVE_TIMEOUT_S = 4.0  # a pong takes milliseconds on a shop's network
PROBE_TIMEOUT_S = 3.0
# Our own close (the engine stops): the server's answer is not worth waiting long for.
CLOSE_TIMEOUT_S = 2.0


class LiveSocket:
    def __init__(self, context: SyncContext) -> None:
        self.context = context
        # `on_command(message)`: a `{"type": "command", ...}` message (agent/sync/commands.py).
        self.on_command: Callable[[dict[str, Any]], None] | None = None
        self.silent_losses = 0  # sockets dropped for an unanswered ping (tests, diagnostics)
        # `on_alive()`: a keep-alive ping was answered (the engine's heartbeat rides on it).
        self.on_alive: Callable[[], None] | None = None
        self._next_ping_at: float | None = None  # loop time; None without a socket
        self._ws: ClientConnection | None = None  # the socket, while connected
        # Its pushes, once its hello said it takes them (socketpush.py).
        self._channel: PushChannel | None = None

    def url(self) -> str:
        base = self.context.settings.server_url
        url = base.replace("https://", "wss://").replace("http://", "ws://").rstrip("/")
        query = urlencode({"machineId": self.context.machine_id, "tenantId": self.context.tenant})
        return f"{url}/api/sync/ws?{query}"

    async def run(self) -> None:
        """Hold the socket until the engine stops (this task is then cancelled)."""
        ctx = self.context
        try:
            ctx.client.check_tenant()
        except TenantChanged:
            return  # not our shop's store: no notices (the sync cycle says why it stopped)
        key = ctx.settings.api_key
        headers = {"x-api-key": key} if key else {}
        headers[TENANT_HEADER] = ctx.tenant
        delay = _FIRST_DELAY_S
        while not ctx.stopping:
            ctx.reconnect.clear()  # a poll that succeeds from now on retries at once
            if ctx.client.database:
                # Notices carry changes applied without a pull: only from our database.
                headers[DATABASE_HEADER] = ctx.client.database
            else:
                headers.pop(DATABASE_HEADER, None)
            silent = False
            try:
                async with ws_connect(
                    self.url(),
                    additional_headers=headers,
                    open_timeout=5,
                    # Our own keep-alive (below): it drops a silent socket at once, where
                    # the library's would first wait for a closing handshake that cannot come.
                    ping_interval=None,
                    close_timeout=CLOSE_TIMEOUT_S,
                    # A push's reply carries a page of changes as HTTP's does.
                    max_size=2**24,
                    # No permessage-deflate: the messages are small (a notice carries at
                    # most 100 rows) and cross the shop's network; compressing and inflating
                    # each one cost both ends ~0.5 ms of every live update's ~5, and zlib's
                    # buffers for the socket's lifetime.
                    compression=None,
                ) as ws:
                    self._ws = ws
                    # Catch up on what happened while disconnected: the next cycle pulls,
                    # whatever the hello says (a server behind our cursor, e.g. restored
                    # from a backup, answers that pull with "resync").
                    ctx.force_pull = True
                    ctx.board.update(live=True)
                    delay = _FIRST_DELAY_S
                    ctx.wake_up()
                    keepalive = asyncio.create_task(self._keepalive(ws))
                    try:
                        async for message in ws:
                            await self._notice(message)
                    finally:
                        self._close_channel()  # pushes waiting for a reply: Unreachable
                        keepalive.cancel()
                        silent = await _ended_silently(keepalive)
            except asyncio.CancelledError:
                raise
            except (OSError, websockets.WebSocketException, TimeoutError) as exc:
                log.debug("live connection down: %s", exc)
            except Exception:
                # A bug in handling a message: this socket goes (polling takes over, the
                # badge says so) and a new one is opened, rather than the live task ending
                # while the badge still says live.
                log.exception("live connection failed")
            self._ws = None
            ctx.board.update(live=False)
            ctx.wake_up()  # polling takes over
            if silent:
                await self._probe()
            try:
                await asyncio.wait_for(
                    ctx.reconnect.wait(), timeout=delay * random.uniform(0.5, 1.0)
                )
                delay = _FIRST_DELAY_S  # a poll reached the server again
            except TimeoutError:
                delay = min(delay * 2, _MAX_DELAY_S)

    async def _keepalive(self, ws: ClientConnection) -> bool:
        """Ping until a pong is missing; then drop the socket (True: lost silently). The
        pings keep to a fixed grid of times (`aligned`), for others to wake up with them."""
        loop = asyncio.get_running_loop()
        ping_at = loop.time() + KEEPALIVE_INTERVAL_S
        try:
            while True:
                self._next_ping_at = ping_at
                await sleep_until(ping_at)
                try:
                    pong = await ws.ping()
                    await asyncio.wait_for(pong, KEEPALIVE_TIMEOUT_S)
                except websockets.ConnectionClosed:
                    return False  # closing anyway: `async for` ends with the reason
                except TimeoutError:
                    self.silent_losses += 1
                    log.info("live socket silent for %.0f s: dropped", KEEPALIVE_TIMEOUT_S)
                    ws.transport.abort()  # ends `async for` at once
                    return True
                if self.on_alive is not None:
                    self.on_alive()
                ping_at += KEEPALIVE_INTERVAL_S
                if ping_at <= loop.time():  # a late pong: back on a grid from now
                    ping_at = loop.time() + KEEPALIVE_INTERVAL_S
        finally:
            self._next_ping_at = None

    def aligned(self, when: float, *, early: bool) -> float:
        """`when` (the loop's time) moved onto a keep-alive ping, so that one wake-up serves
        both: the ping at or before it (`early`: something due at the latest then), else
        the one at or after it. Unchanged while there is no socket, or when no ping falls
        within one interval of it. Honest for what is periodic anyway (the panel's report,
        the automatic reconcile): it moves by less than one keep-alive interval."""
        tick = self._next_ping_at
        if tick is None:
            return when
        if when < tick:
            return tick if not early and tick - when < KEEPALIVE_INTERVAL_S else when
        before = tick + (when - tick) // KEEPALIVE_INTERVAL_S * KEEPALIVE_INTERVAL_S
        if early or before == when:
            return before
        return before + KEEPALIVE_INTERVAL_S

    async def _probe(self) -> None:
        """After a silent loss: is the server there over HTTP? Offline now when it is not
        (the cycle woken meanwhile may wait up to its own, longer, timeout); nothing when it
        is: the cycle polls and says online."""
        try:
            await self.context.client.health(timeout=PROBE_TIMEOUT_S)
        except Throttled:
            return  # it answered "not now": there
        except Unreachable as exc:
            self.context.board.failed(exc.code, exc.detail)
        except ServerError:
            return  # it answered: the cycle's requests will say more
        except Exception:  # a probe must never end the live loop
            log.exception("probe after a silent loss failed")

    def _open_channel(self, hello: dict[str, Any]) -> None:
        """Pushes go on this socket from now on, when its hello says it takes them (an
        older server's does not: pushes stay on HTTP)."""
        self._close_channel()
        ws = self._ws
        if hello.get("push") is not True or ws is None:
            return

        async def send(text: str) -> None:
            try:
                await ws.send(text)
            except websockets.ConnectionClosed as exc:
                raise Unreachable(
                    "the live connection closed before the push was sent", SyncError.NETWORK
                ) from exc

        database = hello.get("database")
        channel = PushChannel(send, database.lower() if isinstance(database, str) else None)
        self._channel = self.context.client.push_channel = channel

    def _close_channel(self) -> None:
        """The socket is gone: pushes go over HTTP, those waiting end `Unreachable`."""
        channel, self._channel = self._channel, None
        if channel is not None:
            if self.context.client.push_channel is channel:
                self.context.client.push_channel = None
            channel.close()

    async def _notice(self, message: str | bytes) -> None:
        """A hello, a notice of changes, a command or a push's reply; anything else is
        ignored. Never waits for anything but the store: a push waits for its reply, which
        only this loop can read."""
        ctx = self.context
        try:
            data = json.loads(message)
        except ValueError:
            return
        if isinstance(data, dict) and data.get("type") == SOCKET_PUSHED:
            if self._channel is not None:
                self._channel.answered(data)
            return
        if isinstance(data, dict) and data.get("type") == "command":
            if self.on_command is not None:
                self.on_command(data)
            return
        if not isinstance(data, dict) or data.get("type") not in ("changes", "hello"):
            return
        try:
            cursor = int(data.get("cursor", 0))
        except (TypeError, ValueError):
            return
        if data["type"] == "hello":
            shop = data.get("tenantId")
            if shop is not None and shop != ctx.tenant:
                # Never another shop's notices (a server bug): drop this socket, poll.
                log.warning("live socket of shop %r, not ours (%r): dropped", shop, ctx.tenant)
                raise ConnectionAbortedError(f"the live socket is shop {shop!r}'s")
            ctx.client.confirm_tenant()  # before any change a notice carries is stored
            self._open_channel(data)
        # A hello restates the head (lower than before if the server was restored); a notice
        # only moves it forward.
        ctx.announced = cursor if data["type"] == "hello" else max(ctx.announced, cursor)
        applied = False
        if data["type"] == "changes" and isinstance(data.get("changes"), list):
            applied = await self.apply(data, cursor)
        if not applied and cursor > ctx.store.cursor:
            ctx.wake_up()

    async def apply(self, data: dict[str, Any], cursor: int) -> bool:
        """A notice that carries its commit's changes (a newer server, a small commit):
        applied as a pulled page when they start exactly at our cursor, so nothing in
        between is missed; otherwise ignored, and the pull the notice triggers fetches them.
        Anything wrong with them is the same: ignored, and pulled. True when applied."""
        ctx = self.context
        since = data.get("since")
        if not isinstance(since, int) or cursor <= since:
            return False
        if ctx.work_lock.locked():
            # Never between a push and its acknowledgement, and never waiting for one: the
            # push may be waiting for its reply on this socket, read by this very loop. Not
            # applied then; the push's reply or the pull this notice wakes brings them.
            return False
        async with ctx.work_lock:
            if since != ctx.store.cursor:
                return False
            try:
                ctx.store.apply_pulled(data["changes"], cursor)
            except Exception as exc:  # a malformed notice must not end the live loop
                log.warning(
                    "live changes not applied (%s: %s); pulling instead", type(exc).__name__, exc
                )
                return False
        # What a pull would have said. Only the cursor moved: the outbox is as it was (the
        # store's facts are not read again, on the way of the next update).
        ctx.board.update(cursor=cursor, last_success_at=ctx.clock.local_now())
        return True


async def _ended_silently(keepalive: asyncio.Task[bool]) -> bool:
    """Whether the keep-alive (just cancelled, or done) dropped the socket for silence."""
    try:
        return await keepalive
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # the engine stops: never swallow that
        return False
    except Exception:  # a bug in the keep-alive must not end the live loop
        log.exception("live keep-alive failed")
        return False


async def sleep_until(when: float) -> None:
    """Sleep until the loop's time `when`: exactly that time, so that timers aligned on it
    run in one wake-up of the loop (`asyncio.sleep` adds the moment it is called)."""
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not woken.done():
            woken.set_result(None)

    handle = loop.call_at(when, wake)
    try:
        await woken
    finally:
        handle.cancel()
