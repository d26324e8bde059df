"""Operational checks against a running server over HTTP: the seed's `npm run sync:smoke` and
`npm run sync:reliability`.

Both print one line per check and return an exit code (0 only when every check passed).
They are safe on a production server: the reliability check works on products of its own
(`reliability-<uuid>`), never pushes under a machineId (so it registers no machine that
would hold tombstones back), and deletes what it created. Both act for one shop (`tenant`,
sent as `x-tenant-id`; the default shop when None).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from protocol import TABLE_NAMES

from .checkrun import Api, CheckFailed, Unreachable, expect, run_checks

TABLES = tuple(TABLE_NAMES)
# -- smoke ------------------------------------------------------------------------------


def smoke(
    url: str, api_key: str | None = None, *, tenant: str | None = None, timeout: float = 10.0
) -> int:
    """Health, reconcile summary, a reconcile POST, and that POST in the history."""
    api = Api(url, api_key, timeout, tenant)
    machine = f"smoke-{uuid.uuid4().hex[:12]}"
    state: dict[str, Any] = {}

    def health() -> str:
        try:
            _, body = api.call("GET", "/health")
        except CheckFailed as exc:
            if isinstance(exc, Unreachable):
                raise
            raise Unreachable(str(exc)) from None
        expect(body.get("status") == "ok", f"status is {body.get('status')!r}")
        return f"status ok, database {body.get('database', '?')}"

    def summary() -> str:
        _, body = api.call("GET", "/api/sync/reconcile")
        rows = body.get("serverSummary")
        expect(
            body.get("success") is True and isinstance(rows, list), "no serverSummary in the answer"
        )
        tables = {r.get("table") for r in rows if isinstance(r, dict)}
        missing = sorted(set(TABLES) - tables)
        expect(not missing, f"serverSummary lacks {', '.join(missing)}")
        state["summary"] = {r["table"]: r for r in rows}
        state["cursor"] = body.get("cursor")
        total = sum(int(r.get("count") or 0) for r in rows)
        return f"{len(rows)} tables, {total} live rows, cursor {body.get('cursor')}"

    def reconcile() -> str:
        # The server's own summary as the client's: it must agree with itself, or say "retry"
        # when a PDV wrote in between.
        client = {
            t: {k: v for k, v in s.items() if k in ("count", "latestUpdatedAt", "checksum")}
            for t, s in state.get("summary", {}).items()
            if t in TABLES
        } or {"products": {"count": 0}}
        body_in: dict[str, Any] = {"machineId": machine, "clientSummary": client}
        if isinstance(state.get("cursor"), int):
            body_in["cursor"] = state["cursor"]
        _, body = api.call("POST", "/api/sync/reconcile", json=body_in)
        expect(
            body.get("success") is True and "isConsistent" in body, "no isConsistent in the answer"
        )
        state["entry"] = body.get("id")
        if body.get("isConsistent"):
            return f"consistent (machineId {machine})"
        expect(
            body.get("status") == "retry" or "summary" not in state,
            f"the server disagrees with its own summary: {body.get('mismatches')}",
        )
        return f"status {body.get('status', 'inconsistent')} (the server moved meanwhile; machineId {machine})"

    def history() -> str:
        _, body = api.call(
            "GET", "/api/sync/reconcile/history", params={"machineId": machine, "limit": 5}
        )
        data = body.get("data")
        expect(body.get("success") is True and isinstance(data, list), "no data in the answer")
        found = [e for e in data if isinstance(e, dict) and e.get("machine_id") == machine]
        expect(bool(found), f"no entry for {machine}")
        if state.get("entry") is not None:
            expect(
                any(e.get("id") == state["entry"] for e in found), f"entry {state['entry']} missing"
            )
        return f"entry {found[0].get('id')} for {machine} at {found[0].get('created_at')}"

    try:
        return run_checks(
            url,
            api_key,
            [
                ("health", health),
                ("reconcile summary", summary),
                ("reconcile", reconcile),
                ("reconcile history", history),
            ],
        )
    finally:
        api.close()


# -- reliability --------------------------------------------------------------------------


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _parse_iso(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def reliability(
    url: str, api_key: str | None = None, *, tenant: str | None = None, timeout: float = 10.0
) -> int:
    """Idempotency, stale conflict and tombstone, on products of its own."""
    api = Api(url, api_key, timeout, tenant)
    run = uuid.uuid4().hex
    ids = {name: f"reliability-{run}-{name}" for name in ("idempotency", "stale", "tombstone")}
    created: set[str] = set()
    clock: dict[str, datetime] = {}
    cursors: dict[str, int] = {}  # "start": the head when the checks began

    def now() -> datetime:
        """The server's clock: edit times are compared there, whatever this machine's clock says."""
        return clock["server"] + (datetime.now(UTC) - clock["local"])

    def push(*records: dict[str, Any], cursor: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "localUpdates": [
                {"eventId": r.pop("_eventId", str(uuid.uuid4())), "record": r} for r in records
            ]
        }
        # A cursor keeps the answer to a page after it (without one, the seed's form answers
        # with every live product of the shop).
        body["cursor"] = cursor if cursor is not None else cursors.get("start", 0)
        _, reply = api.call("POST", "/api/sync/products", json=body)
        results = reply.get("results")
        expect(
            reply.get("success") is True
            and isinstance(results, list)
            and len(results) == len(records),
            "the push answer has no per-event results",
        )
        for r in records:
            created.add(r["id"])
        return reply

    def product(pid: str) -> dict[str, Any] | None:
        status, body = api.call("GET", f"/api/products/{pid}", ok=(200, 404))
        return body.get("record") if status == 200 else None

    def new_product(pid: str, label: str, **fields: Any) -> dict[str, Any]:
        return {
            "id": pid,
            "name": f"reliability check ({label})",
            "category": "pdvsync-reliability",
            "price": "1.00",
            **fields,
        }

    def start() -> str:
        _, body = api.call("GET", "/health")
        expect(body.get("status") == "ok", f"health status is {body.get('status')!r}")
        server = _parse_iso(body.get("timestamp"))
        clock["local"] = datetime.now(UTC)
        clock["server"] = server or clock["local"]
        _, body = api.call("GET", "/api/sync/reconcile")  # also proves the key is accepted
        cursors["start"] = body.get("cursor") if isinstance(body.get("cursor"), int) else 0
        skew = (clock["server"] - clock["local"]).total_seconds()
        return f"server reachable, cursor {cursors['start']}, clock offset {skew:+.1f}s"

    def idempotency() -> str:
        pid = ids["idempotency"]
        push(new_product(pid, "idempotency", stock_quantity=10))
        event = str(uuid.uuid4())
        first = push({"id": pid, "_op": "increment", "stock_quantity": -1, "_eventId": event})[
            "results"
        ][0]
        expect(
            first.get("status") == "applied" and not first.get("duplicate"),
            f"first delivery: {first.get('status')}",
        )
        before = product(pid)
        second = push({"id": pid, "_op": "increment", "stock_quantity": -1, "_eventId": event})[
            "results"
        ][0]
        expect(
            second.get("duplicate") is True,
            "second delivery of the same eventId not reported as duplicate",
        )
        after = product(pid)
        expect(
            after is not None and str(after.get("stock_quantity")) == "9",
            f"stock is {after and after.get('stock_quantity')} after 10 - 1 sent twice (expected 9)",
        )
        expect(after == before, "the duplicate changed the record")
        return "same eventId twice: applied once, then duplicate; stock 10 - 1 = 9"

    def stale() -> str:
        pid = ids["stale"]
        newer, older = now() - timedelta(minutes=1), now() - timedelta(hours=1)
        r = push(new_product(pid, "newer edit", updatedAt=_iso(newer)))["results"][0]
        expect(r.get("status") == "applied", f"newer edit: {r.get('status')}")
        reply = push(
            {"id": pid, "name": "reliability check (older edit)", "updatedAt": _iso(older)}
        )
        r = reply["results"][0]
        expect(
            r.get("status") == "skipped_stale",
            f"older edit: {r.get('status')} (expected skipped_stale)",
        )
        expect(
            any(
                c.get("id") == pid and c.get("resolution") == "skipped_stale"
                for c in reply.get("conflicts", [])
            ),
            "older edit missing from conflicts",
        )
        kept = product(pid)
        expect(
            kept is not None and kept.get("name") == "reliability check (newer edit)",
            f"name is {kept and kept.get('name')!r}: the newer value was not kept",
        )
        return "older edit skipped_stale, newer value kept"

    def tombstone() -> str:
        pid = ids["tombstone"]
        push(new_product(pid, "tombstone"))
        cursor = _cursor_before_delete(api, cursors["start"])
        r = push({"id": pid, "_op": "delete"})["results"][0]
        expect(r.get("status") == "applied", f"delete: {r.get('status')}")
        stones = _pull_record(api, cursor, pid)
        expect(stones is not None, "the delete is not in the pull")
        assert stones is not None
        expect(
            stones.get("_deleted") is True and set(stones) == {"id", "_deleted", "updatedAt"},
            f"pull shows {stones} (expected {{id, _deleted: true, updatedAt}})",
        )
        _, listing = api.call("GET", "/api/products")
        expect(
            all(p.get("id") != pid for p in listing.get("products", [])),
            "GET /api/products still lists it",
        )
        old = _iso(now() - timedelta(hours=1))
        r = push({"id": pid, "name": "reliability check (resurrected)", "updatedAt": old})[
            "results"
        ][0]
        expect(
            r.get("status") == "skipped_stale", f"older upsert after the delete: {r.get('status')}"
        )
        expect(product(pid) is None, "an older upsert resurrected the deleted record")
        return (
            "pull shows {id, _deleted: true, updatedAt}, gone from /api/products, not resurrected"
        )

    def cleanup() -> str | None:
        live = [pid for pid in sorted(created) if pid != ids["tombstone"]]
        if not live:
            return None
        if not clock:
            return None
        push(*({"id": pid, "_op": "delete"} for pid in live))
        left = [pid for pid in live if product(pid) is not None]
        expect(not left, f"still present: {', '.join(left)}")
        return f"deleted {len(live)} test product(s) (reliability-{run}-*)"

    def guarded_cleanup() -> str | None:
        try:
            return cleanup()
        except Unreachable as exc:
            raise CheckFailed(str(exc)) from None

    try:
        return run_checks(
            url,
            api_key,
            [
                ("server", start),
                ("idempotency", idempotency),
                ("stale conflict", stale),
                ("tombstone", tombstone),
            ],
            cleanup=guarded_cleanup,
        )
    finally:
        api.close()


def _cursor_before_delete(api: Api, since: int) -> int:
    """The head now, by paging the products pull to its end."""
    cursor = since
    while True:
        _, page = api.call("GET", "/api/sync/products", params={"since": cursor, "limit": 1000})
        cursor = int(page.get("cursor", cursor))
        if not page.get("hasMore"):
            return cursor


def _pull_record(api: Api, since: int, pid: str) -> dict[str, Any] | None:
    found = None
    cursor = since
    while True:
        _, page = api.call("GET", "/api/sync/products", params={"since": cursor, "limit": 1000})
        for rec in page.get("synced", []):
            if isinstance(rec, dict) and rec.get("id") == pid:
                found = rec
        cursor = int(page.get("cursor", cursor))
        if not page.get("hasMore"):
            return found
