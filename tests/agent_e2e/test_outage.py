"""Outage: the server dies, the agents keep selling, and everything converges when it is back."""

from __future__ import annotations

import threading
import time

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

SALES_PER_AGENT = 20


def test_agents_keep_working_offline_and_converge_after_restart(
    servers, database_url, agent_factory
):
    server = servers.start(database_url)
    agents = agent_factory.many(server, ["caixa-1", "caixa-2", "caixa-3"])
    a1, a2, a3 = agents
    stock = new_id("pao-")
    renamed = [new_id(f"ren{n}-") for n in range(3)]
    contested = new_id("bolo-")
    doomed = new_id("velho-")
    push(
        a1,
        "products",
        {"id": stock, "name": "Pão francês", "stock_quantity": 100},
        *({"id": r, "name": "Nome antigo"} for r in renamed),
        {"id": contested, "name": "Bolo"},
        {"id": doomed, "name": "Produto descontinuado"},
    )
    wait_until(lambda: converged(agents, server), message=lambda: differences(agents, server))

    server.kill()
    # The next contact fails: every agent says it is offline, with the badge's words.
    for a in agents:
        a.post("/api/sync/now")
    wait_until(
        lambda: all(a.status()["state"] == "offline" for a in agents),
        message=lambda: describe(agents),
    )
    for a in agents:
        s = a.status()
        assert s["label"] == "Offline/Erro"
        assert s["online"] is False and s["lastError"]
    # A reconcile cannot run offline: it says so, and is no divergence.
    result = a1.post("/api/sync/reconcile", {"strategy": "none"})
    assert result["status"] == "error" and result["isConsistent"] is False and result["error"]
    assert a1.status()["state"] == "offline"

    # Concurrent offline sales of the same product on every agent.
    errors: list[BaseException] = []

    def sell(agent) -> None:
        try:
            for n in range(SALES_PER_AGENT):
                r = increment(agent, stock, -1)
                assert r["results"][0]["status"] == "accepted", r
                if agent is a2 and n == SALES_PER_AGENT // 2:
                    # A rename in the middle of the sales: a patch, it touches no counter.
                    push(agent, "products", {"id": stock, "name": "Pão francês (promoção)"})
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=sell, args=(a,)) for a in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for a in agents:
        # Reads reflect the agent's own writes at once, before the server has them.
        assert a.rows("products")[stock]["stock_quantity"] == 100 - SALES_PER_AGENT

    # Renames of different products, one per agent; a delete; an atomic sale on each.
    for a, rid in zip(agents, renamed, strict=True):
        push(a, "products", {"id": rid, "name": f"Novo nome {a.machine_id}"})
        assert a.rows("products")[rid]["name"] == f"Novo nome {a.machine_id}"
    push(a3, "products", {"id": doomed, "_op": "delete"})
    assert doomed not in a3.rows("products")
    orders = []
    for a in agents:
        oid = new_id("ord-")
        orders.append(oid)
        r = sale(a, oid, [(renamed[0], 1)])
        assert {x["status"] for x in r["results"]} == {"accepted"}
        assert oid in a.rows("orders")
    # The same product renamed on two agents: the later edit must win.
    push(a1, "products", {"id": contested, "name": "Bolo de fubá (caixa-1)"})
    time.sleep(0.3)  # clearly later, beyond the agents' clock-offset estimates
    push(a2, "products", {"id": contested, "name": "Bolo de milho (caixa-2)"})
    for a in agents:
        s = a.status()
        assert s["state"] == "offline" and s["pending"] > 0

    server = servers.restart(server)
    wait_until(
        lambda: converged(agents, server), timeout=40, message=lambda: differences(agents, server)
    )
    wait_until(
        lambda: all(a.status()["state"] == "synced" for a in agents),
        message=lambda: describe(agents),
    )

    products = server_rows(server, "products")
    assert products[stock]["stock_quantity"] == 100 - SALES_PER_AGENT * len(agents)
    assert products[stock]["name"] == "Pão francês (promoção)"
    assert products[renamed[0]]["stock_quantity"] == -len(agents)
    for a, rid in zip(agents, renamed, strict=True):
        assert products[rid]["name"] == f"Novo nome {a.machine_id}"
    assert products[contested]["name"] == "Bolo de milho (caixa-2)"
    assert doomed not in products
    assert sorted(server_rows(server, "orders")) == sorted(orders)
    items = server_rows(server, "order_items")
    assert sorted(i["order_id"] for i in items.values()) == sorted(orders)
    for a in agents:
        s = a.status()
        assert s["label"] == "Sincronizado" and s["live"] is True and s["pending"] == 0
        assert a.rows("products") == products


