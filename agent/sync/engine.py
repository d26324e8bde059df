"""The sync engine: pushes the outbox, pulls the server's changes, listens live, reconciles.

It runs on its own thread with its own asyncio loop, so neither the POS's loopback API nor
the tray ever waits on the network. Other threads talk to it through thread-safe methods
(`request_sync`, `reconcile_now`, `status`) and observe it through listeners. No Qt here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import websockets
from websockets.asyncio.client import connect as ws_connect

from agent.store.store import Store
from protocol import TABLE_NAMES
from protocol.headers import DATABASE_HEADER

from .client import AuthRefused, Rejected, ResyncRequired, ServerClient, ServerError, Unreachable
from .clock import ClockOffset
from .status import StatusFacts, derive_state, status_json

log = logging.getLogger(__name__)

STRATEGIES = ("none", "refresh_mismatched", "full_resync")
# How long stop() lets a request in flight finish before cancelling it.
_STOP_GRACE_S = 2.0
_FOREVER = 2**62  # a `now` after every retry time
_DIGEST_CHECK_EVERY_MS = 3_600_000
_OFFSET_SAVE_MS = 50


@dataclass(frozen=True)
class EngineConfig:
    """The seed's client options (`initSyncClient`), in milliseconds like the seed."""

    server_url: str
    machine_id: str
    api_key: str | None = None
    auto_sync: bool = True
    interval_ms: int = 5000
    retry_attempts: int = 3
    retry_base_delay_ms: int = 500
    retry_max_delay_ms: int = 5000
    auto_reconcile: bool = True
    reconcile_interval_ms: int = 60000
    divergence_strategy: str = "refresh_mismatched"
    push_batch: int = 500
    clock_skew_ms: int = 0  # test hook: pretend the local clock is off


