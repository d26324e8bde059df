"""Fan-out: writes made on any agent reach every agent, live, through the server."""

from __future__ import annotations

from .conftest import converged, describe, differences, new_id, push, sale, server_rows, wait_until


def test_writes_on_each_agent_reach_all_agents(server, agent_factory):
    agents = agent_factory.many(server, ["caixa-1", "caixa-2", "caixa-3"])
    wait_until(lambda: all(a.status()["live"] for a in agents), message=lambda: describe(agents))

    products = {}
    for n, a in enumerate(agents):
        pid = new_id(f"prod{n}-")
        products[pid] = a
        r = push(
            a, "products", {"id": pid, "name": f"Pão {n}", "price": "1.25", "stock_quantity": 50}
        )
        assert r["results"][0]["status"] == "accepted"
        # Reads reflect the agent's own write at once.
        assert a.rows("products")[pid]["name"] == f"Pão {n}"
    supplies = [new_id("sup-") for _ in agents]
    for a, sid in zip(agents, supplies, strict=True):
        push(
            a,
            "supplies",
            {
                "id": sid,
                "name": "Farinha",
                "stock": "12.500",
                "unit": "kg",
                "costPerUnit": "4.1000",
            },
        )
    # A sale on each agent, of the product created by the next one.
    pids = list(products)
    orders = []
    for n, a in enumerate(agents):
        wait_until(
            lambda a=a, n=n: pids[(n + 1) % 3] in a.rows("products"),
            message=lambda: describe(agents),
        )
        oid = new_id("ord-")
        orders.append(oid)
        r = sale(a, oid, [(pids[(n + 1) % 3], 2)])
        assert {x["status"] for x in r["results"]} == {"accepted"}

    wait_until(lambda: converged(agents, server), message=lambda: differences(agents, server))
    assert set(server_rows(server, "products")) == set(pids)
    for a in agents:
        assert set(a.rows("orders")) == set(orders)
        items = a.rows("order_items")
        assert sorted(i["order_id"] for i in items.values()) == sorted(orders)
        assert {p: r["stock_quantity"] for p, r in a.rows("products").items()} == {
            p: 48 for p in pids
        }
        assert set(a.rows("supplies")) == set(supplies)

    # A delete on one agent removes the row everywhere.
    gone = pids[0]
    r = agents[2].post(
        "/api/sync/products",
        {"localUpdates": [{"eventId": new_id(), "record": {"id": gone, "_op": "delete"}}]},
    )
    assert r["results"][0]["status"] == "accepted"
    assert gone not in agents[2].rows("products")
    wait_until(
        lambda: all(gone not in a.rows("products") for a in agents),
        message=lambda: describe(agents),
    )
    wait_until(lambda: converged(agents, server), message=lambda: differences(agents, server))
    for a in agents:
        s = a.status()
        assert s["live"] is True
        assert s["state"] == "synced" and s["label"] == "Sincronizado"


def test_an_update_reaches_the_others_without_polling(server, agent_factory):
    """With the WebSocket up the agents do not poll: make polling useless (one minute) and
    an edit still shows up on the other agents."""
    slow = {"SYNC_INTERVAL_MS": "60000"}
    agents = agent_factory.many(server, ["caixa-1", "caixa-2", "caixa-3"], env=slow)
    wait_until(lambda: all(a.status()["live"] for a in agents), message=lambda: describe(agents))
    pid = new_id("p-")
    push(agents[0], "products", {"id": pid, "name": "Sonho", "stock_quantity": 5})
    wait_until(
        lambda: all(pid in a.rows("products") for a in agents),
        timeout=15,
        message=lambda: describe(agents),
    )
    for n in range(3):
        writer = agents[n]
        push(writer, "products", {"id": pid, "name": f"Sonho {n}"})
        wait_until(
            lambda n=n: all(a.rows("products")[pid]["name"] == f"Sonho {n}" for a in agents),
            timeout=15,
            message=lambda: describe(agents),
        )
    assert all(a.status()["live"] for a in agents)