def test_sync_now_and_reconcile_push_at_once_when_the_server_is_back(
    servers, server, agent_factory
):
    """ "Sincronizar agora" does not wait out the retry backoff of the pending events."""
    patient = {
        "SYNC_INTERVAL_MS": "60000",
        "SYNC_RETRY_BASE_DELAY_MS": "60000",
        "SYNC_RETRY_MAX_DELAY_MS": "60000",
    }
    a = agent_factory(server, "caixa-1", env=patient)
    wait_until(lambda: a.status()["live"], message=lambda: describe([a]))
    server.kill()
    pid = new_id("p-")
    push(a, "products", {"id": pid, "name": "Broa", "stock_quantity": 4})
    wait_until(lambda: a.status()["state"] == "offline", message=lambda: describe([a]))
    server = servers.restart(server)
    s = a.post("/api/sync/now")
    assert s["pending"] == 0 and s["state"] == "synced", s
    assert pid in server_rows(server, "products")

    server.kill()
    increment(a, pid, -1)
    wait_until(lambda: a.status()["state"] == "offline", message=lambda: describe([a]))
    server = servers.restart(server)
    result = a.post("/api/sync/reconcile")
    assert result["status"] == "consistent", result
    assert server_rows(server, "products")[pid]["stock_quantity"] == 3


def test_an_outbox_bigger_than_the_server_body_limit_drains(servers, sqlite_url, agent_factory):
    """After a long outage the outbox no longer fits in one request: the agent sends smaller
    batches; a sale too big to ever fit becomes a dead letter instead of blocking the rest."""
    server = servers.start(sqlite_url, env={"MAX_BODY_BYTES": "40000"})
    a, b = agent_factory.many(server, ["caixa-1", "caixa-2"])
    stock = new_id("pao-")
    push(a, "products", {"id": stock, "name": "Pão", "stock_quantity": 100})
    wait_until(lambda: converged([a, b], server), message=lambda: differences([a, b], server))

    server.kill()
    small = [new_id("doce-") for _ in range(60)]
    for n in range(0, 60, 10):
        push(
            a,
            "products",
            *({"id": pid, "name": "Doce", "description": "é" * 1000} for pid in small[n : n + 10]),
        )
    huge = [new_id("enorme-") for _ in range(3)]
    r = a.post(
        "/api/sync/batch",
        {
            "events": [
                {
                    "eventId": new_id(),
                    "table": "products",
                    "record": {
                        "id": pid,
                        "name": "Enorme",
                        "description": "€" * 4000,
                        "imageUrlId": "€" * 1000,
                    },
                }
                for pid in huge
            ]
        },
    )
    assert {x["status"] for x in r["results"]} == {"accepted"}
    for _ in range(10):
        increment(a, stock, -1)
    assert a.status()["pending"] == 60 + 3 + 10

    server = servers.restart(server)
    wait_until(
        lambda: converged([a, b], server), timeout=40, message=lambda: differences([a, b], server)
    )
    products = server_rows(server, "products")
    assert set(small) <= set(products)
    assert not set(huge) & set(products)
    assert products[stock]["stock_quantity"] == 90
    s = a.status()
    assert s["pending"] == 0 and s["deadLetters"] == 3
    dead = a.get("/api/sync/outbox")["dead"]
    assert sorted(d["id"] for d in dead) == sorted(huge)
    assert all("body" in (d["lastError"] or "") or "larger" in (d["lastError"] or "") for d in dead)
