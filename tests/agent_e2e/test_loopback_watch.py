"""`GET /api/sync/watch` on a REAL agent (a process, its SQLite store, real HTTP on
127.0.0.1): a front end waiting for a change is answered when the POS writes, when a change
made on another PDV arrives through a real server, or when its wait runs out; bad parameters
are 400 JSON; a token from before a restart answers at once; many wait at once; the loopback's
rules (Host, Origin, shop) hold; stopping the agent does not wait for a waiter.

Timing is only bounded generously ("answered, not timed out"): the machine is shared."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import pytest

from tests.agent_e2e.conftest import push, wait_until

LONG = 25_000  # ms: a waiter answered well before this was woken, not timed out


def read(agent, path: str, **params) -> httpx.Response:
    with agent.client(timeout=40) as c:
        return c.get(path, params=params)


def watch(agent, **params) -> httpx.Response:
    return read(agent, "/api/sync/watch", **params)


def token_of(agent) -> int:
    r = watch(agent)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["changed"] is False and body["tables"] == []
    return body["token"]


def waiting(pool: ThreadPoolExecutor, agent, after: int) -> Future[tuple[httpx.Response, float]]:
    """A waiter in the background: its answer and how long it took."""

    def call() -> tuple[httpx.Response, float]:
        t0 = time.monotonic()
        r = watch(agent, after=after, wait=LONG)
        return r, time.monotonic() - t0

    return pool.submit(call)


def woken(future: Future[tuple[httpx.Response, float]], before: int) -> dict:
    r, took = future.result(timeout=40)
    assert r.status_code == 200, r.text
    body = r.json()
    assert took < LONG / 1000 - 5, f"timed out rather than woken ({took:.1f} s)"
    assert body["success"] is True and body["changed"] is True and body["token"] > before
    return body


@pytest.fixture
def pool():
    with ThreadPoolExecutor(32) as p:
        yield p


def test_a_local_write_answers_a_waiter_which_then_reads_it(server, agent_factory, pool):
    agent = agent_factory(server, "caixa-1")
    before = token_of(agent)
    future = waiting(pool, agent, before)
    time.sleep(0.3)  # most likely parked by now; either way it must be answered
    assert not future.done()
    push(agent, "products", {"id": "pao", "name": "Pão"})
    body = woken(future, before)
    assert body["tables"] == ["products"]
    assert agent.get("/api/products/pao")["record"]["name"] == "Pão"
    # Waiting again with the new token: nothing new, so only the wait ends it.
    r = watch(agent, after=body["token"], wait=300)
    assert r.json() == {"success": True, "token": body["token"], "changed": False, "tables": []}


def test_a_change_pulled_from_another_pdv_answers_a_waiter(server, agent_factory, pool):
    a, b = agent_factory.many(server, ["caixa-1", "caixa-2"])
    wait_until(lambda: a.status()["online"] and b.status()["online"])
    before = token_of(b)
    future = waiting(pool, b, before)
    push(a, "supplies", {"id": "farinha", "name": "Farinha", "stock": 10})
    body = woken(future, before)
    assert body["tables"] == ["supplies"]
    assert b.get("/api/supplies/farinha")["record"]["name"] == "Farinha"


def test_a_record_read_with_after_waits_for_a_change_pulled_from_another_pdv(
    server, agent_factory, pool
):
    a, b = agent_factory.many(server, ["caixa-1", "caixa-2"])
    push(a, "products", {"id": "pao", "name": "Pão"})
    wait_until(lambda: read(b, "/api/products/pao").status_code == 200)
    plain = b.get("/api/products/pao")
    assert plain["record"]["name"] == "Pão"
    assert "token" not in plain  # the read without after/wait answers as it always did
    before = token_of(b)

    def waiting_read() -> tuple[httpx.Response, float]:
        t0 = time.monotonic()
        r = read(b, "/api/products/pao", after=before, wait=LONG)
        return r, time.monotonic() - t0

    future = pool.submit(waiting_read)
    time.sleep(0.3)
    assert not future.done()
    push(a, "products", {"id": "pao", "name": "Pão de queijo"})
    r, took = future.result(timeout=40)
    assert r.status_code == 200, r.text
    assert took < LONG / 1000 - 5, f"timed out rather than woken ({took:.1f} s)"
    body = r.json()
    assert body["record"]["name"] == "Pão de queijo" and body["token"] > before
    # The token answered was taken before the read: nothing newer, so the next read waits.
    r = read(b, "/api/products/pao", after=body["token"], wait=300)
    assert r.json()["token"] == body["token"] and r.json()["record"]["name"] == "Pão de queijo"
    for params, code in BAD:
        r = read(b, "/api/products/pao", **params)
        assert r.status_code == 400 and r.json()["code"] == code, (params, r.text)


def test_an_old_token_answers_at_once_and_nothing_new_times_out_with_the_same_token(
    server, agent_factory
):
    agent = agent_factory(server, "caixa-1")
    before = token_of(agent)
    push(agent, "orders", {"id": "o1", "total": "3.50"})
    r = watch(agent, after=before, wait=LONG)  # the change is already there: no wait
    body = r.json()
    assert r.elapsed.total_seconds() < 10 and body["changed"] is True
    assert body["tables"] == ["orders"]
    t0 = time.monotonic()
    r = watch(agent, after=body["token"], wait=400)
    assert time.monotonic() - t0 >= 0.35
    assert r.json() == {"success": True, "token": body["token"], "changed": False, "tables": []}
    # wait=0 only compares.
    r = watch(agent, after=body["token"], wait=0)
    assert r.json()["changed"] is False


BAD = [
    ({"after": "abc"}, "invalid_token"),
    ({"after": "-1"}, "invalid_token"),
    ({"after": "1.5"}, "invalid_token"),
    ({"after": "12345678901234567"}, "invalid_token"),  # 17 digits
    ({"after": ""}, "invalid_token"),
    ({"after": "1", "wait": "-5"}, "invalid_wait"),
    ({"after": "1", "wait": "30001"}, "invalid_wait"),
    ({"after": "1", "wait": "9" * 40}, "invalid_wait"),
    ({"after": "1", "wait": "soon"}, "invalid_wait"),
    ({"after": "1", "wait": "\uff11\uff10"}, "invalid_wait"),  # full-width digits
]


def test_bad_parameters_are_400_json(server, agent_factory):
    agent = agent_factory(server, "caixa-1")
    for params, code in BAD:
        r = watch(agent, **params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["success"] is False and r.json()["code"] == code, params


def test_a_token_from_before_a_restart_answers_at_once_with_tables_unknown(server, agent_factory):
    agent = agent_factory(server, "caixa-1")
    push(agent, "products", {"id": "pao", "name": "Pão"})
    old = token_of(agent)
    agent.restart()
    r = watch(agent, after=old, wait=LONG)
    assert r.elapsed.total_seconds() < 10
    body = r.json()
    assert body["changed"] is True and body["tables"] is None and body["token"] > old
    # A made-up token ahead of the agent's: the same.
    assert watch(agent, after=body["token"] + 1000, wait=LONG).json()["tables"] is None


def test_many_waiters_are_all_answered_by_one_change_and_reads_go_on(server, agent_factory, pool):
    agent = agent_factory(server, "caixa-1")
    before = token_of(agent)
    futures = [waiting(pool, agent, before) for _ in range(20)]
    time.sleep(0.5)
    # The waiters hold no thread of the agent: other reads and writes are served meanwhile.
    assert agent.status()["pending"] == 0
    assert all(not f.done() for f in futures)
    push(agent, "products", {"id": "bolo", "name": "Bolo"})
    answers = [woken(f, before) for f in futures]
    # All woken by the write: each answer names its table. (Not one token for all: the
    # engine's acknowledgement of the write's push moves the token again, and may land while
    # the 20 answers go out.)
    assert all("products" in (a["tables"] or []) for a in answers)


def test_the_loopback_rules_hold_for_the_watch(server, agent_factory):
    agent = agent_factory(server, "caixa-1")
    port = agent.url.rsplit(":", 1)[1]
    with agent.client() as c:
        r = c.get("/api/sync/watch", headers={"Host": f"evil.example:{port}"})
        assert r.status_code == 403 and r.json()["code"] == "forbidden_host"
        r = c.get("/api/sync/watch", headers={"Origin": "http://evil.example"})
        assert r.status_code == 403 and r.json()["code"] == "forbidden_origin"
        r = c.get("/api/sync/watch", headers={"x-tenant-id": "outra-loja"})
        assert r.status_code == 403 and r.json()["code"] == "tenant_mismatch"
        r = c.get("/api/sync/watch", params={"tenantId": "outra-loja"})
        assert r.status_code == 403 and r.json()["code"] == "tenant_mismatch"
        r = c.get("/api/sync/watch", headers={"Origin": "http://localhost:3000"})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_stopping_the_agent_answers_its_waiters_instead_of_waiting_for_them(
    server, agent_factory, pool
):
    agent = agent_factory(server, "caixa-1")
    before = token_of(agent)
    future = waiting(pool, agent, before)
    time.sleep(0.3)
    t0 = time.monotonic()
    agent.stop()
    stopped_in = time.monotonic() - t0
    r, _ = future.result(timeout=40)
    assert r.status_code == 503 and r.json()["code"] == "agent_stopping"
    # The loopback server's own wait for requests in flight is bounded at 10 s: well under.
    assert stopped_in < 8, stopped_in
