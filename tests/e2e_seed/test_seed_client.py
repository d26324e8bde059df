"""The seed's client, unchanged in behaviour, against a real server (both backends) and a
real agent's loopback API: fetch, deletions, sync, reconcile, auto-bootstrap, diagnostics
and the front end's real records (issue 10, section 1 and 2)."""

from __future__ import annotations

import uuid

import pytest

from protocol.schema import TABLES
from tests.seedclient import SeedClientError, parse_iso, summary_of

from .conftest import ALL_TABLES, Target, assert_carries, server_live
from .shop import old, order, order_item, product, supply, technical_sheet


def not_refused(body: dict) -> bool:
    return body["conflicts"] == [] and all(r["status"] != "rejected" for r in body["results"])


def test_fetch_reads_every_row_then_what_changed_since(target: Target):
    first, second = product(name="Pão de queijo"), product(name="Sonho", isActive=False)
    target.write_elsewhere("products", first, second)

    client = target.client()
    rows = client.fetch("products")
    answer = client.answer("fetch:products")
    # Before issue 10 the server answered `synced` and the seed's client saw 0 rows (the
    # agent answered 405): now `data` and `count`.
    assert answer["count"] == 2 and len(answer["data"]) == 2, answer
    assert answer["timestamp"]
    assert {r["id"] for r in rows} == {first["id"], second["id"]}
    assert_carries("products", first, client.rows("products")[first["id"]])
    assert_carries("products", second, client.rows("products")[second["id"]])
    assert "lastSync" not in client.requests[-1][3]

    # The next fetch sends the client's own clock of the last one, and brings the changes.
    stamp = client.last_sync["products"]
    third = product(name="Broa")
    target.write_elsewhere("products", {"id": first["id"], "name": "Pão de queijo (6 un)"}, third)
    client.fetch("products")
    assert client.requests[-1][3]["lastSync"] == stamp
    data = {r["id"]: r for r in client.answer("fetch:products")["data"]}
    assert {first["id"], third["id"]} <= set(data)
    mine = client.rows("products")
    assert set(mine) == {first["id"], second["id"], third["id"]}
    assert mine[first["id"]]["name"] == "Pão de queijo (6 un)"
    assert mine == target.truth("products")


def test_a_deletion_removes_the_row_from_the_clients_table(target: Target):
    keep, gone, gone_too = product(), product(), product()
    target.write_elsewhere("products", keep, gone, gone_too)
    reader = target.client("front-leitor")
    assert len(reader.fetch("products")) == 3

    # Another PDV deletes: the next fetch carries a minimal tombstone, the row leaves the cache.
    target.write_elsewhere("products", {"id": gone["id"], "_op": "delete"})
    reader.fetch("products")
    tombstones = [r for r in reader.answer("fetch:products")["data"] if r["id"] == gone["id"]]
    assert len(tombstones) == 1, reader.answer("fetch:products")
    assert set(tombstones[0]) == {"id", "_deleted", "updatedAt"}
    assert tombstones[0]["_deleted"] is True and parse_iso(tombstones[0]["updatedAt"])
    assert set(reader.rows("products")) == {keep["id"], gone_too["id"]}

    # The seed's own delete, `{id, _deleted: true}` through sync: gone for the writer at
    # once (its `synced` carries the tombstone), and for the reader on its next fetch.
    writer = target.client("front-caixa")
    writer.fetch("products")
    body = writer.sync("products", [{"id": gone_too["id"], "_deleted": True}])
    assert not_refused(body), body
    assert set(writer.rows("products")) == {keep["id"]}
    target.settle()
    reader.fetch("products")
    assert set(reader.rows("products")) == {keep["id"]}

    # A client with no lastSync gets the live rows only: no tombstones to replay.
    fresh = target.client("front-novo")
    fresh.fetch("products")
    data = fresh.answer("fetch:products")["data"]
    assert [r["id"] for r in data] == [keep["id"]] and "_deleted" not in data[0]
    assert server_live(target.server.url, "products").keys() == {keep["id"]}


