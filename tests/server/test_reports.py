"""PDV reports, commands, the panel's cards, events per minute and health, at the service
(server/pdvs.py, server/commands.py). Both backends."""

from __future__ import annotations

import pytest

from protocol import ProtocolError
from protocol.reports import parse_report
from server.pdvs import MINUTE_MS, OFFLINE_AFTER_MS, minute_of
from server.presence import SOCKET_GRACE_MS
from tests.server.conftest import push, push_batch, push_one


def report(machine: str = "caixa-1", **fields) -> object:
    body = {
        "machineId": machine,
        "state": "synced",
        "label": "Sincronizado",
        "pending": 0,
        "oldestPendingAgeMs": None,
        "deadLetters": 0,
        "live": True,
        "clockOffsetMs": 12,
        "cursor": 0,
        "version": "1.2.3",
        "hostname": "CAIXA-01",
        "lastReconcile": None,
    }
    body.update(fields)
    return parse_report(body)


class Notices:
    """What `on_command` heard (SQLite; on PostgreSQL the same travels by NOTIFY)."""

    def __init__(self) -> None:
        self.heard: list[tuple] = []

    def __call__(self, tenant, kind, machine_id, command) -> None:
        self.heard.append((tenant, kind, machine_id, command))

    def kinds(self) -> list[str]:
        return [k for _, k, _, _ in self.heard]


@pytest.fixture
def notices(service) -> Notices:
    heard = Notices()
    service.ctx.on_command = heard
    return heard


def card_of(service, machine: str) -> dict:
    cards = {c["machineId"]: c for c in service.pdv_snapshot(service.clock())}
    return cards[machine]


def test_a_report_is_kept_as_the_machines_card_with_its_lag(service, clock):
    push(service, "products", {"id": "p1"}, {"id": "p2"}, {"id": "p3"})  # head 3
    assert service.record_report(report(cursor=1, pending=2, oldestPendingAgeMs=5000)) == []
    card = card_of(service, "caixa-1")
    assert card == {
        **card,
        "machineId": "caixa-1",
        "hostname": "CAIXA-01",
        "version": "1.2.3",
        "state": "synced",
        "label": "Sincronizado",
        "lastSeenAt": clock.now,
        "reportedAt": clock.now,
        "pending": 2,
        "oldestPendingAgeMs": 5000,  # as of reportedAt: the reader adds the time since
        "deadLetters": 0,
        "clockOffsetMs": 12,
        "cursor": 1,
        "lag": 2,
        "live": True,
        "lastReconcile": None,
        "pendingCommand": None,
        "lastCommand": None,
    }
    # A newer report replaces it (one row per machine).
    clock.advance(1000)
    service.record_report(report(cursor=3, state="waiting", label="Aguardando"))
    card = card_of(service, "caixa-1")
    assert (card["state"], card["lag"], card["reportedAt"]) == ("waiting", 0, clock.now)
    with service.connection():
        assert service.m.PdvReport.select().count() == 1


def test_silence_for_more_than_90_s_shows_offline_whatever_the_report_said(service, clock):
    service.record_report(report())
    clock.advance(OFFLINE_AFTER_MS)
    assert card_of(service, "caixa-1")["state"] == "synced"
    clock.advance(1)
    card = card_of(service, "caixa-1")
    assert (card["state"], card["label"], card["live"]) == ("offline", "Offline/Erro", False)
    # A request of the machine counts as seen too (its last_seen), as a report does.
    push_one(service, "products", {"id": "p1"}, machine="caixa-1")
    card = card_of(service, "caixa-1")
    assert card["state"] == "synced" and card["lastSeenAt"] == clock.now


