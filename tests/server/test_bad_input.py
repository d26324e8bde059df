"""Bad input against a real server: every refusal is a clear 4xx JSON error that changes
nothing, and no request, however malformed, gets a 500."""

from __future__ import annotations

import json
import random
import uuid
from urllib.parse import quote

import httpx
import pytest

SQL = "'; DROP TABLE products; --"
COLLECTIONS = ("products", "orders", "order_items", "supplies")


def eid() -> str:
    return str(uuid.uuid4())


def snapshot(c: httpx.Client) -> tuple:
    """Everything a client can observe of the data: the change log and the summaries."""
    changes: list = []
    cursor = 0
    for _ in range(100):
        page = c.get("/api/sync/changes", params={"since": cursor, "limit": 5000}).json()
        changes += page["changes"]
        cursor = page["cursor"]
        if not page["hasMore"]:
            break
    summary = c.get("/api/sync/reconcile").json()
    stats = c.get("/api/stats").json()
    return changes, cursor, summary["serverSummary"], stats["eventsProcessed"]


def assert_refused(r: httpx.Response, status: int | tuple[int, ...] | None = None) -> dict:
    """A 4xx with the error shape `{success: false, error, code}`."""
    assert 400 <= r.status_code < 500, (
        r.request.method,
        r.request.url,
        r.status_code,
        r.text[:300],
    )
    if status is not None:
        assert r.status_code in ((status,) if isinstance(status, int) else status), (
            r.status_code,
            r.text[:300],
        )
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["success"] is False
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["code"], str) and body["code"]
    return body


def single(data: dict, kind: str = "product_created", **extra) -> dict:
    return {"type": kind, "timestamp": 1707554400000, "data": data, "event_id": eid(), **extra}


def table_push(*records: dict, **extra) -> dict:
    return {
        "machineId": "caixa-1",
        "localUpdates": [{"eventId": eid(), "record": r} for r in records],
        **extra,
    }


def batch(*events: dict) -> dict:
    return {"machineId": "caixa-1", "events": list(events)}


POST_ROUTES = [
    "/api/sync",
    "/api/sync/products",
    "/api/sync/orders",
    "/api/sync/order_items",
    "/api/sync/supplies",
    "/api/sync/batch",
    "/api/sync/reconcile",
    *(f"/api/{c}" for c in COLLECTIONS),
]


@pytest.fixture
def seeded(live_server):
    """A server with a little data, and a snapshot of it."""
    with live_server.client() as c:
        r = c.post(
            "/api/sync/products",
            json=table_push({"id": "pao", "name": "Pão", "price": "1.00", "stock_quantity": 50}),
        )
        assert r.status_code == 200
        r = c.post(
            "/api/sync/supplies", json=table_push({"id": "farinha", "name": "Farinha", "stock": 10})
        )
        assert r.status_code == 200
    return live_server


def test_malformed_bodies_are_refused_on_every_post_route(seeded):
    with seeded.client() as c:
        before = snapshot(c)
        for path in POST_ROUTES:
            assert_refused(c.post(path, content=b'{"machineId": "x", '), 400)
            assert_refused(c.post(path, content=b""), 400)
            assert_refused(c.post(path, content=b"   \n"), 400)
            assert_refused(c.post(path, json=[{"id": "x"}]), 422)
            assert_refused(c.post(path, json="just a string"), 422)
            assert_refused(c.post(path, content=b"null"), 422)
            assert_refused(c.post(path, content=b"\xff\xfe{not utf-8}"), 400)
            assert_refused(
                c.post(path, content=b"[" * 50_000 + b"]" * 50_000), 400
            )  # deeply nested
            nested = b'{"a":' * 3000 + b'{"id":"x"}' + b"}" * 3000
            assert_refused(c.post(path, content=nested), 400)
        for path in ("/api/products/pao", "/api/supplies/farinha"):
            for method in ("PUT", "PATCH"):
                assert_refused(c.request(method, path, content=b"{oops"), 400)
                assert_refused(c.request(method, path, json=[1, 2]), 422)
        assert snapshot(c) == before


WRONG_TYPES = [
    ("price", "abc"),
    ("stock_quantity", 1.5),
    ("name", 123),
    ("price", True),
    ("name", {"x": 1}),
    ("createdAt", "ontem"),
    ("stock_quantity", "12a"),
    ("description", ["a"]),
]


