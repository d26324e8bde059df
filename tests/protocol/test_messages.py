"""Push and reconcile envelopes: what is refused whole, what is refused per event."""

from __future__ import annotations

import uuid

import pytest

from protocol import Op, ProtocolError, parse_ms
from protocol.messages import (
    MAX_BOOTSTRAP_EVENTS,
    MAX_EVENTS,
    list_event_id,
    parse_batch_push,
    parse_bootstrap,
    parse_cursor,
    parse_event_id,
    parse_machine_id,
    parse_single_event,
    parse_sync_events,
    parse_table_push,
    table_named,
)
from protocol.reconcile_messages import parse_reconcile


def refused(fn, *args, **kw) -> ProtocolError:
    with pytest.raises(ProtocolError) as err:
        fn(*args, **kw)
    return err.value


def test_table_names():
    assert table_named("order_items").name == "order_items"
    for bad in ("Products", "users", "", None, 3, "products; DROP TABLE products"):
        err = refused(table_named, bad)
        assert err.code == "unknown_table" and err.status == 404


def test_event_and_machine_ids():
    assert (
        parse_event_id("b9c4a2e1-9f2d-4f6a-9a17-3a6f9f1f4c2b")
        == "b9c4a2e1-9f2d-4f6a-9a17-3a6f9f1f4c2b"
    )
    assert refused(parse_event_id, None).code == "missing_event_id"
    assert refused(parse_event_id, "").code == "missing_event_id"
    assert refused(parse_event_id, 12).code == "invalid_event_id"
    assert refused(parse_event_id, "x" * 129).code == "invalid_event_id"
    assert refused(parse_event_id, "a\tb").code == "invalid_event_id"
    assert parse_machine_id(None) is None and parse_machine_id("") is None
    assert parse_machine_id("caixa-1") == "caixa-1"
    assert refused(parse_machine_id, None, required=True).code == "missing_machine_id"
    assert refused(parse_machine_id, 5).code == "invalid_machine_id"


def test_cursors():
    assert parse_cursor(None) is None
    assert parse_cursor(0) == 0 and parse_cursor("17") == 17
    for bad in (-1, "-3", "abc", True, 1.5, [1], "1.0"):
        err = refused(parse_cursor, bad)
        assert err.code == "invalid_cursor" and err.status == 400


def test_table_push():
    push = parse_table_push(
        "products",
        {
            "machineId": "caixa-1",
            "cursor": 12,
            "localUpdates": [
                {"eventId": "e1", "record": {"id": "p1", "name": "Pão"}},
                {
                    "eventId": "e2",
                    "timestamp": "2026-02-11T18:00:00Z",
                    "record": {"id": "p1", "_op": "delete"},
                },
                {
                    "event_id": "e3",
                    "record": {"id": "p1", "_op": "increment", "stock_quantity": -1},
                },
            ],
        },
    )
    machine, items, cursor = push.machine_id, push.items, push.cursor
    assert (machine, cursor, push.last_sync) == ("caixa-1", 12, None)
    assert [(i.event_id, i.change.op, i.record_id, i.table) for i in items] == [
        ("e1", Op.UPSERT, "p1", "products"),
        ("e2", Op.DELETE, "p1", "products"),
        ("e3", Op.INCREMENT, "p1", "products"),
    ]
    assert items[1].change.edited_at == parse_ms("2026-02-11T18:00:00Z")
    assert all(i.error is None for i in items)


def test_an_invalid_event_is_refused_alone():
    items = parse_table_push(
        "products",
        {
            "localUpdates": [
                {"eventId": "ok", "record": {"id": "p1"}},
                {"eventId": "bad-price", "record": {"id": "p2", "price": "caro"}},
                {"record": {"id": "p3"}},
                {"eventId": "no-record"},
                "not an event",
                {"eventId": "bad-time", "timestamp": "ontem", "record": {"id": "p4"}},
            ]
        },
    ).items
    assert items[0].error is None
    assert [(i.event_id, i.record_id, i.error.code) for i in items[1:]] == [
        ("bad-price", "p2", "invalid_type"),
        (None, "p3", "missing_event_id"),
        ("no-record", None, "invalid_record"),
        (None, None, "invalid_body"),
        ("bad-time", "p4", "invalid_timestamp"),
    ]
    assert all(i.change is None for i in items[1:])


