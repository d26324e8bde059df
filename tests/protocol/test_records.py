"""Record validation and the wire form: ids, operations, field kinds, exact decimals, JSON."""

from __future__ import annotations

from decimal import Decimal

import pytest

from protocol import (
    TABLES,
    Op,
    ProtocolError,
    default_row,
    dumps,
    from_wire,
    loads,
    parse_change,
    parse_id,
    parse_ms,
    to_iso,
    to_wire,
)
from protocol.records import coerce, quantize

P = TABLES["products"]
S = TABLES["supplies"]
ORDERS = TABLES["orders"]


def code_of(fn, *args, **kw) -> str:
    with pytest.raises(ProtocolError) as err:
        fn(*args, **kw)
    assert err.value.message
    return err.value.code


# -- ids and operations ---------------------------------------------------------------------


def test_ids():
    assert parse_id("p-1") == "p-1"
    assert parse_id(42) == "42"
    assert parse_id("x" * 128) == "x" * 128
    assert parse_id("pão ☕") == "pão ☕"
    for bad, code in [
        (True, "invalid_id"),
        (1.5, "invalid_id"),
        (None, "invalid_id"),
        ([], "invalid_id"),
        ("", "missing_id"),
        ("   ", "missing_id"),
        ("x" * 129, "invalid_id"),
        ("a\nb", "invalid_id"),
        ("a\x00", "invalid_id"),
    ]:
        assert code_of(parse_id, bad) == code, bad


def test_operations():
    assert parse_change(P, {"id": "p"}).op is Op.UPSERT
    assert parse_change(P, {"id": "p", "_op": "upsert", "name": "x"}).op is Op.UPSERT
    assert parse_change(P, {"id": "p", "_op": "delete"}).op is Op.DELETE
    assert parse_change(P, {"id": "p", "_deleted": True}).op is Op.DELETE
    assert parse_change(P, {"id": "p", "_deleted": False, "name": "x"}).op is Op.UPSERT
    inc = parse_change(P, {"id": "p", "_op": "increment", "stock_quantity": -2})
    assert inc.op is Op.INCREMENT and inc.values == {"stock_quantity": -2}
    for bad in ("merge", "", 3, ["delete"], {"a": 1}):
        assert code_of(parse_change, P, {"id": "p", "_op": bad}) == "unknown_operation"


def test_record_shape():
    assert code_of(parse_change, P, ["id", "p"]) == "invalid_record"
    assert code_of(parse_change, P, {"name": "x"}) == "missing_id"
    assert code_of(parse_change, P, {"id": None}) == "missing_id"
    inc = {"id": "p", "_op": "increment", "stock_quantity": 1, "nome": "x"}
    assert code_of(parse_change, P, inc) == "invalid_increment"


def test_fields_nobody_declared_are_kept_with_the_record():
    change = parse_change(P, {"id": "p", "nome": "x", "total": 1, "tags": {"b": [1.5], "a": 2}})
    assert change.values == {}
    assert change.extra == {"nome": "x", "total": 1, "tags": {"a": 2, "b": [Decimal("1.5")]}}
    # a delete carries nothing but its id; meta keys are never extras
    assert parse_change(P, {"id": "p", "_op": "delete", "extra": 1}).extra == {}
    meta = {"id": "p", "eventId": "e", "tenantId": "loja-1", "updatedAt": None}
    change = parse_change(P, meta)
    assert change.extra == {} and change.tenant == "loja-1"
    row = from_wire(P, {"id": "p", "updatedAt": "2026-02-11T18:00:00.000Z", "barcode": "789"})
    assert row["_extra"] == {"barcode": "789"}
    wire = to_wire(P, row)
    assert wire["barcode"] == "789" and list(wire)[-1] == "updatedAt"


def test_undeclared_fields_are_bounded():
    many = {"id": "p", **{f"k{i}": i for i in range(65)}}
    assert code_of(parse_change, P, many) == "extra_too_large"
    big = {"id": "p", "notes": "x" * 17_000}
    assert code_of(parse_change, P, big) == "extra_too_large"
    assert code_of(parse_change, P, {"id": "p", "k" * 65: 1}) == "invalid_field_name"
    assert code_of(parse_change, P, {"id": "p", "a\x01": 1}) == "invalid_field_name"
    deep: object = 1
    for _ in range(20):
        deep = [deep]
    assert code_of(parse_change, P, {"id": "p", "deep": deep}) == "invalid_value"