def test_wrong_types_are_refused_everywhere(seeded):
    with seeded.client() as c:
        before = snapshot(c)
        for field, value in WRONG_TYPES:
            record = {"id": "pao", field: value}
            body = assert_refused(c.post("/api/sync", json=single(record, "product_updated")), 422)
            assert field in body["error"]
            assert_refused(c.post("/api/products", json={"id": "novo", field: value}), 422)
            assert_refused(c.put("/api/products/pao", json={field: value}), 422)
            assert_refused(
                c.post(
                    "/api/sync/batch",
                    json=batch(
                        {"eventId": eid(), "table": "orders", "record": {"id": "o1"}},
                        {"eventId": eid(), "table": "products", "record": record},
                    ),
                ),
                422,
            )
            # In a table push each event gets its own outcome: refused with a reason, not applied.
            r = c.post("/api/sync/products", json=table_push(record))
            assert r.status_code == 200
            (conflict,) = r.json()["conflicts"]
            assert conflict["id"] == "pao" and conflict["reason"] and field in conflict["error"]
        assert snapshot(c)[:3] == before[:3]
        assert c.get("/api/products/pao").json()["record"]["price"] == 1


def test_unknown_tables_operations_and_missing_ids(seeded):
    with seeded.client() as c:
        before = snapshot(c)
        assert_refused(c.get("/api/sync/nope"), 404)
        assert_refused(c.post("/api/sync/nope", json=table_push({"id": "x"})), 404)
        assert_refused(c.get("/api/sync/nope/deeper"), 404)
        assert_refused(c.get("/api/nothing-here"), 404)
        assert_refused(c.post("/api/sync", json=single({"id": "x"}, "widget_created")), 422)
        assert_refused(c.post("/api/sync", json=single({"id": "x"}, "product_exploded")), 422)
        assert_refused(c.post("/api/sync", json=single({"id": "x"}, "nonsense")), 422)
        assert_refused(c.post("/api/sync", json=single({"name": "sem id"})), 422)
        assert_refused(
            c.post("/api/sync", json={"type": "product_created", "data": "x", "event_id": eid()}),
            422,
        )
        assert_refused(c.post("/api/products", json={"id": "x", "_op": "explode"}), 422)
        # A field nobody declared is kept (protocol/extras.py), within bounds: these are not.
        assert_refused(c.post("/api/products", json={"id": "x", "c" * 65: "blue"}), 422)
        many = {f"extra{i}": i for i in range(65)}
        assert_refused(c.post("/api/products", json={"id": "x", **many}), 422)
        assert_refused(c.post("/api/products", json={"id": "x", "big": "x" * 17_000}), 422)
        assert_refused(
            c.post(
                "/api/sync/batch",
                json=batch({"eventId": eid(), "table": "nope", "record": {"id": "x"}}),
            ),
            422,
        )
        assert_refused(
            c.post(
                "/api/sync/batch",
                json=batch({"eventId": eid(), "table": "products", "record": {"name": "x"}}),
            ),
            422,
        )
        assert_refused(
            c.post("/api/sync/batch", json=batch({"table": "products", "record": {"id": "x"}})), 422
        )
        assert_refused(c.post("/api/sync/batch", json={"events": "all of them"}), 422)
        assert_refused(c.post("/api/sync/products", json={"localUpdates": {"eventId": "x"}}), 422)
        assert_refused(
            c.post("/api/sync/products", json={"machineId": 12, "localUpdates": []}), 422
        )
        assert_refused(
            c.post("/api/sync/products", json={"cursor": "abc", "localUpdates": []}), 400
        )
        assert_refused(c.post("/api/sync/products", json={"cursor": -1, "localUpdates": []}), 400)

        r = c.post(
            "/api/sync/products",
            json={
                "localUpdates": [
                    {"eventId": eid(), "record": {"id": "pao", "_op": "explode"}},
                    {"eventId": eid(), "record": {"name": "sem id"}},
                    {"eventId": eid(), "record": {"id": ""}},
                    {"record": {"id": "pao", "name": "sem eventId"}},
                    {"eventId": 42, "record": {"id": "pao", "name": "eventId numérico"}},
                    {
                        "eventId": eid(),
                        "record": {"id": "farinha", "_op": "increment", "name": "x"},
                    },
                    {"eventId": eid(), "record": {"id": "pao", "_op": "increment"}},
                    {"eventId": eid(), "record": "not an object"},
                    "not an event",
                ]
            },
        )
        assert r.status_code == 200, r.text
        reasons = [x["reason"] for x in r.json()["conflicts"]]
        assert reasons == [
            "unknown_operation",
            "missing_id",
            "missing_id",
            "missing_event_id",
            "invalid_event_id",
            "invalid_increment",
            "invalid_increment",
            "invalid_record",
            "invalid_body",
        ]
        assert all(x["resolution"] == "rejected" and x["error"] for x in r.json()["conflicts"])
        assert snapshot(c)[:3] == before[:3]


