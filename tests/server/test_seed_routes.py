"""The seed's own client on the wire, against a real server process (both backends): its
reads by `lastSync`, its push without a cursor, the bootstrap, the diagnostics and the
reconcile words its automatic bootstrap keys on.

Written from the behaviour the seed's client has (its code is never copied): it sends
`x-tenant-id` when configured, reads `{success, data, count}`, removes the ids of records
marked `_deleted`, and sets its `lastSync` from ITS OWN clock after each call.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.server.test_bad_input import assert_refused


def eid() -> str:
    return str(uuid.uuid4())


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def clock(offset: timedelta = timedelta(0)) -> str:
    """The client's own clock, possibly off by `offset`."""
    return iso(datetime.now(UTC) + offset)


def seed_sync(c: httpx.Client, table: str, *records: dict, last_sync: str | None = None) -> dict:
    """The seed's `sync(table, localUpdates)`: no cursor, `{eventId, record}` updates."""
    body: dict = {
        "table": table,
        "machineId": "frente-1",
        "localUpdates": [{"eventId": eid(), "record": r} for r in records],
    }
    if last_sync is not None:
        body["lastSync"] = last_sync
    r = c.post(f"/api/sync/{table}", json=body)
    assert r.status_code == 200, r.text
    reply = r.json()
    assert reply["success"] is True and isinstance(reply["synced"], list)
    return reply


def seed_fetch(c: httpx.Client, table: str, last_sync: str | None = None) -> list[dict]:
    """The seed's `fetch(table)`: `{success, data, count}`."""
    params = {"lastSync": last_sync} if last_sync is not None else {}
    r = c.get(f"/api/sync/{table}", params=params)
    assert r.status_code == 200, r.text
    reply = r.json()
    assert reply["success"] is True
    assert set(reply) == {"success", "data", "count", "timestamp"}
    assert reply["count"] == len(reply["data"])
    return reply["data"]


def materialise(cache: dict[str, dict], records: list[dict]) -> dict[str, dict]:
    """What the seed's client does with `data`/`synced`: replace by id, drop `_deleted` ids."""
    for record in records:
        if record.get("_deleted"):
            cache.pop(record["id"], None)
        else:
            cache[record["id"]] = record
    return cache


PRODUCT = {
    "name": "Bolo de cenoura",
    "price": "32.90",
    "costPrice": "12.40",
    "category": "Bolos",
    "stock_quantity": 4,
    "isActive": True,
    "imageUrlId": "bolo-cenoura",  # a field the server does not declare: kept
}


def test_fetch_without_last_sync_reads_every_live_row_and_no_tombstone(live_server):
    with live_server.client() as c:
        assert seed_fetch(c, "products") == []  # not 0 rows because of the answer's shape
        seed_sync(c, "products", *({"id": f"p{i}", **PRODUCT} for i in range(3)))
        seed_sync(c, "products", {"id": "p2", "_op": "delete"})
        data = seed_fetch(c, "products")
        assert sorted(r["id"] for r in data) == ["p0", "p1"]
        p0 = next(r for r in data if r["id"] == "p0")
        assert p0["price"] == 32.9 and p0["costPrice"] == 12.4 and p0["isActive"] is True
        assert p0["imageUrlId"] == "bolo-cenoura" and p0["updatedAt"].endswith("Z")
        assert not any(r.get("_deleted") for r in data)


def test_fetch_with_last_sync_reads_changes_and_deletions_by_the_servers_change_time(
    live_server,
):
    with live_server.client() as c:
        seed_sync(c, "products", {"id": "keep", **PRODUCT}, {"id": "gone", **PRODUCT})
        cache = materialise({}, seed_fetch(c, "products"))
        last_sync = clock()
        # An offline PDV's old edit arrives now: its edit time is a day old, its change
        # time is now, so it is seen.
        yesterday = clock(-timedelta(days=1))
        seed_sync(c, "products", {"id": "late", **PRODUCT, "updatedAt": yesterday})
        seed_sync(c, "products", {"id": "gone", "_op": "delete"})
        data = seed_fetch(c, "products", last_sync)
        tombstone = next(r for r in data if r["id"] == "gone")
        assert tombstone == {"id": "gone", "_deleted": True, "updatedAt": tombstone["updatedAt"]}
        late = next(r for r in data if r["id"] == "late")
        assert late["updatedAt"] == yesterday
        assert sorted(materialise(cache, data)) == ["keep", "late"]
        # Epoch milliseconds are taken too; a lastSync far ahead of every change reads none.
        ms = int((datetime.now(UTC) + timedelta(hours=3)).timestamp() * 1000)
        assert seed_fetch(c, "products", str(ms)) == []


