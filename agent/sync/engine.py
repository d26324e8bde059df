"""The sync engine: pushes the outbox, pulls the server's changes, listens live, reconciles.

It runs on its own thread with its own asyncio loop (runner.py), so neither the POS's
loopback API nor the tray ever waits on the network. Other threads talk to it through the
thread-safe methods below and observe it through listeners. No Qt here.

This module is the facade and the engine's schedule (when to sync, reconcile, sleep); the
work itself lives in cycle.py (push/pull), live.py (WebSocket), reconcile.py (compare and
repair), status.py (the facts and the badge), report.py (the reports for the manager's
panel) and commands.py (the panel's commands, each run once).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import httpx

from agent.store.store import Store
from protocol import TABLE_NAMES
from protocol.tenancy import DEFAULT_TENANT
from protocol.vocabulary import DivergenceStrategy

from .client import ServerClient
from .clock import ClockOffset
from .commands import CommandRunner
from .context import SyncContext
from .cycle import SyncCycle
from .live import LiveSocket
from .reconcile import Reconciler, ReconcileReport
from .report import Reporter
from .runner import LoopRunner
from .settings import STRATEGIES, SyncSettings
from .status import Listener, StatusBoard, StatusFacts, SyncState

__all__ = ["STRATEGIES", "Engine", "EngineConfig", "SyncSettings"]

log = logging.getLogger(__name__)

EngineConfig = SyncSettings  # the name the engine's settings had before SyncSettings
# A wait this long for the automatic reconcile may end with a keep-alive ping instead
# (at most one keep-alive interval later): shorter ones keep their time.
_ALIGN_FROM_S = 10.0
# The store's fact (sync_state) naming the shop whose data it holds.
SYNCED_TENANT_KEY = "synced_tenant"


class Engine:
    """One PDV's sync with the server; every public method may be called from any thread."""

    SYNC_NOW_WAIT_S = 30.0  # how long "sync now" waits for its cycle

    def __init__(
        self,
        store: Store,
        config: SyncSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport`: where requests go instead of the network (tests: the server app)."""
        if config.divergence_strategy not in STRATEGIES:
            raise ValueError(f"divergence strategy must be one of {', '.join(STRATEGIES)}")
        if not config.machine_id:
            raise ValueError("the engine needs the machine id")
        self.store = store
        self.config = config
        initial_offset = int(store.get_state("clock_offset_ms", "0") or 0)
        self.clock = ClockOffset(initial_offset, skew_ms=config.clock_skew_ms)
        held = held_tenant(store, config.tenant)
        board = StatusBoard(
            StatusFacts(
                server=config.server_url,
                machine_id=config.machine_id,
                tenant=config.tenant,
                synced_tenant=held,
            ),
            self.clock,
        )

        def synced_with(tenant: str) -> None:
            store.set_state(SYNCED_TENANT_KEY, tenant)
            board.update(synced_tenant=tenant)

        client = ServerClient(
            config.server_url,
            config.api_key,
            self.clock,
            transport=transport,
            # The server database this PDV syncs with: a server back on another one is
            # refused before it applies anything (server/identity.py).
            database=store.get_state("server_database") or None,
            on_database=lambda ident: store.set_state("server_database", ident),
            # The shop this PDV syncs with, and the one its store holds data of: a store
            # never syncs with another shop than its own (see `held_tenant`).
            tenant=config.tenant,
            synced_tenant=held,
            on_tenant=synced_with,
        )
        self.context = SyncContext(
            store=store,
            settings=config,
            machine_id=config.machine_id,
            clock=self.clock,
            board=board,
            client=client,
        )
        self.cycle = SyncCycle(self.context)
        self.live = LiveSocket(self.context)
        self.reconciler = Reconciler(self.context, self.cycle)
        # The panel's view of this PDV: reports, and the commands they (and the socket) bring.
        self.commands = CommandRunner(self.context, self.reconciler, lambda: self.reporter.poke())
        self.reporter = Reporter(self.context, self.commands)
        board.add_listener(self.reporter.watch)
        self.live.on_command = self.commands.receive
        self._heartbeats: list[Callable[[], None]] = []
        self._reconcile_alone = False  # see `_next_wait`
        self.live.on_alive = self._beat
        # The periodic report goes out with a keep-alive ping (never later than due).
        self.reporter.align = lambda when: self.live.aligned(when, early=True)
        self._runner = LoopRunner("sync-engine")
        self.context.refresh_local_facts()

    @property
    def tenant(self) -> str:
        """The shop this PDV syncs with (the default shop unless one is set): the one the
        loopback API serves."""
        return self.config.tenant

    @property
    def facts(self) -> StatusFacts:
        return self.context.board.facts

    @property
    def _thread(self) -> threading.Thread | None:
        """The engine's thread (the tray's session and tests check that it ended)."""
        return self._runner.thread

    # -- lifecycle (any thread) -------------------------------------------------------------

    def start(self) -> None:
        self._runner.start(self._main, self.context.client.aclose)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the current push, close the socket, stop. Nothing half-written remains:
        every store change is one transaction."""
        self.context.stopping = True
        self._runner.stop(timeout, self.context.wake_up)

    # -- thread-safe requests ---------------------------------------------------------------

    def now(self) -> int:
        """Server-corrected time, to stamp local edits."""
        return self.clock.server_now()

    def request_sync(self) -> None:
        """Wake the engine: a local write happened, or someone pressed 'sync now'."""
        self._runner.call_soon(self.context.wake_up)

    def sync_now(self, timeout: float | None = None) -> dict[str, Any]:
        """Run one push+pull cycle now and return the status after it. Raises
        concurrent.futures.TimeoutError when it takes longer than `timeout` seconds
        (default SYNC_NOW_WAIT_S); the cycle itself goes on."""
        wait = self.SYNC_NOW_WAIT_S if timeout is None else timeout
        self._runner.submit(self.cycle.run(force=True)).result(wait)
        return self.status()

    def reconcile_now(
        self, strategy: DivergenceStrategy | str | None = None, timeout: float = 120.0
    ) -> ReconcileReport:
        """A reconcile asked for by a person (the manager, the CLI, the POS)."""
        return self.reconcile_async(strategy).result(timeout)

    def reconcile_async(
        self, strategy: DivergenceStrategy | str | None = None
    ) -> concurrent.futures.Future[ReconcileReport]:
        return self._runner.submit(self.reconciler.run(strategy, manual=True))

    def server_history(self, timeout: float = 15.0) -> dict[str, Any]:
        return self._runner.submit(self.reconciler.server_history()).result(timeout)

    def retry_dead(self, event_id: str) -> bool:
        ok = self.store.retry_dead(event_id)
        self.context.refresh_local_facts()
        self.request_sync()
        return ok

    def discard_dead(self, event_id: str) -> bool:
        ok = self.store.discard_dead(event_id)
        self.context.refresh_local_facts()
        self.context.board.emit()
        return ok

    def add_listener(self, callback: Listener) -> None:
        """`callback(status)` after every change of the status, on the engine's thread."""
        self.context.board.add_listener(callback)

    def remove_listener(self, callback: Listener) -> None:
        self.context.board.remove_listener(callback)

    def add_heartbeat(self, callback: Callable[[], None]) -> None:
        """`callback()` on the engine's thread each time it is awake anyway: a keep-alive
        ping answered (every few seconds while live), a turn of its loop. What must be
        checked now and then (the tray's garbage collection) rides on these wake-ups
        instead of waking the process with a timer of its own. Keep it cheap."""
        self._heartbeats.append(callback)

    def _beat(self) -> None:
        for callback in list(self._heartbeats):
            try:
                callback()
            except Exception:  # a listener's bug must not stop the sync
                log.exception("heartbeat listener failed")

    def status(self) -> dict[str, Any]:
        return self.context.board.status()

    def state(self) -> SyncState:
        return self.context.board.state()

    def local_write_done(self) -> None:
        """Called by the loopback API after a committed local write."""
        if self.config.auto_sync and self._runner.running and not self.context.stopping:
            self.request_sync()
            if not self.context.work_lock.locked():
                # The cycle this wakes begins after the write's commit, and tells the status
                # with the store's facts as it sends its push (SyncCycle.run): this thread
                # does not compete with it for the interpreter meanwhile. A cycle already
                # under way may be waiting on a server that does not answer: then the
                # pending write is told from here at once.
                return
        self.context.refresh_local_facts()
        self.context.board.emit()

    # -- the schedule (the engine's loop) ---------------------------------------------------

    async def _main(self) -> None:
        ctx, settings = self.context, self.config
        live_task = asyncio.create_task(self.live.run())
        helpers = [
            asyncio.create_task(self.reporter.run()),
            asyncio.create_task(self.commands.run()),
        ]
        try:
            while not ctx.stopping:
                if settings.auto_sync:
                    await self.cycle.run()
                    if (
                        settings.auto_reconcile
                        and self.clock.local_now() >= self.reconciler.next_at
                        and self.facts.online
                    ):
                        try:
                            await self.reconciler.run(None)
                        except Exception:  # a bug in a repair must not stop the sync
                            log.exception("automatic reconcile failed")
                # After the work, not on waking: a wake-up is a write to push or a notice to
                # pull, and nothing else goes before it.
                self._beat()
                wait = self._next_wait()
                await self._sleep(wait, align=self._reconcile_alone)
        finally:
            for task in (live_task, *helpers):
                task.cancel()
            for task in (live_task, *helpers):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await ctx.client.aclose()

    def _next_wait(self) -> float | None:
        """Seconds until there is something to do; None means 'until woken' (idle). Also
        notes whether that is only the automatic reconcile, a long way off while live: that
        wake-up may then go with a keep-alive ping, a little later (`_reconcile_alone`)."""
        now = self.clock.local_now()
        waits: list[int] = []
        if not self.facts.live:
            waits.append(self.config.interval_ms)  # polling fallback while the socket is down
        due = self.cycle.earliest_retry()
        if due is not None:
            waits.append(max(0, due - now))
        others = min(waits) if waits else None
        if self.config.auto_reconcile and self.facts.online:
            # Only while online: a reconcile due while offline is skipped, and waiting "0 ms"
            # for it would spin the loop (and hammer a server refusing us) until back online.
            waits.append(max(0, self.reconciler.next_at - now))
        wait = min(waits) if waits else None
        self._reconcile_alone = wait is not None and others is None and wait >= _ALIGN_FROM_S * 1000
        return wait / 1000 if wait is not None else None

    async def _sleep(self, seconds: float | None, *, align: bool = False) -> None:
        wake = self.context.wake
        try:
            if seconds is None:
                await wake.wait()
            else:
                loop = asyncio.get_running_loop()
                when = loop.time() + max(0.01, seconds)
                if align:  # one wake-up with the keep-alive ping after it
                    when = self.live.aligned(when, early=False)
                async with asyncio.timeout_at(when):
                    await wake.wait()
        except TimeoutError:
            pass
        wake.clear()


def held_tenant(store: Store, configured: str) -> str | None:
    """The shop whose data the store holds: the one it first synced with, remembered on the
    first answer of the server (None before). A store that synced before agents had a shop
    setting holds the default shop's data (servers then served that shop only). A store
    that holds nothing at all (say, a shop corrected right after installing) holds no
    shop's data: it takes the configured one."""
    held = store.get_state(SYNCED_TENANT_KEY) or None
    if held is None:
        return DEFAULT_TENANT if store.cursor > 0 else None
    if held != configured and _holds_nothing(store):
        log.info("the store holds no data of shop %r: it syncs with shop %r", held, configured)
        return None
    return held


def _holds_nothing(store: Store) -> bool:
    pending, _, dead = store.outbox_facts()
    return (
        store.cursor == 0
        and pending == 0
        and dead == 0
        and all(store.count(table) == 0 for table in TABLE_NAMES)
    )
