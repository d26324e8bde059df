"""The one sync state shown on the badge, with its precedence decided here and only here.

`Offline/Erro` > `Com Divergência` > `Sincronizando` (only after ~1.5 s of work, so quick
syncs do not flicker) > `Aguardando` (never synced, or events pending) > `Sincronizado`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from protocol import to_iso

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
    last_error: str | None = None
    pending: int = 0
    oldest_pending_at: int | None = None  # stamped on the server's clock (corrected time)
    dead_letters: int = 0
    last_success_at: int | None = None
    busy_since: int | None = None
    divergent: bool = False  # the last reconcile was inconsistent and not repaired
    live: bool = False  # the WebSocket is connected
    cursor: int = 0
    clock_offset_ms: int = 0
    last_reconcile: dict[str, Any] | None = None
    server: str = ""
    machine_id: str = ""
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


def status_json(f: StatusFacts, now: int) -> dict[str, Any]:
    """The status as `GET /api/sync/status` returns it. `now` is this machine's clock."""
    state = derive_state(f, now)
    oldest_age = None
    if f.oldest_pending_at is not None:
        # Pending events are stamped with server-corrected time: compare on the same clock,
        # or a local clock an hour off shows an age an hour off (or negative).
        oldest_age = max(0, now + f.clock_offset_ms - f.oldest_pending_at)
    body = {
        "state": state.value,
        "label": LABELS[state],
        "pending": f.pending,
        "oldestPendingAgeMs": oldest_age,
        "deadLetters": f.dead_letters,
        "reconcileDivergent": f.divergent,
        "lastSuccessAt": to_iso(f.last_success_at),
        "lastError": f.last_error,
        "lastReconcile": f.last_reconcile,
        "clockOffsetMs": f.clock_offset_ms,
        "online": f.online,
        "authRefused": f.auth_refused,
        "live": f.live,
        "cursor": f.cursor,
        "server": f.server,
        "machineId": f.machine_id,
        "syncingSince": to_iso(f.busy_since),
    }
    # Extra facts are added, never allowed to change the fields above.
    body.update({k: v for k, v in f.extra.items() if k not in body})
    return body