def test_a_malformed_push_body_is_refused_whole():
    assert refused(parse_table_push, "nope", {"localUpdates": []}).status == 404
    assert refused(parse_table_push, "products", []).code == "invalid_body"
    assert refused(parse_table_push, "products", {"localUpdates": {"a": 1}}).code == "invalid_body"
    assert refused(parse_table_push, "products", {}).code == "invalid_body"
    assert (
        refused(parse_table_push, "products", {"localUpdates": [], "cursor": "x"}).code
        == "invalid_cursor"
    )
    assert (
        refused(parse_table_push, "products", {"localUpdates": [], "machineId": 3}).code
        == "invalid_machine_id"
    )
    err = refused(parse_table_push, "products", {"localUpdates": [{}] * (MAX_EVENTS + 1)})
    assert err.code == "too_many_events" and err.status == 413
    err = refused(parse_table_push, "products", {"localUpdates": [], "table": "orders"})
    assert err.code == "table_mismatch" and err.status == 400
    err = refused(parse_table_push, "products", {"localUpdates": [], "lastSync": "ontem"})
    assert err.code == "invalid_timestamp" and err.status == 400


def test_the_seeds_table_push_carries_last_sync_and_its_table():
    push = parse_table_push(
        "products",
        {
            "table": "products",
            "lastSync": "2026-02-11T18:00:00.000Z",
            "machineId": "machine-abc",
            "tenantId": "loja-1",
            "localUpdates": [],
        },
    )
    assert push.last_sync == parse_ms("2026-02-11T18:00:00Z") and push.cursor is None


def test_bootstrap_takes_envelopes_or_bare_records():
    boot = parse_bootstrap(
        "supplies",
        {
            "machineId": "m1",
            "localUpdates": [
                {"eventId": "e1", "record": {"id": "s1", "name": "Farinha"}},
                {"id": "s2", "name": "Açúcar", "eventId": "e2"},
                {"id": "s3", "name": "Ovos"},
            ],
        },
    )
    assert boot.machine_id == "m1"
    assert [(i.event_id, i.record_id) for i in boot.items][:2] == [("e1", "s1"), ("e2", "s2")]
    derived = boot.items[2].event_id
    again = parse_bootstrap("supplies", {"machineId": "m1", "localUpdates": [{"id": "s3"}]})
    assert again.items[0].event_id == derived  # a repeated bootstrap is recognised
    other = parse_bootstrap("products", {"machineId": "m1", "localUpdates": [{"id": "s3"}]})
    assert other.items[0].event_id != derived  # the same id in another table is another event
    assert refused(parse_bootstrap, "supplies", {"localUpdates": []}).code == "missing_machine_id"
    err = refused(
        parse_bootstrap,
        "supplies",
        {"machineId": "m", "localUpdates": [{}] * (MAX_BOOTSTRAP_EVENTS + 1)},
    )
    assert err.status == 413


def test_batch_push_names_the_table_per_event():
    machine, items, cursor = parse_batch_push(
        {
            "machineId": "caixa-1",
            "events": [
                {"eventId": "e1", "table": "orders", "record": {"id": "o1", "total": "3.00"}},
                {"eventId": "e2", "table": "order_items", "record": {"id": "i1", "order_id": "o1"}},
                {"eventId": "e3", "table": "clientes", "record": {"id": "c1"}},
            ],
        }
    )
    assert machine == "caixa-1" and cursor is None
    assert [(i.table, i.error.code if i.error else None) for i in items] == [
        ("orders", None),
        ("order_items", None),
        (None, "unknown_table"),
    ]
    assert refused(parse_batch_push, {"localUpdates": []}).code == "invalid_body"


