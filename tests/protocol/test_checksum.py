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
    compare_summaries,
    default_row,
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


def test_compare_summaries():
    server = {
        "table": "products",
        "count": 2,
        "latestUpdatedAt": "2026-02-11T18:00:00.000Z",
        "checksum": "00ab",
    }
    assert (
        compare_summaries(
            server, {"count": 2, "latestUpdatedAt": "2026-02-11T18:00:00.000Z", "checksum": "00ab"}
        )
        == []
    )
    assert compare_summaries(server, {"count": 2}) == []  # the seed's minimal summary
    assert compare_summaries(server, {"count": 2, "checksum": "00AB"}) == []
    assert (
        compare_summaries(server, {"count": 2, "latestUpdatedAt": "2026-02-11T15:00:00-03:00"})
        == []
    )
    assert compare_summaries(server, {"count": 2, "latestUpdatedAt": T}) == []  # epoch ms
    assert compare_summaries(server, {"count": 3}) == ["count"]
    assert compare_summaries(server, {"count": 2, "latestUpdatedAt": None}) == ["latestUpdatedAt"]
    assert compare_summaries(
        server, {"count": 1, "latestUpdatedAt": "2026-01-01", "checksum": "ff"}
    ) == ["count", "latestUpdatedAt", "checksum"]
    empty = {"table": "orders", "count": 0, "latestUpdatedAt": None, "checksum": "0" * 16}
    assert (
        compare_summaries(empty, {"count": 0, "latestUpdatedAt": None, "checksum": "0" * 16}) == []
    )
