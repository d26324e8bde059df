"""Reconcile summaries: row digests, the order-independent checksum, buckets, comparison."""

from __future__ import annotations

import random
from decimal import Decimal

from protocol import (
    BUCKETS,
    TABLES,
    bucket_of,
    bucket_summaries,
    combine,
    default_row,
    mismatch_reason,
    parse_ms,
    row_digest,
    summarize,
    to_iso,
    to_signed,
)

P = TABLES["products"]
T = parse_ms("2026-02-11T18:00:00Z")


def product(i: int, **kw) -> dict:
    row = default_row(P, f"p{i}")
    row.update(
        name=f"Produto {i}",
        price=Decimal(f"{i}.50"),
        stock_quantity=i,
        createdAt=T - i,
        updatedAt=T + i,
    )
    row.update(kw)
    return row


def test_the_digest_is_a_64_bit_value_of_the_content():
    d = row_digest(P, product(1))
    assert 0 <= d < 2**64
    assert row_digest(P, product(1)) == d  # deterministic


def test_every_field_changes_the_digest():
    base = product(1)
    d = row_digest(P, base)
    changes = {
        "id": "outro",
        "updatedAt": T + 99,
        "name": "Outro",
        "description": "",
        "price": Decimal("1.51"),
        "category": "pães",
        "imageUrlId": "img",
        "stock_quantity": 2,
        "createdAt": T,
        "costPrice": Decimal("9.99"),
        "isActive": False,
    }
    assert set(changes) == {"id", "updatedAt", *P.field_names}
    for name, value in changes.items():
        assert row_digest(P, {**base, name: value}) != d, name


def test_the_digest_ignores_the_representation_of_equal_values():
    base = product(1, price=Decimal("1.5"))
    d = row_digest(P, base)
    assert row_digest(P, {**base, "price": Decimal("1.50")}) == d
    assert row_digest(P, {**base, "price": Decimal("1.5000")}) == d  # NUMERIC(18,4) on PostgreSQL
    assert row_digest(P, {**base, "seq": 7, "bucket": 3, "_deleted": False}) == d  # storage columns
    assert row_digest(P, {**base, "description": None}) != row_digest(
        P, {**base, "description": ""}
    )
    assert row_digest(P, {**base, "isActive": 1}) == row_digest(P, {**base, "isActive": True})
    assert row_digest(P, {**base, "stock_quantity": "7"}) == row_digest(
        P, {**base, "stock_quantity": 7}
    )


def test_undeclared_fields_are_covered_and_null_fields_are_not():
    base = product(1)
    d = row_digest(P, base)
    assert row_digest(P, {**base, "_extra": {"barcode": "789"}}) != d
    assert row_digest(P, {**base, "_extra": {"barcode": "780"}}) != row_digest(
        P, {**base, "_extra": {"barcode": "789"}}
    )
    # nested values are compared by meaning, not key order
    assert row_digest(P, {**base, "_extra": {"tags": {"a": 1, "b": [2]}}}) == row_digest(
        P, {**base, "_extra": {"tags": {"b": [2], "a": 1}}}
    )
    # a null field, declared or not, is as if absent: adding a column changes no digest
    assert row_digest(P, {**base, "_extra": {"x": None}}) == d
    assert row_digest(P, {**base, "imageUrlId": None}) == row_digest(
        P, {k: v for k, v in base.items() if k != "imageUrlId"}
    )


def test_values_holding_separators_cannot_collide():
    a = product(1, name="a\x1fb", category="c")
    b = product(1, name="a", category="b\x1fc")
    assert row_digest(P, a) != row_digest(P, b)


def test_the_checksum_is_order_independent():
    digests = [row_digest(P, product(i)) for i in range(50)]
    shuffled = digests[:]
    random.Random(7).shuffle(shuffled)
    assert combine(digests) == combine(shuffled)
    assert combine(to_signed(d) for d in digests) == combine(digests)  # as stored in BIGINT
    assert combine([]) == "0" * 16
    assert combine(digests[:-1]) != combine(digests)
    assert len(combine(digests)) == 16


