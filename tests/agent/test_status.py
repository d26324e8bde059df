"""The badge: one state at a time, its precedence decided in one place (DESIGN.md)."""

from __future__ import annotations

import itertools

import pytest

from agent.sync.errors import SyncError
from agent.sync.status import (
    LABELS,
    SYNCING_AFTER_MS,
    StatusFacts,
    SyncState,
    derive_state,
    status_json,
)
from protocol import to_iso

NOW = 1_750_000_000_000


def facts(**kw) -> StatusFacts:
    base = {"online": True, "last_success_at": NOW - 5_000}
    base.update(kw)
    return StatusFacts(**base)


def test_labels_are_the_badges_portuguese_words():
    assert {s.value: LABELS[s] for s in SyncState} == {
        "waiting": "Aguardando",
        "syncing": "Sincronizando",
        "synced": "Sincronizado",
        "divergent": "Com Divergência",
        "offline": "Offline/Erro",
    }


def _expected(offline: bool, divergent: bool, busy_long: bool, waiting: bool) -> SyncState:
    if offline:
        return SyncState.OFFLINE
    if divergent:
        return SyncState.DIVERGENT
    if busy_long:
        return SyncState.SYNCING
    if waiting:
        return SyncState.WAITING
    return SyncState.SYNCED


# Every combination of the facts that decide the badge.
OFFLINE = {
    "online": dict(online=True),
    "unreachable": dict(online=False),
    "auth": dict(auth_refused=True),
    "unknown": dict(online=None),
}
BUSY = {
    "idle": dict(busy_since=None),
    "short": dict(busy_since=NOW - SYNCING_AFTER_MS + 1),
    "long": dict(busy_since=NOW - SYNCING_AFTER_MS),
    "longer": dict(busy_since=NOW - 60_000),
}
WAIT = {
    "synced": dict(pending=0),
    "pending": dict(pending=3, oldest_pending_at=NOW - 1000),
    "never": dict(last_success_at=None),
}


@pytest.mark.parametrize(
    "offline,divergent,busy,wait",
    list(itertools.product(OFFLINE, [False, True], BUSY, WAIT)),
)
def test_precedence_for_every_combination(offline, divergent, busy, wait):
    f = facts(**OFFLINE[offline], divergent=divergent, **BUSY[busy], **WAIT[wait])
    expected = _expected(
        offline=offline in ("unreachable", "auth"),
        divergent=divergent,
        busy_long=busy in ("long", "longer"),
        waiting=wait in ("pending", "never"),
    )
    assert derive_state(f, NOW) is expected
    body = status_json(f, NOW)
    assert (body["state"], body["label"]) == (expected.value, LABELS[expected])


def test_syncing_shows_only_after_the_delay():
    started = NOW
    f = facts(busy_since=started)
    assert derive_state(f, started) is SyncState.SYNCED  # a quick sync never flickers the badge
    assert derive_state(f, started + SYNCING_AFTER_MS - 1) is SyncState.SYNCED
    assert derive_state(f, started + SYNCING_AFTER_MS) is SyncState.SYNCING
    assert SYNCING_AFTER_MS == 1500
    first_run = facts(busy_since=started, last_success_at=None)
    assert derive_state(first_run, started + 10) is SyncState.WAITING


def test_status_json_fields():
    f = StatusFacts(
        online=True,
        pending=2,
        oldest_pending_at=NOW - 90_000,
        dead_letters=1,
        last_success_at=NOW - 1000,
        last_error="x",
        last_error_code=SyncError.TIMEOUT,
        live=True,
        cursor=42,
        clock_offset_ms=0,
        last_reconcile={"status": "consistent"},
        server="http://192.168.1.100:3001",
        machine_id="pdv-1",
        tenant="loja-1",
        synced_tenant="loja-1",
        busy_since=NOW - 10,
    )
    assert status_json(f, NOW) == {
        "state": "divergent",
        "label": "Com Divergência",
        "pending": 2,
        "oldestPendingAgeMs": 90_000,
        "deadLetters": 1,
        "reconcileDivergent": False,
        "lastSuccessAt": to_iso(NOW - 1000),
        "lastError": "x",
        "lastErrorCode": "timeout",
        "lastReconcile": {"status": "consistent"},
        "clockOffsetMs": 0,
        "online": True,
        "authRefused": False,
        "live": True,
        "cursor": 42,
        "server": "http://192.168.1.100:3001",
        "machineId": "pdv-1",
        "tenantId": "loja-1",
        "syncedTenantId": "loja-1",
        "syncingSince": to_iso(NOW - 10),
    }
    empty = status_json(StatusFacts(), NOW)
    assert empty["state"] == "waiting" and empty["oldestPendingAgeMs"] is None
    assert (
        empty["lastSuccessAt"] is None and empty["syncingSince"] is None and empty["online"] is None
    )


def test_oldest_pending_age_is_measured_on_the_servers_clock():
    """Events are stamped with server-corrected time; a local clock an hour behind must not
    make the oldest pending event look an hour younger (or from the future)."""
    hour = 3_600_000
    local_now = NOW - hour  # this machine's clock is an hour behind the server's
    f = StatusFacts(pending=1, oldest_pending_at=NOW - 30_000, clock_offset_ms=hour)
    assert status_json(f, local_now)["oldestPendingAgeMs"] == 30_000
    future = StatusFacts(pending=1, oldest_pending_at=NOW + 5, clock_offset_ms=0)
    assert status_json(future, NOW)["oldestPendingAgeMs"] == 0


def test_extra_facts_are_added_but_never_replace_the_standard_fields():
    f = StatusFacts(online=True, last_success_at=NOW, extra={"version": "1.2.3", "state": "bogus"})
    body = status_json(f, NOW)
    assert body["version"] == "1.2.3"
    assert body["state"] == "synced"


def test_changes_the_server_refused_make_the_badge_divergent_until_handled():
    """A refused sale exists only on this PDV: not 'Sincronizado', however drained it is."""
    base = dict(online=True, last_success_at=NOW - 1000)
    assert derive_state(StatusFacts(**base), NOW) is SyncState.SYNCED
    assert derive_state(StatusFacts(**base, dead_letters=1), NOW) is SyncState.DIVERGENT
    assert (
        derive_state(StatusFacts(**{**base, "online": False}, dead_letters=1), NOW)
        is SyncState.OFFLINE
    )
    assert status_json(StatusFacts(**base, dead_letters=3), NOW)["label"] == "Com Divergência"
