"""The sync status: the engine's facts and their listeners, and the one state shown on the
badge, with its precedence decided here and only here.

`Offline/Erro` > `Com Divergência` > `Sincronizando` (only after ~1.5 s of work, so quick
syncs do not flicker) > `Aguardando` (never synced, or events pending) > `Sincronizado`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, TypedDict

from protocol import to_iso

from .clock import ClockOffset
from .errors import SyncError

if TYPE_CHECKING:
    from agent.store.store import Store

    from .reconcile import ReconcileReport

log = logging.getLogger(__name__)

SYNCING_AFTER_MS = 1500


class SyncState(str, Enum):
    WAITING = "waiting"
    SYNCING = "syncing"
    SYNCED = "synced"
    DIVERGENT = "divergent"
    OFFLINE = "offline"


LABELS = {
    SyncState.WAITING: "Aguardando",
    SyncState.SYNCING: "Sincronizando",
    SyncState.SYNCED: "Sincronizado",
    SyncState.DIVERGENT: "Com Divergência",
    SyncState.OFFLINE: "Offline/Erro",
}


@dataclass
class StatusFacts:
    """What the engine knows; `derive_state` turns it into the badge."""

    online: bool | None = None  # None until the first contact with the server
    auth_refused: bool = False
    last_error: str | None = None  # English detail of the last failure
    last_error_code: SyncError | None = None  # what the UI words for the manager
    pending: int = 0
    oldest_pending_at: int | None = None  # stamped on the server's clock (corrected time)
    dead_letters: int = 0
    last_success_at: int | None = None
    busy_since: int | None = None
    divergent: bool = False  # the last reconcile was inconsistent and not repaired
    live: bool = False  # the WebSocket is connected
    cursor: int = 0
    clock_offset_ms: int = 0
    last_reconcile: ReconcileReport | None = None
    server: str = ""
    machine_id: str = ""
    tenant: str = ""  # the shop this PDV syncs with
    synced_tenant: str | None = None  # the shop whose data the store holds (None: none yet)
    extra: dict[str, Any] = field(default_factory=dict)


def derive_state(f: StatusFacts, now: int) -> SyncState:
    if f.online is False or f.auth_refused:
        return SyncState.OFFLINE
    if f.divergent or f.dead_letters:
        # Changes the server refused exist only on this PDV (a refused sale, say): the data
        # differs from the server's until the manager retries or discards them in Detalhes.
        return SyncState.DIVERGENT
    if f.busy_since is not None and now - f.busy_since >= SYNCING_AFTER_MS:
        return SyncState.SYNCING
    if f.last_success_at is None or f.pending > 0:
        return SyncState.WAITING
    return SyncState.SYNCED


class StatusBody(TypedDict):
    """`GET /api/sync/status`, as the tray and `pdvsync-agent status` read it."""

    state: str
    label: str
    pending: int
    oldestPendingAgeMs: int | None
    deadLetters: int
    reconcileDivergent: bool
    lastSuccessAt: str | None
    lastError: str | None
    lastErrorCode: str | None
    lastReconcile: ReconcileReport | None
    clockOffsetMs: int
    online: bool | None
    authRefused: bool
    live: bool
    cursor: int
    server: str
    machineId: str
    tenantId: str
    syncedTenantId: str | None
    syncingSince: str | None


def status_body(f: StatusFacts, now: int) -> StatusBody:
    """The standard fields of the status. `now` is this machine's clock."""
    state = derive_state(f, now)
    oldest_age = None
    if f.oldest_pending_at is not None:
        # Pending events are stamped with server-corrected time: compare on the same clock,
        # or a local clock an hour off shows an age an hour off (or negative).
        oldest_age = max(0, now + f.clock_offset_ms - f.oldest_pending_at)
    return {
        "state": state.value,
        "label": LABELS[state],
        "pending": f.pending,
        "oldestPendingAgeMs": oldest_age,
        "deadLetters": f.dead_letters,
        "reconcileDivergent": f.divergent,
        "lastSuccessAt": to_iso(f.last_success_at),
        "lastError": f.last_error,
        "lastErrorCode": f.last_error_code.value if f.last_error_code else None,
        "lastReconcile": f.last_reconcile,
        "clockOffsetMs": f.clock_offset_ms,
        "online": f.online,
        "authRefused": f.auth_refused,
        "live": f.live,
        "cursor": f.cursor,
        "server": f.server,
        "machineId": f.machine_id,
        "tenantId": f.tenant,
        "syncedTenantId": f.synced_tenant,
        "syncingSince": to_iso(f.busy_since),
    }


def status_json(f: StatusFacts, now: int) -> dict[str, Any]:
    """The status as `GET /api/sync/status` returns it: the standard fields, then the extra
    facts, which are added but never allowed to change the standard ones."""
    body: dict[str, Any] = dict(status_body(f, now))
    body.update({k: v for k, v in f.extra.items() if k not in body})
    return body


Listener = Callable[[dict[str, Any]], None]


class StatusBoard:
    """The engine's facts, shared between its parts and read from any thread: every change
    is told to the listeners (the tray) with the status it leads to."""

    def __init__(self, facts: StatusFacts, clock: ClockOffset) -> None:
        self.facts = facts
        self._clock = clock
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []

    def add_listener(self, callback: Listener) -> None:
        """`callback(status)` after every change of the status, on the engine's thread."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Listener) -> None:
        """No more calls to `callback` (nothing when it was not there)."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    def status(self) -> dict[str, Any]:
        with self._lock:
            facts = replace(self.facts)
        return status_json(facts, self._clock.local_now())

    def state(self) -> SyncState:
        with self._lock:
            return derive_state(self.facts, self._clock.local_now())

    def update(self, **changes: Any) -> None:
        """Set some facts (`StatusFacts` names) and tell the listeners."""
        self.set(**changes)
        self.emit()

    def set(self, **changes: Any) -> None:
        """Set some facts, told to the listeners at the next `update` or `emit`."""
        with self._lock:
            for name, value in changes.items():
                setattr(self.facts, name, value)

    def succeeded(self) -> None:
        """A cycle reached the server and did its work."""
        self.update(
            online=True,
            auth_refused=False,
            last_error=None,
            last_error_code=None,
            last_success_at=self._clock.local_now(),
            busy_since=None,
        )

    def failed(self, code: SyncError, detail: str, *, auth_refused: bool = False) -> None:
        """A cycle could not reach the server, or was refused: offline, and why."""
        changes: dict[str, Any] = {"auth_refused": True} if auth_refused else {}
        self.update(
            online=False, last_error=detail, last_error_code=code, busy_since=None, **changes
        )

    def throttled(self, code: SyncError, detail: str) -> None:
        """The server answered "not now" (429): it is there, so the PDV stays online, and
        what waits is shown as waiting (Aguardando), with why."""
        self.update(online=True, last_error=detail, last_error_code=code, busy_since=None)

    def emit(self) -> None:
        snapshot = self.status()
        for callback in list(self._listeners):
            try:
                callback(snapshot)
            except Exception:  # a listener's bug must not stop the sync
                log.exception("status listener failed")

    def refresh_local(self, store: Store) -> None:
        """The facts the store knows (outbox, cursor) and the clock's offset, as they are now;
        told to the listeners at the next `update` or `emit`."""
        with self._lock:
            self.facts.pending, self.facts.oldest_pending_at, self.facts.dead_letters = (
                store.outbox_facts()
            )
            self.facts.cursor = store.cursor
            self.facts.clock_offset_ms = self._clock.offset_ms
