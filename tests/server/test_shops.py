"""Several shops on one database (tenants), at the service: nothing of one shop is seen,
counted, replayed, collected or announced in another. Both backends."""

from __future__ import annotations

import threading
import time

import pytest

from protocol import TABLES
from protocol.tenancy import DEFAULT_TENANT
from server import auth as server_auth
from server.auth import KeyStore, Principal
from server.context import ServiceContext
from tests.server.conftest import live_by_id, pull_all, push, push_batch, push_one


@pytest.fixture
def shops(service):
    """The default shop's service and shop "b"'s, over one database."""
    return service, service.scoped("b")


def test_a_scoped_service_is_the_same_facade_bound_to_one_shop(service):
    b = service.scoped("b")
    assert service.tenant == DEFAULT_TENANT and b.tenant == "b"
    assert service.scoped(DEFAULT_TENANT) is service and b.scoped("b") is b
    # The pool, the callback and the caches are shared; only the shop differs.
    assert b.db is service.db and b.m is service.m
    assert b.ctx.summary_cache is service.ctx.summary_cache
    assert b.ctx.pulls_seen is service.ctx.pulls_seen and b.ctx.clock is service.ctx.clock


def test_rows_sequences_and_pulls_never_cross_shops(shops):
    a, b = shops
    push(a, "products", {"id": "p1", "name": "Pão"}, {"id": "p2", "name": "Bolo"})
    push_one(b, "products", {"id": "p1", "name": "Pão de queijo"})  # the same id, another shop
    push_batch(b, ("orders", {"id": "o1", "total": "3.00"}), ("order_items", {"id": "i1"}))
    # Each shop numbers its own changes from 1.
    assert a.head() == 2 and b.head() == 3
    assert {r["id"]: r["name"] for r in a.list_live("products")} == {"p1": "Pão", "p2": "Bolo"}
    assert {r["id"]: r["name"] for r in b.list_live("products")} == {"p1": "Pão de queijo"}
    assert a.get_live("orders", "o1") is None and b.get_live("orders", "o1") is not None
    assert [r["id"] for r in pull_all(b, "products")[0]] == ["p1"]
    assert [(c["table"], c["seq"]) for c in b.changes(0)["changes"]] == [
        ("products", 1),
        ("orders", 2),
        ("order_items", 3),
    ]
    assert [c["record"]["name"] for c in a.changes(0)["changes"]] == ["Pão", "Bolo"]
    # A shop that never wrote has nothing, at head 0.
    c = a.scoped("c")
    assert c.head() == 0 and c.changes(0)["changes"] == [] and c.list_live("products") == []
    for t in TABLES:
        assert c.fetch_since(t, None) == []
    # A cursor of one shop means nothing in another: ahead of shop c's head.
    with pytest.raises(Exception, match="ahead of this server"):
        c.check_cursor(2)


def test_the_same_event_id_in_two_shops_is_two_events(shops):
    a, b = shops
    first = push_one(a, "products", {"id": "p1", "name": "A"}, event_ids=["ev-1"])
    other = push_one(b, "products", {"id": "p1", "name": "B"}, event_ids=["ev-1"])
    assert first["status"] == other["status"] == "applied" and "duplicate" not in other
    again = push_one(b, "products", {"id": "p1", "name": "B2"}, event_ids=["ev-1"])
    assert again["duplicate"] is True
    assert live_by_id(a, "products")["p1"]["name"] == "A"
    assert live_by_id(b, "products")["p1"]["name"] == "B"


def test_a_record_naming_another_shop_refuses_the_whole_push(shops):
    a, b = shops
    with pytest.raises(Exception) as info:
        push(a, "products", {"id": "ok", "name": "x"}, {"id": "p", "tenantId": "b"})
    assert getattr(info.value, "code", None) == "tenant_mismatch"
    assert getattr(info.value, "status", None) == 400
    assert a.head() == 0 and b.head() == 0
    # Naming its own shop is fine (and the key is not stored as a field).
    push_one(b, "products", {"id": "p", "name": "x", "tenantId": "b"})
    assert "tenantId" not in live_by_id(b, "products")["p"]


