"""The store's change token (agent/store/changes.py): it moves once per commit that changed
rows the POS reads — local writes, pulled changes, a full resync — only after the commit, and
says which tables changed."""

from __future__ import annotations

import sqlite3
import threading
import uuid

import pytest

from agent.store.changes import HISTORY, ChangeFeed
from agent.store.store import Store

from .conftest import T0, ch, pulled, server_product


def write(store: Store, table: str, record: dict) -> None:
    store.write([(str(uuid.uuid4()), ch(table, record))], T0)


def test_a_local_write_moves_the_token_once_and_names_its_table(store):
    first = store.changes.token
    write(store, "products", {"id": "p1", "name": "Pão"})
    assert store.changes.token == first + 1
    assert store.changes.since(first) == (first + 1, ["products"])
    assert store.changes.since(first + 1) == (first + 1, [])


def test_pulled_changes_and_a_full_resync_move_it_reads_and_empty_pulls_do_not(store):
    first = store.changes.token
    store.apply_pulled(pulled(server_product("p1", T0, name="Servidor")), 1)
    assert store.changes.since(first) == (first + 1, ["products"])
    store.apply_pulled([], 1)  # an idle poll
    store.get("products", "p1")
    store.listing("products")
    assert store.changes.token == first + 1
    store.reset_mirror()  # every view emptied: every table may have changed
    token, tables = store.changes.since(first + 1)
    assert token == first + 2 and "orders" in tables and "products" in tables


def test_the_token_moves_after_the_commit_and_listeners_then_see_the_row(store):
    """A listener runs after the transaction: another connection already reads the row."""
    seen: list[tuple[int, object]] = []

    def listener(token: int) -> None:
        with sqlite3.connect(store.path) as other:
            found = other.execute("SELECT name FROM products WHERE id = 'p1'").fetchone()
        seen.append((token, found))

    store.changes.subscribe(listener)
    write(store, "products", {"id": "p1", "name": "Pão"})
    assert seen == [(store.changes.token, ("Pão",))]


def test_a_sale_of_several_tables_is_one_token(store):
    first = store.changes.token
    store.write(
        [
            (str(uuid.uuid4()), ch("orders", {"id": "o1", "total": "3.50"})),
            (str(uuid.uuid4()), ch("order_items", {"id": "i1", "order_id": "o1"})),
        ],
        T0,
        group_id="sale-1",
    )
    assert store.changes.since(first) == (first + 1, ["order_items", "orders"])


def test_a_write_from_another_thread_wakes_a_waiter_of_this_one(store):
    token = store.changes.token
    moved = threading.Event()
    unsubscribe = store.changes.subscribe(lambda t: moved.set())
    writer = threading.Thread(target=write, args=(store, "supplies", {"id": "s1", "name": "F"}))
    writer.start()
    assert moved.wait(10)
    writer.join(10)
    unsubscribe()
    assert store.changes.since(token)[1] == ["supplies"]


@pytest.mark.parametrize("kind", ["earlier run", "made up", "too old"])
def test_tokens_it_cannot_account_for_have_unknown_tables(tmp_path, kind):
    feed = ChangeFeed(base=1_000)
    for _ in range(HISTORY + 5):
        feed.mark(["products"])
        feed.settle()
    asked = {"earlier run": 999, "made up": feed.token + 1, "too old": 1_000}[kind]
    assert feed.since(asked) == (feed.token, None)
    assert feed.since(feed.token - HISTORY) == (feed.token, ["products"])


def test_a_new_run_starts_above_every_token_of_the_previous_one(tmp_path):
    path = tmp_path / "agent.db"
    first = Store(path)
    try:
        write(first, "products", {"id": "p1"})
        last = first.changes.token
    finally:
        first.close()
    second = Store(path)
    try:
        assert second.changes.token > last
        assert second.changes.since(last) == (second.changes.token, None)
    finally:
        second.close()


def test_closing_tells_listeners_once_more(store):
    told: list[int] = []
    store.changes.subscribe(told.append)
    store.changes.close()
    assert store.changes.closed and told == [store.changes.token]


def test_a_failing_listener_does_not_fail_the_write(store, caplog):
    def broken(token: int) -> None:
        raise ValueError("bug in a listener")

    store.changes.subscribe(broken)
    write(store, "products", {"id": "p1", "name": "Pão"})
    assert store.get("products", "p1")["name"] == "Pão"
    assert "change listener failed" in caplog.text