def test_a_closed_live_socket_shows_offline_after_its_grace_unless_the_pdv_is_heard_of(
    service, clock
):
    service.record_report(report())
    clock.advance(1_000)
    service.socket_changed("caixa-1", True)
    clock.advance(1_000)
    service.socket_changed("caixa-1", False)  # the agent stopped: its socket closed
    clock.advance(SOCKET_GRACE_MS - 1)
    assert card_of(service, "caixa-1")["state"] == "synced"  # a blip is not an outage
    clock.advance(1)
    card = card_of(service, "caixa-1")
    assert (card["state"], card["live"]) == ("offline", False), card
    # Back on a socket (on any server process): online at once.
    service.socket_changed("caixa-1", True)
    assert card_of(service, "caixa-1")["state"] == "synced"
    # Closed again, but the PDV keeps reporting over HTTP (its socket is refused): online.
    service.socket_changed("caixa-1", False)
    clock.advance(1)
    service.record_report(report(live=False))
    clock.advance(SOCKET_GRACE_MS * 2)
    assert card_of(service, "caixa-1")["state"] == "synced"
    # Forgetting the machine forgets its socket too.
    assert service.forget_machine("caixa-1")
    assert service.m.PdvSocket.select().count() == 0


def test_a_socket_never_reporting_machine_has_no_card_of_its_own(service, clock):
    # A socket alone (a front end listening) is not a PDV the panel lists.
    service.socket_changed("ouvinte", True)
    service.socket_changed("ouvinte", False)
    clock.advance(SOCKET_GRACE_MS)
    assert all(c["machineId"] != "ouvinte" for c in service.pdv_snapshot(clock.now))


def test_known_machines_without_a_report_have_cards_too(service, clock):
    push_one(service, "products", {"id": "p1"}, machine="frente-de-loja")
    service.pull("products", 0, machine_id="frente-de-loja")
    card = card_of(service, "frente-de-loja")
    assert card["reportedAt"] is None and card["state"] == "waiting" and card["hostname"] is None
    assert card["cursor"] == 0 and card["lag"] == 1 and card["lastSeenAt"] == clock.now
    assert service.known_machines() == ["frente-de-loja"]


def test_history_keeps_one_row_per_machine_and_minute_for_a_day(service, clock):
    start = minute_of(clock.now)
    service.record_report(report(pending=1))
    clock.advance(10_000)
    service.record_report(report(pending=2))  # same minute: replaces
    clock.advance(MINUTE_MS)
    service.record_report(report(pending=3))
    H = service.m.PdvReportHistory
    with service.connection():
        rows = [(r.minute, r.pending) for r in H.select().order_by(H.minute)]
    assert rows == [(start, 2), (start + MINUTE_MS, 3)]
    clock.advance(24 * 3_600_000)
    service.record_report(report(pending=4))
    with service.connection():
        assert [r.pending for r in H.select()] == [4]


def test_a_report_without_a_last_reconcile_keeps_the_one_before(service):
    done = {
        "at": "2030-01-01T11:00:00Z",
        "status": "divergent",
        "strategy": "none",
        "isConsistent": False,
        "mismatches": [{"table": "products", "reason": "count"}],
    }
    service.record_report(report(lastReconcile=done))
    service.record_report(report())  # the PDV restarted: none since
    last = card_of(service, "caixa-1")["lastReconcile"]
    assert last["status"] == "divergent" and last["mismatches"] == [
        {"table": "products", "reason": "count"}
    ]


def test_a_reconcile_command_is_delivered_run_and_finished(service, clock, notices):
    service.record_report(report())
    (command_id,) = service.request_reconcile("caixa-1", "full_resync", "ana")
    if not service.postgres:
        assert notices.heard[-1][:3] == ("default", "command", "caixa-1")
        assert notices.heard[-1][3] == {
            "type": "command",
            "id": command_id,
            "kind": "reconcile",
            "strategy": "full_resync",
        }
    waiting = card_of(service, "caixa-1")["pendingCommand"]
    assert waiting == {
        "id": command_id,
        "strategy": "full_resync",
        "createdAt": clock.now,
        "deliveredAt": None,
    }
    # The next report's reply hands it over (and says it was delivered).
    clock.advance(1000)
    (command,) = service.record_report(report())
    assert command.wire() == {"id": command_id, "kind": "reconcile", "strategy": "full_resync"}
    assert card_of(service, "caixa-1")["pendingCommand"]["deliveredAt"] == clock.now
    # Still listed until the PDV says it is done (a lost reply must not lose it).
    assert [c.id for c in service.record_report(report())] == [command_id]
    clock.advance(5000)
    reconcile = {
        "at": clock.now,
        "status": "repaired",
        "strategy": "full_resync",
        "isConsistent": True,
        "mismatches": [],
        "commandId": command_id,
    }
    results = [{"id": command_id, "status": "repaired"}]
    assert service.record_report(report(lastReconcile=reconcile, commandResults=results)) == []
    card = card_of(service, "caixa-1")
    assert card["pendingCommand"] is None
    last = card["lastCommand"]
    assert last["id"] == command_id and last["finishedAt"] == clock.now
    assert last["result"]["status"] == "repaired" and last["result"]["reconcile"]["at"] == clock.now
    if not service.postgres:
        assert notices.kinds()[-2:] == ["report", "finished"]