def test_sync_pushes_and_reads_back(target: Target):
    before = product(name="Já existia")
    target.write_elsewhere("products", before)
    client = target.client("front-caixa")
    bare = product(name="Broa de milho")
    with_own_event = {**product(name="Rosca"), "eventId": str(uuid.uuid4())}
    envelope = {"eventId": str(uuid.uuid4()), "record": product(name="Cuca")}

    body = client.sync("products", [bare, with_own_event, envelope])
    assert not_refused(body), body
    assert len(body["results"]) == 3
    sent_events = {r["eventId"] for r in body["results"]}
    assert {with_own_event["eventId"], envelope["eventId"]} <= sent_events
    # No lastSync yet: `synced` is every live row, the one written elsewhere included.
    ids = {before["id"], bare["id"], with_own_event["id"], envelope["record"]["id"]}
    assert {r["id"] for r in body["synced"]} == ids
    assert set(client.rows("products")) == ids
    assert "eventId" not in client.rows("products")[with_own_event["id"]]

    target.settle()
    on_server = server_live(target.server.url, "products")
    for sent in (bare, with_own_event, envelope["record"]):
        assert_carries("products", sent, on_server[sent["id"]])
    other = target.client("front-balcao")
    other.fetch("products")
    assert_carries("products", envelope["record"], other.rows("products")[envelope["record"]["id"]])

    # The same events again (a retried request): nothing refused, nothing changes.
    again = client.sync("products", [with_own_event, envelope])
    assert not_refused(again), again
    target.settle()
    assert server_live(target.server.url, "products") == on_server


def test_reconcile_now_is_consistent_after_sync(target: Target):
    client = target.client("front-caixa")
    client.get_client_summary = lambda: client.summary(ALL_TABLES)
    sold = product()
    sale = order()
    for table, record in (
        ("products", sold),
        ("orders", sale),
        ("order_items", order_item(sale["id"], sold["id"])),
        ("supplies", supply()),
        ("technical_sheets", technical_sheet()),
    ):
        assert not_refused(client.sync(table, [record]))
    target.settle()
    for table in ALL_TABLES:
        client.fetch(table)

    result = client.reconcile_now()
    assert result["isConsistent"] is True, result["mismatches"]
    assert result["mismatches"] == []
    assert {s["table"] for s in result["serverSummary"]} == set(ALL_TABLES)

    # Another PDV adds a product: the client's summary is behind, in the seed's words...
    target.write_elsewhere("products", product(name="Novidade"))
    result = client.reconcile_now()
    assert result["isConsistent"] is False
    assert [(m["table"], m["reason"]) for m in result["mismatches"]] == [
        ("products", "count_and_latest_updatedAt_mismatch")
    ]
    mismatch = result["mismatches"][0]
    assert mismatch["client"]["count"] == 1 and mismatch["server"]["count"] == 2
    # ...and `refresh_mismatched` re-fetched that table: consistent again.
    assert len(client.rows("products")) == 2
    assert client.reconcile_now()["isConsistent"] is True

    # A front end that holds only some tables: the others are `missing_client_table`.
    partial = target.client(
        "front-parcial",
        get_client_summary=lambda: {"products": summary_of(list(client.rows("products").values()))},
        divergence_strategy="none",
    )
    result = partial.reconcile_now()
    reasons = {m["table"]: m for m in result["mismatches"]}
    assert set(reasons) == set(ALL_TABLES) - {"products"}
    assert all(
        m["reason"] == "missing_client_table" and m["client"] is None for m in reasons.values()
    )