def test_summaries_reconcile_and_history_are_per_shop(shops):
    a, b = shops
    push(a, "products", {"id": "p1", "name": "A"}, {"id": "p2", "name": "B"})
    push_one(b, "products", {"id": "p1", "name": "A"})
    sa, sb = ({s["table"]: s for s in svc.summary().tables}["products"] for svc in (a, b))
    assert (sa["count"], sb["count"]) == (2, 1) and sa["checksum"] != sb["checksum"]
    summary_b = {
        t: {k: s[k] for k in ("count", "latestUpdatedAt", "checksum")}
        for t, s in ((s["table"], s) for s in b.summary().tables)
    }
    assert b.reconcile("caixa-b", summary_b, b.head())["isConsistent"] is True
    # Shop b's summary is not shop a's truth.
    result = a.reconcile("caixa-a", summary_b, a.head())
    assert [(m["table"], m["reason"]) for m in result["mismatches"]] == [
        ("products", "count_mismatch")
    ]
    assert [h["machine_id"] for h in a.history()] == ["caixa-a"]
    assert [h["machine_id"] for h in b.history()] == ["caixa-b"]
    assert a.scoped("c").history() == []


def test_stats_and_machines_are_per_shop(shops):
    a, b = shops
    push_one(a, "products", {"id": "p1"}, machine="caixa-1")
    push_one(b, "products", {"id": "p1"}, machine="caixa-1")  # the same name in shop b
    push_one(b, "products", {"id": "p2"}, machine="caixa-2")
    b.pull("products", 0, machine_id="caixa-2")
    sa, sb = a.stats(), b.stats()
    assert (sa["cursor"], sa["eventsProcessed"]) == (1, 1)
    assert (sb["cursor"], sb["eventsProcessed"]) == (2, 2)
    assert [m["machineId"] for m in sa["machines"]] == ["caixa-1"]
    assert [(m["machineId"], m["eventsPushed"]) for m in sb["machines"]] == [
        ("caixa-1", 1),
        ("caixa-2", 1),
    ]
    assert a.tenants() == b.tenants() == ["b", DEFAULT_TENANT]


def test_gc_collects_each_shop_by_its_own_machines_cursors(shops):
    a, b = shops
    for svc in (a, b):
        push(svc, "products", {"id": "x", "name": "x"}, {"id": "y"}, machine=None)  # 1, 2
        push_one(svc, "products", {"id": "x", "_op": "delete"}, machine=None)  # 3
    a.pull("products", 3, machine_id="caixa-a")  # shop a's only machine is past it
    b.pull("products", 1, machine_id="caixa-b")  # shop b's is not
    collected = b.collect_garbage()  # from any shop's service: every shop
    assert collected["shops"] == {
        DEFAULT_TENANT: {"tombstones": 1, "horizon": 3},
        "b": {"tombstones": 0, "horizon": 0},
    }
    assert collected["tombstones"] == 1 and collected["horizon"] == 0  # b's own horizon
    assert [r["id"] for r in pull_all(a, "products")[0]] == ["y"]
    assert sorted(r["id"] for r in pull_all(b, "products")[0]) == ["x", "y"]
    # Shop a's horizon does not refuse shop b's cursors.
    b.check_cursor(1, "caixa-b")
    with pytest.raises(Exception, match="purged tombstones"):
        a.check_cursor(1)


def test_bootstrap_state_is_per_shop(shops):
    from protocol.messages import parse_bootstrap

    a, b = shops
    body = {"machineId": "front", "localUpdates": [{"id": "p1", "name": "Pão"}]}
    assert a.bootstrap("products", "front", parse_bootstrap("products", body).items)["bootstrapped"]
    again = a.bootstrap("products", "front", parse_bootstrap("products", body).items)
    assert again == {"bootstrapped": False, "reason": "already_completed"}
    other = b.bootstrap("products", "front", parse_bootstrap("products", body).items)
    assert other["bootstrapped"] is True and other["processed"] == 1


def test_diagnostics_are_per_shop(shops):
    a, b = shops
    push_one(a, "products", {"id": "p1", "name": "Pão"})
    assert a.diagnostics()["products"]["total"] == 1
    assert b.diagnostics()["products"]["total"] == 0


