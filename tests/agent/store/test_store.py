"""The Store facade: the methods its callers use are all there, and the outbox words it
stores are the same strings as before the typed vocabulary (the uninstaller and older
agents read them)."""

from __future__ import annotations

from agent.store.store import DEAD, PENDING, SENT, Store
from protocol.vocabulary import LocalWriteStatus, OutboxState
from tests.agent.store.conftest import T0, ch

# What the engine, the loopback API, the UI monitor, the installer and the tests call.
PUBLIC = {
    "acknowledge",
    "apply_pulled",
    "bootstrap",
    "bootstrap_state",
    "bucket_summary",
    "check_digests",
    "close",
    "compare_summary",
    "count",
    "cursor",
    "dead_letters",
    "diagnostics",
    "discard_dead",
    "due_events",
    "get",
    "get_many",
    "get_state",
    "list",
    "log_reconcile",
    "oldest_pending_at",
    "outbox_facts",
    "pending_count",
    "pending_events",
    "reached_server",
    "reconcile_history",
    "record_failure",
    "replace_buckets",
    "reset_mirror",
    "retry_dead",
    "set_state",
    "since",
    "summary",
    "write",
}


def test_the_facade_keeps_every_method_its_callers_use(store):
    assert {name for name in PUBLIC if not hasattr(Store, name)} == set()
    assert store.db is store.m.db and store.path.name == "agent.db"


def test_the_outbox_states_are_the_strings_stored_before():
    assert (PENDING, SENT, DEAD) == (OutboxState.PENDING, OutboxState.SENT, OutboxState.DEAD)
    assert (PENDING, SENT, DEAD) == ("pending", "sent", "dead")


def test_typed_answers_are_stored_and_read_as_plain_strings(store):
    [result] = store.write([("e1", ch("products", {"id": "p1", "name": "Pão"}))], T0)
    assert result["status"] is LocalWriteStatus.ACCEPTED and result["status"] == "accepted"
    [again] = store.write([("e1", ch("products", {"id": "p1", "name": "Pão"}))], T0)
    assert (again["status"], again["state"]) == (LocalWriteStatus.DUPLICATE, OutboxState.PENDING)
    raw = store.db.execute_sql("SELECT state, typeof(state) FROM outbox").fetchall()
    assert raw == [("pending", "text")]
    store.acknowledge([{"eventId": "e1", "status": "rejected", "reason": "x"}], T0 + 1)
    [dead] = store.dead_letters()
    assert dead.state is OutboxState.DEAD and dead.reason == "x"
    assert store.db.execute_sql("SELECT state FROM outbox").fetchall() == [("dead",)]
