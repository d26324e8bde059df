"""Several shops on one server, over real HTTP (both backends): a shop is named by the
`x-tenant-id` header, the `tenantId` query or the body's `tenantId`, and nothing of one shop
(rows, changes and cursors, receipts, reconcile and history, bootstrap, diagnostics, stats)
is ever seen from another. Bad shop ids and keys of another shop are refused, storing
nothing; a client that names no shop is the default shop's, as before."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.server.test_bad_input import assert_refused, snapshot
from tests.server.test_cli_keys import keys_cli

MASTER = "tenants-master-key-51f0"


def eid() -> str:
    return str(uuid.uuid4())


def shop(server, tenant: str | None, how: str = "header", key: str | None = None):
    """A client of one shop: `how` names it in the header, the query or every body (then
    a request without a body names it in the query, as the seed's client does)."""
    headers = {"x-api-key": key} if key else {}
    params = {}
    if tenant is not None and how == "header":
        headers["x-tenant-id"] = tenant
    if tenant is not None and how == "query":
        params["tenantId"] = tenant

    def bodyless_in_query(request: httpx.Request) -> None:
        if tenant is not None and how == "body" and not request.content:
            request.url = request.url.copy_merge_params({"tenantId": tenant})

    client = httpx.Client(
        base_url=server.url,
        headers=headers,
        params=params,
        timeout=10,
        event_hooks={"request": [bodyless_in_query]},
    )
    client.tenant_in_body = tenant if how == "body" else None  # type: ignore[attr-defined]
    return client


def body(c: httpx.Client, payload: dict) -> dict:
    tenant = getattr(c, "tenant_in_body", None)
    return {**payload, "tenantId": tenant} if tenant else payload


def push(
    c: httpx.Client, table: str, *records: dict, event_ids: list[str] | None = None, **more
) -> dict:
    updates = [
        {"eventId": event_ids[i] if event_ids else eid(), "record": r}
        for i, r in enumerate(records)
    ]
    r = c.post(
        f"/api/sync/{table}",
        json=body(c, {"machineId": "caixa-1", "localUpdates": updates, **more}),
    )
    assert r.status_code == 200, r.text
    return r.json()


def names(c: httpx.Client, table: str = "products") -> dict[str, str]:
    r = c.get(f"/api/{table}")
    assert r.status_code == 200, r.text
    return {p["id"]: p["name"] for p in r.json()[table]}


@pytest.mark.parametrize("how_b", ["query", "body"])
def test_two_shops_on_one_server_never_see_each_other(live_server, how_b):
    server = live_server
    with (
        shop(server, "loja-a") as a,
        shop(server, "loja-b", how_b) as b,
        shop(server, None) as default,
    ):
        same_event = eid()  # the same eventId in two shops is two events
        ra = push(a, "products", {"id": "p1", "name": "Pão A"}, event_ids=[same_event], cursor=0)
        rb = push(b, "products", {"id": "p1", "name": "Pão B"}, event_ids=[same_event], cursor=0)
        assert ra["results"][0]["status"] == rb["results"][0]["status"] == "applied"
        assert not rb["results"][0].get("duplicate")
        # Each shop has its own sequence: both start at 1.
        assert ra["cursor"] == rb["cursor"] == 1
        push(b, "products", {"id": "p2", "name": "Broa B"}, cursor=1)
        assert names(a) == {"p1": "Pão A"} and names(b) == {"p1": "Pão B", "p2": "Broa B"}
        assert names(default) == {}

        # Reads by cursor and by lastSync, one record, the changes feed.
        for c, want in ((a, {"p1"}), (b, {"p1", "p2"}), (default, set())):
            page = c.get("/api/sync/products", params={"since": 0}).json()
            assert {r["id"] for r in page["synced"]} == want
            seed = c.get("/api/sync/products").json()
            assert {r["id"] for r in seed["data"]} == want and seed["count"] == len(want)
            feed = c.get("/api/sync/changes", params={"since": 0}).json()
            assert {ch["record"]["id"] for ch in feed["changes"]} == want
        assert a.get("/api/products/p2").status_code == 404
        assert b.get("/api/products/p2").json()["record"]["name"] == "Broa B"

        # A cursor of one shop means nothing in another: ahead of shop A's head.
        r = a.get("/api/sync/products", params={"since": 2})
        assert r.status_code == 409 and r.json()["code"] == "resync_required", r.text

        # Summaries, reconcile and its history.
        summary = {
            name: {s["table"]: s for s in c.get("/api/sync/reconcile").json()["serverSummary"]}
            for name, c in (("a", a), ("b", b))
        }
        assert summary["a"]["products"]["count"] == 1 and summary["b"]["products"]["count"] == 2
        for name, c in (("a", a), ("b", b)):
            client_summary = {
                t: {k: s[k] for k in ("count", "latestUpdatedAt", "checksum")}
                for t, s in summary[name].items()
            }
            r = c.post(
                "/api/sync/reconcile",
                json=body(c, {"machineId": f"pdv-{name}", "clientSummary": client_summary}),
            )
            assert r.status_code == 200 and r.json()["isConsistent"] is True, r.text
            assert r.json()["tenantId"] == f"loja-{name}"
        ha = a.get("/api/sync/reconcile/history").json()["data"]
        hb = b.get("/api/sync/reconcile/history").json()["data"]
        assert [e["machine_id"] for e in ha] == ["pdv-a"] and [e["machine_id"] for e in hb] == [
            "pdv-b"
        ]
        assert default.get("/api/sync/reconcile/history").json()["count"] == 0
        # Shop A's summary is not shop B's.
        r = b.post(
            "/api/sync/reconcile",
            json=body(b, {"machineId": "pdv-b", "clientSummary": summary["a"]}),
        )
        assert r.json()["isConsistent"] is False
        assert [m["table"] for m in r.json()["mismatches"]] == ["products"]

        # Buckets and rows.
        rows = b.get(
            "/api/sync/reconcile/rows",
            params={"table": "products", "buckets": ",".join(map(str, range(256)))},
        ).json()
        assert {r["id"] for r in rows["rows"]} == {"p1", "p2"}
        buckets = a.get("/api/sync/reconcile/buckets", params={"table": "products"}).json()
        assert sum(v["count"] for v in buckets["buckets"].values()) == 1

        # Bootstrap state is per shop: shop A's completed table is still open in shop B.
        sheet = {"id": "ft-1", "name": "Receita", "components": [], "eventId": eid()}
        for c in (a, b):
            r = c.post(
                "/api/sync/bootstrap/technical_sheets",
                json=body(c, {"machineId": "frente", "localUpdates": [sheet]}),
            )
            assert r.status_code == 200 and r.json()["bootstrapped"] is True, r.text
        r = a.post(
            "/api/sync/bootstrap/technical_sheets",
            json=body(a, {"machineId": "frente", "localUpdates": [sheet]}),
        )
        assert r.json()["reason"] == "already_completed"
        assert default.get("/api/sync/technical_sheets").json()["count"] == 0

        # Diagnostics and stats.
        diag = {n: c.get("/api/sync/diagnostics").json() for n, c in (("a", a), ("b", b))}
        assert diag["a"]["tenantId"] == "loja-a" and diag["b"]["tenantId"] == "loja-b"
        assert diag["a"]["diagnostics"]["products"]["total"] == 1
        assert diag["b"]["diagnostics"]["products"]["total"] == 2
        stats = {n: c.get("/api/stats").json() for n, c in (("a", a), ("b", b), ("d", default))}
        assert stats["a"]["tenantId"] == "loja-a" and stats["d"]["tenantId"] == "default"
        assert stats["a"]["cursor"] == 2 and stats["b"]["cursor"] == 3  # products + sheets
        assert stats["a"]["eventsProcessed"] == 2 and stats["b"]["eventsProcessed"] == 3
        assert stats["d"]["eventsProcessed"] == 0 and stats["d"]["machines"] == []
        assert [m["machineId"] for m in stats["a"]["machines"]] == ["caixa-1", "frente"]


def test_the_places_that_name_a_shop_must_agree(live_server):
    with httpx.Client(base_url=live_server.url, timeout=10) as c:
        before = snapshot(c)
        update = {"machineId": "m", "localUpdates": [{"eventId": eid(), "record": {"id": "x"}}]}
        for kwargs in (
            {"headers": {"x-tenant-id": "loja-a"}, "params": {"tenantId": "loja-b"}},
            {"headers": {"x-tenant-id": "loja-a"}, "json": {**update, "tenantId": "loja-b"}},
            {"params": {"tenantId": "loja-a"}, "json": {**update, "tenantId": "loja-b"}},
        ):
            r = c.post("/api/sync/products", **{"json": update, **kwargs})
            assert assert_refused(r, 400)["code"] == "tenant_mismatch"
        # The same shop named twice is fine.
        r = c.post(
            "/api/sync/products",
            headers={"x-tenant-id": "loja-a"},
            params={"tenantId": "loja-a"},
            json={**update, "tenantId": "loja-a"},
        )
        assert r.status_code == 200, r.text
        assert snapshot(c) == before  # the default shop saw none of it


BAD_TENANTS = ["", "  ", "x" * 65, "loja a", "loja/a", "a;DROP TABLE products", "loja\tb", "çafé"]


def test_bad_shop_ids_are_refused_and_store_nothing(live_server):
    with httpx.Client(base_url=live_server.url, timeout=10) as c:
        push(c, "products", {"id": "p", "name": "P"})
        before = snapshot(c)
        record = {"id": "p", "name": "mudou"}
        for bad in [*BAD_TENANTS, 12, ["loja-a"], {"id": "a"}, True]:
            writes = [
                ("/api/sync/products", {"localUpdates": [{"eventId": eid(), "record": record}]}),
                (
                    "/api/sync/batch",
                    {"events": [{"eventId": eid(), "table": "products", "record": record}]},
                ),
                ("/api/sync", {"type": "product_updated", "data": record, "event_id": eid()}),
                ("/api/products", record),
                ("/api/sync/bootstrap/orders", {"machineId": "m", "localUpdates": [{"id": "o"}]}),
                ("/api/sync/reconcile", {"machineId": "m", "clientSummary": {}}),
            ]
            for path, payload in writes:
                r = c.post(path, json={**payload, "tenantId": bad})
                assert assert_refused(r, 400)["code"] == "invalid_tenant", (path, bad, r.text)
            if isinstance(bad, str) and bad.isascii():
                for where in ("params", "headers"):
                    if where == "headers" and bad and not bad.strip():
                        continue  # httpx itself refuses a header of blanks only
                    name = "tenantId" if where == "params" else "x-tenant-id"
                    for path in (
                        "/api/products",
                        "/api/sync/products",
                        "/api/sync/diagnostics",
                        "/api/stats",
                    ):
                        r = c.get(path, **{where: {name: bad}})
                        assert assert_refused(r, 400)["code"] == "invalid_tenant", (path, bad)
                    r = c.post("/api/sync/products", json=writes[0][1], **{where: {name: bad}})
                    assert assert_refused(r, 400)["code"] == "invalid_tenant"
        # A record naming another shop than the request's: refused whole, nothing applied.
        other = {"id": "p", "name": "de outra loja", "tenantId": "loja-b"}
        for path, payload in (
            (
                "/api/sync/products",
                {
                    "localUpdates": [
                        {"eventId": eid(), "record": {"id": "q"}},
                        {"eventId": eid(), "record": other},
                    ]
                },
            ),
            (
                "/api/sync/batch",
                {"events": [{"eventId": eid(), "table": "products", "record": other}]},
            ),
            ("/api/sync", {"type": "product_updated", "data": other, "event_id": eid()}),
            ("/api/products", {"record": other}),
            (
                "/api/sync/bootstrap/orders",
                {"machineId": "m", "localUpdates": [{**other, "id": "o"}]},
            ),
        ):
            r = c.post(path, json=payload)
            assert assert_refused(r, 400)["code"] == "tenant_mismatch", (path, r.text)
        r = c.put("/api/products/p", json={"record": other})
        assert assert_refused(r, 400)["code"] == "tenant_mismatch"
        # A record naming its own shop is taken, and `tenantId` is not stored in it.
        r = c.post(
            "/api/sync/products",
            headers={"x-tenant-id": "loja-b"},
            json={"localUpdates": [{"eventId": eid(), "record": other}]},
        )
        assert r.json()["results"][0]["status"] == "applied", r.text
        stored = c.get("/api/products/p", params={"tenantId": "loja-b"}).json()["record"]
        assert stored["name"] == "de outra loja" and "tenantId" not in stored
        assert snapshot(c) == before
        # The bootstrap refused above did not mark the default shop's table.
        r = c.post("/api/sync/bootstrap/orders", json={"machineId": "m", "localUpdates": []})
        assert r.json().get("reason") != "already_completed", r.text


def test_a_machine_key_acts_only_for_its_shop(server_factory, database_url):
    server = server_factory(database_url=database_url, env={"API_SECRET_KEY": MASTER})
    issued = keys_cli(server, "issue", "--machine", "caixa-a", "--tenant", "loja-a")
    assert issued.returncode == 0, issued.stderr
    key_a = issued.stdout.strip().splitlines()[-1]
    default_key = keys_cli(server, "issue", "--machine", "caixa-d").stdout.strip().splitlines()[-1]
    update = {"localUpdates": [{"eventId": eid(), "record": {"id": "p", "name": "P"}}]}
    with shop(server, "loja-a", key=key_a) as own, shop(server, "loja-b", key=key_a) as other:
        assert own.post("/api/sync/products", json=update).status_code == 200
        assert own.get("/api/products").json()["products"][0]["id"] == "p"
        r = other.get("/api/products")
        refused = assert_refused(r, 403)
        assert refused["code"] == "tenant_forbidden" and "loja-a" in refused["error"]
        r = other.post("/api/sync/products", json=update)
        assert assert_refused(r, 403)["code"] == "tenant_forbidden"
        # Without a shop named, the request is the default shop's: not this key's.
        r = httpx.get(f"{server.url}/api/products", headers={"x-api-key": key_a})
        assert assert_refused(r, 403)["code"] == "tenant_forbidden"
    # A key issued without a shop is the default shop's, as every key before shops.
    with shop(server, None, key=default_key) as d:
        assert d.get("/api/products").json()["products"] == []
        assert d.get("/api/products", headers={"x-tenant-id": "default"}).status_code == 200
        assert assert_refused(d.get("/api/products", params={"tenantId": "loja-a"}), 403)
    # API_SECRET_KEY acts for every shop.
    for tenant in ("loja-a", "loja-b", None):
        with shop(server, tenant, key=MASTER) as c:
            assert c.get("/api/products").status_code == 200
