"""What the panel's live page waits on: "something changed in shop T" (a commit, a report,
a command asked or finished, a machine forgotten), as `LiveHub.panel_events`.

The hub (server/hub.py) notifies it for every commit it announces and every notice of
server/commands.py, from this process or, through LISTEN/NOTIFY on PostgreSQL, from any
other; so a page served by any process stays current.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

# What the panel hears (`PanelEvents`): a commit, a report, a command asked or finished, a
# machine forgotten (server/commands.py's notice kinds).
PANEL_KINDS = ("commit", "report", "command", "finished", "forgotten", "socket")


class PanelSubscription:
    """One waiter of `PanelEvents`: what changed since its last `wait`. A context manager
    (it unsubscribes on exit); created and awaited on the hub's event loop."""

    def __init__(self, events: PanelEvents, tenant: str | None) -> None:
        self.tenant = tenant  # None: every shop
        self._events = events
        self._kinds: set[str] = set()
        self._wake = asyncio.Event()

    def _notify(self, kind: str) -> None:
        self._kinds.add(kind)
        self._wake.set()

    async def wait(self, timeout: float | None = None) -> set[str]:
        """The kinds of change (PANEL_KINDS) since the last call; waits for one at most
        `timeout` seconds (None: until one comes). Empty: nothing changed in time."""
        if not self._kinds:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()
        kinds, self._kinds = self._kinds, set()
        return kinds

    def close(self) -> None:
        self._events.unsubscribe(self)

    def __enter__(self) -> PanelSubscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class PanelEvents:
    """ "Something changed in shop T", for the panel's live page (`hub.panel_events`).

    Every server process hears every shop's commits, reports and commands (LISTEN/NOTIFY on
    PostgreSQL), so a page served by any process stays current. Usage, on the event loop::

        with hub.panel_events.subscribe(tenant) as changes:
            while True:
                kinds = await changes.wait(15)  # {"report", "commit", ...}; empty: timeout
                ...  # send a new snapshot (or a heartbeat when empty)

    Nothing queues up: a subscriber slower than the changes gets them merged into one set.
    `notify(tenant, kind)` (on the loop) lets other parts say so too (a key issued, say).
    """

    def __init__(self) -> None:
        self._subscribers: set[PanelSubscription] = set()

    def subscribe(self, tenant: str | None = None) -> PanelSubscription:
        """Changes of shop `tenant` (None: of every shop) from now on."""
        sub = PanelSubscription(self, tenant)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: PanelSubscription) -> None:
        self._subscribers.discard(sub)

    def notify(self, tenant: str, kind: str) -> None:
        for sub in list(self._subscribers):
            if sub.tenant is None or sub.tenant == tenant:
                sub._notify(kind)

    def __len__(self) -> int:
        return len(self._subscribers)