def test_invalid_query_parameters(seeded):
    with seeded.client() as c:
        for params in (
            {"since": "-1"},
            {"since": "abc"},
            {"since": "1.5"},
            {"limit": "0"},
            {"limit": "-3"},
            {"limit": "abc"},
            {"since": "1e3"},
            {"machineId": "x" * 500},
        ):
            assert_refused(c.get("/api/sync/products", params=params))
            assert_refused(c.get("/api/sync/changes", params=params))
        assert_refused(
            c.get("/api/sync/products", params={"since": str(10**30)}), 409
        )  # ahead of the server
        for params in ({"limit": "0"}, {"limit": "abc"}, {"onlyInconsistent": "maybe"}):
            assert_refused(c.get("/api/sync/reconcile/history", params=params), 422)
        for params in (
            {"start_date": "2024-13-45"},
            {"end_date": "ontem"},
            {"start_date": "x" * 10},
        ):
            assert_refused(c.get("/api/orders", params=params))
        assert_refused(c.get("/api/sync/reconcile/buckets"), 422)
        for buckets in ("a,b", "", "-1", "256", "1" * 5000):
            assert_refused(
                c.get("/api/sync/reconcile/rows", params={"table": "products", "buckets": buckets}),
                400,
            )
        assert_refused(c.get("/api/products/%00"), 422)
        assert_refused(c.get("/api/products/" + "x" * 500), 422)
        assert_refused(c.delete("/api/products/pao", params={"eventId": "\x00"}), 422)
        assert c.get("/api/products/pao").status_code == 200


def test_reconcile_input_is_validated(seeded):
    with seeded.client() as c:
        history = c.get("/api/sync/reconcile/history").json()["count"]
        for body in (
            {"clientSummary": {"products": {"count": 1}}},  # no machineId
            {"machineId": "m"},
            {"machineId": "m", "clientSummary": {"products": {"count": -1}}},
            {"machineId": "m", "clientSummary": {"products": {"count": "1"}}},
            {
                "machineId": "m",
                "clientSummary": {"products": {"count": 1, "latestUpdatedAt": "ontem"}},
            },
            {"machineId": "m", "clientSummary": {"products": {"count": 1, "checksum": 12}}},
            {"machineId": "m", "clientSummary": [{"count": 1}]},
            {"machineId": "m", "clientSummary": [{"table": ["products"], "count": 1}]},
            {"machineId": "m", "clientSummary": ["products"]},
        ):
            assert_refused(c.post("/api/sync/reconcile", json=body))
        assert c.get("/api/sync/reconcile/history").json()["count"] == history
        # As the original server reads it: an empty summary, or one of tables we do not
        # keep, is a client that has none of ours (every table `missing_client_table`).
        for summary in ({}, {"nope": {"count": 1}}):
            r = c.post("/api/sync/reconcile", json={"machineId": "m", "clientSummary": summary})
            assert r.status_code == 200, r.text
            reasons = {m["reason"] for m in r.json()["mismatches"]}
            assert r.json()["isConsistent"] is False and reasons == {"missing_client_table"}
        assert c.get("/api/sync/reconcile/history").json()["count"] == history + 2


NUMBER_LITERALS = [
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e400",
    b"-1e999999999",
    b"1e-999999999",
    b"123456789012345678901234567890",
    b"1" + b"0" * 5000,
]