def test_the_seeds_single_event():
    body = {
        "type": "product_created",
        "timestamp": 1707554400000,
        "event_id": "e1",
        "data": {"id": "p-123", "name": "Pão de queijo", "price": 4.5},
    }
    machine, item = parse_single_event(body)
    assert machine is None and item.event_id == "e1" and item.table == "products"
    assert item.change.op is Op.UPSERT and item.change.edited_at == 1707554400000
    assert str(item.change.values["price"]) == "4.50"

    _, item = parse_single_event(
        {"type": "order_item_deleted", "data": {"id": "i1", "price": "x"}, "eventId": "e2"}
    )
    assert item.table == "order_items" and item.change.op is Op.DELETE  # a delete ignores the data
    _, item = parse_single_event(
        {"type": "supply_incremented", "data": {"id": "s1", "stock": "0.5"}, "event_id": "e3"}
    )
    assert item.change.op is Op.INCREMENT
    _, item = parse_single_event(
        {"type": "product_updated", "productId": "p9", "data": {"name": "x"}, "event_id": "e4"}
    )
    assert item.record_id == "p9"
    _, item = parse_single_event({"type": "order_updated", "data": {"id": "o1"}})
    assert uuid.UUID(item.event_id)  # made up, so not protected against retries

    for body, code in [
        ({"type": "product", "data": {"id": "p"}}, "invalid_type"),
        ({"type": 3, "data": {"id": "p"}}, "invalid_type"),
        ({"type": "user_created", "data": {"id": "p"}}, "unknown_table"),
        ({"type": "product_archived", "data": {"id": "p"}}, "unknown_operation"),
        ({"type": "product_created", "data": "p"}, "invalid_record"),
        ({"type": "product_created", "data": {"name": "sem id"}}, "missing_id"),
        ({"type": "product_created", "data": {"id": "p"}, "event_id": 7}, "invalid_event_id"),
        (
            {"type": "product_created", "data": {"id": "p"}, "timestamp": "ontem"},
            "invalid_timestamp",
        ),
    ]:
        assert refused(parse_single_event, body).code == code, body


def test_reconcile_bodies():
    request = parse_reconcile(
        {
            "machineId": "caixa-1",
            "cursor": 9,
            "clientSummary": {
                "products": {
                    "count": 10,
                    "latestUpdatedAt": "2026-02-11T18:00:00.000Z",
                    "checksum": "00ff",
                },
                "orders": {"count": 0, "latestUpdatedAt": None},
            },
        }
    )
    assert (request.machine_id, request.cursor) == ("caixa-1", 9)
    assert request.summary == {
        "products": {
            "count": 10,
            "latestUpdatedAt": "2026-02-11T18:00:00.000Z",
            "checksum": "00ff",
        },
        "orders": {"count": 0, "latestUpdatedAt": None},
    }
    # The server's own list shape is accepted too.
    request = parse_reconcile(
        {"machineId": "m", "clientSummary": [{"table": "supplies", "count": 2}]}
    )
    assert request.summary == {"supplies": {"count": 2}}
    # As the original server: an empty summary is valid (every table is then missing), a
    # missing count is 0, and a table this side does not keep is left out, not refused.
    assert parse_reconcile({"machineId": "m", "clientSummary": {}}).summary == {}
    request = parse_reconcile(
        {"machineId": "m", "clientSummary": {"users": {"count": 1}, "orders": {}}}
    )
    assert request.summary == {"orders": {"count": 0}}

    for body, code in [
        ({"clientSummary": {"products": {"count": 1}}}, "missing_machine_id"),
        ({"machineId": "m"}, "invalid_summary"),
        ({"machineId": "m", "clientSummary": {"products": {"count": -1}}}, "invalid_summary"),
        ({"machineId": "m", "clientSummary": {"products": {"count": True}}}, "invalid_summary"),
        ({"machineId": "m", "clientSummary": {"products": {"count": "10"}}}, "invalid_summary"),
        (
            {"machineId": "m", "clientSummary": {"products": {"count": 1, "checksum": 5}}},
            "invalid_summary",
        ),
        (
            {
                "machineId": "m",
                "clientSummary": {"products": {"count": 1, "latestUpdatedAt": "ontem"}},
            },
            "invalid_timestamp",
        ),
        ({"machineId": "m", "clientSummary": [{"count": 1}]}, "invalid_summary"),
        (
            {
                "machineId": "m",
                "clientSummary": [{"table": "orders", "count": 1}, {"table": "orders", "count": 2}],
            },
            "invalid_summary",
        ),
        ({"machineId": "m", "clientSummary": {"products": 3}}, "invalid_summary"),
    ]:
        assert refused(parse_reconcile, body).code == code, body


# -- the seed's client example: `data` a list of records -----------------------------------------


