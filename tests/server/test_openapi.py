"""The server's OpenAPI document describes the real contract: every route's request body and
answer, the error statuses it returns, and records derived from the table declarations."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from protocol import TABLES
from protocol import jsonschema as js

ROOT = Path(__file__).resolve().parents[2]
ERROR_STATUSES = {"400", "401", "403", "404", "409", "413", "422", "503"}
META_KEYS = {"id", "_op", "_deleted", "updatedAt", "tenantId", "eventId"}


@pytest.fixture(scope="module")
def document(tmp_path_factory) -> dict[str, Any]:
    from server.app import create_app
    from server.settings import Settings

    tmp = tmp_path_factory.mktemp("openapi")
    app = create_app(Settings(database_url=f"sqlite:///{tmp / 'doc.db'}", data_dir=tmp))
    try:
        return app.openapi()
    finally:
        app.state.sync.db.close_all()


def operations(document: dict[str, Any]):
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            yield method.upper(), path, op


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    name = ref.rsplit("/", 1)[-1]
    return document["components"]["schemas"][name]


def body_schema(op: dict[str, Any]) -> dict[str, Any]:
    return op["requestBody"]["content"]["application/json"]["schema"]


def answer_schema(op: dict[str, Any], status: str = "200") -> dict[str, Any]:
    return op["responses"][status]["content"]["application/json"]["schema"]


def test_every_route_takes_a_documented_body_exactly_when_it_reads_one(document):
    for method, path, op in operations(document):
        if method in ("POST", "PUT", "PATCH"):
            assert op.get("requestBody", {}).get("required") is True, (method, path)
            assert body_schema(op), (method, path)
        else:
            assert "requestBody" not in op, (method, path)


def test_every_route_documents_its_answer(document):
    for method, path, op in operations(document):
        schema = answer_schema(op)
        assert schema.get("properties") or schema.get("anyOf"), (method, path)
        if path.startswith("/api/"):
            variants = schema.get("anyOf", [schema])
            for variant in variants:
                assert variant["properties"]["success"] == {"const": True}, (method, path)


def test_every_route_documents_the_errors_it_returns(document):
    for method, path, op in operations(document):
        statuses = set(op["responses"]) - {"200"}
        assert statuses <= ERROR_STATUSES, (method, path, statuses)
        assert "409" in statuses  # a client's database identity header (server/identity.py)
        if path.startswith("/api/"):
            assert {"401", "403", "503"} <= statuses, (method, path)
            assert op["security"] == [{"apiKey": []}, {}]
        if "requestBody" in op:
            assert {"400", "413", "422"} <= statuses, (method, path)
        for status in statuses:
            if path == "/health" and status == "503":
                continue  # health says why in its own shape
            schema = resolve(document, answer_schema(op, status))
            assert {"error", "code"} <= set(schema["required"]), (method, path)
            assert "success" in schema["properties"], (method, path)
    assert document["components"]["securitySchemes"]["apiKey"]["name"] == "x-api-key"


def test_no_route_claims_fastapis_validation_shape(document):
    text = json.dumps(document)
    assert "HTTPValidationError" not in text and "ValidationError" not in text


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("GET", "/api/products", {"400", "401", "403", "409", "503"}),
        ("GET", "/api/sync/diagnostics", {"400", "401", "403", "409", "503"}),
        (
            "POST",
            "/api/sync/bootstrap/{table}",
            {"400", "401", "403", "404", "409", "413", "422", "503"},
        ),
        ("GET", "/api/sync/{table}", {"400", "401", "403", "404", "409", "422", "503"}),
        (
            "POST",
            "/api/sync/{table}",
            {"400", "401", "403", "404", "409", "413", "422", "503"},
        ),
        ("POST", "/api/sync/batch", {"400", "401", "403", "409", "413", "422", "503"}),
        ("GET", "/api/sync/reconcile/rows", {"400", "401", "403", "404", "409", "422", "503"}),
        ("DELETE", "/api/orders/{row_id}", {"400", "401", "403", "404", "409", "422", "503"}),
        ("GET", "/health", {"409", "503"}),
    ],
)
def test_routes_document_exactly_their_statuses(document, method, path, statuses):
    op = document["paths"][path][method.lower()]
    assert set(op["responses"]) - {"200"} == statuses


# -- schemas derived from protocol/schema.py ---------------------------------------------------


def test_record_schemas_carry_each_tables_fields(document):
    for name, table in TABLES.items():
        op = document["paths"][f"/api/{name}"]["post"]
        variants = body_schema(op)["anyOf"]
        wrapped = next(v for v in variants if "record" in v["properties"])
        record = wrapped["properties"]["record"]
        assert set(record["properties"]) == META_KEYS | set(table.field_names)
        assert record["additionalProperties"] is True  # fields nobody declared are kept
        listed = answer_schema(document["paths"][f"/api/{name}"]["get"])
        item = listed["properties"][name]["items"]
        assert set(item["required"]) == {"id", "updatedAt", *table.field_names}


def test_sync_push_body_takes_records_of_every_table(document):
    op = document["paths"]["/api/sync/{table}"]["post"]
    event = body_schema(op)["properties"]["localUpdates"]["items"]
    records = event["properties"]["record"]["anyOf"]
    assert [r["title"] for r in records] == [f"{t} record" for t in TABLES]
    table_param = next(p for p in op["parameters"] if p["name"] == "table")
    assert table_param["schema"]["enum"] == list(TABLES)


def test_decimals_and_timestamps_are_described_as_the_parsers_take_them():
    products = js.record_schema(TABLES["products"])
    price = products["properties"]["price"]["anyOf"][0]
    assert {v["type"] for v in price["anyOf"]} == {"number", "string"}
    created = products["properties"]["createdAt"]["anyOf"][0]
    assert {v["type"] for v in created["anyOf"]} == {"string", "integer"}
    stock = products["properties"]["stock_quantity"]
    assert {v["type"] for v in stock["anyOf"]} == {"integer", "string"}  # a counter: never null


VALID_BODIES = [
    (
        "POST",
        "/api/sync",
        {
            "type": "product_created",
            "timestamp": 1707554400000,
            "data": {"id": "p-123", "name": "Pão de queijo", "price": "4.50", "stock_quantity": 10},
            "event_id": "b9c4a2e1-9f2d-4f6a-9a17-3a6f9f1f4c2b",
        },
    ),
    (
        "POST",
        "/api/sync",
        {"type": "product_updated", "productId": "123", "data": [{"id": "1", "price": 5}]},
    ),
    (
        "POST",
        "/api/sync/{table}",
        {
            "machineId": "caixa-1",
            "cursor": 12,
            "localUpdates": [
                {"eventId": "e1", "record": {"id": "p1", "_op": "increment", "stock_quantity": -2}},
                {"eventId": "e2", "record": {"id": "p2", "_op": "delete"}},
                {"eventId": "e3", "record": {"id": "p3", "updatedAt": "2024-01-01T00:00:00Z"}},
            ],
        },
    ),
    (
        "POST",
        "/api/sync/batch",
        {
            "machineId": "caixa-1",
            "events": [
                {"eventId": "e1", "table": "orders", "record": {"id": "o1", "total": 9.5}},
                {
                    "eventId": "e2",
                    "table": "order_items",
                    "record": {"id": "i1", "order_id": "o1", "quantity": "1.250"},
                },
            ],
        },
    ),
    (
        "POST",
        "/api/sync/reconcile",
        {
            "machineId": "caixa-1",
            "clientSummary": {"products": {"count": 2, "latestUpdatedAt": None}},
        },
    ),
    (
        "POST",
        "/api/sync/reconcile",
        {"machineId": "m", "clientSummary": [{"table": "orders", "count": 0}], "cursor": "3"},
    ),
    (
        "POST",
        "/api/sync/{table}",
        {
            "table": "products",
            "lastSync": "2026-02-11T18:00:00.000Z",
            "machineId": "frente-1",
            "tenantId": "loja-a",
            "localUpdates": [
                {"eventId": "e1", "record": {"id": "p1", "costPrice": "2.10", "isActive": True}},
                {"eventId": "e2", "record": {"id": "p2", "imageUrlId": "x", "tenantId": "loja-a"}},
            ],
        },
    ),
    (
        "POST",
        "/api/sync/bootstrap/{table}",
        {
            "machineId": "frente-1",
            "tenantId": "loja-a",
            "localUpdates": [
                {"eventId": "e1", "record": {"id": "ft1", "components": [{"q": 1}]}},
                {"id": "ft2", "name": "Receita", "eventId": "e2"},
                {"id": "ft3"},
            ],
        },
    ),
    (
        "POST",
        "/api/sync/reconcile",
        {
            "machineId": "frente-1",
            "tenantId": "loja-a",
            "clientSummary": {"products": {"latestUpdatedAt": None}, "outra": {"count": 1}},
        },
    ),
    ("POST", "/api/sync/reconcile", {"machineId": "m", "clientSummary": {}}),
    ("POST", "/api/products", {"name": "Pão", "price": 1.5, "eventId": "e1"}),
    ("POST", "/api/technical_sheets", {"record": {"name": "Bolo", "components": []}}),
    ("PATCH", "/api/supplies/{row_id}", {"record": {"stock": "2.5"}, "eventId": "e2"}),
]


@pytest.mark.parametrize(("method", "path", "body"), VALID_BODIES)
def test_bodies_the_server_accepts_match_their_documented_schema(document, method, path, body):
    jsonschema_rs = pytest.importorskip("jsonschema_rs")  # installed with schemathesis (dev)
    schema = body_schema(document["paths"][path][method.lower()])
    errors = [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(body)]
    assert errors == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/sync/{table}", {"localUpdates": [{"eventId": "e", "record": {"name": "sem id"}}]}),
        ("/api/sync/{table}", {"localUpdates": [], "tenantId": "loja a"}),
        ("/api/sync/bootstrap/{table}", {"localUpdates": []}),
        ("/api/sync/batch", {"events": [{"eventId": "e", "table": "nope", "record": {"id": "p"}}]}),
        ("/api/sync/reconcile", {"clientSummary": {"products": {"count": 1}}}),
    ],
)
def test_bodies_the_server_refuses_do_not_match(document, path, body):
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    schema = body_schema(document["paths"][path]["post"])
    assert not jsonschema_rs.validator_for(schema).is_valid(body)


def test_a_column_added_to_the_tables_reaches_the_document():
    """No other edit: the schemas are derived from protocol/schema.py when the app is built."""
    script = textwrap.dedent(
        """
        import dataclasses, json, sys, tempfile, pathlib
        from protocol import schema
        from protocol.schema import Field, Kind
        products = schema.TABLES["products"]
        wider = dataclasses.replace(
            products, fields=(*products.fields, Field("barcode", Kind.TEXT, max_length=32))
        )
        schema.TABLES["products"] = wider
        schema.ENTITIES["product"] = wider
        from server.app import create_app
        from server.settings import Settings
        tmp = pathlib.Path(tempfile.mkdtemp())
        app = create_app(Settings(database_url=f"sqlite:///{tmp / 'x.db'}", data_dir=tmp))
        json.dump(app.openapi(), sys.stdout)
        app.state.sync.db.close_all()
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    document = json.loads(out.stdout)
    create = body_schema(document["paths"]["/api/products"]["post"])
    wrapped = next(v for v in create["anyOf"] if "record" in v["properties"])
    assert wrapped["properties"]["record"]["properties"]["barcode"] == {
        "anyOf": [{"type": "string", "maxLength": 32}, {"type": "null"}]
    }
    listed = answer_schema(document["paths"]["/api/products"]["get"])
    assert "barcode" in listed["properties"]["products"]["items"]["required"]
    text = json.dumps(body_schema(document["paths"]["/api/sync/batch"]["post"]))
    assert '"barcode"' in text
    # Other tables did not get it.
    orders = body_schema(document["paths"]["/api/orders"]["post"])
    assert '"barcode"' not in json.dumps(orders)