def test_to_signed_fits_a_bigint_and_keeps_the_sum():
    for d in (0, 1, 2**63 - 1, 2**63, 2**64 - 1):
        s = to_signed(d)
        assert -(2**63) <= s < 2**63 and s % 2**64 == d


def test_summarize():
    rows = [product(i) for i in range(5)]
    pairs = [(r["updatedAt"], to_signed(row_digest(P, r))) for r in rows]
    s = summarize("products", pairs)
    assert s == {
        "table": "products",
        "count": 5,
        "latestUpdatedAt": to_iso(T + 4),
        "checksum": combine(row_digest(P, r) for r in rows),
    }
    assert summarize("products", []) == {
        "table": "products",
        "count": 0,
        "latestUpdatedAt": None,
        "checksum": "0" * 16,
    }


def test_buckets():
    assert all(0 <= bucket_of(f"id-{i}") < BUCKETS for i in range(1000))
    assert bucket_of("abc") == bucket_of("abc")
    assert len({bucket_of(f"id-{i}") for i in range(1000)}) > BUCKETS // 2  # spread out
    rows = [product(i) for i in range(40)]
    per = bucket_summaries((bucket_of(r["id"]), to_signed(row_digest(P, r))) for r in rows)
    assert sum(v["count"] for v in per.values()) == 40
    assert list(per) == sorted(per)
    changed = rows[:]
    changed[3] = {**rows[3], "name": "mudou"}
    per2 = bucket_summaries((bucket_of(r["id"]), row_digest(P, r)) for r in changed)
    assert [b for b in per if per[b] != per2.get(b)] == [bucket_of("p3")]


def test_mismatch_reasons_are_the_original_servers_words():
    server = {
        "table": "products",
        "count": 2,
        "latestUpdatedAt": "2026-02-11T18:00:00.000Z",
        "checksum": "00ab",
    }
    same = {"count": 2, "latestUpdatedAt": "2026-02-11T18:00:00.000Z", "checksum": "00ab"}
    assert mismatch_reason(server, same) == (None, False)
    assert mismatch_reason(server, {"count": 2}) == (None, False)  # latest not sent: not compared
    assert mismatch_reason(server, {"count": 2, "checksum": "00AB"}) == (None, False)
    assert mismatch_reason(
        server, {"count": 2, "latestUpdatedAt": "2026-02-11T15:00:00-03:00"}
    ) == (None, False)
    assert mismatch_reason(server, {"count": 2, "latestUpdatedAt": T}) == (None, False)  # epoch ms
    assert mismatch_reason(server, None) == ("missing_client_table", False)
    assert mismatch_reason(server, {"count": 3}) == ("count_mismatch", False)
    assert mismatch_reason(server, {}) == ("count_mismatch", False)  # no count: 0, as the seed
    assert mismatch_reason(server, {"count": 2, "latestUpdatedAt": None}) == (
        "latest_updatedAt_mismatch",
        False,
    )
    assert mismatch_reason(
        server, {"count": 1, "latestUpdatedAt": "2026-01-01", "checksum": "ff"}
    ) == ("count_and_latest_updatedAt_mismatch", True)
    # a difference only the checksum sees has its own reason; beside another, it is a flag
    assert mismatch_reason(server, {**same, "checksum": "ff"}) == ("checksum_mismatch", True)
    assert mismatch_reason(server, {"count": 9, "checksum": "ff"}) == ("count_mismatch", True)
    empty = {"table": "orders", "count": 0, "latestUpdatedAt": None, "checksum": "0" * 16}
    assert mismatch_reason(empty, {"count": 0, "latestUpdatedAt": None, "checksum": "0" * 16}) == (
        None,
        False,
    )