@pytest.mark.parametrize("offset_hours", [-1, 1])
def test_a_client_clock_an_hour_off_misses_no_change(live_server, offset_hours):
    offset = timedelta(hours=offset_hours)
    with live_server.client() as c:
        cache = materialise({}, seed_fetch(c, "supplies"))
        last_sync = clock(offset)
        for round_ in range(3):
            seed_sync(c, "supplies", {"id": f"s{round_}", "name": f"Insumo {round_}", "stock": 1})
            if round_:
                seed_sync(c, "supplies", {"id": f"s{round_ - 1}", "_op": "delete"})
            materialise(cache, seed_fetch(c, "supplies", last_sync))
            last_sync = clock(offset)  # the client's own (wrong) clock, after each call
            assert sorted(cache) == [f"s{round_}"], (round_, sorted(cache))


def test_bad_last_sync_is_refused(live_server):
    with live_server.client() as c:
        for bad in ("ontem", "2024-13-45T00:00:00Z", "true"):
            body = assert_refused(c.get("/api/sync/products", params={"lastSync": bad}), 400)
            assert body["code"] == "invalid_timestamp"
            body = assert_refused(
                c.post(
                    "/api/sync/products",
                    json={"lastSync": bad, "machineId": "m", "localUpdates": []},
                ),
                400,
            )
            assert body["code"] == "invalid_timestamp"
        assert seed_fetch(c, "products") == []


def test_push_without_a_cursor_answers_with_the_rows_by_the_same_rule(live_server):
    with live_server.client() as c:
        first = seed_sync(c, "orders", {"id": "o1", "total": "10.00", "paymentMethod": "pix"})
        assert [r["id"] for r in first["synced"]] == ["o1"]  # no lastSync: every live row
        assert first["results"][0]["status"] == "applied" and first["conflicts"] == []
        assert isinstance(first["cursor"], int) and first["timestamp"].endswith("Z")
        last_sync = clock()
        second = seed_sync(
            c,
            "orders",
            {"id": "o2", "total": "5.50", "orderNumber": "0002", "cashRegisterId": "cx-1"},
            {"id": "o1", "_op": "delete"},
            last_sync=last_sync,
        )
        by_id = {r["id"]: r for r in second["synced"]}
        assert by_id["o1"] == {"id": "o1", "_deleted": True, "updatedAt": by_id["o1"]["updatedAt"]}
        assert by_id["o2"]["orderNumber"] == "0002" and by_id["o2"]["cashRegisterId"] == "cx-1"
        assert second["cursor"] > first["cursor"]
        # A stale edit is a conflict, as before.
        stale = seed_sync(c, "orders", {"id": "o2", "total": "1", "updatedAt": "2001-01-01"})
        (conflict,) = stale["conflicts"]
        assert conflict["id"] == "o2" and conflict["resolution"] == "skipped_stale"
        # The body's table must be the path's.
        body = assert_refused(
            c.post("/api/sync/orders", json={"table": "products", "localUpdates": []}), 400
        )
        assert body["code"] == "table_mismatch"


def test_the_pull_by_cursor_is_unchanged(live_server):
    with live_server.client() as c:
        seed_sync(c, "products", {"id": "a", "name": "A"}, {"id": "b", "name": "B"})
        r = c.get("/api/sync/products", params={"since": 0, "limit": 1})
        page = r.json()
        assert set(page) == {"success", "synced", "cursor", "hasMore", "timestamp"}
        assert [x["id"] for x in page["synced"]] == ["a"] and page["hasMore"] is True
        r = c.post(
            "/api/sync/products",
            json={"cursor": page["cursor"], "localUpdates": [], "machineId": "caixa-1"},
        )
        assert [x["id"] for x in r.json()["synced"]] == ["b"]


# -- bootstrap ---------------------------------------------------------------------------------