def test_the_reconcile_alone_finishes_its_command(service):
    service.record_report(report())
    (command_id,) = service.request_reconcile("caixa-1", "none", None)
    reconcile = {"status": "consistent", "isConsistent": True, "commandId": command_id}
    service.record_report(report(lastReconcile=reconcile))
    assert card_of(service, "caixa-1")["lastCommand"]["result"]["status"] == "consistent"


def test_results_finish_only_that_machines_open_commands(service, clock):
    service.record_report(report("caixa-1"))
    service.record_report(report("caixa-2"))
    (one,) = service.request_reconcile("caixa-1", "none", None)
    # Another machine cannot finish it.
    service.record_report(report("caixa-2", commandResults=[{"id": one, "status": "consistent"}]))
    assert card_of(service, "caixa-1")["pendingCommand"]["id"] == one
    service.record_report(report("caixa-1", commandResults=[{"id": one, "status": "error"}]))
    # Finished once: a repeated result changes nothing.
    clock.advance(1000)
    service.record_report(report("caixa-1", commandResults=[{"id": one, "status": "other"}]))
    last = card_of(service, "caixa-1")["lastCommand"]
    assert last["result"]["status"] == "error" and last["finishedAt"] == clock.now - 1000


def test_all_pdvs_gets_one_command_each_and_a_newer_one_supersedes(service):
    push_one(service, "products", {"id": "p1"}, machine="caixa-1")
    service.record_report(report("caixa-2"))
    first = service.request_reconcile(None, "refresh_mismatched", "ana")
    assert len(first) == 2 and len(set(first)) == 2
    again = service.request_reconcile("caixa-1", "full_resync", "ana")
    cards = {c["machineId"]: c for c in service.pdv_snapshot(service.clock())}
    assert cards["caixa-1"]["pendingCommand"]["id"] == again[0]
    assert cards["caixa-1"]["lastCommand"] is None  # superseded is not a result to show
    assert cards["caixa-2"]["pendingCommand"]["strategy"] == "refresh_mismatched"
    assert [c.id for c in service.pending_commands("caixa-1")] == again


def test_a_command_for_an_unknown_machine_or_strategy_is_refused(service):
    with pytest.raises(ProtocolError) as unknown:
        service.request_reconcile("nobody", "none", None)
    assert (unknown.value.code, unknown.value.status) == ("unknown_machine", 404)
    service.record_report(report())
    with pytest.raises(ProtocolError) as bad:
        service.request_reconcile("caixa-1", "everything", None)
    assert bad.value.code == "invalid_strategy"
    assert service.request_reconcile(None, "none", None) != []
    assert service.scoped("b").request_reconcile(None, "none", None) == []  # no machines there


def test_undelivered_commands_expire_after_a_week(service, clock):
    service.record_report(report())
    service.request_reconcile("caixa-1", "none", None)
    clock.advance(7 * 86_400_000 + 1)
    assert service.pending_commands("caixa-1") == []
    assert card_of(service, "caixa-1")["pendingCommand"] is None