def test_non_finite_and_huge_numbers(seeded):
    with seeded.client() as c:
        before = snapshot(c)
        for literal in NUMBER_LITERALS:
            for field in (b"price", b"stock_quantity", b"createdAt", b"updatedAt"):
                record = b'{"id": "pao", "%s": %s}' % (field, literal)
                body = b'{"type": "product_updated", "event_id": "%s", "data": %s}' % (
                    eid().encode(),
                    record,
                )
                assert_refused(c.post("/api/sync", content=body))
                assert_refused(c.post("/api/products", content=record))
                assert_refused(c.put("/api/products/pao", content=record))
                r = c.post(
                    "/api/sync/products",
                    content=b'{"localUpdates": [{"eventId": "%s", "record": %s}]}'
                    % (eid().encode(), record),
                )
                if r.status_code == 200:
                    assert [x["resolution"] for x in r.json()["conflicts"]] == ["rejected"]
                else:
                    assert_refused(r, 400)  # an integer literal too long to parse
            body = (
                b'{"type": "product_updated", "event_id": "%s", "timestamp": %s, "data": {"id": "pao"}}'
                % (eid().encode(), literal)
            )
            assert_refused(c.post("/api/sync", content=body))
            assert_refused(
                c.post(
                    "/api/sync/products", content=b'{"cursor": %s, "localUpdates": []}' % literal
                )
            )
            r = c.post(
                "/api/sync/reconcile",
                content=b'{"machineId": "m", "clientSummary": '
                b'{"products": {"count": %s}}}' % literal,
            )
            if literal.isdigit() and len(literal) < 4000:
                assert (
                    r.status_code == 200 and r.json()["isConsistent"] is False
                )  # a count, just a wrong one
            else:
                assert_refused(r)
        assert snapshot(c)[:3] == before[:3]


def test_a_counter_pushed_past_its_range_is_refused_not_a_500(seeded):
    with seeded.client() as c:
        big = 2**53 - 1
        r = c.post("/api/sync/products", json=table_push({"id": "pao", "stock_quantity": big}))
        assert r.status_code == 200 and r.json()["conflicts"] == []
        before = snapshot(c)
        # Past 2**53 no client could read the counter back: each increment is refused
        # (out_of_range, per event), none applied.
        r = c.post(
            "/api/sync/products",
            json=table_push(
                *({"id": "pao", "_op": "increment", "stock_quantity": big} for _ in range(1100))
            ),
        )
        assert r.status_code == 200, r.text
        assert {x["reason"] for x in r.json()["conflicts"]} == {"out_of_range"} and len(
            r.json()["conflicts"]
        ) == 1100
        assert (
            snapshot(c)[:3] == before[:3]
        )  # the data; the refusals are recorded (a retry gets the same answer)
        before = snapshot(c)
        r = c.post(
            "/api/sync/batch",
            json=batch(
                {
                    "eventId": eid(),
                    "table": "products",
                    "record": {"id": "pao", "_op": "increment", "stock_quantity": 1},
                }
            ),
        )
        assert assert_refused(r, 422)["invalid"][0]["reason"] == "out_of_range"
        assert snapshot(c) == before


def test_sql_metacharacters_are_stored_verbatim(seeded):
    with seeded.client() as c:
        r = c.post(
            "/api/sync/products",
            json=table_push(
                {"id": SQL, "name": SQL, "description": '" OR 1=1; --', "category": "x' OR 'a'='a"},
                machineId=SQL,
            ),
        )
        assert r.status_code == 200 and r.json()["conflicts"] == [], r.text
        r = c.post("/api/sync", json=single({"id": "q' || pg_sleep(5) --", "name": "%_\\"}))
        assert r.status_code == 200, r.text
        products = {p["id"]: p for p in c.get("/api/products").json()["products"]}
        assert set(products) == {"pao", SQL, "q' || pg_sleep(5) --"}
        assert products[SQL]["name"] == SQL and products[SQL]["description"] == '" OR 1=1; --'
        assert products["q' || pg_sleep(5) --"]["name"] == "%_\\"
        r = c.get("/api/products/" + quote(SQL, safe=""))
        assert r.status_code == 200 and r.json()["record"]["name"] == SQL
        assert c.get("/api/sync/products", params={"since": 0, "machineId": SQL}).status_code == 200
        assert c.get("/api/sync/reconcile/history", params={"machineId": SQL}).json()["count"] == 0
        r = c.post(
            "/api/sync/reconcile",
            json={"machineId": SQL, "clientSummary": {"products": {"count": 3}}},
        )
        assert r.status_code == 200
        assert (
            c.get("/api/sync/reconcile/history", params={"machineId": SQL}).json()["data"][0][
                "machine_id"
            ]
            == SQL
        )
        assert SQL in [m["machineId"] for m in c.get("/api/stats").json()["machines"]]
        r = c.put("/api/products/" + quote(SQL, safe=""), json={"price": "9.99"})
        assert r.status_code == 200, r.text
        assert (
            c.get("/api/sync/reconcile").json()["serverSummary"][0]["count"] == 3
        )  # nothing dropped