class Engine:
    def __init__(self, store: Store, config: EngineConfig) -> None:
        if config.divergence_strategy not in STRATEGIES:
            raise ValueError(f"divergence strategy must be one of {', '.join(STRATEGIES)}")
        self.store = store
        self.config = config
        initial_offset = int(store.get_state("clock_offset_ms", "0") or 0)
        self.clock = ClockOffset(initial_offset, skew_ms=config.clock_skew_ms)
        self._saved_offset_ms = (
            initial_offset  # what the store holds: written again only when it moved
        )
        # While the socket is up every commit is announced on it: the newest cursor announced,
        # and whether the next cycle must pull whatever it pushed (after a (re)connection).
        self._announced = 0
        self._force_pull = True
        self.facts = StatusFacts(server=config.server_url, machine_id=config.machine_id)
        self._facts_lock = threading.Lock()
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._wake: asyncio.Event | None = None
        self._reconnect: asyncio.Event | None = (
            None  # the server answered again: retry the socket now
        )
        self._stopping = False
        self._stopped = threading.Event()
        self._ready = threading.Event()
        self._next_reconcile_at = 0
        self._next_digest_check_at = 0  # see _compare
        self._work_lock: asyncio.Lock | None = None
        self._client: ServerClient | None = None
        self._refresh_local_facts()

    # -- lifecycle (any thread) -------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._thread_main, name="sync-engine", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the current push, close the socket, stop. Nothing half-written remains:
        every store change is one transaction."""
        self._stopping = True
        loop = self._loop
        if loop and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake_up)
        if self._thread is None:
            return
        # A push in flight normally ends within a moment. If the server hangs, cancel what is
        # still waiting on the network: pushes are idempotent by eventId, and store changes
        # are synchronous transactions that an asyncio cancellation never interrupts.
        self._thread.join(min(timeout, _STOP_GRACE_S))
        if self._thread.is_alive() and loop and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._cancel_everything)
            self._thread.join(max(0.0, timeout - _STOP_GRACE_S))
        if self._thread.is_alive():
            log.warning("the sync engine did not stop within %.0f s", timeout)

    def _cancel_everything(self) -> None:
        current = asyncio.current_task()
        for task in asyncio.all_tasks():
            if task is not current:
                task.cancel()

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except asyncio.CancelledError:
            pass  # stop() cancelled a request the server never answered
        finally:
            # Requests submitted from other threads (sync now, reconcile) end before the loop.
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(self._close_client())
            loop.close()
            self._stopped.set()

    async def _close_client(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()

    # -- thread-safe requests ---------------------------------------------------------------

    def now(self) -> int:
        """Server-corrected time, to stamp local edits."""
        return self.clock.server_now()

    def request_sync(self) -> None:
        """Wake the engine: a local write happened, or someone pressed 'sync now'."""
        loop = self._loop
        if loop and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake_up)

    def sync_now(self, timeout: float = 30.0) -> dict[str, Any]:
        """Run one push+pull cycle now and return the status after it."""
        self._submit(self._sync_cycle(force=True)).result(timeout)
        return self.status()

    def reconcile_now(self, strategy: str | None = None, timeout: float = 120.0) -> dict[str, Any]:
        """A reconcile asked for by a person (the manager, the CLI, the POS)."""
        return self._submit(self._reconcile(strategy, manual=True)).result(timeout)

    def reconcile_async(self, strategy: str | None = None) -> concurrent.futures.Future:
        return self._submit(self._reconcile(strategy, manual=True))

    def server_history(self, timeout: float = 15.0) -> dict[str, Any]:
        return self._submit(self._server_history()).result(timeout)

    def retry_dead(self, event_id: str) -> bool:
        ok = self.store.retry_dead(event_id)
        self._refresh_local_facts()
        self.request_sync()
        return ok

    def discard_dead(self, event_id: str) -> bool:
        ok = self.store.discard_dead(event_id)
        self._refresh_local_facts()
        self._emit()
        return ok

    def _submit(self, coro) -> concurrent.futures.Future:
        if self._loop is None or self._loop.is_closed():
            coro.close()
            raise RuntimeError("the sync engine is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def add_listener(self, callback: Callable[[dict[str, Any]], None]) -> None:
        """`callback(status)` after every change of the status, on the engine's thread."""
        self._listeners.append(callback)

    def status(self) -> dict[str, Any]:
        with self._facts_lock:
            facts = replace(self.facts)
        return status_json(facts, self.clock.local_now())

    def state(self):
        with self._facts_lock:
            return derive_state(self.facts, self.clock.local_now())

    def local_write_done(self) -> None:
        """Called by the loopback API after a committed local write."""
        self._refresh_local_facts()
        self._emit()
        if self.config.auto_sync:
            self.request_sync()

    # -- internals -------------------------------------------------------------------------

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _update(self, **changes: Any) -> None:
        with self._facts_lock:
            for k, v in changes.items():
                setattr(self.facts, k, v)
        self._emit()

    def _emit(self) -> None:
        snapshot = self.status()
        for cb in list(self._listeners):
            try:
                cb(snapshot)
            except Exception:  # a listener's bug must not stop the sync
                log.exception("status listener failed")

    def _refresh_local_facts(self) -> None:
        with self._facts_lock:
            self.facts.pending, self.facts.oldest_pending_at, self.facts.dead_letters = (
                self.store.outbox_facts()
            )
            self.facts.cursor = self.store.cursor
            self.facts.clock_offset_ms = self.clock.offset_ms

    async def _main(self) -> None:
        self._wake = asyncio.Event()
        self._reconnect = asyncio.Event()
        self._work_lock = asyncio.Lock()
        self._client = ServerClient(
            self.config.server_url,
            self.config.api_key,
            self.clock,
            # The server database this PDV syncs with: a server back on another one is
            # refused before it applies anything (server/identity.py).
            database=self.store.get_state("server_database") or None,
            on_database=lambda ident: self.store.set_state("server_database", ident),
        )
        self._ready.set()
        live_task = asyncio.create_task(self._live_loop())
        # Heartbeat: wakes the loop once a second to re-evaluate the 'syncing' delay.
        try:
            while not self._stopping:
                if self.config.auto_sync:
                    await self._sync_cycle()
                    now = self.clock.local_now()
                    if (
                        self.config.auto_reconcile
                        and now >= self._next_reconcile_at
                        and self.facts.online
                    ):
                        try:
                            await self._reconcile(None)
                        except Exception:  # a bug in a repair must not stop the sync
                            log.exception("automatic reconcile failed")
                await self._sleep(self._next_wait())
        finally:
            live_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await live_task
            await self._client.aclose()

    def _next_wait(self) -> float | None:
        """Seconds until there is something to do; None means 'until woken' (idle)."""
        now = self.clock.local_now()
        waits: list[int] = []
        if not self.facts.live:
            waits.append(self.config.interval_ms)  # polling fallback while the socket is down
        due = self._earliest_retry()
        if due is not None:
            waits.append(max(0, due - now))
        if self.config.auto_reconcile and self.facts.online:
            # Only while online: a reconcile due while offline is skipped, and waiting "0 ms"
            # for it would spin the loop (and hammer a server refusing us) until back online.
            waits.append(max(0, self._next_reconcile_at - now))
        return min(waits) / 1000 if waits else None

    def _earliest_retry(self) -> int | None:
        events = self.store.pending_events(limit=1)
        return events[0].next_attempt_at if events else None

    async def _sleep(self, seconds: float | None) -> None:
        assert self._wake is not None
        try:
            if seconds is None:
                await self._wake.wait()
            else:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, seconds))
        except TimeoutError:
            pass
        self._wake.clear()

    def _backoff(self, attempts: int) -> int:
        """ms until the next try: exponential with jitter for the first attempts, then the
        regular interval, forever (an event is never dropped)."""
        c = self.config
        if attempts < c.retry_attempts:
            delay = min(c.retry_max_delay_ms, c.retry_base_delay_ms * (2**attempts))
            return int(delay * random.uniform(0.5, 1.0))
        return c.interval_ms

    async def _confirm_server_database(self) -> None:
        """Before adopting the server's database identity with a cursor already in hand (an
        agent upgraded from a version without identities, or one a manager told to accept a
        new database before its resync): the server must be able to continue from that cursor.
        One behind it is another or an older database: stop, as for a changed identity,
        rather than wipe the mirror and push sales into it."""
        assert self._client is not None
        try:
            await self._client.changes(self.config.machine_id, self.store.cursor, limit=1)
        except ResyncRequired:
            raise self._client.refuse_database() from None

    async def _sync_cycle(self, *, force: bool = False) -> None:
        """One push + pull. `force` (sync now, reconcile): push even the events still waiting
        out their retry backoff; someone is waiting for the result."""
        assert self._work_lock is not None
        async with self._work_lock:
            started = self.clock.local_now()
            self._update(busy_since=started)
            try:
                if (
                    self._client is not None
                    and self._client.database is None
                    and self.store.cursor > 0
                ):
                    await self._confirm_server_database()
                at_head = await self._push_all(force=force)
                # The push reply carries the changes after our cursor: when that page reached
                # the head, a pull now would fetch nothing (anything committed after it is
                # announced on the socket, and wakes us again). While live, the only other
                # reason to pull is an announcement ahead of our cursor; the echo of our own
                # push is not one. Without the socket, every cycle polls.
                live = self.facts.live
                if (
                    self._force_pull
                    or not live
                    or not at_head
                    and (force or self._announced > self.store.cursor)
                ):
                    self._force_pull = False
                    await self._pull_to_head()
                # The saved offset only seeds the clock at the next start (the first reply
                # corrects it): a commit (an fsync) when it moved noticeably, not for the
                # millisecond of jitter every round trip brings.
                if abs(self.clock.offset_ms - self._saved_offset_ms) >= _OFFSET_SAVE_MS:
                    self.store.set_state("clock_offset_ms", str(self.clock.offset_ms))
                    self._saved_offset_ms = self.clock.offset_ms
                self._refresh_local_facts()
                if (
                    self.facts.online is not True
                    and not self.facts.live
                    and self._reconnect is not None
                ):
                    # The server is back: reconnect the socket now, not after its backoff
                    # (up to 30 s of polling otherwise).
                    self._reconnect.set()
                self._update(
                    online=True,
                    auth_refused=False,
                    last_error=None,
                    last_success_at=self.clock.local_now(),
                    busy_since=None,
                )
            except AuthRefused as exc:
                self._refresh_local_facts()
                self._update(
                    online=False,
                    auth_refused=True,
                    last_error=f"chave de API recusada: {exc}",
                    busy_since=None,
                )
            except Unreachable as exc:
                self._refresh_local_facts()
                self._update(online=False, last_error=str(exc), busy_since=None)
            except Exception as exc:  # never let the engine die; say what happened
                log.exception("sync cycle failed")
                self._back_off_after_bug(f"{type(exc).__name__}: {exc}")
                self._refresh_local_facts()
                self._update(
                    online=False,
                    last_error=f"erro inesperado: {type(exc).__name__}: {exc}",
                    busy_since=None,
                )

    def _back_off_after_bug(self, error: str) -> None:
        """After an unexpected error, wait an interval before pushing the same events again,
        instead of retrying them in a tight loop."""
        try:
            now = self.clock.local_now()
            due = self.store.due_events(now, self.config.push_batch)
            self.store.record_failure(
                [e.event_id for e in due], error, now + self.config.interval_ms
            )
        except Exception:
            log.exception("could not record the failure")

    async def _push_all(self, *, force: bool = False) -> bool:
        """Push every due event. True when the last reply's page of changes reached the
        server's head (no `hasMore`): the store is then at head as of that reply."""
        assert self._client is not None
        at_head = False
        limit = self.config.push_batch
        while not self._stopping:
            now = self.clock.local_now()
            # Forced: every pending event counts as due (backoff only spaces automatic retries).
            events = self.store.due_events(_FOREVER if force else now, limit)
            if not events:
                return at_head
            at_head = False
            try:
                reply = await self._client.push(
                    self.config.machine_id, [e.wire() for e in events], self.store.cursor
                )
            except Rejected as exc:
                if exc.status == 413:
                    # Too big for the server's body limit: send smaller batches. One event
                    # (or one atomic sale) too big on its own can never go: a dead letter,
                    # so it does not block the events behind it.
                    if len(events) > 1 and limit > 1:
                        limit = max(1, len(events) // 2)
                        continue
                    self.store.acknowledge(
                        [
                            {
                                "eventId": e.event_id,
                                "status": "rejected",
                                "reason": "body_too_large",
                                "error": f"servidor recusou o envio: {exc}",
                            }
                            for e in events
                        ],
                        now,
                    )
                    self._refresh_local_facts()
                    self._emit()
                    continue
                invalid = exc.body.get("invalid") if exc.status == 422 else None
                named = {r.get("eventId") for r in invalid or []} & {e.event_id for e in events}
                if named:
                    # The server named the invalid events: they become dead letters, and
                    # the others go again without them. A sale is atomic, so the other
                    # events of a refused event's sale go to the dead letters with it.
                    groups = {e.group_id for e in events if e.event_id in named and e.group_id}
                    reasons = {r.get("eventId"): r for r in invalid}
                    results = [
                        {
                            **reasons.get(
                                e.event_id, {"error": "parte de uma venda recusada pelo servidor"}
                            ),
                            "eventId": e.event_id,
                            "status": "rejected",
                        }
                        for e in events
                        if e.event_id in named or (e.group_id and e.group_id in groups)
                    ]
                    self.store.acknowledge(results, now)
                    self._refresh_local_facts()
                    continue
                self.store.record_failure(
                    [e.event_id for e in events], str(exc), now + self._backoff(events[0].attempts)
                )
                raise Unreachable(f"servidor recusou o envio: {exc}") from exc
            except (Unreachable, AuthRefused) as exc:
                self.store.record_failure(
                    [e.event_id for e in events], str(exc), now + self._backoff(events[0].attempts)
                )
                raise
            except ResyncRequired:
                await self._full_resync()
                continue
            page = reply.get("changes") or {}
            self.store.acknowledge(
                reply.get("results", []),
                self.clock.local_now(),
                changes=page.get("changes", []),
                cursor=page.get("cursor"),
            )
            at_head = bool(page) and page.get("cursor") is not None and not page.get("hasMore")
            self._refresh_local_facts()
            self._emit()
        return at_head

    async def _pull_to_head(self) -> int:
        assert self._client is not None
        pulled = 0
        while not self._stopping:
            try:
                page = await self._client.changes(self.config.machine_id, self.store.cursor)
            except ResyncRequired:
                await self._full_resync()
                continue
            self.store.apply_pulled(page.get("changes", []), int(page["cursor"]))
            pulled += len(page.get("changes", []))
            if not page.get("hasMore"):
                break
        self._refresh_local_facts()
        return pulled

    async def _full_resync(self) -> None:
        log.warning("full resync: forgetting the local mirror (pending events are kept)")
        self.store.reset_mirror()
        await self._pull_to_head()

    async def _live_loop(self) -> None:
        """Hold a WebSocket to the server; each notification triggers a pull."""
        url = (
            self.config.server_url.replace("https://", "wss://")
            .replace("http://", "ws://")
            .rstrip("/")
        )
        url += f"/api/sync/ws?machineId={self.config.machine_id}"
        headers = {"x-api-key": self.config.api_key} if self.config.api_key else {}
        delay = 0.5
        while not self._stopping:
            if self._reconnect is not None:
                self._reconnect.clear()  # a poll that succeeds from now on retries at once
            if self._client is not None and self._client.database:
                # Notices carry changes applied without a pull: only from our database.
                headers[DATABASE_HEADER] = self._client.database
            else:
                headers.pop(DATABASE_HEADER, None)
            try:
                async with ws_connect(
                    url,
                    additional_headers=headers,
                    open_timeout=5,
                    ping_interval=10,
                    ping_timeout=10,
                    max_size=2**20,
                ) as ws:
                    # Catch up on what happened while disconnected: the next cycle pulls,
                    # whatever the hello says (a server behind our cursor, e.g. restored
                    # from a backup, answers that pull with "resync").
                    self._force_pull = True
                    self._update(live=True)
                    delay = 0.5
                    self._wake_up()
                    async for message in ws:
                        try:
                            data = json.loads(message)
                        except ValueError:
                            continue
                        if not isinstance(data, dict) or data.get("type") not in (
                            "changes",
                            "hello",
                        ):
                            continue
                        try:
                            cursor = int(data.get("cursor", 0))
                        except (TypeError, ValueError):
                            continue
                        # A hello restates the head (lower than before if the server was
                        # restored); a notice only moves it forward.
                        self._announced = (
                            cursor if data["type"] == "hello" else max(self._announced, cursor)
                        )
                        if data["type"] == "changes" and isinstance(data.get("changes"), list):
                            await self._apply_live(data, cursor)
                        if cursor > self.store.cursor:
                            self._wake_up()
            except asyncio.CancelledError:
                raise
            except (OSError, websockets.WebSocketException, TimeoutError) as exc:
                log.debug("live connection down: %s", exc)
            self._update(live=False)
            self._wake_up()  # polling takes over
            assert self._reconnect is not None
            try:
                await asyncio.wait_for(
                    self._reconnect.wait(), timeout=delay * random.uniform(0.5, 1.0)
                )
                delay = 0.5  # a poll reached the server again
            except TimeoutError:
                delay = min(delay * 2, 30.0)

    async def _apply_live(self, data: dict[str, Any], cursor: int) -> None:
        """A notice that carries its commit's changes (a newer server, a small commit):
        applied as a pulled page when they start exactly at our cursor, so nothing in
        between is missed; otherwise ignored, and the pull the notice triggers fetches them.
        Anything wrong with them is the same: ignored, and pulled."""
        assert self._work_lock is not None
        since = data.get("since")
        if not isinstance(since, int) or since != self.store.cursor or cursor <= since:
            return
        async with self._work_lock:  # never between a push and its acknowledgement
            if since != self.store.cursor:
                return
            try:
                self.store.apply_pulled(data["changes"], cursor)
            except Exception as exc:  # a malformed notice must not end the live loop
                log.warning(
                    "live changes not applied (%s: %s); pulling instead", type(exc).__name__, exc
                )
                return
            self._refresh_local_facts()
        self._update(last_success_at=self.clock.local_now())  # what a pull would have said

    # -- reconcile ---------------------------------------------------------------------------

    async def _reconcile(self, strategy: str | None, *, manual: bool = False) -> dict[str, Any]:
        """Compare with the server only when drained and at head; repair per the strategy."""
        assert self._client is not None and self._work_lock is not None
        strategy = strategy or self.config.divergence_strategy
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}")
        if manual and self._client.accept_other_database():
            # The server came back on another database and a person asked to reconcile: that
            # is the manager accepting it. The old database's cursor and mirror mean nothing
            # there; the pending sales are kept and go to the new one.
            log.warning("the manager accepted the server's new database: full resync")
            self.store.set_state("server_database", "")
            async with self._work_lock:
                await self._full_resync()
        self._next_reconcile_at = self.clock.local_now() + self.config.reconcile_interval_ms
        entry: dict[str, Any] = {
            "created_at": self.clock.local_now(),
            "strategy": strategy,
            "mismatches": [],
        }
        try:
            result = await self._compare(entry)
            if result is not None and result["status"] == "divergent" and strategy != "none":
                entry["repair"] = await self._repair(strategy, result["mismatches"])
                after = await self._compare({})
                if after is not None and after["status"] == "consistent":
                    entry["status"] = "repaired"
        except (Unreachable, AuthRefused) as exc:
            entry.update(status="error", error=str(exc))
        except ServerError as exc:
            entry.update(status="error", error=str(exc))
        entry["id"] = self.store.log_reconcile(entry)
        report = {
            "status": entry["status"],
            "isConsistent": entry["status"] in ("consistent", "repaired"),
            "mismatches": entry.get("mismatches", []),
            "repair": entry.get("repair"),
            "strategy": strategy,
            "error": entry.get("error"),
            "id": entry["id"],
            "serverLogId": entry.get("server_log_id"),
        }
        if entry["status"] in ("consistent", "repaired"):
            self._update(divergent=False, last_reconcile=report)
        elif entry["status"] == "divergent":
            log.warning("reconcile: divergent tables %s", [m["table"] for m in entry["mismatches"]])
            self._update(divergent=True, last_reconcile=report)
        else:
            self._update(last_reconcile=report)
        return report

    async def _compare(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        """One comparison at head. Fills `entry` with status, mismatches, server_log_id."""
        assert self._client is not None and self._work_lock is not None
        for _attempt in range(5):
            await self._sync_cycle(force=True)
            if self.facts.online is False:
                raise Unreachable(self.facts.last_error or "servidor inacessível")
            async with self._work_lock:
                if self.store.pending_count() > 0:
                    continue  # a sale came in meanwhile: push it first
                if self.clock.local_now() >= self._next_digest_check_at:
                    # The summary adds up the digests stored with the rows. The first
                    # reconcile after a start, and one an hour after that, checks them
                    # against the rows (~10 ms per 1,000 rows): an edit of the file made
                    # outside the agent cannot hide behind a stale digest for longer.
                    fixed = self.store.check_digests()
                    if fixed:
                        log.warning("reconcile: %d local rows changed outside the agent", fixed)
                    self._next_digest_check_at = self.clock.local_now() + _DIGEST_CHECK_EVERY_MS
                summary = self.store.summary()
                cursor = self.store.cursor
                reply = await self._client.reconcile(self.config.machine_id, summary, cursor)
            entry["server_log_id"] = reply.get("id")
            if reply.get("status") == "retry":
                continue  # the server moved on since our pull
            status = "consistent" if reply.get("isConsistent") else "divergent"
            entry.update(status=status, mismatches=reply.get("mismatches", []))
            return entry
        entry.update(status="retry", error="o servidor mudou durante a comparação; tente novamente")
        return entry

    async def _repair(self, strategy: str, mismatches: list[dict[str, Any]]) -> dict[str, Any]:
        assert self._client is not None and self._work_lock is not None
        if strategy == "full_resync":
            async with self._work_lock:
                await self._full_resync()
            return {"strategy": strategy, "tables": list(TABLE_NAMES)}
        repaired = []
        async with self._work_lock:
            for m in mismatches:
                table = m["table"]
                server = (await self._client.buckets(table))["buckets"]
                local = self.store.bucket_summary(table)
                differing = sorted(
                    int(b) for b in set(server) | set(local) if server.get(b) != local.get(b)
                )
                if not differing:
                    continue
                rows: list[dict[str, Any]] = []
                for i in range(0, len(differing), 64):
                    chunk = differing[i : i + 64]
                    rows += (await self._client.bucket_rows(table, chunk))["rows"]
                repaired.append(self.store.replace_buckets(table, differing, rows))
        self._refresh_local_facts()
        return {"strategy": strategy, "tables": repaired}

    async def _server_history(self) -> dict[str, Any]:
        assert self._client is not None
        return await self._client.reconcile_history(self.config.machine_id)
