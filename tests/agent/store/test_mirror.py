"""The mirror of the server: acknowledgements, pulled changes over pending edits
(invariant 9), a full resync's reset and the repair of buckets."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agent.store.store import DEAD
from protocol import bucket_of, to_iso
from tests.agent.store.conftest import T0, ch, pulled, server_product

# -- acknowledgements ----------------------------------------------------------------------


def test_applied_keeps_the_local_view_until_the_server_row_arrives(store):
    store.write([("e1", ch("products", {"id": "p1", "name": "Pão", "stock_quantity": 5}))], T0)
    counts = store.acknowledge([{"eventId": "e1", "status": "applied", "seq": 7}], T0 + 100)
    assert counts == {"applied": 1, "stale": 0, "rejected": 0}
    assert store.pending_count() == 0
    assert store.get("products", "p1")["name"] == "Pão"  # no flicker back to "nothing"
    server = server_product("p1", T0 + 3, name="Pão", stock_quantity=5, createdAt=to_iso(T0 + 3))
    store.apply_pulled([{"table": "products", "seq": 7, "record": server}], 7)
    assert store.get("products", "p1") == server
    assert store.cursor == 7


def test_applied_with_its_row_in_the_same_reply(store):
    store.write([("e1", ch("products", {"id": "p1", "name": "Pão"}))], T0)
    server = server_product("p1", T0 + 2, name="Pão")
    store.acknowledge(
        [{"eventId": "e1", "status": "applied", "seq": 3}],
        T0 + 100,
        changes=[{"table": "products", "seq": 3, "record": server}],
        cursor=3,
    )
    assert store.get("products", "p1")["updatedAt"] == to_iso(T0 + 2)
    assert store.cursor == 3


def test_duplicate_acknowledged_after_a_pull_that_carried_its_effect(store):
    """The push reached the server but its reply was lost; a pull then brought the row with
    the increment applied, and the re-push is answered 'duplicate'. The increment must count
    once: the view is rebuilt from the server's row, not left at shadow + event."""
    store.apply_pulled(pulled(server_product("p1", T0, stock_quantity=10)), 1)
    store.write(
        [("inc", ch("products", {"id": "p1", "_op": "increment", "stock_quantity": -2}))], T0 + 1
    )
    assert store.get("products", "p1")["stock_quantity"] == 8
    store.apply_pulled(
        [{"table": "products", "seq": 2, "record": server_product("p1", T0 + 1, stock_quantity=8)}],
        2,
    )
    store.acknowledge(
        [{"eventId": "inc", "status": "applied", "seq": 2, "duplicate": True}],
        T0 + 5,
        changes=[],
        cursor=2,
    )
    assert store.get("products", "p1")["stock_quantity"] == 8


def test_skipped_stale_rebuilds_from_the_server_version(store):
    store.apply_pulled(pulled(server_product("p1", T0 + 50, name="Servidor")), 1)
    store.write(
        [("e1", ch("products", {"id": "p1", "name": "Meu", "updatedAt": T0 + 10}))], T0 + 60
    )
    assert store.get("products", "p1")["name"] == "Meu"
    newer = server_product("p1", T0 + 80, name="Outro PDV")
    counts = store.acknowledge(
        [{"eventId": "e1", "status": "skipped_stale", "resolution": "skipped_stale"}],
        T0 + 100,
        changes=[{"table": "products", "seq": 2, "record": newer}],
        cursor=2,
    )
    assert counts["stale"] == 1
    assert store.get("products", "p1")["name"] == "Outro PDV"
    assert store.pending_count() == 0 and store.dead_letters() == []