def test_unicode_round_trips_and_lone_surrogates_are_refused(seeded):
    name = "Pão de queijo 🧀 — ação, 日本語, עברית, Ελληνικά, \u200b zero-width"
    row_id = "pão-🧀-1"
    with seeded.client() as c:
        r = c.post(
            "/api/sync/products", json=table_push({"id": row_id, "name": name, "category": "ñ"})
        )
        assert r.status_code == 200 and r.json()["conflicts"] == [], r.text
        got = c.get("/api/products/" + quote(row_id, safe="")).json()["record"]
        assert got["name"] == name and got["category"] == "ñ"
        before = snapshot(c)
        for body in (
            b'{"localUpdates": [{"eventId": "s1", "record": {"id": "\\ud800", "name": "x"}}]}',
            b'{"localUpdates": [{"eventId": "s2", "record": {"id": "ok", "name": "a\\udfffb"}}]}',
            b'{"localUpdates": [{"eventId": "\\udbff", "record": {"id": "ok"}}]}',
            b'{"machineId": "\\ud83d", "localUpdates": []}',
        ):
            assert_refused(c.post("/api/sync/products", content=body), 400)
        assert_refused(c.post("/api/products", content=b'{"id": "x", "name": "\\ud800"}'), 400)
        # An escaped surrogate *pair* is one valid character.
        r = c.post("/api/products", content=b'{"id": "emoji", "name": "\\ud83e\\uddc0"}')
        assert r.status_code == 200 and r.json()["record"]["name"] == "🧀"
        assert snapshot(c)[0][:-1] == before[0]


def test_bodies_over_the_size_limit_get_413(server_factory, tmp_path):
    server = server_factory(
        database_url=f"sqlite:///{tmp_path / 'big.db'}", env={"MAX_BODY_BYTES": "4096"}
    )
    with server.client() as c:
        before = snapshot(c)
        big = table_push(*({"id": f"p{i}", "name": "x" * 100} for i in range(60)))
        raw = json.dumps(big).encode()
        assert len(raw) > 4096
        for path in POST_ROUTES:
            body = assert_refused(c.post(path, content=raw), 413)
            assert body["code"] == "body_too_large"

        def chunks():  # no Content-Length: the limit holds while streaming too
            for i in range(0, len(raw), 1000):
                yield raw[i : i + 1000]

        assert_refused(c.post("/api/sync/products", content=chunks()), 413)
        assert snapshot(c) == before
        small = table_push({"id": "p", "name": "fits"})
        assert c.post("/api/sync/products", json=small).status_code == 200
        assert c.get("/health").status_code == 200


# -- a small, seeded fuzz -----------------------------------------------------------------

TEMPLATES = {
    "/api/sync": lambda: single({"id": "pao", "name": "Pão", "price": "1.50", "stock_quantity": 3}),
    "/api/sync/products": lambda: table_push(
        {"id": "pao", "name": "Pão", "price": "2.00"},
        {"id": "pao", "_op": "increment", "stock_quantity": -1},
        cursor=0,
    ),
    "/api/sync/orders": lambda: table_push(
        {"id": "o1", "customerName": "Ana", "total": "3.00", "createdAt": "2024-01-01T10:00:00Z"}
    ),
    "/api/sync/order_items": lambda: table_push(
        {"id": "i1", "order_id": "o1", "product_id": "pao", "quantity": 2}
    ),
    "/api/sync/supplies": lambda: table_push({"id": "farinha", "_op": "increment", "stock": "0.5"}),
    "/api/sync/batch": lambda: batch(
        {"eventId": eid(), "table": "orders", "record": {"id": "o2", "total": 1}},
        {
            "eventId": eid(),
            "table": "products",
            "record": {"id": "pao", "_op": "increment", "stock_quantity": -1},
        },
    ),
    "/api/sync/reconcile": lambda: {
        "machineId": "m",
        "cursor": 0,
        "clientSummary": {
            "products": {
                "count": 1,
                "latestUpdatedAt": "2026-02-11T18:00:00.000Z",
                "checksum": "00ff",
            }
        },
    },
    "/api/products": lambda: {
        "id": "fz",
        "name": "Fuzz",
        "price": 1,
        "eventId": eid(),
        "machineId": "m",
    },
    "/api/orders": lambda: {"record": {"id": "o3", "status": "Pago"}},
    "/api/order_items": lambda: {"id": "i2", "quantity": "1.5"},
    "/api/supplies": lambda: {"id": "s3", "stock": 2, "costPerUnit": "0.0001"},
}

