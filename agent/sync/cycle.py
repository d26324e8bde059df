"""One sync cycle: push the due outbox events, pull the server's changes to the head.

Also what a cycle needs around that: retry backoff with jitter, smaller batches after a 413,
dead letters for the events the server names as invalid, the full resync a 409 asks for,
and the confirmation of the server's database identity before adopting it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from agent.store.store import OutboxEvent
from protocol.vocabulary import ResultStatus

from .context import SyncContext
from .errors import (
    AuthRefused,
    Rejected,
    ResyncRequired,
    SyncError,
    Throttled,
    Unreachable,
    failure_text,
)

log = logging.getLogger(__name__)

_FOREVER = 2**62  # a `now` after every retry time
_OFFSET_SAVE_MS = 50


class SyncCycle:
    def __init__(self, context: SyncContext) -> None:
        self.context = context
        # What the store holds as the clock offset: written again only when it moved.
        self.saved_offset_ms = context.clock.offset_ms

    async def run(self, *, force: bool = False) -> None:
        """One push + pull. `force` (sync now, reconcile): push even the events still waiting
        out their retry backoff; someone is waiting for the result."""
        ctx = self.context
        board, clock, store = ctx.board, ctx.clock, ctx.store
        async with ctx.work_lock:
            board.set(busy_since=clock.local_now())
            # The listeners hear of it at the loop's next turn, while the push is on its way;
            # with the store's facts of the local writes that woke this cycle, which their
            # threads leave to it (Engine.local_write_done).
            asyncio.get_running_loop().call_soon(self._tell_started)
            try:
                # A store holding another shop's data sends and receives nothing.
                ctx.client.check_tenant()
                if ctx.client.database is None and store.cursor > 0:
                    await self._confirm_server_database()
                at_head = await self._push_all(force=force)
                # The push reply carries the changes after our cursor: when that page reached
                # the head, a pull now would fetch nothing (anything committed after it is
                # announced on the socket, and wakes us again). While live, the only other
                # reason to pull is an announcement ahead of our cursor; the echo of our own
                # push is not one. Without the socket, every cycle polls.
                if (
                    ctx.force_pull
                    or not board.facts.live
                    or not at_head
                    and (force or ctx.announced > store.cursor)
                ):
                    ctx.force_pull = False
                    await self.pull_to_head()
                self._save_clock_offset()
                ctx.refresh_local_facts()
                if board.facts.online is not True and not board.facts.live:
                    # The server is back: reconnect the socket now, not after its backoff
                    # (up to 30 s of polling otherwise).
                    ctx.reconnect.set()
                board.succeeded()
            except AuthRefused as exc:
                ctx.refresh_local_facts()
                board.failed(exc.code, exc.detail, auth_refused=True)
            except Throttled as exc:
                # "Not now" from a server that is there: online, the events wait their turn.
                ctx.refresh_local_facts()
                board.throttled(exc.code, exc.detail)
            except Unreachable as exc:
                ctx.refresh_local_facts()
                board.failed(exc.code, exc.detail)
            except Exception as exc:  # never let the engine die; say what happened
                log.exception("sync cycle failed")
                detail = f"{type(exc).__name__}: {exc}"
                self._back_off_after_bug(failure_text(SyncError.UNEXPECTED, detail))
                ctx.refresh_local_facts()
                board.failed(SyncError.UNEXPECTED, detail)

    def _tell_started(self) -> None:
        self.context.refresh_local_facts()
        self.context.board.emit()

    def _save_clock_offset(self) -> None:
        """The saved offset only seeds the clock at the next start (the first reply corrects
        it): a commit (an fsync) when it moved noticeably, not for the millisecond of jitter
        every round trip brings."""
        offset = self.context.clock.offset_ms
        if abs(offset - self.saved_offset_ms) >= _OFFSET_SAVE_MS:
            self.context.store.set_state("clock_offset_ms", str(offset))
            self.saved_offset_ms = offset

    def backoff(self, attempts: int) -> int:
        """ms until the next try: exponential with jitter for the first attempts, then the
        regular interval, forever (an event is never dropped)."""
        s = self.context.settings
        if attempts < s.retry_attempts:
            delay = min(s.retry_max_delay_ms, s.retry_base_delay_ms * (2**attempts))
            return int(delay * random.uniform(0.5, 1.0))
        return s.interval_ms

    def earliest_retry(self) -> int | None:
        """When the first pending event is due again (None: nothing pending)."""
        events = self.context.store.pending_events(limit=1)
        return events[0].next_attempt_at if events else None

    def _back_off_after_bug(self, error: str) -> None:
        """After an unexpected error, wait an interval before pushing the same events again,
        instead of retrying them in a tight loop."""
        ctx = self.context
        try:
            now = ctx.clock.local_now()
            due = ctx.store.due_events(now, ctx.settings.push_batch)
            ctx.store.record_failure(
                [e.event_id for e in due], error, now + ctx.settings.interval_ms
            )
        except Exception:
            log.exception("could not record the failure")

    async def _confirm_server_database(self) -> None:
        """Before adopting the server's database identity with a cursor already in hand (an
        agent upgraded from a version without identities, or one a manager told to accept a
        new database before its resync): the server must be able to continue from that cursor.
        One behind it is another or an older database: stop, as for a changed identity,
        rather than wipe the mirror and push sales into it."""
        ctx = self.context
        try:
            await ctx.client.changes(ctx.machine_id, ctx.store.cursor, limit=1)
        except ResyncRequired:
            raise ctx.client.refuse_database() from None

    async def _push_all(self, *, force: bool = False) -> bool:
        """Push every due event. True when the last reply's page of changes reached the
        server's head (no `hasMore`): the store is then at head as of that reply."""
        ctx = self.context
        store = ctx.store
        at_head = False
        limit = ctx.settings.push_batch
        while not ctx.stopping:
            now = ctx.clock.local_now()
            # Forced: every pending event counts as due (backoff only spaces automatic retries).
            events = store.due_events(_FOREVER if force else now, limit)
            if not events:
                return at_head
            at_head = False
            try:
                reply = await ctx.client.push(
                    ctx.machine_id, [e.wire_json() for e in events], store.cursor
                )
            except Rejected as exc:
                if exc.status == 413 and len(events) > 1 and limit > 1:
                    # Too big for the server's body limit: send smaller batches.
                    limit = max(1, len(events) // 2)
                    continue
                self._refused(exc, events, now)
                continue
            except (Unreachable, AuthRefused) as exc:
                # Throttled: when the server said to come back (Retry-After, bounded).
                wait = (
                    exc.retry_after_ms
                    if isinstance(exc, Throttled)
                    else self.backoff(events[0].attempts)
                )
                store.record_failure(
                    [e.event_id for e in events], failure_text(exc.code, exc.detail), now + wait
                )
                raise
            except ResyncRequired:
                await self.full_resync()
                continue
            page = reply.get("changes") or {}
            store.acknowledge(
                reply.get("results", []),
                ctx.clock.local_now(),
                changes=page.get("changes", []),
                cursor=page.get("cursor"),
            )
            at_head = bool(page) and page.get("cursor") is not None and not page.get("hasMore")
            ctx.refresh_local_facts()
            ctx.board.emit()
        return at_head

    def _refused(self, exc: Rejected, events: list[OutboxEvent], now: int) -> None:
        """The server refused a push as a whole. Events it cannot ever take become dead
        letters, so they do not block the events behind them; otherwise the push is retried
        later, and the cycle ends offline with the server's reason."""
        ctx = self.context
        if exc.status == 413:
            # One event (or one atomic sale) too big on its own can never go.
            ctx.store.acknowledge(
                [
                    {
                        "eventId": e.event_id,
                        "status": ResultStatus.REJECTED.value,
                        "reason": "body_too_large",
                        "error": exc.detail,
                    }
                    for e in events
                ],
                now,
            )
            ctx.refresh_local_facts()
            ctx.board.emit()
            return
        invalid: list[dict[str, Any]] = (exc.body.get("invalid") or []) if exc.status == 422 else []
        named = {r.get("eventId") for r in invalid} & {e.event_id for e in events}
        if named:
            # The server named the invalid events: they become dead letters, and the others
            # go again without them. A sale is atomic, so the other events of a refused
            # event's sale go to the dead letters with it.
            groups = {e.group_id for e in events if e.event_id in named and e.group_id}
            reasons = {r.get("eventId"): r for r in invalid}
            companion = {
                "reason": SyncError.PART_OF_REFUSED_SALE.value,
                "error": "part of a sale the server refused",
            }
            ctx.store.acknowledge(
                [
                    {
                        **reasons.get(e.event_id, companion),
                        "eventId": e.event_id,
                        "status": ResultStatus.REJECTED.value,
                    }
                    for e in events
                    if e.event_id in named or (e.group_id and e.group_id in groups)
                ],
                now,
            )
            ctx.refresh_local_facts()
            return
        ctx.store.record_failure(
            [e.event_id for e in events],
            failure_text(SyncError.SERVER_REFUSED, exc.detail),
            now + self.backoff(events[0].attempts),
        )
        raise Unreachable(exc.detail, SyncError.SERVER_REFUSED) from exc

    async def pull_to_head(self) -> int:
        """Pull pages of changes until the server's head; the number of changes pulled."""
        ctx = self.context
        pulled = 0
        while not ctx.stopping:
            try:
                page = await ctx.client.changes(ctx.machine_id, ctx.store.cursor)
            except ResyncRequired:
                await self.full_resync()
                continue
            ctx.store.apply_pulled(page.get("changes", []), int(page["cursor"]))
            pulled += len(page.get("changes", []))
            if not page.get("hasMore"):
                break
        ctx.refresh_local_facts()
        return pulled

    async def full_resync(self) -> None:
        log.warning("full resync: forgetting the local mirror (pending events are kept)")
        self.context.store.reset_mirror()
        await self.pull_to_head()