def test_rejected_becomes_a_dead_letter_and_its_effect_leaves_the_view(store):
    store.apply_pulled(pulled(server_product("p1", T0, stock_quantity=10)), 1)
    store.write(
        [("bad", ch("products", {"id": "p1", "_op": "increment", "stock_quantity": -3}))], T0 + 1
    )
    store.write([("next", ch("products", {"id": "p2", "name": "Bolo"}))], T0 + 2)
    assert store.get("products", "p1")["stock_quantity"] == 7
    counts = store.acknowledge(
        [
            {
                "eventId": "bad",
                "status": "rejected",
                "reason": "unknown_record",
                "error": "products/p1 does not exist",
            }
        ],
        T0 + 3,
    )
    assert counts["rejected"] == 1
    assert store.get("products", "p1")["stock_quantity"] == 10
    [dead] = store.dead_letters()
    assert (dead.event_id, dead.state, dead.last_error) == (
        "bad",
        DEAD,
        "products/p1 does not exist",
    )
    # It never blocks the events behind it.
    assert [e.event_id for e in store.due_events(T0 + 3)] == ["next"]
    assert store.pending_count() == 1

    # Retry: back in line at its original place, and its effect shows again.
    assert store.retry_dead("bad") is True
    assert [e.event_id for e in store.due_events(T0 + 3)] == ["bad", "next"]
    assert store.get("products", "p1")["stock_quantity"] == 7
    assert store.retry_dead("bad") is False  # no longer dead

    store.acknowledge([{"eventId": "bad", "status": "rejected", "error": "still wrong"}], T0 + 4)
    assert store.discard_dead("bad") is True
    assert store.dead_letters() == []
    assert store.get("products", "p1")["stock_quantity"] == 10
    assert store.discard_dead("bad") is False
    assert store.retry_dead("unknown") is False


def test_acknowledge_ignores_unknown_and_already_done_events(store):
    store.write([("e1", ch("products", {"id": "p1", "name": "A"}))], T0)
    store.acknowledge([{"eventId": "e1", "status": "applied", "seq": 1}], T0 + 1)
    counts = store.acknowledge(
        [{"eventId": "e1", "status": "rejected"}, {"eventId": "nope", "status": "applied"}], T0 + 2
    )
    assert counts == {"applied": 0, "stale": 0, "rejected": 0}
    assert store.dead_letters() == []


# -- pulled changes (invariant 9) ----------------------------------------------------------


def test_pull_never_clobbers_a_pending_edit_and_pending_increments_stay_on_top(store):
    store.apply_pulled(
        pulled(server_product("p1", T0, name="Pão", price="0.75", stock_quantity=10)), 1
    )
    store.write([("rename", ch("products", {"id": "p1", "name": "Pão francês"}))], T0 + 10)
    store.write(
        [("sale", ch("products", {"id": "p1", "_op": "increment", "stock_quantity": -2}))], T0 + 11
    )
    assert store.get("products", "p1")["stock_quantity"] == 8

    # Another PDV renamed it, repriced it and received stock; the server sends that version.
    other = server_product("p1", T0 + 20, name="Pão integral", price="0.90", stock_quantity=15)
    store.apply_pulled([{"table": "products", "seq": 2, "record": other}], 2)
    view = store.get("products", "p1")
    assert view["name"] == "Pão francês"  # the pending rename is not clobbered
    assert view["price"] == Decimal("0.90")  # a field this machine did not edit follows the server
    assert view["stock_quantity"] == 13  # server 15, pending -2

    # The server says 10 again: still the pending decrement on top.
    store.apply_pulled(
        [{"table": "products", "seq": 3, "record": {**other, "stock_quantity": 10}}], 3
    )
    assert store.get("products", "p1")["stock_quantity"] == 8

    # Once acknowledged and pulled, the view is exactly the server's row.
    final = server_product("p1", T0 + 30, name="Pão francês", price="0.90", stock_quantity=8)
    store.acknowledge(
        [
            {"eventId": "rename", "status": "applied", "seq": 4},
            {"eventId": "sale", "status": "applied", "seq": 5},
        ],
        T0 + 40,
        changes=[{"table": "products", "seq": 5, "record": final}],
        cursor=5,
    )
    assert store.get("products", "p1") == {**final, "price": Decimal("0.90")}


def test_tombstones_from_pulls_remove_rows(store):
    store.apply_pulled(
        pulled(server_product("p1", T0, name="A"), server_product("p2", T0, name="B")), 2
    )
    assert store.count("products") == 2
    store.apply_pulled(
        [
            {
                "table": "products",
                "seq": 3,
                "record": {"id": "p1", "_deleted": True, "updatedAt": to_iso(T0 + 5)},
            }
        ],
        3,
    )
    assert store.get("products", "p1") is None
    assert [p["id"] for p in store.list("products")] == ["p2"]
    assert store.summary()["products"]["count"] == 1
    assert store.cursor == 3


def test_a_page_from_a_newer_server_with_an_unknown_table_changes_nothing(store):
    page = [
        {"table": "products", "seq": 1, "record": server_product("p1", T0)},
        {"table": "coupons", "seq": 2, "record": {"id": "c1", "updatedAt": to_iso(T0)}},
    ]
    with pytest.raises(KeyError):
        store.apply_pulled(page, 2)
    assert store.get("products", "p1") is None and store.cursor == 0


