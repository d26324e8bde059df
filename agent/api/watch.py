"""`GET /api/sync/watch`: a front end waits for the local store to change instead of polling it
(a long-poll; issue 12, live latency). The one-record read (`reads.py`) takes the same
`after`/`wait` (`changed_after`): one request where a screen shows one record.

`?after=<token>&wait=<ms>` answers as soon as the store's change token (agent/store/changes.py)
differs from `after` — at once if it already does — or after `wait` ms with the same token and
`changed: false`. The answer names the tables changed since `after` when the agent still
knows them (null: read everything again). Without `after` it answers at once with the
current token, the one to wait on next. A token this run of the agent did not give (an
earlier run's, a made-up one) answers at once, `changed: true` and `tables: null`.

The waiting holds no thread: the route is a coroutine on the loopback's event loop, parked on
a future; the store's committing thread (the engine's, or a worker running a POS write)
wakes it through `call_soon_threadsafe`, once per loop however many wait. When the agent
stops, waiters are answered 503 `agent_stopping` at once, so the server's shutdown does
not wait for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from protocol import ProtocolError
from webapi import ok

from ..store.changes import ChangeFeed
from . import openapi as doc
from .shop import ShopDep

MAX_WAIT_MS = 30_000
DEFAULT_WAIT_MS = 25_000
_TOKEN_DIGITS = 16  # tokens are below 2**53: 16 digits

router = APIRouter()


class Waiters:
    """The futures of the requests waiting for a change, woken from any thread."""

    def __init__(self, feed: ChangeFeed) -> None:
        self.feed = feed
        self._lock = threading.Lock()
        self._waiting: set[asyncio.Future[None]] = set()
        self.unsubscribe = feed.subscribe(self._on_change)

    def _on_change(self, token: int) -> None:
        """In the committing thread: wake each loop that has waiters, once."""
        with self._lock:
            if not self._waiting:
                return
            loops = {f.get_loop() for f in self._waiting}
        for loop in loops:
            with contextlib.suppress(RuntimeError):  # closed meanwhile: nobody left to wake
                loop.call_soon_threadsafe(self._wake, loop)

    def _wake(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            ready = {f for f in self._waiting if f.get_loop() is loop}
            self._waiting -= ready
        for future in ready:
            _resolve(future)

    async def wait(self, after: int, seconds: float) -> None:
        """Until the token differs from `after`, the agent stops, or `seconds` pass."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        # The timeout resolves the same future (awaited directly: no task or waiter of
        # asyncio.wait between the wake-up and the answer).
        timer = loop.call_later(seconds, _resolve, future)
        with self._lock:
            self._waiting.add(future)
        try:
            # Checked again once registered: a change settled before that woke nobody.
            if self.feed.token == after and not self.feed.closed:
                await future
        finally:
            timer.cancel()
            with self._lock:
                self._waiting.discard(future)

    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _waiters(request: Request) -> Waiters:
    waiters: Waiters = request.app.state.watch
    return waiters


WaitersDep = Annotated[Waiters, Depends(_waiters)]


def _number(text: str | None, name: str, code: str, bound: int, default: int | None) -> int | None:
    """A non-negative integer query parameter (digits only), or 400 with `code`."""
    if text is None:
        return default
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(bound)):
        raise ProtocolError(code, f"{name}: expected a non-negative integer", status=400)
    value = int(text)
    if value > bound:
        raise ProtocolError(code, f"{name}: at most {bound}", status=400)
    return value


AfterQuery = Annotated[
    str | None,
    Query(
        description="the `token` of the previous answer; without it, the answer is at once "
        "with the current token",
        json_schema_extra={"pattern": f"^[0-9]{{1,{_TOKEN_DIGITS}}}$"},
    ),
]
WaitQuery = Annotated[
    str | None,
    Query(
        description=f"how long to wait for a change, in ms: 0 to {MAX_WAIT_MS} "
        f"(default {DEFAULT_WAIT_MS}); 0 only compares the token",
        json_schema_extra={"pattern": "^[0-9]{1,5}$"},
    ),
]


async def changed_after(waiters: Waiters, after: str | None, wait: str | None) -> int | None:
    """`after` and `wait` checked (400), then the wait for a change after token `after`
    (none without `after`); returns `after` as a number (None without it), or answers 503
    when the agent stops. A caller that reads the store takes the feed's token right after
    this and before its read: a change committed in between is then answered by the next
    wait at once, never missed."""
    token = _number(after, "after", "invalid_token", 10**_TOKEN_DIGITS - 1, None)
    wait_ms = _number(wait, "wait", "invalid_wait", MAX_WAIT_MS, DEFAULT_WAIT_MS)
    assert wait_ms is not None
    feed = waiters.feed
    _still_running(feed)
    if token is not None and wait_ms and feed.token == token:
        await waiters.wait(token, wait_ms / 1000)
        _still_running(feed)
    return token


@router.get("/api/sync/watch", **doc.watch(MAX_WAIT_MS, DEFAULT_WAIT_MS))
async def watch(
    waiters: WaitersDep, _shop: ShopDep, after: AfterQuery = None, wait: WaitQuery = None
) -> Response:
    token = await changed_after(waiters, after, wait)
    if token is None:
        return ok(token=waiters.feed.token, changed=False, tables=[])
    current, tables = waiters.feed.since(token)
    return ok(token=current, changed=current != token, tables=tables)


def _still_running(feed: ChangeFeed) -> None:
    if feed.closed:
        raise ProtocolError(
            "agent_stopping", "the agent is stopping; try again once it is back", status=503
        )
