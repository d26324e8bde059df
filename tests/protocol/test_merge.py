"""The one merge rule both sides apply: patches by last writer, tombstones, counters."""

from __future__ import annotations

from decimal import Decimal

from protocol import TABLES, default_row, parse_change
from protocol.merge import effective_edit_time, merge
from protocol.vocabulary import ResultStatus

P = TABLES["products"]
S = TABLES["supplies"]
T = 1_800_000_000_000


def stored(**fields) -> dict:
    row = default_row(P, "bolo")
    row.update(updatedAt=T, lww_at=T, _deleted=False, name="Bolo", price=Decimal("30.00"))
    row.update(fields)
    return row


def test_an_upsert_is_a_patch_of_the_fields_it_carries():
    merged = merge(parse_change(P, {"id": "bolo", "price": "32.50"}), stored(), T + 5)
    assert merged.status is ResultStatus.APPLIED
    assert merged.row["price"] == Decimal("32.50") and merged.row["name"] == "Bolo"
    assert merged.row["updatedAt"] == T + 5 and merged.row["lww_at"] == T + 5


def test_an_older_upsert_is_stale_and_changes_nothing():
    merged = merge(parse_change(P, {"id": "bolo", "price": "1.00"}), stored(), T - 1)
    assert merged.status is ResultStatus.STALE and merged.row is None
    assert merged.stored_lww_at == T


def test_without_the_stale_check_a_local_pending_edit_always_shows():
    merged = merge(
        parse_change(P, {"id": "bolo", "price": "1.00"}), stored(), T - 1, stale_check=False
    )
    assert merged.status is ResultStatus.APPLIED and merged.row["price"] == Decimal("1.00")
    assert merged.row["updatedAt"] == T  # never moves back


def test_a_new_row_starts_from_the_defaults_and_gets_its_creation_time():
    merged = merge(parse_change(P, {"id": "pao", "name": "Pão"}), None, T)
    assert merged.row["stock_quantity"] == 0 and merged.row["createdAt"] == T
    assert merged.row["_deleted"] is False


def test_a_delete_leaves_a_tombstone_even_for_a_row_never_seen():
    merged = merge(parse_change(P, {"id": "x", "_op": "delete"}), None, T)
    assert merged.row["_deleted"] is True and merged.row["lww_at"] == T
    # an older upsert arriving later does not resurrect it
    late = merge(parse_change(P, {"id": "x", "name": "X"}), merged.row, T - 10)
    assert late.status is ResultStatus.STALE


def test_increments_apply_whatever_their_time_and_commute():
    row = stored(stock_quantity=10)
    a = parse_change(P, {"id": "bolo", "_op": "increment", "stock_quantity": -2})
    b = parse_change(P, {"id": "bolo", "_op": "increment", "stock_quantity": -3})
    ab = merge(b, merge(a, row, T - 100).row, T - 50).row
    ba = merge(a, merge(b, row, T - 50).row, T - 100).row
    assert ab["stock_quantity"] == ba["stock_quantity"] == 5
    assert ab["updatedAt"] == T  # an old sale does not move the row back in time


def test_an_increment_of_an_unknown_row_is_kept_on_a_hidden_tombstone():
    merged = merge(parse_change(S, {"id": "farinha", "_op": "increment", "stock": "-1.5"}), None, T)
    assert merged.status is ResultStatus.APPLIED and merged.warning == "unknown_record"
    assert merged.row["_deleted"] is True and merged.row["lww_at"] == 0
    assert merged.row["stock"] == Decimal("-1.500")
    created = merge(parse_change(S, {"id": "farinha", "name": "Farinha"}), merged.row, T - 1000)
    assert created.status is ResultStatus.APPLIED and created.row["stock"] == Decimal("-1.500")


def test_an_increment_past_what_clients_read_back_is_refused():
    merged = merge(
        parse_change(P, {"id": "bolo", "_op": "increment", "stock_quantity": 2**52}),
        stored(stock_quantity=2**52),
        T,
    )
    assert merged.status is ResultStatus.REJECTED and merged.reason == "out_of_range"
    assert merged.row is None


def test_the_edit_time_is_the_clients_clamped_to_now():
    change = parse_change(P, {"id": "bolo", "name": "B", "updatedAt": T + 60_000})
    assert effective_edit_time(change, T) == T
    assert effective_edit_time(parse_change(P, {"id": "bolo"}), T) == T
    change = parse_change(P, {"id": "bolo", "updatedAt": T - 1})
    assert effective_edit_time(change, T) == T - 1