def test_reset_mirror_keeps_pending_events(store):
    store.apply_pulled(
        pulled(
            server_product("p1", T0, name="A", stock_quantity=4), server_product("p2", T0, name="B")
        ),
        2,
    )
    store.write([("e1", ch("products", {"id": "p3", "name": "Novo"}))], T0 + 1)
    store.write(
        [("e2", ch("products", {"id": "p1", "_op": "increment", "stock_quantity": 1}))], T0 + 2
    )
    store.reset_mirror()
    assert store.cursor == 0
    assert store.get("products", "p2") is None
    assert store.get("products", "p3")["name"] == "Novo"
    assert [e.event_id for e in store.pending_events()] == ["e1", "e2"]
    # The next pull rebuilds the rest, still with the pending increment on top.
    store.apply_pulled(
        pulled(
            server_product("p1", T0, name="A", stock_quantity=4), server_product("p2", T0, name="B")
        ),
        2,
    )
    assert store.get("products", "p1")["stock_quantity"] == 5
    assert store.get("products", "p2")["name"] == "B"


# -- repair --------------------------------------------------------------------------------


def _ids_in_distinct_buckets(n: int, prefix: str = "p") -> list[str]:
    ids, seen, i = [], set(), 0
    while len(ids) < n:
        candidate = f"{prefix}{i}"
        if bucket_of(candidate) not in seen:
            seen.add(bucket_of(candidate))
            ids.append(candidate)
        i += 1
    return ids


def test_replace_buckets_fixes_exactly_the_planted_rows(store):
    ids = _ids_in_distinct_buckets(30)
    server_rows = {
        i: server_product(i, T0 + n, name=f"produto {n}", stock_quantity=n)
        for n, i in enumerate(ids)
    }
    store.apply_pulled(pulled(*server_rows.values()), 30)
    good = store.summary()
    changed, dropped, untouched_plant = ids[3], ids[7], ids[11]
    ghost = next(
        f"x{i}" for i in range(10_000) if bucket_of(f"x{i}") not in {bucket_of(j) for j in ids}
    )
    pending_row = ids[20]
    store.write([("keep", ch("products", {"id": pending_row, "name": "edição local"}))], T0 + 100)
    # Plant a divergence straight into the view table, as a bug or a crash might.
    P = store.m.views["products"]
    P.update(name="corrompido").where(P.id == changed).execute()
    P.delete().where(P.id == dropped).execute()
    P.insert(id=ghost, updated_at=T0, name="fantasma", stock_quantity=1).execute()
    P.update(stock_quantity=999).where(
        P.id == untouched_plant
    ).execute()  # outside the repaired buckets

    buckets = [bucket_of(i) for i in (changed, dropped, ghost, pending_row)]
    rows = [
        server_rows[i] for i in (changed, dropped, pending_row)
    ]  # the server's rows of those buckets
    report = store.replace_buckets("products", buckets, rows)

    assert report == {
        "table": "products",
        "buckets": sorted(buckets),
        "fixed": sorted([changed, dropped]),
        "removed": [ghost],
    }
    assert store.get("products", changed)["name"] == f"produto {ids.index(changed)}"
    assert store.get("products", dropped) is not None
    assert store.get("products", ghost) is None
    assert store.get("products", pending_row)["name"] == "edição local"  # pending edits are kept
    assert store.get("products", untouched_plant)["stock_quantity"] == 999  # only those buckets
    P.update(stock_quantity=ids.index(untouched_plant)).where(P.id == untouched_plant).execute()
    store.acknowledge([{"eventId": "keep", "status": "skipped_stale"}], T0 + 200)
    assert store.summary() == good


def test_replace_buckets_reports_only_what_really_changed(store):
    ids = _ids_in_distinct_buckets(3)
    store.apply_pulled(pulled(server_product(ids[0], T0, name="A")), 1)
    # A row created here and not pushed yet, in a repaired bucket: it stays, and is
    # reported neither as fixed nor as removed.
    store.write([("new", ch("products", {"id": ids[1], "name": "local"}))], T0 + 1)
    report = store.replace_buckets(
        "products", [bucket_of(i) for i in ids], [server_product(ids[0], T0, name="A")]
    )
    assert (report["fixed"], report["removed"]) == ([], [])
    assert store.get("products", ids[1])["name"] == "local"
    assert store.get("products", ids[0])["name"] == "A"
