"""kill -9 of an agent loses no acknowledged write and duplicates none (invariants 1 and 2);
a duplicated push is applied once."""

from __future__ import annotations

import threading
import time
import uuid

import httpx

from .conftest import (
    converged,
    describe,
    differences,
    increment,
    new_id,
    push,
    sale,
    server_rows,
    wait_until,
)


def server_stats(server) -> dict:
    with server.client() as c:
        return c.get("/api/stats").json()


def test_kill_9_right_after_acknowledged_offline_writes(servers, server, agent_factory):
    a, b = agent_factory.many(server, ["caixa-1", "caixa-2"])
    stock = new_id("pao-")
    push(a, "products", {"id": stock, "name": "Pão", "stock_quantity": 100})
    wait_until(lambda: converged([a, b], server), message=lambda: differences([a, b], server))
    events_before = server_stats(server)["eventsProcessed"]

    server.kill()
    created = [new_id("novo-") for _ in range(5)]
    push(a, "products", *({"id": pid, "name": "Novo", "stock_quantity": 3} for pid in created))
    for _ in range(10):
        increment(a, stock, -1)
    oid = new_id("ord-")
    sale(a, oid, [(stock, 2), (created[0], 1)])
    written = (
        5 + 10 + 5
    )  # events acknowledged by the agent (the sale: order, 2 items, 2 decrements)
    a.kill()  # right after the acknowledgements: they exist only in its outbox

    a.restart()
    products = a.rows("products")
    assert products[stock]["stock_quantity"] == 100 - 10 - 2
    assert all(pid in products for pid in created)
    assert products[created[0]]["stock_quantity"] == 2
    assert oid in a.rows("orders")
    wait_until(lambda: a.status()["state"] == "offline", message=lambda: describe([a]))
    assert a.status()["pending"] == written

    server = servers.restart(server)
    wait_until(
        lambda: converged([a, b], server), timeout=30, message=lambda: differences([a, b], server)
    )
    # Booted while the server was down, it still goes live once the server is back.
    wait_until(lambda: a.status()["live"], message=lambda: describe([a]))
    products = server_rows(server, "products")
    assert len(products) == 1 + len(created)
    assert products[stock]["stock_quantity"] == 88
    assert products[created[0]]["stock_quantity"] == 2
    assert list(server_rows(server, "orders")) == [oid]
    assert len(server_rows(server, "order_items")) == 2
    assert server_stats(server)["eventsProcessed"] - events_before == written


def test_kill_9_during_a_stream_of_writes(server, agent_factory):
    """Each write is an atomic sale: a new order plus a stock decrement. Every sale that got
    a 200 is present once after the restart; the one in flight at the kill is either fully
    there or fully absent, and the POS's retry of it (same eventIds) makes it exactly once."""
    a, b = agent_factory.many(server, ["caixa-1", "caixa-2"])
    stock = new_id("pao-")
    push(a, "products", {"id": stock, "name": "Pão", "stock_quantity": 1000})
    wait_until(lambda: converged([a, b], server), message=lambda: differences([a, b], server))

    acked: list[str] = []
    in_flight: list[dict] = []
    stop = threading.Event()

    def stream() -> None:
        with httpx.Client(base_url=a.url, timeout=10) as c:
            for n in range(2000):  # bounded; the kill ends it much sooner
                if stop.is_set():
                    return
                oid = f"ord-{n:04d}-{uuid.uuid4().hex[:6]}"
                body = {
                    "events": [
                        {
                            "eventId": str(uuid.uuid4()),
                            "table": "orders",
                            "record": {"id": oid, "customerName": "C"},
                        },
                        {
                            "eventId": str(uuid.uuid4()),
                            "table": "products",
                            "record": {"id": stock, "_op": "increment", "stock_quantity": -1},
                        },
                    ]
                }
                in_flight[:] = [body]
                try:
                    r = c.post("/api/sync/batch", json=body)
                except httpx.HTTPError:
                    return  # the agent died with this request unanswered
                assert r.status_code == 200, r.text
                acked.append(oid)
                in_flight.clear()

    writer = threading.Thread(target=stream)
    writer.start()
    wait_until(lambda: len(acked) >= 40, timeout=30, step=0.01)
    a.kill()
    writer.join(15)
    assert not writer.is_alive()

    a.restart()
    local = a.rows("orders")
    assert set(acked) <= set(local)
    # The POS retries the unanswered request with the same eventIds: exactly once either way.
    for body in in_flight:
        r = a.post("/api/sync/batch", body)
        assert {x["status"] for x in r["results"]} <= {"accepted", "duplicate"}
        acked.append(body["events"][0]["record"]["id"])
    wait_until(
        lambda: converged([a, b], server), timeout=30, message=lambda: differences([a, b], server)
    )
    orders = server_rows(server, "orders")
    assert sorted(orders) == sorted(acked)
    assert server_rows(server, "products")[stock]["stock_quantity"] == 1000 - len(acked)
    assert b.rows("products")[stock]["stock_quantity"] == 1000 - len(acked)


def test_duplicated_push_is_applied_once(server, agent_factory):
    a, b = agent_factory.many(server, ["caixa-1", "caixa-2"])
    stock = new_id("pao-")
    push(a, "products", {"id": stock, "name": "Pão", "stock_quantity": 100})
    wait_until(lambda: converged([a, b], server), message=lambda: differences([a, b], server))

    twice = str(uuid.uuid4())
    assert increment(a, stock, -5, twice)["results"][0]["status"] == "accepted"
    assert increment(a, stock, -5, twice)["results"][0]["status"] == "duplicate"
    assert a.rows("products")[stock]["stock_quantity"] == 95
    wait_until(lambda: converged([a, b], server), message=lambda: differences([a, b], server))
    # The same event handed to another agent too (e.g. a POS that failed over): once.
    increment(b, stock, -5, twice)
    thrice = str(uuid.uuid4())
    a.post("/api/sync/now")
    b.post("/api/sync/now")
    # And one event given to both agents while the first push of neither has happened yet.
    increment(a, stock, -1, thrice)
    increment(b, stock, -1, thrice)
    wait_until(lambda: converged([a, b], server), message=lambda: differences([a, b], server))
    assert server_rows(server, "products")[stock]["stock_quantity"] == 94
    for agent in (a, b):
        assert agent.rows("products")[stock]["stock_quantity"] == 94
    time.sleep(0.5)  # nothing more arrives later
    assert server_rows(server, "products")[stock]["stock_quantity"] == 94
