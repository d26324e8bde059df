"""The loopback API describes itself: every route of the POS's contract is in its OpenAPI
document with its request body, its success body and the error statuses it really answers
(in the one error shape), and /openapi.json is served, behind the loopback guard."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import httpx
import pytest

from agent.api import create_local_app
from agent.api.shop import document_shop
from agent.loopback import LoopbackGuard
from agent.store.store import Store
from protocol import jsonschema as js
from protocol.jsonschema import seed as seed_js
from protocol.schema import TABLES

COLLECTIONS = ("products", "orders", "order_items", "supplies", "technical_sheets")

# Every route of the loopback API, as the POS and the tray call them (paths and methods
# must never change: the POS front end is built against them).
ROUTES = {
    ("GET", "/health"),
    ("GET", "/api/sync/status"),
    ("POST", "/api/sync/now"),
    ("POST", "/api/sync/reconcile"),
    ("GET", "/api/sync/reconcile/history"),
    ("GET", "/api/sync/outbox"),
    ("GET", "/api/sync/watch"),
    ("POST", "/api/sync/dead/{event_id}/retry"),
    ("POST", "/api/sync/dead/{event_id}/discard"),
    ("POST", "/api/sync/batch"),
    ("POST", "/api/sync"),
    ("POST", "/api/sync/{table}"),
    # The seed's routes (issue 10), served from the local store.
    ("GET", "/api/sync/{table}"),
    ("POST", "/api/sync/bootstrap/{table}"),
    ("GET", "/api/sync/diagnostics"),
    *((m, f"/api/{c}") for c in COLLECTIONS for m in ("GET", "POST")),
    *((m, f"/api/{c}/{{row_id}}") for c in COLLECTIONS for m in ("GET", "PUT", "PATCH", "DELETE")),
}
WRITES = {
    ("POST", "/api/sync/batch"),
    ("POST", "/api/sync"),
    ("POST", "/api/sync/{table}"),
    ("POST", "/api/sync/bootstrap/{table}"),
    *((("POST", f"/api/{c}")) for c in COLLECTIONS),
    *((m, f"/api/{c}/{{row_id}}") for c in COLLECTIONS for m in ("PUT", "PATCH")),
}


@pytest.fixture
def app(tmp_path):
    store = Store(tmp_path / "agent.db")
    yield create_local_app(store, SimpleNamespace())  # the document needs no engine
    store.close()


def served(schema: dict) -> dict:
    """A protocol schema as this agent serves it: a shop named can only be its own (here
    the default shop: the document needs no engine)."""
    document_shop(schema, "default")
    return schema


def operations(spec: dict) -> dict[tuple[str, str], dict]:
    return {
        (method.upper(), path): op
        for path, item in spec["paths"].items()
        for method, op in item.items()
    }


def test_every_route_is_documented_and_nothing_else(app):
    assert set(operations(app.openapi())) == ROUTES


def test_each_route_documents_its_success_body_and_real_errors_in_one_shape(app):
    spec = app.openapi()
    assert "HTTPValidationError" not in str(spec)  # FastAPI's own 422 shape is never answered
    for key, op in operations(spec).items():
        responses = op["responses"]
        assert responses["200"]["content"]["application/json"]["schema"], key
        assert "403" in responses, key  # the loopback guard, before any route
        for status, response in responses.items():
            if status != "200":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (key, status)
    assert len({op["operationId"] for op in operations(spec).values()}) == len(ROUTES)
    errors = {
        key: sorted(int(s) for s in op["responses"] if s != "200")
        for key, op in operations(spec).items()
    }
    assert errors[("GET", "/health")] == [403]
    # 400 also for a shop id that is not one; 403 also for another shop's (the data routes).
    assert errors[("POST", "/api/sync/reconcile")] == [400, 403, 413, 422, 503]
    assert errors[("GET", "/api/sync/reconcile/history")] == [403, 422, 503]
    assert errors[("POST", "/api/sync/dead/{event_id}/retry")] == [403, 404, 503]
    assert errors[("GET", "/api/orders")] == [400, 403, 422, 503]
    assert errors[("GET", "/api/products")] == [400, 403, 503]
    assert errors[("DELETE", "/api/products/{row_id}")] == [400, 403, 404, 422, 503]
    assert errors[("GET", "/api/sync/{table}")] == [400, 403, 404, 503]
    assert errors[("GET", "/api/sync/diagnostics")] == [400, 403, 503]
    # The long-poll: bad `after`/`wait` or shop id 400; the agent stopping 503.
    assert errors[("GET", "/api/sync/watch")] == [400, 403, 503]
    for key in WRITES:
        assert errors[key] == [400, 403, 404, 413, 422, 503], key


def test_request_bodies_are_the_protocols_schemas(app):
    ops = operations(app.openapi())
    for key, op in ops.items():
        assert ("requestBody" in op) == (key in WRITES or key == ("POST", "/api/sync/reconcile"))
    body = ops[("POST", "/api/sync/{table}")]["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == served(seed_js.table_sync_schema())
    assert ops[("POST", "/api/sync/batch")]["requestBody"]["content"]["application/json"][
        "schema"
    ] == served(seed_js.with_tenant(js.batch_push_schema()))
    boot = ops[("POST", "/api/sync/bootstrap/{table}")]["requestBody"]["content"]
    assert boot["application/json"]["schema"] == served(seed_js.bootstrap_schema())
    create = ops[("POST", "/api/orders")]["requestBody"]["content"]["application/json"]
    assert create["schema"] == served(js.collection_write_schema(TABLES["orders"]))
    reconcile = ops[("POST", "/api/sync/reconcile")]["requestBody"]
    assert reconcile["required"] is False  # a bare POST reconciles with the configured strategy
    force, seed = reconcile["content"]["application/json"]["schema"]["anyOf"]
    assert force["properties"]["strategy"]["enum"] == ["none", "refresh_mismatched", "full_resync"]
    assert seed == served(seed_js.seed_reconcile_schema())  # with `clientSummary`: the seed's
    # The shop a front end names: a query parameter and the seed's header on data routes,
    # documented as what they are here: this PDV's own shop only (another one is a 403).
    params = {(p["in"], p["name"]): p for p in ops[("GET", "/api/sync/{table}")]["parameters"]}
    assert {("query", "tenantId"), ("header", "x-tenant-id"), ("query", "lastSync")} <= set(params)
    assert params[("query", "tenantId")]["schema"] == {"type": "string", "enum": ["default"]}
    assert params[("header", "x-tenant-id")]["schema"] == {"type": "string", "enum": ["default"]}
    table = ops[("POST", "/api/sync/{table}")]["parameters"][0]
    assert table["schema"]["enum"] == list(TABLES)  # another name: 404, as documented


def test_openapi_json_is_served_on_loopback_only(app):
    guarded = LoopbackGuard(app)

    async def get(host: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=guarded)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as c:
            return await c.get("/openapi.json")

    served = asyncio.run(get("127.0.0.1:4000"))
    assert served.status_code == 200
    assert served.json()["info"]["title"] == "PDV Sync agent (loopback)"
    refused = asyncio.run(get("evil.example"))
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden_host"