def test_booleans_and_json_fields():
    T = TABLES["technical_sheets"]
    change = parse_change(
        T,
        {"id": "t", "isActive": "false", "components": [{"supplyId": "s1", "quantity": 0.25}]},
    )
    assert change.values["isActive"] is False
    assert change.values["components"] == [{"quantity": Decimal("0.25"), "supplyId": "s1"}]
    for good, expected in ((True, True), (0, False), ("1", True), ("sim", True)):
        assert parse_change(P, {"id": "p", "isActive": good}).values["isActive"] is expected
    for bad in ("talvez", 2, [], 1.5):
        assert code_of(parse_change, P, {"id": "p", "isActive": bad}) == "invalid_type"
    assert code_of(parse_change, T, {"id": "t", "components": ["x" * 70_000]}) == "value_too_large"
    assert default_row(T, "t")["components"] == []
    assert default_row(T, "t")["components"] is not default_row(T, "t")["components"]
    assert default_row(P, "p")["isActive"] is True


def test_an_upsert_is_a_patch_of_the_fields_it_carries():
    change = parse_change(P, {"id": "p", "price": "1.5", "updatedAt": "2026-02-11T18:00:00.000Z"})
    assert change.values == {"price": Decimal("1.50")}
    assert change.edited_at == parse_ms("2026-02-11T18:00:00Z")
    assert parse_change(P, {"id": "p", "name": None}).values == {"name": None}
    assert parse_change(P, {"id": "p"}).values == {}


def test_edit_time_comes_from_the_record_then_the_envelope():
    t = parse_ms("2026-01-01T00:00:00Z")
    assert parse_change(P, {"id": "p"}, edited_at=t).edited_at == t
    assert parse_change(P, {"id": "p", "updatedAt": t + 5}, edited_at=t).edited_at == t + 5
    assert parse_change(P, {"id": "p", "updatedAt": None}, edited_at=t).edited_at == t
    assert parse_change(P, {"id": "p"}).edited_at is None
    assert code_of(parse_change, P, {"id": "p", "updatedAt": "ontem"}) == "invalid_timestamp"


def test_increments():
    assert parse_change(S, {"id": "s", "_op": "increment", "stock": 0.1}).values == {
        "stock": Decimal("0.100")
    }
    assert code_of(parse_change, P, {"id": "p", "_op": "increment"}) == "invalid_increment"
    assert (
        code_of(parse_change, P, {"id": "p", "_op": "increment", "price": 1}) == "invalid_increment"
    )
    assert (
        code_of(parse_change, P, {"id": "p", "_op": "increment", "stock_quantity": None})
        == "invalid_value"
    )
    assert (
        code_of(parse_change, P, {"id": "p", "_op": "increment", "stock_quantity": 0.5})
        == "invalid_value"
    )
    assert (
        code_of(parse_change, ORDERS, {"id": "o", "_op": "increment", "total": 1})
        == "unknown_operation"
    )
    assert (
        code_of(parse_change, P, {"id": "p", "stock_quantity": None}) == "invalid_value"
    )  # counters are never null


# -- field kinds -----------------------------------------------------------------------------


def test_text_fields():
    name = P.field("name")
    assert coerce(name, "Pão de queijo ☕") == "Pão de queijo ☕"
    assert coerce(name, "'; DROP TABLE products; --") == "'; DROP TABLE products; --"
    assert coerce(name, "x" * 255) == "x" * 255
    assert code_of(coerce, name, "x" * 256) == "invalid_value"
    assert code_of(coerce, name, "a\x00b") == "invalid_value"
    assert code_of(coerce, name, 5) == "invalid_type"
    assert coerce(name, None) is None


def test_integer_fields():
    f = P.field("stock_quantity")
    assert coerce(f, 5) == 5 and type(coerce(f, 5)) is int
    assert coerce(f, "7") == 7 and coerce(f, 3.0) == 3 and coerce(f, Decimal("-2")) == -2
    assert coerce(f, 2**53 - 1) == 2**53 - 1
    for bad, code in [
        (2**53, "invalid_value"),
        (1.5, "invalid_value"),
        ("1.5", "invalid_value"),
        (True, "invalid_type"),
        ("dez", "invalid_type"),
        ([1], "invalid_type"),
        (float("inf"), "invalid_value"),
        ("NaN", "invalid_value"),
        ("1e999999999", "invalid_value"),
    ]:
        assert code_of(coerce, f, bad) == code, bad


