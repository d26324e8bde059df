"""The outbox hands out events in push order, respects backoff, never splits a sale."""

from __future__ import annotations

from tests.agent.store.conftest import T0, ch


def test_due_events_in_order_and_oldest_not_due_means_nothing(store):
    for i in range(3):
        store.write([(f"e{i}", ch("products", {"id": f"p{i}", "name": str(i)}))], T0 + i)
    assert [e.event_id for e in store.due_events(T0)] == ["e0", "e1", "e2"]
    assert [e.event_id for e in store.due_events(T0, limit=2)] == ["e0", "e1"]
    store.record_failure(["e0", "e1"], "servidor inacessível", next_attempt_at=T0 + 1000)
    # The oldest is backing off: nothing goes, so a later edit never overtakes an earlier one.
    assert store.due_events(T0 + 999) == []
    due = store.due_events(T0 + 1000)
    assert [e.event_id for e in due] == ["e0", "e1", "e2"]
    assert [(e.attempts, e.last_error) for e in due[:2]] == [(1, "servidor inacessível")] * 2
    assert due[2].attempts == 0
    assert store.oldest_pending_at() == T0


def test_due_events_never_split_an_atomic_group(store):
    store.write([("a", ch("products", {"id": "pa", "name": "a"}))], T0)
    sale = [(f"g{i}", ch("order_items", {"id": f"i{i}", "order_id": "o1"})) for i in range(4)]
    store.write(sale, T0 + 1, group_id="sale-1")
    store.write([("z", ch("products", {"id": "pz", "name": "z"}))], T0 + 2)

    for limit in (1, 2, 3, 4):  # the page would end inside the sale: it stops before it
        assert [e.event_id for e in store.due_events(T0 + 5, limit=limit)] == ["a"]
    assert [e.event_id for e in store.due_events(T0 + 5, limit=5)] == ["a", "g0", "g1", "g2", "g3"]

    store.acknowledge([{"eventId": "a", "status": "applied", "seq": 1}], T0 + 5)
    for limit in (1, 2, 3):  # a sale bigger than a page goes alone, whole
        assert [e.event_id for e in store.due_events(T0 + 5, limit=limit)] == [
            "g0",
            "g1",
            "g2",
            "g3",
        ]
    assert [e.event_id for e in store.due_events(T0 + 5, limit=4)] == ["g0", "g1", "g2", "g3"]
    assert [e.event_id for e in store.due_events(T0 + 5, limit=5)] == ["g0", "g1", "g2", "g3", "z"]
