"""What the engine's parts (cycle, live socket, reconcile) share: the store, the settings,
the clock, the server client, the status board, and the signals of the engine's loop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from agent.store.store import Store

from .client import ServerClient
from .clock import ClockOffset
from .settings import SyncSettings
from .status import StatusBoard


@dataclass(eq=False)
class SyncContext:
    store: Store
    settings: SyncSettings
    machine_id: str
    clock: ClockOffset
    board: StatusBoard
    client: ServerClient
    # One push, pull, live apply or repair at a time: never a pull between a push and its
    # acknowledgement. asyncio primitives bind to the engine's loop when first used.
    work_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Something to do: a local write, a notice ahead of our cursor, "sync now", stop.
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # The server answered again: retry the live socket now, not after its backoff.
    reconnect: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False
    # While the socket is up every commit is announced on it: the newest cursor announced,
    # and whether the next cycle must pull whatever it pushed (after a (re)connection).
    announced: int = 0
    force_pull: bool = True

    @property
    def tenant(self) -> str:
        """The shop this PDV syncs with."""
        return self.settings.tenant

    def wake_up(self) -> None:
        self.wake.set()

    def refresh_local_facts(self) -> None:
        self.board.refresh_local(self.store)
