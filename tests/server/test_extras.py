"""Fields nobody declared, JSON values and booleans in the server's storage: kept with their
record, patched key by key, returned by every read, covered by the checksum, bounded. Both
backends."""

from __future__ import annotations

from decimal import Decimal

from protocol import TABLES, combine, from_wire, row_digest
from protocol.extras import EXTRA_MAX_BYTES, EXTRA_MAX_KEYS
from tests.server.conftest import pull_all, push, push_one


def summary_of(service, table: str) -> dict:
    return {s["table"]: s for s in service.summary().tables}[table]


def independent_checksum(service, table: str) -> str:
    rows, _ = pull_all(service, table)
    return combine(
        row_digest(TABLES[table], from_wire(TABLES[table], r))
        for r in rows
        if not r.get("_deleted")
    )


def test_undeclared_fields_are_kept_returned_everywhere_and_patched_per_key(service, clock):
    first = {"id": "p1", "name": "Pão", "barcode": "789", "tags": ["doce", {"n": 1.5}]}
    assert push_one(service, "products", first)["status"] == "applied"
    record = service.get_live("products", "p1")
    assert record["barcode"] == "789" and record["tags"] == ["doce", {"n": Decimal("1.5")}]
    # A patch changes only the undeclared fields it carries; null is a value, kept.
    push_one(service, "products", {"id": "p1", "barcode": "790", "shelf": None})
    record = service.get_live("products", "p1")
    assert (record["barcode"], record["tags"][0], record["shelf"]) == ("790", "doce", None)
    assert record["name"] == "Pão"
    # Every read returns them: plain reads, cursor pages, the changes feed, the seed's read,
    # bucket rows.
    reads = [
        service.list_live("products")[0],
        service.pull("products", 0)["synced"][0],
        service.changes(0)["changes"][-1]["record"],
        service.fetch_since("products", None)[0],
        service.bucket_rows("products", list(range(256)))["rows"][0],
    ]
    for read in reads:
        assert read == record


def test_undeclared_fields_are_in_the_digest(service, clock):
    push(service, "products", {"id": "p1", "name": "Pão", "barcode": "789"}, {"id": "p2"})
    before = summary_of(service, "products")["checksum"]
    assert before == independent_checksum(service, "products")
    push_one(service, "products", {"id": "p1", "barcode": "790"})
    after = summary_of(service, "products")["checksum"]
    assert after != before and after == independent_checksum(service, "products")
    # The stored digest is the row's, undeclared fields included.
    row = from_wire(TABLES["products"], service.get_live("products", "p1"))
    assert row["_extra"] == {"barcode": "790"}
    assert combine([row_digest(TABLES["products"], row)]) != combine(
        [row_digest(TABLES["products"], {**row, "_extra": {}})]
    )


def test_json_fields_and_booleans_round_trip(service, clock):
    components = [{"supplyId": "farinha", "quantity": 0.5, "unit": "kg"}, {"supplyId": "ovo"}]
    push_one(
        service,
        "technical_sheets",
        {"id": "t1", "name": "Bolo", "components": components, "isActive": False, "yield": "10"},
    )
    record = service.get_live("technical_sheets", "t1")
    assert record["components"][0]["quantity"] == Decimal("0.5")
    assert record["components"][1] == {"supplyId": "ovo"}
    assert record["isActive"] is False and record["yield"] == "10"
    assert record["totalCost"] == 0 and record["type"] == "base"  # the declared defaults
    push_one(service, "products", {"id": "p1", "name": "Pão"})
    product = service.get_live("products", "p1")
    assert product["isActive"] is True and product["costPrice"] == 0
    assert summary_of(service, "technical_sheets")["checksum"] == independent_checksum(
        service, "technical_sheets"
    )


def test_undeclared_fields_are_bounded(service, clock):
    too_many = {"id": "p1", **{f"k{i}": i for i in range(EXTRA_MAX_KEYS + 1)}}
    result = push_one(service, "products", too_many)
    assert (result["status"], result["reason"]) == ("rejected", "extra_too_large")
    too_big = {"id": "p1", "blob": "x" * (EXTRA_MAX_BYTES + 1)}
    assert push_one(service, "products", too_big)["reason"] == "extra_too_large"
    assert service.head() == 0
    # A patch that would take the record past the bounds is refused; the record stays.
    half = {f"a{i}": i for i in range(EXTRA_MAX_KEYS // 2 + 1)}
    other = {f"b{i}": i for i in range(EXTRA_MAX_KEYS // 2 + 1)}
    assert push_one(service, "products", {"id": "p1", **half})["status"] == "applied"
    result = push_one(service, "products", {"id": "p1", **other})
    assert (result["status"], result["reason"]) == ("rejected", "extra_too_large")
    stored = service.get_live("products", "p1")
    assert "a0" in stored and "b0" not in stored and service.head() == 1


def test_a_tombstone_is_minimal_and_a_newer_upsert_brings_the_fields_back(service, clock):
    push_one(service, "products", {"id": "p1", "name": "Pão", "barcode": "789"})
    clock.advance(1000)
    push_one(service, "products", {"id": "p1", "_op": "delete"})
    tombstone = service.pull("products", 1)["synced"][0]
    assert set(tombstone) == {"id", "_deleted", "updatedAt"}
    clock.advance(1000)
    push_one(service, "products", {"id": "p1", "price": "1.00"})
    record = service.get_live("products", "p1")
    assert record["barcode"] == "789" and record["price"] == Decimal("1.00")