def bootstrap(c: httpx.Client, table: str, machine: str, updates: list) -> dict:
    r = c.post(f"/api/sync/bootstrap/{table}", json={"machineId": machine, "localUpdates": updates})
    assert r.status_code == 200, r.text
    reply = r.json()
    assert reply["success"] is True and reply["timestamp"].endswith("Z")
    return reply


def test_bootstrap_fills_an_empty_table_once(live_server):
    sheets = [
        {
            "id": f"ft-{i}",
            "name": f"Receita {i}",
            "components": [{"supplyId": "farinha", "quantity": 0.5}],
            "totalCost": "7.10",
            "isActive": True,
            "eventId": eid(),  # the seed's bare record, with its own eventId
        }
        for i in range(3)
    ]
    with live_server.client() as c:
        done = bootstrap(
            c,
            "technical_sheets",
            "frente-1",
            sheets[:2] + [{"eventId": eid(), "record": sheets[2]}],
        )
        assert done["bootstrapped"] is True and done["processed"] == 3 and done["conflicts"] == []
        data = {r["id"]: r for r in seed_fetch(c, "technical_sheets")}
        assert sorted(data) == ["ft-0", "ft-1", "ft-2"]
        assert data["ft-0"]["components"] == [{"supplyId": "farinha", "quantity": 0.5}]
        again = bootstrap(c, "technical_sheets", "frente-2", sheets)
        assert again == {
            "success": True,
            "bootstrapped": False,
            "reason": "already_completed",
            "timestamp": again["timestamp"],
        }

        # A table that has rows is not filled: it is marked completed.
        seed_sync(c, "supplies", {"id": "sal", "name": "Sal"})
        busy = bootstrap(c, "supplies", "frente-1", [{"id": "x", "name": "X", "eventId": eid()}])
        assert busy["bootstrapped"] is False and busy["reason"] == "server_not_empty"
        assert [r["id"] for r in seed_fetch(c, "supplies")] == ["sal"]
        assert bootstrap(c, "supplies", "frente-1", [])["reason"] == "already_completed"

        # Nothing to send: nothing bootstrapped, but the table is done.
        empty = bootstrap(c, "orders", "frente-1", [])
        assert empty["bootstrapped"] is False and empty["processed"] == 0


def test_bootstrap_input_is_validated(live_server):
    with live_server.client() as c:
        assert_refused(c.post("/api/sync/bootstrap/products", json={"localUpdates": []}), 422)
        assert_refused(c.post("/api/sync/bootstrap/nope", json={"machineId": "m"}), 404)
        assert_refused(
            c.post("/api/sync/bootstrap/products", json={"machineId": "m", "localUpdates": {}}),
            422,
        )
        assert_refused(c.post("/api/sync/bootstrap/products", content=b"{"), 400)
        # A refused bootstrap left the table open for a good one.
        ok = bootstrap(c, "products", "m", [{"id": "p", "name": "P", "eventId": eid()}])
        assert ok["bootstrapped"] is True


# -- diagnostics and reconcile -------------------------------------------------------------------


def test_diagnostics_count_rows_and_missing_expected_fields(live_server):
    with live_server.client() as c:
        seed_sync(
            c,
            "products",
            {"id": "full", **PRODUCT},
            {"id": "bare", "name": ""},
            {"id": "deleted", "name": "x"},
        )
        seed_sync(c, "products", {"id": "deleted", "_op": "delete"})
        r = c.get("/api/sync/diagnostics")
        assert r.status_code == 200, r.text
        reply = r.json()
        assert reply["success"] is True and reply["tenantId"] == "default"
        assert set(reply["diagnostics"]) == {
            "products",
            "orders",
            "order_items",
            "supplies",
            "technical_sheets",
        }
        products = reply["diagnostics"]["products"]
        assert products["total"] == 2 and products["latestUpdatedAt"].endswith("Z")
        missing = products["missingByField"]
        assert set(missing) == {
            "name",
            "price",
            "costPrice",
            "category",
            "stock_quantity",
            "isActive",
        }
        # `bare`: an empty name and no price or category; costPrice, stock and isActive
        # have their defaults.
        assert missing["name"] == 1 and missing["price"] == 1 and missing["category"] == 1
        assert missing["costPrice"] == 0 and missing["isActive"] == 0
        assert reply["diagnostics"]["orders"] == {
            "total": 0,
            "latestUpdatedAt": None,
            "missingByField": {
                f: 0 for f in ("orderNumber", "customerName", "paymentMethod", "total", "status")
            },
        }