def test_decimal_fields_are_exact_at_their_scale():
    price = P.field("price")
    assert coerce(price, "19.99") == Decimal("19.99") and str(coerce(price, "19.99")) == "19.99"
    assert str(coerce(price, 19.9)) == "19.90"
    assert (
        str(coerce(price, 0.1)) == "0.10"
    )  # the float's shortest text, never 0.1000000000000000055...
    assert str(coerce(price, 3)) == "3.00"
    assert str(coerce(price, "1e2")) == "100.00"
    assert str(coerce(price, " 2.5 ")) == "2.50"
    assert coerce(price, "9999999999999.99") == Decimal("9999999999999.99")
    for bad, code in [
        ("19.999", "invalid_value"),
        (0.1 + 0.2, "invalid_value"),
        ("99999999999999.99", "invalid_value"),
        ("abc", "invalid_type"),
        (True, "invalid_type"),
        ("Infinity", "invalid_value"),
        ("1e40", "invalid_value"),
        ("1e-400", "invalid_value"),
        ({}, "invalid_type"),
    ]:
        assert code_of(coerce, price, bad) == code, bad
    assert str(coerce(S.field("costPerUnit"), "0.0125")) == "0.0125"
    assert str(coerce(S.field("stock"), "-1.5")) == "-1.500"


def test_quantize_refuses_silent_rounding():
    f = S.field("stock")
    assert quantize(f, Decimal("1.25")) == Decimal("1.250")
    assert code_of(quantize, f, Decimal("1.2345")) == "invalid_value"


def test_timestamp_fields_take_iso_or_epoch_ms():
    f = P.field("createdAt")
    ms = parse_ms("2024-01-31T23:59:59.999Z")
    assert coerce(f, "2024-01-31T23:59:59.999Z") == ms
    assert coerce(f, ms) == ms
    assert coerce(f, "2024-01-31T20:59:59.999-03:00") == ms
    assert coerce(f, "2024-01-31T23:59:59.999") == ms  # naive means UTC
    assert code_of(coerce, f, "1970-01-01T00:00:00Z") == "invalid_timestamp"
    assert code_of(coerce, f, 1.5) == "invalid_timestamp"
    assert code_of(coerce, f, True) == "invalid_timestamp"


def test_iso_round_trip():
    for text in (
        "2024-01-31T23:59:59.999Z",
        "2000-01-01T00:00:00.000Z",
        "2026-02-11T18:00:00.001Z",
    ):
        assert to_iso(parse_ms(text)) == text
    assert to_iso(None) is None
    assert parse_ms("2024-01-01T00:00:00.123456Z") == parse_ms("2024-01-01T00:00:00.123Z")


# -- wire form ---------------------------------------------------------------------------------


def _row() -> dict:
    row = default_row(P, "p1")
    row.update(
        name="Pão",
        price=Decimal("4.50"),
        stock_quantity=3,
        createdAt=parse_ms("2024-01-01T00:00:00Z"),
        updatedAt=parse_ms("2024-01-02T00:00:00Z"),
        _deleted=False,
    )
    return row


def test_default_row():
    assert default_row(P, "p")["stock_quantity"] == 0
    assert default_row(S, "s")["stock"] == Decimal(0) and isinstance(
        default_row(S, "s")["stock"], Decimal
    )
    assert default_row(ORDERS, "o")["status"] == "Pendente"
    assert default_row(ORDERS, "o")["total"] is None


def test_to_wire_and_back():
    row = _row()
    record = to_wire(P, row)
    assert record == {
        "id": "p1",
        "name": "Pão",
        "description": None,
        "price": Decimal("4.50"),
        "category": None,
        "imageUrlId": None,
        "stock_quantity": 3,
        "costPrice": Decimal("0"),
        "isActive": True,
        "createdAt": "2024-01-01T00:00:00.000Z",
        "updatedAt": "2024-01-02T00:00:00.000Z",
    }
    back = from_wire(P, loads(dumps(record)))
    assert back == {k: row[k] for k in back}
    assert set(back) == {"id", "updatedAt", "_deleted", "_extra", *P.field_names}


def test_a_tombstone_on_the_wire_is_minimal():
    row = {**_row(), "_deleted": True}
    assert to_wire(P, row) == {
        "id": "p1",
        "_deleted": True,
        "updatedAt": "2024-01-02T00:00:00.000Z",
    }
    assert from_wire(P, to_wire(P, row)) == {
        "id": "p1",
        "updatedAt": row["updatedAt"],
        "_deleted": True,
    }


def test_from_wire_fills_counters_missing_from_old_records():
    back = from_wire(S, {"id": "s", "updatedAt": "2024-01-01T00:00:00Z"})
    assert back["stock"] == Decimal(0) and back["name"] is None


