"""The sync service on a real database, the same suite on SQLite and on PostgreSQL.

Invariants 2-8 of DESIGN.md at the service level: exactly-once events, the server-ordered
cursor, patches and last-writer-wins, counters, tombstones and their garbage collection,
atomic batches, reconcile; plus exact money and the seed's plain reads.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from protocol import (
    TABLES,
    ProtocolError,
    bucket_of,
    bucket_summaries,
    combine,
    dumps,
    from_wire,
    loads,
    parse_ms,
    row_digest,
    to_iso,
)
from server.api.collections import parse_day_range
from tests.server.conftest import (
    T0,
    live_by_id,
    pull_all,
    push,
    push_batch,
    push_one,
)


def iso(ms: int) -> str:
    return to_iso(ms)


def wire(value):
    """What the other side reads: the JSON text of a value, parsed back."""
    return loads(dumps(value))


def stats(svc) -> dict:
    return svc.stats()


# -- invariant 2: exactly-once effect --------------------------------------------------------


def test_a_repeated_event_returns_the_original_result_and_changes_nothing(service):
    first = push_one(
        service, "products", {"id": "p1", "name": "Pão", "price": "1.00"}, event_ids=["e-1"]
    )
    assert first["status"] == "applied" and first["seq"] == 1
    head = service.head()

    again = push_one(
        service, "products", {"id": "p1", "name": "Outro", "price": "9.00"}, event_ids=["e-1"]
    )
    assert again.pop("duplicate") is True
    assert again == first
    assert service.head() == head
    assert live_by_id(service, "products")["p1"]["name"] == "Pão"
    assert live_by_id(service, "products")["p1"]["price"] == Decimal("1.00")
    assert stats(service)["eventsProcessed"] == 1


def test_a_repeated_event_within_one_request_is_applied_once(service):
    results, head = push(
        service,
        "products",
        {"id": "p1", "name": "primeiro"},
        {"id": "p1", "name": "segundo"},
        {"id": "p2", "name": "outro"},
        event_ids=["same", "same", "other"],
    )
    assert [r["status"] for r in results] == ["applied", "applied", "applied"]
    assert "duplicate" not in results[0] and results[1]["duplicate"] is True
    assert results[1]["seq"] == results[0]["seq"]
    assert head == 2
    assert live_by_id(service, "products")["p1"]["name"] == "primeiro"


def test_a_repeated_increment_is_not_applied_twice(service):
    push_one(service, "products", {"id": "p1", "name": "Pão", "stock_quantity": 10})
    sale = {"id": "p1", "_op": "increment", "stock_quantity": -3}
    push_one(service, "products", sale, event_ids=["sale-1"])
    push_one(service, "products", sale, event_ids=["sale-1"])  # a retry after a lost reply
    push(service, "products", sale, sale, event_ids=["sale-1", "sale-1"])
    push_batch(service, ("products", sale, "sale-1"))
    assert live_by_id(service, "products")["p1"]["stock_quantity"] == 7


def test_a_repeated_stale_event_replays_its_stale_result(service):
    push_one(service, "products", {"id": "p1", "name": "novo", "updatedAt": iso(T0 - 1000)})
    old = {"id": "p1", "name": "velho", "updatedAt": iso(T0 - 5000)}
    first = push_one(service, "products", old, event_ids=["old"])
    again = push_one(service, "products", old, event_ids=["old"])
    assert first["status"] == again["status"] == "skipped_stale" and again["duplicate"] is True
    assert stats(service)["conflicts"] == 1


# -- invariant 3: server-ordered cursor ------------------------------------------------------


def test_every_applied_change_gets_the_next_sequence_number(service):
    results, head = push(service, "products", *[{"id": f"p{i}", "name": f"P{i}"} for i in range(5)])
    assert [r["seq"] for r in results] == [1, 2, 3, 4, 5] and head == 5
    results, head = push(service, "orders", {"id": "o1", "total": "1.00"})
    assert results[0]["seq"] == 6 and head == 6
    # A stale, a rejected and an invalid event change nothing, so they take no number.
    push_one(service, "products", {"id": "p0", "name": "newer", "updatedAt": iso(T0)})
    results, head = push(
        service,
        "products",
        {"id": "p0", "name": "older", "updatedAt": iso(T0 - 1)},
        {"id": "p0", "_op": "increment", "stock_quantity": 2**53},
        {"id": "p1", "price": "abc"},
    )
    assert [r["status"] for r in results] == ["skipped_stale", "rejected", "rejected"]
    assert all("seq" not in r for r in results) and head == 7
    seqs = [c["seq"] for c in service.changes(0)["changes"]]
    assert seqs == sorted(set(seqs)) and seqs[-1] == 7


def test_paging_returns_every_row_exactly_once_in_sequence_order(service):
    push(service, "products", *[{"id": f"p{i:02d}", "name": f"P{i}"} for i in range(23)])
    push(service, "orders", {"id": "o1", "total": "2.00"})  # another table's change in between
    push(
        service, "products", *[{"id": f"p{i:02d}", "name": f"P{i}!"} for i in (3, 7, 11)]
    )  # they move to the end
    push(service, "products", {"id": "p05", "_op": "delete"})
    expected = [f"p{i:02d}" for i in range(23) if i not in (3, 5, 7, 11)] + [
        "p03",
        "p07",
        "p11",
        "p05",
    ]

    for limit in (1, 4, 5, 22, 23, 24, 1000):
        pages = []
        cursor = 0
        for _ in range(100):
            page = service.pull("products", cursor, limit)
            pages.append(page)
            assert len(page["synced"]) <= limit
            assert page["cursor"] > cursor or not page["synced"]
            cursor = page["cursor"]
            if not page["hasMore"]:
                break
        got = [r["id"] for p in pages for r in p["synced"]]
        assert got == expected, limit
        assert all(p["hasMore"] for p in pages[:-1]) and not pages[-1]["hasMore"]
        assert pages[-1]["cursor"] == service.head()
        # limit+1 is fetched: no empty last page when the rows divide evenly
        assert all(p["synced"] for p in pages), limit


def test_the_cursor_moves_to_head_even_when_the_table_has_nothing_new(service):
    page = service.pull("products", 0)
    assert page == {"synced": [], "cursor": 0, "hasMore": False}
    assert service.changes(0) == {"changes": [], "cursor": 0, "hasMore": False}
    push(service, "orders", {"id": "o1"}, {"id": "o2"})
    page = service.pull("products", 0)
    assert page == {"synced": [], "cursor": 2, "hasMore": False}
    assert service.pull("orders", 2) == {"synced": [], "cursor": 2, "hasMore": False}


def test_changes_feed_merges_tables_in_sequence_order(service):
    push_batch(
        service,
        ("orders", {"id": "o1"}),
        ("order_items", {"id": "i1", "order_id": "o1"}),
        ("products", {"id": "p1"}),
        ("supplies", {"id": "s1"}),
        ("orders", {"id": "o1", "total": "3.00"}),
    )
    seen = []
    cursor = 0
    for _ in range(10):
        page = service.changes(cursor, 2)
        seen += [(c["seq"], c["table"], c["record"]["id"]) for c in page["changes"]]
        cursor = page["cursor"]
        if not page["hasMore"]:
            break
    assert seen == [
        (2, "order_items", "i1"),
        (3, "products", "p1"),
        (4, "supplies", "s1"),
        (5, "orders", "o1"),
    ]
    assert cursor == 5


@pytest.mark.parametrize("reader", ["pull", "changes"])
def test_a_cursor_ahead_of_the_server_asks_for_a_full_resync(service, reader):
    push(service, "products", {"id": "p1"})
    read = (lambda since: service.pull("products", since)) if reader == "pull" else service.changes
    read(1)
    with pytest.raises(ProtocolError) as err:
        read(2)
    assert err.value.code == "resync_required" and err.value.status == 409
    assert err.value.details == {"resyncRequired": True, "cursor": 1}


def test_page_limits_are_checked(service):
    with pytest.raises(ProtocolError) as err:
        service.pull("products", 0, 0)
    assert err.value.status == 400
    with pytest.raises(ProtocolError) as err:
        service.pull("nope", 0)
    assert err.value.code == "unknown_table" and err.value.status == 404


# -- patch semantics ---------------------------------------------------------------------------


def test_an_upsert_changes_only_the_fields_it_carries(service, clock):
    push_one(
        service,
        "products",
        {
            "id": "p1",
            "name": "Pão francês",
            "description": "crocante",
            "price": "0.50",
            "category": "pães",
            "imageUrlId": "img-1",
            "stock_quantity": 10,
            "createdAt": iso(T0 - 86_400_000),
        },
    )
    before = live_by_id(service, "products")["p1"]
    clock.advance(1000)
    push_one(service, "products", {"id": "p1", "price": "0.60"})
    after = live_by_id(service, "products")["p1"]
    assert after["price"] == Decimal("0.60")
    assert after["updatedAt"] == iso(T0 + 1000)
    assert {k: v for k, v in after.items() if k not in ("price", "updatedAt")} == {
        k: v for k, v in before.items() if k not in ("price", "updatedAt")
    }

    push_one(service, "products", {"id": "p1", "description": None})  # an explicit null clears
    assert live_by_id(service, "products")["p1"]["description"] is None
    assert live_by_id(service, "products")["p1"]["name"] == "Pão francês"


def test_a_new_record_starts_from_the_defaults(service):
    push_one(service, "orders", {"id": "o1", "customerName": "Ana"})
    push_one(service, "products", {"id": "p1"})
    push_one(service, "supplies", {"id": "s1"})
    order = live_by_id(service, "orders")["o1"]
    assert order["status"] == "Pendente" and order["total"] is None
    assert order["createdAt"] == iso(T0)  # no createdAt given: the edit time
    assert live_by_id(service, "products")["p1"]["stock_quantity"] == 0
    assert live_by_id(service, "supplies")["s1"]["stock"] == Decimal("0")


# -- invariant 4: conflicts -----------------------------------------------------------------


@pytest.mark.parametrize("arrival", ["older_first", "newer_first"])
def test_the_later_edit_wins_whichever_arrives_first(service, arrival):
    push_one(
        service,
        "products",
        {"id": "p1", "name": "original", "price": "1.00", "updatedAt": iso(T0 - 60_000)},
    )
    older = {"id": "p1", "name": "caixa-1", "updatedAt": iso(T0 - 5000)}
    newer = {"id": "p1", "name": "caixa-2", "updatedAt": iso(T0 - 1000)}
    if arrival == "older_first":
        assert push_one(service, "products", older)["status"] == "applied"
        assert push_one(service, "products", newer)["status"] == "applied"
    else:
        assert push_one(service, "products", newer)["status"] == "applied"
        stale = push_one(service, "products", older)
        assert stale["status"] == "skipped_stale" and stale["resolution"] == "skipped_stale"
        assert stale["id"] == "p1" and stale["table"] == "products"
        assert stale["serverUpdatedAt"] == iso(T0 - 1000)
        assert stale["clientUpdatedAt"] == iso(T0 - 5000)
        assert stats(service)["conflicts"] == 1
    row = live_by_id(service, "products")["p1"]
    assert row["name"] == "caixa-2" and row["updatedAt"] == iso(T0 - 1000)
    assert row["price"] == Decimal("1.00")


def test_an_edit_without_a_time_is_stamped_with_the_server_clock(service, clock):
    push_one(service, "products", {"id": "p1", "name": "a"})
    assert live_by_id(service, "products")["p1"]["updatedAt"] == iso(T0)
    stale = push_one(service, "products", {"id": "p1", "name": "b", "updatedAt": iso(T0 - 1)})
    assert stale["status"] == "skipped_stale"


def test_a_timestamp_from_the_future_is_clamped_to_server_now(service, clock):
    r = push_one(
        service, "products", {"id": "p1", "name": "do futuro", "updatedAt": iso(T0 + 3_600_000)}
    )
    assert r["status"] == "applied"
    assert live_by_id(service, "products")["p1"]["updatedAt"] == iso(T0)
    clock.advance(1000)
    # An edit made after the clamped one, but before the fast clock's claim, still wins.
    r = push_one(service, "products", {"id": "p1", "name": "depois", "updatedAt": iso(T0 + 500)})
    assert r["status"] == "applied"
    assert live_by_id(service, "products")["p1"]["name"] == "depois"


def test_increments_and_deletes_are_never_stale(service):
    push_one(
        service,
        "products",
        {"id": "p1", "name": "Bolo", "stock_quantity": 5, "updatedAt": iso(T0 - 1000)},
    )
    r = push_one(
        service,
        "products",
        {"id": "p1", "_op": "increment", "stock_quantity": -2, "updatedAt": iso(T0 - 3_600_000)},
    )
    assert r["status"] == "applied"
    assert live_by_id(service, "products")["p1"]["stock_quantity"] == 3
    r = push_one(
        service, "products", {"id": "p1", "_op": "delete", "updatedAt": iso(T0 - 3_600_000)}
    )
    assert r["status"] == "applied"
    assert "p1" not in live_by_id(service, "products")


def test_an_upsert_older_than_a_delete_does_not_resurrect_but_a_newer_one_does(service):
    push_one(
        service,
        "products",
        {"id": "p1", "name": "Bolo", "price": "10.00", "updatedAt": iso(T0 - 5000)},
    )
    push_one(service, "products", {"id": "p1", "_op": "delete", "updatedAt": iso(T0 - 3000)})
    stale = push_one(
        service, "products", {"id": "p1", "name": "antes do delete", "updatedAt": iso(T0 - 4000)}
    )
    assert stale["status"] == "skipped_stale" and stale["serverUpdatedAt"] == iso(T0 - 3000)
    assert "p1" not in live_by_id(service, "products")
    assert service.get_live("products", "p1") is None
    synced, _ = pull_all(service, "products")
    assert synced == [{"id": "p1", "_deleted": True, "updatedAt": iso(T0 - 3000)}]

    r = push_one(service, "products", {"id": "p1", "name": "de volta", "updatedAt": iso(T0 - 2000)})
    assert r["status"] == "applied"
    row = service.get_live("products", "p1")
    assert row["name"] == "de volta" and row["updatedAt"] == iso(T0 - 2000)


def test_a_delete_of_an_unseen_record_keeps_an_older_upsert_out(service):
    push_one(service, "orders", {"id": "o1", "_op": "delete", "updatedAt": iso(T0 - 1000)})
    stale = push_one(service, "orders", {"id": "o1", "total": "5.00", "updatedAt": iso(T0 - 2000)})
    assert stale["status"] == "skipped_stale"
    assert service.list_live("orders") == []
    synced, _ = pull_all(service, "orders")
    assert synced == [{"id": "o1", "_deleted": True, "updatedAt": iso(T0 - 1000)}]


# -- invariant 5: counters ------------------------------------------------------------------


def test_integer_stock_increments_are_exact(service):
    push_one(service, "products", {"id": "p1", "name": "Pão", "stock_quantity": 10})
    for delta in (-2, -3, 7, -1):
        push_one(service, "products", {"id": "p1", "_op": "increment", "stock_quantity": delta})
    # An absolute upsert of another field in between does not disturb the counter.
    push_one(service, "products", {"id": "p1", "name": "Pão francês"})
    push_one(service, "products", {"id": "p1", "_op": "increment", "stock_quantity": -11})
    row = live_by_id(service, "products")["p1"]
    assert row["stock_quantity"] == 0 and type(row["stock_quantity"]) is int
    push_one(service, "products", {"id": "p1", "_op": "increment", "stock_quantity": -4})
    assert (
        live_by_id(service, "products")["p1"]["stock_quantity"] == -4
    )  # a counter may go negative


def test_decimal_stock_increments_are_exact(service):
    push_one(service, "supplies", {"id": "s1", "name": "Farinha", "stock": "2.500", "unit": "kg"})
    push_one(service, "supplies", {"id": "s2", "name": "Açúcar"})
    for delta in ("0.1", 0.2, "-0.05"):
        push_one(service, "supplies", {"id": "s1", "_op": "increment", "stock": delta})
    for delta in (0.1, 0.2):  # floats as a JS client sends them: 0.1 + 0.2 must be 0.3 exactly
        push_one(service, "supplies", {"id": "s2", "_op": "increment", "stock": delta})
    rows = live_by_id(service, "supplies")
    assert rows["s1"]["stock"] == Decimal("2.750")
    assert rows["s2"]["stock"] == Decimal("0.3")
    assert isinstance(rows["s2"]["stock"], Decimal)
    assert dumps(wire(rows["s2"])["stock"]) == "0.3"


def test_an_increment_of_an_unknown_record_is_kept_hidden_until_the_record_exists(service):
    r = push_one(service, "products", {"id": "ghost", "_op": "increment", "stock_quantity": -2})
    assert r["status"] == "applied" and r["warning"] == "unknown_record"
    assert service.get_live("products", "ghost") is None  # nothing invented
    assert service.pull("products", 0)["synced"][0]["_deleted"] is True
    assert stats(service)["rejected"] == 0
    push_one(service, "products", {"id": "ghost", "_op": "increment", "stock_quantity": -1})
    # Created later, even with an edit time older than the sales: it starts from them.
    push_one(service, "products", {"id": "ghost", "name": "Pão", "updatedAt": iso(T0 - 86_400_000)})
    assert live_by_id(service, "products")["ghost"]["stock_quantity"] == -3
    assert live_by_id(service, "products")["ghost"]["name"] == "Pão"


def test_a_real_delete_still_wins_over_an_older_upsert_after_an_increment(service):
    push_one(service, "products", {"id": "p", "name": "Pão", "updatedAt": iso(T0 - 30)})
    push_one(service, "products", {"id": "p", "_op": "delete", "updatedAt": iso(T0 - 10)})
    push_one(service, "products", {"id": "p", "_op": "increment", "stock_quantity": -1})
    r = push_one(service, "products", {"id": "p", "name": "velho", "updatedAt": iso(T0 - 20)})
    assert r["status"] == "skipped_stale" and service.get_live("products", "p") is None


@pytest.mark.parametrize(
    ("table", "field", "start", "delta"),
    [
        ("products", "stock_quantity", 2**53 - 5, 10),
        ("products", "stock_quantity", -(2**53) + 5, -10),
        ("supplies", "stock", "999999999999.999", "2"),
    ],
)
def test_an_increment_whose_result_is_out_of_range_is_refused_and_changes_nothing(
    service, table, field, start, delta
):
    push_one(service, table, {"id": "x", "name": "X", field: start})
    head = service.head()
    r = push_one(service, table, {"id": "x", "_op": "increment", field: delta})
    assert r["status"] == "rejected" and r["reason"] == "out_of_range" and field in r["error"]
    assert service.head() == head
    assert Decimal(live_by_id(service, table)["x"][field]) == Decimal(start)


@pytest.mark.parametrize(
    "table, record, code",
    [
        ("products", {"id": "p1", "_op": "increment", "price": 1}, "invalid_increment"),
        ("products", {"id": "p1", "_op": "increment"}, "invalid_increment"),
        ("products", {"id": "p1", "_op": "increment", "stock_quantity": 1.5}, "invalid_value"),
        ("supplies", {"id": "s1", "_op": "increment", "stock": "0.0001"}, "invalid_value"),
        ("orders", {"id": "o1", "_op": "increment", "total": 1}, "unknown_operation"),
    ],
)
def test_an_increment_of_a_non_counter_is_rejected(service, table, record, code):
    push_one(service, "products", {"id": "p1", "price": "1.00", "stock_quantity": 1})
    push_one(service, "supplies", {"id": "s1", "stock": "1"})
    push_one(service, "orders", {"id": "o1", "total": "1.00"})
    head = service.head()
    r = push_one(service, table, record)
    assert r["status"] == "rejected" and r["reason"] == code and r["error"]
    assert service.head() == head
    assert live_by_id(service, "products")["p1"]["price"] == Decimal("1.00")
    assert live_by_id(service, "orders")["o1"]["total"] == Decimal("1.00")


# -- invariant 6: tombstones ----------------------------------------------------------------


def test_a_delete_is_pulled_as_a_minimal_tombstone(service, clock):
    push_one(service, "products", {"id": "p1", "name": "Bolo", "price": "10.00"})
    clock.advance(10)
    push_one(service, "products", {"id": "p1", "_op": "delete"})
    synced, cursor = pull_all(service, "products")
    assert synced == [{"id": "p1", "_deleted": True, "updatedAt": iso(T0 + 10)}]
    assert service.list_live("products") == []
    assert service.summary()[0][0]["count"] == 0
    changes = service.changes(0)["changes"]
    assert changes == [{"table": "products", "seq": 2, "record": synced[0]}]


def _setup_tombstones(service):
    # Pushed without a machine id: the only known machines are the ones each test names.
    push(
        service, "products", *[{"id": f"p{i}", "name": f"P{i}"} for i in range(1, 11)], machine=None
    )  # 1..10
    push_one(service, "products", {"id": "p1", "_op": "delete"}, machine=None)  # seq 11
    push_one(service, "orders", {"id": "o1"}, machine=None)  # seq 12
    push_one(service, "orders", {"id": "o1", "_op": "delete"}, machine=None)  # seq 13
    assert service.head() == 13


def test_gc_purges_only_tombstones_every_known_machine_has_pulled_past(service):
    _setup_tombstones(service)
    pull_all(service, "products", machine="caixa-a")
    pull_all(service, "products", 13, machine="caixa-a")  # a's cursor: 13
    pull_all(service, "products", machine="caixa-b")  # b pulled from 0: its cursor is 0
    assert service.collect_garbage()["tombstones"] == 0
    assert {r["id"] for r in pull_all(service, "products")[0]} >= {"p1"}

    pull_all(service, "products", 11, machine="caixa-b")  # b: 11, past p1's tombstone only
    result = service.collect_garbage()
    assert result["tombstones"] == 1 and result["horizon"] == 11
    synced, _ = pull_all(service, "products")
    assert "p1" not in {r["id"] for r in synced} and len(synced) == 9
    assert [r["id"] for r in pull_all(service, "orders")[0]] == ["o1"]  # seq 13 > 11: kept
    assert service.stats()["tombstoneHorizon"] == 11

    # Older cursors would miss the purged tombstone: they are told to resync in full.
    for since in (1, 5, 10):
        with pytest.raises(ProtocolError) as err:
            service.pull("products", since)
        assert err.value.code == "resync_required" and err.value.status == 409
        with pytest.raises(ProtocolError):
            service.changes(since, machine_id="caixa-b")
    assert service.pull("products", 11)["synced"] == []
    assert len(service.pull("products", 0)["synced"]) == 9  # a full pull is always possible

    pull_all(service, "orders", 13, machine="caixa-b")
    assert service.collect_garbage()["tombstones"] == 1
    assert service.pull("orders", 0)["synced"] == []


def test_a_machine_that_only_pushed_blocks_gc(service):
    _setup_tombstones(service)
    pull_all(service, "products", 13, machine="caixa-a")
    push_one(service, "supplies", {"id": "s1"}, machine="caixa-nova")
    assert service.collect_garbage()["tombstones"] == 0
    assert {r["id"] for r in service.pull("products", 0)["synced"]} >= {"p1"}


def test_a_full_resync_after_gc_can_page_to_the_end(service):
    """A machine told to resync pulls from 0 in pages; its page cursors are below the
    horizon, and they must not be refused again, or the resync would never end."""
    _setup_tombstones(service)
    pull_all(service, "products", 13, machine="caixa-a")
    assert service.collect_garbage()["horizon"] == 13
    for machine in ("caixa-nova", "caixa-a"):
        synced, cursor = pull_all(service, "products", 0, limit=3, machine=machine)
        assert sorted(r["id"] for r in synced) == sorted(f"p{i}" for i in range(2, 11))
        assert cursor == 13
        page, cursor = [], 0
        for _ in range(100):
            step = service.changes(cursor, 4, machine_id=machine)
            page += step["changes"]
            cursor = step["cursor"]
            if not step["hasMore"]:
                break
        assert len(page) == 9 and cursor == 13


def test_an_anonymous_client_can_page_a_full_pull_after_gc(service):
    """A client that sends no machineId (the seed's web client, a script) is not tracked, so
    its page cursors cannot be recognised; its first page reaches past the horizon instead,
    and the rest of its pages are never refused."""
    _setup_tombstones(service)
    pull_all(service, "products", 13, machine="caixa-a")
    horizon = service.collect_garbage()["horizon"]
    assert horizon == 13
    for read in ("pull", "changes"):
        seen, cursor = [], 0
        for _ in range(100):
            step = (
                service.pull("products", cursor, 2)
                if read == "pull"
                else service.changes(cursor, 2)
            )
            seen += step["synced"] if read == "pull" else [c["record"] for c in step["changes"]]
            assert step["cursor"] >= horizon or not step["hasMore"]  # a cursor the server accepts
            cursor = step["cursor"]
            if not step["hasMore"]:
                break
        products = {r["id"] for r in seen if "name" in r or "_deleted" not in r}
        assert {f"p{i}" for i in range(2, 11)} <= products
    # An old anonymous cursor below the horizon is still refused: it may have missed deletes.
    with pytest.raises(ProtocolError):
        service.pull("products", 5)


def test_a_forgotten_or_restored_machine_below_the_horizon_must_resync(service):
    _setup_tombstones(service)
    pull_all(service, "products", 13, machine="caixa-a")
    pull_all(service, "products", 13, machine="caixa-b")
    assert service.collect_garbage()["horizon"] == 13
    # caixa-b restored an old local database: its cursor went back to 5.
    with pytest.raises(ProtocolError):
        service.pull("products", 5, machine_id="caixa-b")
    # caixa-c was forgotten (or never seen); it pushes first, then pulls from its old cursor.
    push_one(service, "supplies", {"id": "s1"}, machine="caixa-c")
    with pytest.raises(ProtocolError):
        service.changes(5, machine_id="caixa-c")
    with pytest.raises(ProtocolError):
        service.pull("products", 5, machine_id="caixa-c")


# -- invariant 7: atomic batch ------------------------------------------------------------


def test_a_valid_batch_across_tables_commits_whole(service):
    push_one(
        service, "products", {"id": "pao", "name": "Pão", "price": "0.50", "stock_quantity": 100}
    )
    push_one(service, "supplies", {"id": "farinha", "stock": "10.000"})
    results, head = push_batch(
        service,
        ("orders", {"id": "o1", "customerName": "Ana", "total": "1.50"}),
        (
            "order_items",
            {"id": "o1-1", "order_id": "o1", "product_id": "pao", "quantity": "3", "price": "0.50"},
        ),
        ("products", {"id": "pao", "_op": "increment", "stock_quantity": -3}),
        ("supplies", {"id": "farinha", "_op": "increment", "stock": "-0.150"}),
    )
    assert [r["status"] for r in results] == ["applied"] * 4
    assert head == 6
    assert live_by_id(service, "products")["pao"]["stock_quantity"] == 97
    assert live_by_id(service, "supplies")["farinha"]["stock"] == Decimal("9.850")
    assert live_by_id(service, "orders")["o1"]["total"] == Decimal("1.50")
    assert live_by_id(service, "order_items")["o1-1"]["order_id"] == "o1"


def _assert_nothing_applied(service, head):
    assert service.head() == head
    assert live_by_id(service, "products")["pao"]["stock_quantity"] == 100
    assert service.list_live("orders") == [] and service.list_live("order_items") == []
    assert stats(service)["eventsProcessed"] == 1


@pytest.mark.parametrize(
    "bad",
    [
        ("order_items", {"id": "o1-1", "quantity": "muitos"}),
        ("products", {"id": "pao", "_op": "increment", "name": "x"}),
        ("nope", {"id": "x"}),
        ("orders", {"customerName": "sem id"}),
    ],
)
def test_a_batch_with_an_invalid_event_applies_nothing(service, bad):
    push_one(service, "products", {"id": "pao", "name": "Pão", "stock_quantity": 100})
    head = service.head()
    with pytest.raises(ProtocolError) as err:
        push_batch(
            service,
            ("orders", {"id": "o1", "total": "1.50"}, "ev-order"),
            ("products", {"id": "pao", "_op": "increment", "stock_quantity": -3}),
            (bad[0], bad[1], "ev-bad"),
        )
    assert err.value.code == "invalid_batch" and err.value.status == 422
    assert [i["eventId"] for i in err.value.details["invalid"]] == ["ev-bad"]
    _assert_nothing_applied(service, head)
    # Nothing was recorded either: the same events, fixed, apply later.
    results, _ = push_batch(service, ("orders", {"id": "o1", "total": "1.50"}, "ev-order"))
    assert results[0]["status"] == "applied" and "duplicate" not in results[0]


def test_a_batch_with_an_increment_out_of_range_applies_nothing(service):
    push_one(service, "products", {"id": "pao", "name": "Pão", "stock_quantity": 100})
    push_one(service, "supplies", {"id": "big", "name": "Enorme", "stock": "999999999999.999"})
    head = service.head()
    with pytest.raises(ProtocolError) as err:
        push_batch(
            service,
            ("orders", {"id": "o1", "total": "1.50"}),
            ("products", {"id": "pao", "_op": "increment", "stock_quantity": -3}),
            ("supplies", {"id": "big", "_op": "increment", "stock": 1}, "ev-big"),
        )
    assert err.value.code == "invalid_batch" and err.value.status == 422
    assert [(i["eventId"], i["reason"]) for i in err.value.details["invalid"]] == [
        ("ev-big", "out_of_range")
    ]
    assert service.head() == head
    assert live_by_id(service, "products")["pao"]["stock_quantity"] == 100
    assert service.list_live("orders") == []
    assert stats(service)["eventsProcessed"] == 2  # the two set-up pushes only


def test_a_batch_may_create_a_record_and_increment_it(service):
    results, _ = push_batch(
        service,
        ("products", {"id": "novo", "name": "Novo", "stock_quantity": 5}),
        ("products", {"id": "novo", "_op": "increment", "stock_quantity": -2}),
    )
    assert [r["status"] for r in results] == ["applied", "applied"]
    assert live_by_id(service, "products")["novo"]["stock_quantity"] == 3


def test_a_stale_event_does_not_fail_a_batch(service):
    push_one(
        service,
        "products",
        {"id": "pao", "name": "novo", "stock_quantity": 10, "updatedAt": iso(T0 - 10)},
    )
    results, _ = push_batch(
        service,
        ("products", {"id": "pao", "name": "velho", "updatedAt": iso(T0 - 20)}),
        ("products", {"id": "pao", "_op": "increment", "stock_quantity": -1}),
    )
    assert [r["status"] for r in results] == ["skipped_stale", "applied"]
    row = live_by_id(service, "products")["pao"]
    assert row["name"] == "novo" and row["stock_quantity"] == 9


# -- invariant 8: reconcile -------------------------------------------------------------------


def _populate(service, clock):
    push(
        service,
        "products",
        {
            "id": "pao",
            "name": "Pão de queijo",
            "price": "4.50",
            "stock_quantity": 40,
            "createdAt": iso(T0 - 9000),
        },
        {
            "id": "cafe",
            "name": "Café ☕",
            "price": "4.99",
            "category": "bebidas",
            "updatedAt": iso(T0 - 8000),
        },
        {"id": "bolo", "name": "Bolo", "price": "35.00"},
        *[{"id": f"extra-{i}", "name": f"Extra {i}", "price": f"{i}.{i:02d}"} for i in range(30)],
    )
    clock.advance(10)
    push_one(service, "products", {"id": "bolo", "_op": "delete"})
    push_one(service, "products", {"id": "pao", "_op": "increment", "stock_quantity": -3})
    push_batch(
        service,
        (
            "orders",
            {"id": "o1", "customerName": "Ana", "total": "12.30", "createdAt": iso(T0 - 7000)},
        ),
        (
            "order_items",
            {
                "id": "i1",
                "order_id": "o1",
                "product_id": "pao",
                "quantity": "1.250",
                "price": "4.50",
            },
        ),
    )
    push_one(
        service,
        "supplies",
        {"id": "s1", "name": "Farinha", "stock": "25.125", "unit": "kg", "costPerUnit": "3.1415"},
    )
    push_one(service, "supplies", {"id": "s1", "_op": "increment", "stock": "-0.125"})


def _mirror(service) -> dict[str, dict[str, dict]]:
    """What a client holds after pulling everything: live rows as Python values, from the wire."""
    mirror: dict[str, dict[str, dict]] = {}
    for name in TABLES:
        rows: dict[str, dict] = {}
        synced, _ = pull_all(service, name, limit=7)
        for record in wire(synced):
            if record.get("_deleted"):
                rows.pop(record["id"], None)
            else:
                rows[record["id"]] = from_wire(TABLES[name], record)
        mirror[name] = rows
    return mirror


def _client_summary(mirror, *, checksum: bool = True) -> dict[str, dict]:
    """The summary computed independently of the server, from the pulled rows."""
    out = {}
    for name, rows in mirror.items():
        entry = {
            "count": len(rows),
            "latestUpdatedAt": to_iso(max((r["updatedAt"] for r in rows.values()), default=None)),
        }
        if checksum:
            entry["checksum"] = combine(row_digest(TABLES[name], r) for r in rows.values())
        out[name] = entry
    return out


def test_the_summary_equals_an_independent_computation_from_pulled_rows(service, clock):
    _populate(service, clock)
    server, head, stable = service.summary()
    assert stable and head == service.head()
    client = _client_summary(_mirror(service))
    assert [s["table"] for s in server] == list(TABLES)
    for entry in server:
        assert {k: entry[k] for k in ("count", "latestUpdatedAt", "checksum")} == client[
            entry["table"]
        ]
    by_table = {s["table"]: s for s in server}
    assert by_table["products"]["count"] == 32  # the deleted one is not counted
    assert by_table["supplies"]["latestUpdatedAt"] == iso(T0 + 10)
    assert by_table["orders"]["count"] == 1


def test_the_summary_sees_a_purge_made_by_another_process(service, service_factory, database_url):
    push(
        service, "products", {"id": "a", "name": "A"}, {"id": "b", "name": "B"}, machine=None
    )  # seq 1, 2
    assert service.summary()[0][0]["count"] == 2
    push_one(service, "products", {"id": "a", "_op": "delete"}, machine=None)  # seq 3
    gc = service_factory(database_url)  # `pdvsync-server machines gc`: another process
    gc.pull("products", 3, machine_id="caixa-1")
    assert gc.collect_garbage()["tombstones"] == 1  # the table's highest seq is 2 again
    server, _, _ = service.summary()
    independent = _client_summary(_mirror(service))["products"]
    assert {k: server[0][k] for k in independent} == independent
    assert server[0]["count"] == 1


def test_the_summary_of_an_empty_database(service):
    server, head, stable = service.summary()
    assert head == 0 and stable
    assert server == [
        {"table": t, "count": 0, "latestUpdatedAt": None, "checksum": "0" * 16} for t in TABLES
    ]


def test_reconcile_with_a_matching_summary_is_consistent(service, clock):
    _populate(service, clock)
    mirror = _mirror(service)
    head = service.head()
    for checksum in (True, False):
        result = service.reconcile("caixa-1", _client_summary(mirror, checksum=checksum), head)
        assert result["isConsistent"] is True and result["status"] == "consistent"
        assert result["mismatches"] == [] and result["cursor"] == head
    # The seed's clients send neither checksum nor cursor, and may send a single table: as
    # the original server, each table they leave out is `missing_client_table` (client null).
    seed = {
        "products": {
            "count": 32,
            "latestUpdatedAt": _client_summary(mirror)["products"]["latestUpdatedAt"],
        }
    }
    result = service.reconcile("caixa-1", seed, None)
    assert result["isConsistent"] is False
    assert [(m["table"], m["reason"], m["client"]) for m in result["mismatches"]] == [
        (t, "missing_client_table", None) for t in TABLES if t != "products"
    ]
    seed = {
        name: {k: v for k, v in e.items() if k != "checksum"}
        for name, e in _client_summary(mirror).items()
    }
    assert service.reconcile("caixa-1", seed, None)["isConsistent"] is True


def test_reconcile_detects_a_changed_field_by_checksum(service, clock):
    _populate(service, clock)
    mirror = _mirror(service)
    mirror["products"]["cafe"]["price"] = Decimal("5.00")  # same count, same updatedAt
    result = service.reconcile("caixa-1", _client_summary(mirror), service.head())
    assert result["isConsistent"] is False and result["status"] == "divergent"
    assert [(m["table"], m["reason"]) for m in result["mismatches"]] == [
        ("products", "checksum_mismatch")
    ]
    mismatch = result["mismatches"][0]
    assert mismatch["server"]["count"] == mismatch["client"]["count"] == 32
    # Without the checksum the same difference goes unseen: that is what the checksum is for.
    assert service.reconcile("caixa-1", _client_summary(mirror, checksum=False), service.head())[
        "isConsistent"
    ]


def test_reconcile_detects_count_and_latest_differences(service, clock):
    _populate(service, clock)
    mirror = _mirror(service)
    del mirror["orders"]["o1"]
    summary = _client_summary(mirror)
    result = service.reconcile("caixa-1", summary, None)
    assert result["status"] == "divergent"
    mismatch = result["mismatches"][0]
    assert mismatch["table"] == "orders"
    # The original server's words; the checksum's difference rides along.
    assert mismatch["reason"] == "count_and_latest_updatedAt_mismatch"
    assert mismatch["checksumMismatch"] is True
    assert mismatch["client"] == summary["orders"]
    del mirror["products"]["cafe"]  # the count only (another product is the latest)
    result = service.reconcile("caixa-1", _client_summary(mirror, checksum=False), None)
    assert [(m["table"], m["reason"]) for m in result["mismatches"]] == [
        ("products", "count_mismatch"),
        ("orders", "count_and_latest_updatedAt_mismatch"),
    ]
    assert not any("checksumMismatch" in m for m in result["mismatches"])


def test_reconcile_behind_the_head_says_retry_not_divergent(service, clock):
    _populate(service, clock)
    mirror = _mirror(service)
    cursor = service.head()
    push_one(service, "products", {"id": "novo", "name": "feito em outro caixa"}, machine="caixa-2")
    result = service.reconcile("caixa-1", _client_summary(mirror), cursor)
    assert (
        result["status"] == "retry" and result["retry"] is True and result["isConsistent"] is False
    )
    assert result["cursor"] == cursor + 1
    # Once the client is at the head, the same difference is a real divergence.
    result = service.reconcile("caixa-1", _client_summary(mirror), cursor + 1)
    assert result["status"] == "divergent"


def test_every_reconcile_is_in_the_history_newest_first(service, clock):
    _populate(service, clock)
    good = _client_summary(_mirror(service))
    bad = {**good, "orders": {**good["orders"], "count": 99}}
    head = service.head()
    ids = []
    for machine, summary, cursor in [
        ("caixa-1", good, head),
        ("caixa-2", bad, head),
        ("caixa-1", bad, head - 1),
        ("caixa-1", bad, head),
    ]:
        clock.advance(1000)
        ids.append(service.reconcile(machine, summary, cursor)["id"])
    history = service.history()
    assert [e["id"] for e in history] == ids[::-1]
    assert [e["status"] for e in history] == ["divergent", "retry", "divergent", "consistent"]
    newest = history[0]
    assert newest["machine_id"] == "caixa-1" and newest["is_consistent"] is False
    assert newest["mismatches_count"] == 1 and newest["mismatches"][0]["table"] == "orders"
    assert newest["created_at"] == iso(T0 + 10 + 4000) and newest["cursor"] == head
    assert history[-1]["is_consistent"] is True and history[-1]["mismatches_count"] == 0

    assert [e["id"] for e in service.history(limit=2)] == ids[:1:-1]
    assert [e["id"] for e in service.history(machine_id="caixa-2")] == [ids[1]]
    assert [e["id"] for e in service.history(machine_id="caixa-1")] == [ids[3], ids[2], ids[0]]
    inconsistent = service.history(only_inconsistent=True)
    assert [e["id"] for e in inconsistent] == [ids[3], ids[1]]
    assert [
        e["id"] for e in service.history(only_inconsistent=True, machine_id="caixa-1", limit=1)
    ] == [ids[3]]
    assert service.history(machine_id="caixa-9") == []


def test_buckets_narrow_a_difference_down_to_the_rows(service, clock):
    _populate(service, clock)
    mirror = _mirror(service)["products"]
    mirror["extra-3"]["name"] = "editado só aqui"
    del mirror["extra-7"]
    mirror["fantasma"] = {**mirror["extra-1"], "id": "fantasma"}
    wanted = {"extra-3", "extra-7", "fantasma"}

    table = TABLES["products"]
    ours = bucket_summaries((bucket_of(i), row_digest(table, r)) for i, r in mirror.items())
    theirs = service.buckets("products")
    assert theirs["table"] == "products" and theirs["cursor"] == service.head()
    theirs = {int(b): v for b, v in theirs["buckets"].items()}
    assert sum(v["count"] for v in theirs.values()) == 32
    differing = sorted(b for b in set(ours) | set(theirs) if ours.get(b) != theirs.get(b))
    assert differing == sorted({bucket_of(i) for i in wanted})

    rows = service.bucket_rows("products", differing)
    assert rows["buckets"] == differing
    server_rows = {r["id"]: from_wire(table, r) for r in wire(rows["rows"])}
    assert len(server_rows) < 32  # only the differing buckets travel
    assert all(bucket_of(i) in differing for i in server_rows)
    local = {i: r for i, r in mirror.items() if bucket_of(i) in differing}
    diff = {
        i
        for i in set(local) | set(server_rows)
        if i not in local
        or i not in server_rows
        or row_digest(table, local[i]) != row_digest(table, server_rows[i])
    }
    assert diff == wanted


# -- money --------------------------------------------------------------------------------------


def test_money_round_trips_exactly(service):
    push(
        service,
        "products",
        {"id": "p1", "name": "A", "price": "19.99"},
        {"id": "p2", "name": "B", "price": 0.1},
        {"id": "p3", "name": "C", "price": "9999999999999.99"},
        {"id": "p4", "name": "D", "price": 0.3},
    )
    push_one(service, "supplies", {"id": "s1", "costPerUnit": "0.0125", "stock": "1234.567"})
    rows = live_by_id(service, "products")
    assert [rows[i]["price"] for i in ("p1", "p2", "p3", "p4")] == [
        Decimal("19.99"),
        Decimal("0.1"),
        Decimal("9999999999999.99"),
        Decimal("0.3"),
    ]
    text = dumps(rows["p1"])
    assert '"price":19.99' in text
    assert '"price":9999999999999.99' in dumps(rows["p3"])
    assert wire(service.pull("products", 0)["synced"])[0]["price"] == Decimal("19.99")
    supply = live_by_id(service, "supplies")["s1"]
    assert supply["costPerUnit"] == Decimal("0.0125") and supply["stock"] == Decimal("1234.567")


def test_item_prices_add_up_exactly(service):
    push(
        service,
        "order_items",
        *[
            {"id": f"i{n}", "order_id": "o1", "price": p}
            for n, p in enumerate(("0.10", "0.20", "0.70"))
        ],
    )
    total = sum((r["price"] for r in service.list_live("order_items")), Decimal(0))
    assert total == Decimal("1.00")
    push_one(service, "orders", {"id": "o1", "total": total})
    assert live_by_id(service, "orders")["o1"]["total"] == Decimal("1")


@pytest.mark.parametrize(
    "field, value",
    [
        ("price", "19.999"),
        ("price", 0.30000000000000004),
        ("price", "99999999999999.99"),
        ("price", "NaN"),
        ("price", "1e400"),
        ("price", True),
        ("stock_quantity", "1.5"),
    ],
)
def test_money_that_cannot_be_stored_exactly_is_rejected(service, field, value):
    push_one(service, "products", {"id": "p1", "price": "1.00"})
    r = push_one(service, "products", {"id": "p1", field: value})
    assert r["status"] == "rejected" and r["reason"] in ("invalid_value", "invalid_type")
    assert live_by_id(service, "products")["p1"]["price"] == Decimal("1.00")


def test_money_is_never_stored_as_a_float(service):
    push_one(service, "products", {"id": "p1", "price": 0.1})
    push_one(service, "supplies", {"id": "s1", "stock": 0.1, "costPerUnit": "0.0001"})
    push_one(service, "supplies", {"id": "s1", "_op": "increment", "stock": 0.2})
    db = service.db
    with db.connection_context():
        (price,) = db.execute_sql("SELECT price FROM products").fetchone()
        stock, cost = db.execute_sql("SELECT stock, cost_per_unit FROM supplies").fetchone()
        if not service.postgres:
            kinds = db.execute_sql("SELECT typeof(price) FROM products").fetchone()
            assert kinds == ("text",)
    for value in (price, stock, cost):
        assert not isinstance(value, float)
    assert Decimal(str(price)) == Decimal("0.1")
    assert Decimal(str(stock)) == Decimal("0.3")
    assert Decimal(str(cost)) == Decimal("0.0001")


# -- plain reads: list_live and the day range -------------------------------------------------


def test_list_live_filters_orders_by_created_day_inclusive(service):
    created = {
        "before": "2023-12-31T23:59:59.999Z",
        "first": "2024-01-01T00:00:00.000Z",
        "middle": "2024-01-15T12:00:00.000Z",
        "last": "2024-01-31T23:59:59.999Z",
        "after": "2024-02-01T00:00:00.000Z",
        "deleted": "2024-01-10T00:00:00.000Z",
    }
    push(
        service, "orders", *[{"id": k, "total": "1.00", "createdAt": v} for k, v in created.items()]
    )
    push_one(service, "orders", {"id": "deleted", "_op": "delete"})

    lo, hi = parse_day_range("2024-01-01", "2024-01-31")
    assert (lo, hi) == (parse_ms(created["first"]), parse_ms(created["last"]))
    orders = service.list_live("orders", created_from=lo, created_to=hi)
    assert [o["id"] for o in orders] == ["last", "middle", "first"]  # newest first
    assert orders[0]["createdAt"] == created["last"]
    assert [o["id"] for o in service.list_live("orders")] == [
        "after",
        "last",
        "middle",
        "first",
        "before",
    ]
    lo, _ = parse_day_range("2024-01-31", None)
    assert [o["id"] for o in service.list_live("orders", created_from=lo)] == ["after", "last"]
    _, hi = parse_day_range(None, "2023-12-31")
    assert [o["id"] for o in service.list_live("orders", created_to=hi)] == ["before"]
    one_day = parse_day_range("2024-01-15", "2024-01-15")
    assert [
        o["id"] for o in service.list_live("orders", created_from=one_day[0], created_to=one_day[1])
    ] == ["middle"]


def test_list_live_orders_other_tables_by_id_without_tombstones(service):
    push(
        service,
        "products",
        {"id": "b", "name": "B"},
        {"id": "a", "name": "A"},
        {"id": "c", "name": "C"},
    )
    push_one(service, "products", {"id": "c", "_op": "delete"})
    assert [p["id"] for p in service.list_live("products")] == ["a", "b"]
    assert service.get_live("products", "a")["name"] == "A"
    assert service.get_live("products", "c") is None and service.get_live("products", "zz") is None


def test_parse_day_range():
    assert parse_day_range(None, None) == (None, None)
    assert parse_day_range("", "") == (None, None)
    assert parse_day_range(" 2024-03-01 ", None)[0] == parse_ms("2024-03-01T00:00:00Z")
    assert parse_day_range(None, "2024-02-29")[1] == parse_ms("2024-02-29T23:59:59.999Z")
    lo, hi = parse_day_range("2024-03-01T10:00:00Z", "2024-03-01T11:00:00-03:00")
    assert (lo, hi) == (parse_ms("2024-03-01T10:00:00Z"), parse_ms("2024-03-01T14:00:00Z"))
    with pytest.raises(ProtocolError) as err:
        parse_day_range("2024-02-01", "2024-01-31")
    assert err.value.code == "invalid_date_range" and err.value.status == 400
    for bad in ("2024-13-01", "ontem", "2024-02-30"):
        with pytest.raises(ProtocolError) as err:
            parse_day_range(bad, None)
        assert 400 <= err.value.status < 500


# -- stats --------------------------------------------------------------------------------------


def test_stats_count_events_conflicts_and_machines(service, clock):
    push_one(
        service, "products", {"id": "p1", "name": "a", "updatedAt": iso(T0 - 10)}, machine="caixa-1"
    )
    push_one(
        service, "products", {"id": "p1", "name": "b", "updatedAt": iso(T0 - 20)}, machine="caixa-2"
    )
    push_one(service, "products", {"id": "p1", "price": "x"}, machine="caixa-2")
    clock.advance(5)
    service.pull("products", 1, machine_id="caixa-1")
    s = service.stats()
    assert (s["cursor"], s["eventsProcessed"], s["conflicts"], s["rejected"]) == (1, 2, 1, 1)
    machines = {m["machineId"]: m for m in s["machines"]}
    assert machines["caixa-1"]["cursor"] == 1 and machines["caixa-1"]["lastSeen"] == iso(T0 + 5)
    assert machines["caixa-1"]["firstSeen"] == iso(T0)
    assert machines["caixa-2"]["eventsPushed"] == 1
    assert machines["caixa-2"]["cursor"] == 0  # never pulled
