"""The seed's bootstrap on the store: an empty table, once this store has reached the server,
is filled with the front end's records as local writes that keep their own edit times;
otherwise the reason, in the original server's words plus `not_synced_yet`."""

from __future__ import annotations

from protocol import to_iso
from tests.agent.store.conftest import T0, ch, pulled, server_product


def recipes(n: int, updated_at: int) -> list[tuple[str, object]]:
    return [
        (
            f"boot-{i}",
            ch(
                "technical_sheets",
                {"id": f"t{i}", "name": f"Receita {i}", "updatedAt": to_iso(updated_at + i)},
            ),
        )
        for i in range(n)
    ]


def test_never_before_the_store_reached_the_server(store):
    answer = store.bootstrap("technical_sheets", recipes(2, T0), T0 + 99)
    assert answer == {"bootstrapped": False, "reason": "not_synced_yet"}
    assert store.count("technical_sheets") == 0 and store.pending_count() == 0
    assert store.bootstrap_state("technical_sheets") is None  # may be tried again


def test_an_empty_table_is_filled_once_keeping_the_records_edit_times(store):
    store.apply_pulled([], 0)  # the server has nothing: the first pull reached its head
    answer = store.bootstrap("technical_sheets", recipes(3, T0), T0 + 99)
    assert answer["bootstrapped"] is True and answer["processed"] == 3
    assert [r["status"] for r in answer["results"]] == ["accepted"] * 3
    # Outbox events stamped with the records' own updatedAt (old data loses to newer edits).
    events = store.pending_events()
    assert [e.payload["updatedAt"] for e in events] == [to_iso(T0 + i) for i in range(3)]
    assert store.get("technical_sheets", "t2")["updatedAt"] == to_iso(T0 + 2)
    assert store.summary()["technical_sheets"]["latestUpdatedAt"] == to_iso(T0 + 2)

    again = store.bootstrap("technical_sheets", recipes(1, T0 + 50), T0 + 100)
    assert again == {"bootstrapped": False, "reason": "already_completed"}
    assert store.count("technical_sheets") == 3


def test_a_table_with_rows_is_never_bootstrapped(store):
    store.apply_pulled(pulled(server_product("p1", T0)), 1)
    answer = store.bootstrap("products", [("e", ch("products", {"id": "p2"}))], T0)
    assert answer == {"bootstrapped": False, "reason": "server_not_empty"}
    assert store.bootstrap_state("products") == "completed"
    store.write([("del", ch("products", {"id": "p1", "_op": "delete"}))], T0 + 1)
    answer = store.bootstrap("products", [("e", ch("products", {"id": "p2"}))], T0)
    assert answer["reason"] == "already_completed" and store.count("products") == 0


def test_repeated_events_are_not_counted_and_invalid_ones_are_reported(store):
    store.apply_pulled([], 0)
    store.write([("boot-0", ch("orders", {"id": "o0"}))], T0)
    store.write([("del", ch("orders", {"id": "o0", "_op": "delete"}))], T0)
    items = [
        ("boot-0", ch("orders", {"id": "o0"})),  # written before: a duplicate
        ("boot-1", ch("orders", {"id": "o1", "total": "5"})),
    ]
    answer = store.bootstrap("orders", items, T0)
    assert answer["processed"] == 1 and answer["bootstrapped"] is True
    assert [r["status"] for r in answer["results"]] == ["duplicate", "accepted"]
    # No records at all: nothing filled, and done.
    assert store.bootstrap("supplies", [], T0) == {
        "bootstrapped": False,
        "processed": 0,
        "results": [],
    }
    assert store.bootstrap_state("supplies") == "completed"