def test_auto_bootstrap_fills_an_empty_table_once(target: Target):
    """A front end with recipes of its own meets an empty table: the seed's client posts
    them to /api/sync/bootstrap once; afterwards nobody bootstraps that table again."""
    recipes = [technical_sheet(name=f"Receita {n}", updatedAt=old(2 + n)) for n in range(3)]
    held = {"technical_sheets": recipes}

    def summary() -> dict:
        return {t: summary_of(held.get(t, [])) for t in ALL_TABLES}

    first = target.client(
        "front-loja", get_client_summary=summary, get_table_data=lambda t: held.get(t, [])
    )
    result = first.reconcile_now()
    assert result["isConsistent"] is True, result
    first_answer = next(body for op, _, body in first.answers if op == "reconcile")
    assert [(m["table"], m["reason"]) for m in first_answer["mismatches"]] == [
        ("technical_sheets", "count_and_latest_updatedAt_mismatch")
    ]
    boot = first.answer("bootstrap:technical_sheets")
    assert boot["bootstrapped"] is True and boot["processed"] == 3, boot
    assert boot["conflicts"] == []

    target.settle()
    on_server = server_live(target.server.url, "technical_sheets")
    assert set(on_server) == {r["id"] for r in recipes}
    for r in recipes:
        assert_carries("technical_sheets", r, on_server[r["id"]])
        # A bootstrap carries old data: its records keep their own edit time.
        assert parse_iso(on_server[r["id"]]["updatedAt"]) == parse_iso(r["updatedAt"])

    # Once: another front end with other recipes is told it was done already.
    second = target.client("front-outra")
    theirs = [technical_sheet(name="Receita de outra máquina")]
    answer = second.bootstrap("technical_sheets", theirs)
    assert answer["bootstrapped"] is False and answer["reason"] == "already_completed", answer
    # A table that already has rows is never bootstrapped.
    target.write_elsewhere("supplies", supply())
    answer = second.bootstrap("supplies", [supply(name="Açúcar")])
    assert answer["bootstrapped"] is False and answer["reason"] == "server_not_empty", answer
    target.settle()
    assert set(target.truth("technical_sheets")) == {r["id"] for r in recipes}
    assert len(server_live(target.server.url, "supplies")) == 1


def test_diagnostics_count_rows_and_missing_fields(target: Target):
    complete = product()
    no_category = product(category="")
    bare = {"id": product()["id"], "name": "Sem preço"}
    target.write_elsewhere("products", complete, no_category, bare)

    r = target.get("/api/sync/diagnostics")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["tenantId"] == "default" and body["timestamp"]
    diagnostics = body["diagnostics"]
    assert set(diagnostics) == set(ALL_TABLES)
    for name, d in diagnostics.items():
        assert set(d["missingByField"]) == set(TABLES[name].expected), name
    products = diagnostics["products"]
    assert products["total"] == 3
    assert products["missingByField"]["category"] == 2  # "" and never given
    assert products["missingByField"]["price"] == 1
    assert products["missingByField"]["name"] == 0
    assert products["missingByField"]["isActive"] == 0  # default true
    newest = max(parse_iso(p["updatedAt"]) for p in target.truth("products").values())
    assert parse_iso(products["latestUpdatedAt"]) == newest
    assert diagnostics["orders"] == {
        "total": 0,
        "latestUpdatedAt": None,
        "missingByField": dict.fromkeys(TABLES["orders"].expected, 0),
    }


def test_the_front_ends_real_records_are_accepted_and_read_back(target: Target):
    """What the shop's front end really sends: the seed's columns (costPrice, isActive,
    paymentMethod, cashRegisterId, orderNumber, totalCost, recipes with components), and
    a field this version does not declare (kept, not refused)."""
    sold = product(isActive=False, barcode="7891234567895", tags=["doce", "festa"])
    sale = order(troco={"pago": 100, "troco": 8.2})
    records = {
        "products": sold,
        "orders": sale,
        "order_items": order_item(sale["id"], sold["id"], observacao="sem açúcar"),
        "supplies": supply(),
        "technical_sheets": technical_sheet(),
    }
    client = target.client("front-caixa")
    for table, record in records.items():
        body = client.sync(table, [record])
        assert not_refused(body), (table, body)

    target.settle()
    reader = target.client("front-gerente")
    for table, record in records.items():
        reader.fetch(table)
        assert_carries(table, record, reader.rows(table).get(record["id"]))
        assert_carries(table, record, server_live(target.server.url, table).get(record["id"]))
    recipe = records["technical_sheets"]
    assert reader.rows("technical_sheets")[recipe["id"]]["components"] == recipe["components"]
    assert reader.rows("products")[sold["id"]]["isActive"] is False


def test_a_client_error_is_an_error_not_an_empty_table(target: Target):
    """Any non-2xx is an error for the seed's client (after its retries for 5xx): an
    unknown table or a bad lastSync is not read as an empty table."""
    client = target.client(retry_attempts=0)
    with pytest.raises(SeedClientError) as unknown:
        client.fetch("customers")
    assert unknown.value.status == 404 and client.rows("customers") == {}
    client.last_sync["products"] = "ontem"
    with pytest.raises(SeedClientError) as bad:
        client.fetch("products")
    assert bad.value.status == 400 and bad.value.code == "invalid_timestamp", bad.value.body