def test_the_seeds_client_example_sends_a_list_of_products():
    # src/firebase/client-provider.tsx: syncWithServer({type: 'product_updated', productId: '123',
    # data: novosProdutos})
    body = {
        "type": "product_updated",
        "productId": "123",
        "event_id": "lote-7",
        "timestamp": 1707554400000,
        "data": [{"id": "123", "name": "Bolo2"}, {"id": "124", "name": "Pão", "price": "1.50"}],
    }
    machine, items = parse_sync_events(body)
    assert machine is None
    assert [(i.table, i.record_id, i.change.op) for i in items] == [
        ("products", "123", Op.UPSERT),
        ("products", "124", Op.UPSERT),
    ]
    assert all(i.change.edited_at == 1707554400000 for i in items)
    # one event per record, ids derived from event_id and position: a retry maps onto the same events
    ids = [i.event_id for i in items]
    assert ids == [list_event_id("lote-7", 0), list_event_id("lote-7", 1)]
    assert len(set(ids)) == 2 and "lote-7" not in ids
    assert [i.event_id for i in parse_sync_events(body)[1]] == ids
    assert all(uuid.UUID(i) for i in ids)
    assert list_event_id("lote-8", 0) not in ids

    # A one-record list may take its id from productId; a longer list may not.
    _, [item] = parse_sync_events(
        {
            "type": "product_updated",
            "productId": "123",
            "event_id": "e",
            "data": [{"name": "Bolo2"}],
        }
    )
    assert item.record_id == "123"
    err = refused(
        parse_sync_events,
        {
            "type": "product_updated",
            "productId": "123",
            "event_id": "e",
            "data": [{"id": "1"}, {"name": "sem id"}],
        },
    )
    assert err.code == "missing_id" and err.message.startswith("data[1]: ")

    # Deletes and the other entities, as for one record.
    _, items = parse_sync_events(
        {"type": "order_deleted", "event_id": "d", "data": [{"id": "o1"}, {"id": "o2"}]}
    )
    assert [(i.table, i.record_id, i.change.op) for i in items] == [
        ("orders", "o1", Op.DELETE),
        ("orders", "o2", Op.DELETE),
    ]
    # Without event_id the ids are made up (as for one record): not protected against retries.
    _, items = parse_sync_events({"type": "supply_created", "data": [{"id": "s1"}]})
    assert uuid.UUID(items[0].event_id)


def test_an_object_data_keeps_its_own_event_id():
    body = {"type": "product_created", "event_id": "e1", "productId": "p9", "data": {"name": "x"}}
    _, [item] = parse_sync_events(body)
    _, single = parse_single_event(body)
    assert (item.event_id, item.record_id, item.change.values) == ("e1", "p9", single.change.values)


def test_a_bad_record_in_a_list_refuses_the_request_naming_it():
    for data, code, start in [
        (
            [{"id": "a"}, {"id": "b", "price": -1}],
            "invalid_value",
            "data[1]: price: must not be negative",
        ),
        ([{"id": "a"}, "b"], "invalid_record", "data[1]: expected the record as a JSON object"),
        (
            [{"id": "a", "_op": "increment", "colour": "azul"}],
            "invalid_increment",
            "data[0]: increment: only stock_quantity",
        ),
        ([], "invalid_record", "data: an empty list"),
        ("p", "invalid_record", "data: expected the record as a JSON object, or a list"),
        (None, "invalid_record", "data: expected"),
    ]:
        err = refused(parse_sync_events, {"type": "product_updated", "event_id": "e", "data": data})
        assert (err.code, err.status) == (code, 422) and err.message.startswith(start), (
            data,
            err.message,
        )
    err = refused(
        parse_sync_events,
        {
            "type": "product_updated",
            "event_id": "e",
            "data": [{"id": str(n)} for n in range(MAX_EVENTS + 1)],
        },
    )
    assert (err.code, err.status) == ("too_many_events", 413)
    for body, code in [
        ({"type": "product", "data": [{"id": "p"}]}, "invalid_type"),
        ({"type": "product_created", "data": [{"id": "p"}], "event_id": 7}, "invalid_event_id"),
    ]:
        assert refused(parse_sync_events, body).code == code
    # parse_single_event keeps refusing a list: callers that take lists use parse_sync_events.
    assert (
        refused(parse_single_event, {"type": "product_updated", "data": [{"id": "p"}]}).code
        == "invalid_record"
    )