def test_connect_hands_over_pending_commands_and_marks_them_delivered(service, clock):
    service.record_report(report())
    ids = service.request_reconcile("caixa-1", "none", None)
    assert [c.id for c in service.pending_commands("caixa-1")] == ids
    assert card_of(service, "caixa-1")["pendingCommand"]["deliveredAt"] == clock.now
    clock.advance(1000)
    service.mark_delivered(ids)  # the first delivery counts
    assert card_of(service, "caixa-1")["pendingCommand"]["deliveredAt"] == clock.now - 1000


def test_forget_machine_removes_it_with_its_report_and_commands(service, notices):
    push_one(service, "products", {"id": "p1"}, machine="caixa-1")
    service.record_report(report())
    service.request_reconcile("caixa-1", "none", None)
    service.scoped("b").record_report(report())  # the same id in another shop stays
    assert service.forget_machine("caixa-1") is True
    assert service.pdv_snapshot(service.clock()) == []
    assert service.stats()["machines"] == []
    assert service.forget_machine("caixa-1") is False
    assert [c["machineId"] for c in service.scoped("b").pdv_snapshot(service.clock())] == [
        "caixa-1"
    ]
    if not service.postgres:
        assert ("default", "forgotten", "caixa-1", None) in notices.heard


def test_events_per_minute_count_each_push_by_outcome(service, clock):
    start = minute_of(clock.now)
    push(service, "products", {"id": "p1", "updatedAt": clock.now - 10}, {"id": "p2"})
    # Stale: an older edit than the stored one; rejected: a malformed record.
    push(service, "products", {"id": "p1", "updatedAt": clock.now - 1000}, {"id": ""})
    clock.advance(2 * MINUTE_MS)
    push_batch(service, ("products", {"id": "p3"}))
    service.scoped("b").push(*_one_event())  # another shop's minute
    minutes = service.events_per_minute(start, clock.now)
    assert [(m["minute"] - start) // MINUTE_MS for m in minutes] == [0, 1, 2]
    assert [(m["applied"], m["stale"], m["rejected"]) for m in minutes] == [
        (2, 1, 1),
        (0, 0, 0),
        (1, 0, 0),
    ]
    # Bounded to the 8 days kept, however far back asked.
    assert len(service.events_per_minute(0, clock.now)) == 8 * 24 * 60 + 1


def _one_event():
    from protocol.messages import parse_batch_push

    machine, items, _ = parse_batch_push(
        {
            "machineId": "x",
            "events": [{"eventId": "b-1", "table": "products", "record": {"id": "q"}}],
        }
    )
    return machine, items


def test_health_counts_the_last_minute_and_the_last_15(service, clock):
    assert service.health(clock.now) == {
        "database": "ok",
        "head": 0,
        "eventsLastMinute": 0,
        "conflictsLastMinute": 0,
        "eventsLast15Min": 0,
        "conflictsLast15Min": 0,
    }
    push(service, "products", {"id": "p1", "updatedAt": clock.now - 10})
    clock.advance(5 * MINUTE_MS)
    push(service, "products", {"id": "p1", "updatedAt": clock.now - 10 * MINUTE_MS})  # stale
    push(service, "products", {"id": "p2"})
    health = service.health(clock.now)
    assert (health["head"], health["eventsLastMinute"], health["conflictsLastMinute"]) == (2, 2, 1)
    assert (health["eventsLast15Min"], health["conflictsLast15Min"]) == (3, 1)
    clock.advance(20 * MINUTE_MS)
    health = service.health(clock.now)
    assert (health["eventsLastMinute"], health["eventsLast15Min"]) == (0, 0)


def test_health_says_error_when_the_database_is_gone(service, clock):
    def broken(*_a, **_k):
        raise RuntimeError("down")

    service.ctx.models.db.connection_context = broken  # type: ignore[method-assign]
    assert service.health(clock.now)["database"] == "error"


def test_shops_never_see_each_others_pdvs(service):
    service.record_report(report("caixa-1"))
    b = service.scoped("b")
    assert b.pdv_snapshot(service.clock()) == []
    b.record_report(report("caixa-9"))
    assert [c["machineId"] for c in b.pdv_snapshot(service.clock())] == ["caixa-9"]
    with pytest.raises(ProtocolError):
        b.request_reconcile("caixa-1", "none", None)