_WEIRD_STRINGS = [
    "",
    " ",
    "\x00",
    "\x1f",
    "'",
    '"',
    "\\",
    "%s",
    "{}",
    "[]",
    "null",
    "NaN",
    "-0",
    "1e309",
    "é",
    "🧀",
    "\u202e",
    "a" * 5000,
    SQL,
    "2024-02-30",
    "9999-12-31T23:59:59Z",
    "increment",
    "delete",
    "upsert",
    "products",
    "product_updated",
]


def _junk(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(12 if depth < 3 else 8)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2**31, 2**53, 2**63, -(2**64), 10**20, 10**300])
    if kind == 3:
        return rng.choice([0.5, -1.25, 1e-300, 1e300, 3.141592653589793, 0.1 + 0.2])
    if kind in (4, 5, 6, 7):
        return rng.choice(_WEIRD_STRINGS)
    if kind in (8, 9):
        return [_junk(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {
        rng.choice(
            ["id", "_op", "eventId", "record", "table", "count", "x", "stock", "price", "name"]
        ): _junk(rng, depth + 1)
        for _ in range(rng.randrange(4))
    }


def _mutate(rng: random.Random, value: object) -> object:
    """Replace, drop or add one thing somewhere in a JSON value."""
    if isinstance(value, dict) and value and rng.random() < 0.75:
        key = rng.choice(list(value))
        out = dict(value)
        action = rng.randrange(4)
        if action == 0:
            del out[key]
        elif action == 1:
            out[key] = _junk(rng)
        elif action == 2:
            out[rng.choice(_WEIRD_STRINGS[:12])] = _junk(rng)
        else:
            out[key] = _mutate(rng, value[key])
        return out
    if isinstance(value, list) and value and rng.random() < 0.75:
        out = list(value)
        i = rng.randrange(len(out))
        out[i] = _mutate(rng, out[i]) if rng.random() < 0.6 else _junk(rng)
        return out
    return _junk(rng)


def _fuzzed_body(rng: random.Random, template: dict) -> bytes:
    choice = rng.randrange(10)
    if choice < 6:
        value = template
        for _ in range(rng.randrange(1, 4)):
            value = _mutate(rng, value)
        return json.dumps(value, ensure_ascii=rng.random() < 0.5).encode()
    raw = bytearray(json.dumps(template).encode())
    if choice == 6:
        return bytes(raw[: rng.randrange(len(raw))])  # truncated
    if choice == 7:
        for _ in range(rng.randrange(1, 6)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)  # flipped bytes, maybe invalid UTF-8
        return bytes(raw)
    if choice == 8:
        pos = rng.randrange(len(raw))
        insert = rng.choice(
            [b"\\ud800", b"NaN", b"-Infinity", b"1e99999", b"\x00", b",", b"}", b'"', b"\\"]
        )
        return bytes(raw[:pos] + insert + raw[pos:])
    return rng.randbytes(rng.randrange(1, 200))


def test_fuzzed_bodies_never_get_a_500(seeded):
    rng = random.Random(20260211)
    statuses: dict[int, int] = {}
    with seeded.client() as c:
        targets = [(("POST", path), TEMPLATES[path]) for path in POST_ROUTES]
        targets += [
            (("PUT", "/api/products/pao"), lambda: {"name": "x", "price": "2.50"}),
            (("PATCH", "/api/supplies/farinha"), lambda: {"stock": 4, "unit": "kg"}),
        ]
        for (method, path), template in targets:
            for _ in range(30):
                body = _fuzzed_body(rng, template())
                r = c.request(
                    method, path, content=body, headers={"content-type": "application/json"}
                )
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                assert r.status_code < 500, (method, path, body[:300], r.status_code, r.text[:300])
                if r.status_code >= 400:
                    assert_refused(r)
        assert c.get("/health").json()["status"] == "ok"
    # The fuzz reached both the refusals and the paths that apply changes.
    assert statuses.get(200) and statuses.get(400) and statuses.get(422), statuses
    assert not any("Traceback" in line for line in seeded.output)