def test_reconcile_speaks_the_seeds_words(live_server):
    with live_server.client() as c:
        seed_sync(c, "products", {"id": "p1", "name": "A", "updatedAt": "2024-05-01T10:00:00Z"})
        server = {s["table"]: s for s in c.get("/api/sync/reconcile").json()["serverSummary"]}
        latest = server["products"]["latestUpdatedAt"]

        def reconcile(summary: dict) -> dict:
            r = c.post(
                "/api/sync/reconcile", json={"machineId": "frente-1", "clientSummary": summary}
            )
            assert r.status_code == 200, r.text
            reply = r.json()
            assert reply["success"] is True and reply["tenantId"] == "default"
            return {m["table"]: m for m in reply["mismatches"]}

        everything = {t: {"count": 0, "latestUpdatedAt": None} for t in server}
        assert reconcile({**everything, "products": {"count": 1, "latestUpdatedAt": latest}}) == {}
        # The seed's front end summarises only some tables: the others are missing.
        missing = reconcile({"products": {"count": 1, "latestUpdatedAt": latest}})
        assert set(missing) == set(server) - {"products"}
        assert all(
            m["reason"] == "missing_client_table" and m["client"] is None for m in missing.values()
        )
        words = {
            "count_mismatch": {"count": 2, "latestUpdatedAt": latest},
            "latest_updatedAt_mismatch": {"count": 1, "latestUpdatedAt": "2024-05-02T00:00:00Z"},
            "count_and_latest_updatedAt_mismatch": {"count": 0, "latestUpdatedAt": None},
            "checksum_mismatch": {
                "count": 1,
                "latestUpdatedAt": latest,
                "checksum": "0" * 16,
            },
        }
        for reason, summary in words.items():
            mismatch = reconcile({**everything, "products": summary})["products"]
            assert mismatch["reason"] == reason, (reason, mismatch)
            assert mismatch["client"]["count"] == summary["count"]
        # What the seed's client sends: no count (read as 0), no checksum.
        mismatch = reconcile({**everything, "products": {"latestUpdatedAt": latest}})["products"]
        assert mismatch["reason"] == "count_mismatch" and mismatch["client"]["count"] == 0
        # The checksum differing beside another reason keeps the original's word.
        both = reconcile(
            {
                **everything,
                "products": {"count": 3, "latestUpdatedAt": latest, "checksum": "1" * 16},
            }
        )
        assert both["products"]["reason"] == "count_mismatch"
        assert both["products"]["checksumMismatch"] is True


def test_a_bootstrap_in_progress_locks_out_other_machines_until_its_lease_ends(
    live_server, database_url, tmp_path
):
    """Another machine's bootstrap in progress (its state row, as a crashed or slow front
    end leaves it) answers locked_by_other_machine; once its 5-minute lease has passed, the
    table is taken over."""
    from protocol import now_ms
    from server.db import connect_database

    db, _ = connect_database(database_url, tmp_path)
    update = "UPDATE bootstrap_state SET started_at = %s WHERE table_name = 'products'"
    if database_url.startswith("sqlite"):
        update = update.replace("%s", "?")
    try:
        with db.connection_context():
            db.execute_sql(
                "INSERT INTO bootstrap_state (tenant_id, table_name, status, machine_id, "
                "started_at, records_count) VALUES ('default', 'products', 'in_progress', "
                f"'frente-1', {now_ms()}, 0)"
            )
        with live_server.client() as c:
            record = {"id": "p", "name": "P", "eventId": eid()}
            locked = bootstrap(c, "products", "frente-2", [record])
            assert locked["bootstrapped"] is False
            assert locked["reason"] == "locked_by_other_machine"
            assert seed_fetch(c, "products") == []
            with db.connection_context():  # the lease ran out: frente-1 crashed
                db.execute_sql(update, (now_ms() - 6 * 60_000,))
            taken = bootstrap(c, "products", "frente-2", [record])
            assert taken["bootstrapped"] is True and taken["processed"] == 1
            assert [r["id"] for r in seed_fetch(c, "products")] == ["p"]
    finally:
        db.close_all()