def test_json_numbers_are_exact_decimals():
    assert dumps({"a": Decimal("19.99")}) == '{"a":19.99}'
    assert dumps({"a": Decimal("0.10")}) == '{"a":0.1}'
    assert dumps({"a": Decimal("100")}) == '{"a":100}'
    assert dumps({"a": Decimal("100.00")}) == '{"a":100.0}'
    assert dumps({"a": Decimal("9999999999999.99")}) == '{"a":9999999999999.99}'
    assert dumps({"a": Decimal("-0.005")}) == '{"a":-0.005}'
    assert dumps({"a": "Pão"}) == '{"a":"Pão"}'
    parsed = loads('{"a": 19.99, "b": 3, "c": 0.30000000000000004}')
    assert parsed == {"a": Decimal("19.99"), "b": 3, "c": Decimal("0.30000000000000004")}
    assert isinstance(parsed["a"], Decimal) and isinstance(parsed["b"], int)
    for text in ("0.1", "19.99", "1234567890123.45", "0.0001", "-42.5"):
        assert loads(dumps(Decimal(text))) == Decimal(text)
    with pytest.raises(TypeError):
        dumps({"a": object()})


# -- bounds: no negative money or quantity, negative stock allowed -------------------------------

ITEMS = TABLES["order_items"]


@pytest.mark.parametrize(
    "table, record, field",
    [
        (P, {"id": "p", "price": -5}, "price"),
        (P, {"id": "p", "price": "-0.01"}, "price"),
        (ORDERS, {"id": "o", "total": -100}, "total"),
        (ITEMS, {"id": "i", "price": -5}, "price"),
        (ITEMS, {"id": "i", "quantity": -3}, "quantity"),
        (ITEMS, {"id": "i", "quantity": 0}, "quantity"),
        (ITEMS, {"id": "i", "quantity": "0.000"}, "quantity"),
        (S, {"id": "s", "costPerUnit": -1}, "costPerUnit"),
        (S, {"id": "s", "costPerUnit": "-0.0001"}, "costPerUnit"),
    ],
)
def test_negative_money_and_non_positive_quantities_are_refused(table, record, field):
    with pytest.raises(ProtocolError) as err:
        parse_change(table, record)
    assert err.value.code == "invalid_value" and err.value.status == 422
    assert err.value.message.startswith(f"{field}: must ")


def test_zero_prices_negative_stock_and_negative_increments_stay_legal():
    assert parse_change(P, {"id": "p", "price": 0, "stock_quantity": -4}).values == {
        "price": Decimal("0.00"),
        "stock_quantity": -4,
    }  # oversold: the shelf had more than the count
    assert parse_change(S, {"id": "s", "stock": "-7.5", "costPerUnit": 0}).values == {
        "stock": Decimal("-7.500"),
        "costPerUnit": Decimal("0.0000"),
    }
    assert parse_change(ITEMS, {"id": "i", "quantity": "0.001", "price": "0"}).values[
        "quantity"
    ] == Decimal("0.001")
    assert parse_change(ORDERS, {"id": "o", "total": 0}).values["total"] == Decimal("0.00")
    sale = parse_change(P, {"id": "p", "_op": "increment", "stock_quantity": -2})  # the normal sale
    assert sale.op is Op.INCREMENT and sale.values == {"stock_quantity": -2}
    assert parse_change(S, {"id": "s", "_op": "increment", "stock": "-0.250"}).values == {
        "stock": Decimal("-0.250")
    }
    # null clears a field; a delete carries no values to check
    assert parse_change(P, {"id": "p", "price": None}).values == {"price": None}
    assert parse_change(P, {"id": "p", "_op": "delete", "price": -1}).op is Op.DELETE


def test_rows_read_back_are_not_bounded():
    # A row the server stored before the bounds existed must still pull (never stop a sync).
    row = from_wire(
        ITEMS, {"id": "i", "quantity": -3, "price": -5, "updatedAt": "2026-01-01T00:00:00.000Z"}
    )
    assert row["quantity"] == Decimal("-3.000") and row["price"] == Decimal("-5.00")


def test_dumps_with_puts_encoded_members_in_as_they_are():
    from protocol import loads
    from protocol.records import dumps_with

    record = '{"id":"p-1","price":12.3400,"name":"Pão \\"francês\\""}'
    text = dumps_with({"eventId": "e-1", "table": "products"}, record=record)
    assert text.endswith(',"record":' + record + "}")  # the stored text, byte for byte
    assert loads(text) == {"eventId": "e-1", "table": "products", "record": loads(record)}
    assert dumps_with({}, events="[]") == '{"events":[]}'
    assert dumps_with({"cursor": 7}) == '{"cursor":7}'