def test_live_notices_name_their_shop(service_factory, database_url, clock):
    if database_url.startswith("postgresql"):
        pytest.skip(
            "PostgreSQL commits announce through NOTIFY: test_notify_payloads_name_their_shop"
        )
    calls: list[tuple] = []
    svc = service_factory(database_url, clock)
    svc.ctx.on_commit = lambda *args, **kw: calls.append((args, kw))
    push_one(svc, "products", {"id": "p1", "name": "Pão"})
    push_one(svc.scoped("b"), "orders", {"id": "o1", "total": "1.00"})
    assert [(args[0], args[1], args[2], kw["since"]) for args, kw in calls] == [
        (DEFAULT_TENANT, ["products"], 1, 0),
        ("b", ["orders"], 1, 0),
    ]
    assert calls[1][1]["changes"][0]["record"]["id"] == "o1"


@pytest.mark.postgres
def test_notify_payloads_name_their_shop(pg_url, service_factory):
    import json

    import psycopg

    from server.db import parse_database_url
    from server.push import NOTIFY_CHANNEL

    svc = service_factory(pg_url)
    _, conninfo = parse_database_url(pg_url, None)  # type: ignore[arg-type]
    conninfo["dbname"] = conninfo.pop("database")
    with psycopg.connect(autocommit=True, **conninfo) as conn:
        conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        push_one(svc.scoped("b"), "products", {"id": "p1"})
        push_one(svc, "orders", {"id": "o1"})
        payloads = [json.loads(n.payload) for n in conn.notifies(timeout=5, stop_after=2)]
    assert payloads == [
        {"tenant": "b", "tables": ["products"], "cursor": 1},
        {"tenant": DEFAULT_TENANT, "tables": ["orders"], "cursor": 1},
    ]


@pytest.mark.postgres
def test_two_shops_writers_never_wait_for_each_other(pg_url, service_factory):
    """A shop's writer lock is its own: while shop a's transaction holds a's lock, shop b
    commits; a second writer of shop a waits."""
    svc = service_factory(pg_url)
    holder = service_factory(pg_url)
    held, release = threading.Event(), threading.Event()

    def hold_a() -> None:
        ctx: ServiceContext = holder.ctx
        with ctx.connection(), ctx.write_transaction():
            held.set()
            release.wait(30)

    thread = threading.Thread(target=hold_a)
    thread.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        push_one(svc.scoped("b"), "products", {"id": "p1"})
        assert time.monotonic() - started < 5
        blocked = threading.Thread(target=push_one, args=(svc, "products", {"id": "p1"}))
        blocked.start()
        blocked.join(1.0)
        assert blocked.is_alive()  # shop a's second writer waits for the first
    finally:
        release.set()
        thread.join(10)
    blocked.join(10)
    assert svc.head() == 1 and svc.scoped("b").head() == 1


def test_keys_belong_to_one_shop(service):
    keys = KeyStore(service.m, "the-shared-secret")
    _, key_a = keys.issue("caixa-1")
    _, key_b = keys.issue("caixa-1", tenant="b")
    assert keys.verify(key_a) == keys.verify(key_a) and keys.verify(key_a).tenant == DEFAULT_TENANT
    pb = keys.verify(key_b)
    assert pb is not None and (pb.kind, pb.machine_id, pb.tenant) == ("machine", "caixa-1", "b")
    master = keys.verify("the-shared-secret")
    assert master is not None and master.kind == "master" and master.tenant is None  # all shops
    assert [(k["machineId"], k["tenantId"]) for k in keys.list()] == [
        ("caixa-1", DEFAULT_TENANT),
        ("caixa-1", "b"),
    ]
    assert service.tenants() == ["b", DEFAULT_TENANT]


def test_keys_checked_without_the_database_while_cached(service, monkeypatch):
    """The key check runs on the event loop when it reads nothing: the shared key, or the
    active keys read less than the cache's time ago; otherwise it says it must read."""
    keys = KeyStore(service.m, "the-shared-secret")
    _, key = keys.issue("caixa-1")
    assert keys.verify_cached("the-shared-secret") == (True, Principal("master"))
    assert keys.verify_cached(key) == (False, None)  # issuing emptied the cache
    assert keys.verify(key) == Principal("machine", "caixa-1", DEFAULT_TENANT)
    assert keys.verify_cached(key) == (True, Principal("machine", "caixa-1", DEFAULT_TENANT))
    assert keys.verify_cached("not-a-key") == (True, None)
    assert keys.verify_cached(None) == (True, None)
    monkeypatch.setattr(server_auth, "_CACHE_SECONDS", 0.0)
    assert keys.verify_cached(key) == (False, None)
