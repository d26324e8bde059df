"""The store's change counter: a token that moves after every commit that changed rows the POS
reads (its own writes, pulled changes, acknowledgements, repairs), so a front end can wait for
a change instead of polling (the loopback's `GET /api/sync/watch`).

Plain threading, no event loop: the store is written from the engine's thread and the
loopback's worker threads; whoever waits subscribes a listener (`ChangeFeed.subscribe`),
called after the commit, without the store's writer lock, in the committing thread.

When a change counts as committed: every writer of view rows holds the store's writer lock
(`WriterLock`) around its transaction (`with ctx.lock, ctx.db.atomic():`), so the transaction
has committed (or rolled back) when the outermost holder lets the lock go. `Views` marks the
tables it writes (`mark`) inside the transaction; the lock, on its last release, turns the
marks into a new token, still under the lock (tokens follow the commits' order), then lets
the lock go and tells the listeners. A reader that sees token T therefore sees every commit
that made a token up to T. A rolled-back transaction moves the token too: a front end reads
again and finds nothing new, which is harmless.

Tokens of one run are consecutive integers starting from the store's opening time in
microseconds (about 1.7e15, a safe integer in JavaScript until the year 2255): a token of an
earlier run is below this run's first one, so it is recognised as unknown rather than taken
for a token of this run (a run would need more than one commit per microsecond to reach the
next run's first token).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

# How many recent tokens remember which tables they changed: enough for a front end that
# waits again after each answer; an older token is answered "changed, tables unknown".
HISTORY = 512

Listener = Callable[[int], None]

log = logging.getLogger(__name__)


class ChangeFeed:
    """The token, the tables each recent token changed, and who wants to know."""

    def __init__(self, base: int | None = None) -> None:
        self.base = base if base is not None else time.time_ns() // 1000
        self._token = self.base
        self._lock = threading.Lock()
        self._marked: set[str] = set()
        self._history: deque[tuple[int, frozenset[str]]] = deque(maxlen=HISTORY)
        self._listeners: list[Listener] = []
        self._closed = False

    @property
    def token(self) -> int:
        return self._token

    @property
    def closed(self) -> bool:
        return self._closed

    def mark(self, tables: Iterable[str]) -> None:
        """View rows of `tables` were written in the transaction now open (under the writer
        lock); they count once the lock is released (`settle`)."""
        with self._lock:
            self._marked.update(tables)

    def settle(self) -> bool:
        """The transaction is over (called by the writer lock before its last release): the
        marks, if any, become the next token. True when listeners must be told."""
        with self._lock:
            if not self._marked:
                return False
            self._token += 1
            self._history.append((self._token, frozenset(self._marked)))
            self._marked = set()
            return True

    def notify(self) -> None:
        """Tell the listeners the current token (after the writer lock is released)."""
        token = self._token
        for listener in tuple(self._listeners):
            try:
                listener(token)
            except Exception:  # the commit is done: a listener's bug must not fail the write
                log.exception("change listener failed")

    def since(self, after: int) -> tuple[int, list[str] | None]:
        """The current token and the tables changed after token `after`, sorted; None when
        not known (a token of an earlier run or made up, or older than the history)."""
        with self._lock:
            current = self._token
            if after == current:
                return current, []
            if after < self.base or after > current:
                return current, None
            if not self._history or self._history[0][0] > after + 1:
                return current, None
            changed: set[str] = set()
            for token, tables in reversed(self._history):
                if token <= after:
                    break
                changed |= tables
            return current, sorted(changed)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(token)` after every change (in the committing thread: it must be
        quick and thread-safe); returns what unsubscribes it."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def close(self) -> None:
        """The agent is stopping: listeners are told once more, so nobody keeps waiting."""
        self._closed = True
        self.notify()


class WriterLock:
    """The store's writer lock (reentrant, one writer at a time inside this process), which
    settles the change feed when its outermost holder releases it: by then the holder's
    transaction is over (see the module's docstring)."""

    def __init__(self, feed: ChangeFeed) -> None:
        self._lock = threading.RLock()
        self._feed = feed
        self._depth = 0  # changed only by the owner, while it holds `_lock`

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        got = self._lock.acquire(blocking, timeout)
        if got:
            self._depth += 1
        return got

    def release(self) -> None:
        self._depth -= 1
        if self._depth:
            self._lock.release()
            return
        try:
            changed = self._feed.settle()
        finally:
            self._lock.release()
        if changed:
            self._feed.notify()

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
