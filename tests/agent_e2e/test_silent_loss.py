"""A silent network loss (no RST, packets dropped) while the agent is live: the badge turns
Offline, sales wait in the outbox, and each reaches the server exactly once when the network
returns. A loss of the live socket alone, with HTTP working, is not Offline: the agent polls.

Real server and agent processes; the agent talks to the server through a proxy on 127.0.0.1
that can turn into a black hole (tests/agent_e2e/blackhole.py). Timeouts here are generous
bounds: how fast the loss is noticed is measured (printed), never asserted.
"""

from __future__ import annotations

import time

from .blackhole import BlackholeProxy
from .conftest import describe, new_id, push, sale, server_rows, wait_until


def _live_and_synced(agent) -> bool:
    s = agent.status()
    return s["live"] and s["online"] is True and s["state"] == "synced"


def test_a_silent_loss_turns_offline_and_the_sale_made_meanwhile_arrives_once(
    server, agent_factory
):
    with BlackholeProxy(server.url) as proxy:
        agent = agent_factory(proxy.url, "caixa-1")
        product = new_id("pao-")
        push(agent, "products", {"id": product, "name": "Pão francês", "stock_quantity": 50})
        wait_until(lambda: _live_and_synced(agent), 30, message=lambda: describe([agent]))
        assert server_rows(server, "products")[product]["stock_quantity"] == 50

        proxy.blackhole()
        lost_at = time.monotonic()
        wait_until(
            lambda: agent.status()["state"] == "offline", 40, message=lambda: describe([agent])
        )
        noticed_s = time.monotonic() - lost_at
        print(f"silent loss noticed after {noticed_s:.1f} s")
        status = agent.status()
        assert status["label"] == "Offline/Erro" and status["live"] is False
        assert status["lastError"]

        # The POS keeps selling: the sale waits in the outbox, the server has nothing of it.
        order = new_id("pedido-")
        sale(agent, order, [(product, 3)])
        assert agent.status()["pending"] == 3
        assert agent.status()["state"] == "offline"
        assert order not in server_rows(server, "orders")

        proxy.restore()
        wait_until(
            lambda: _live_and_synced(agent) and agent.status()["pending"] == 0,
            60,
            message=lambda: describe([agent]),
        )
        # Exactly once: one order, one item, and the stock decremented once — even though a
        # push the agent gave up on during the loss may have reached the server late.
        assert order in server_rows(server, "orders")
        items = [i for i in server_rows(server, "order_items").values() if i["order_id"] == order]
        assert len(items) == 1
        assert server_rows(server, "products")[product]["stock_quantity"] == 47
        assert agent.rows("products")[product]["stock_quantity"] == 47
        assert agent.status()["deadLetters"] == 0


def test_losing_only_the_live_socket_is_not_offline_the_agent_polls(server, agent_factory):
    with BlackholeProxy(server.url) as proxy:
        agent = agent_factory(proxy.url, "caixa-1")
        product = new_id("pao-")
        push(agent, "products", {"id": product, "name": "Pão francês", "stock_quantity": 50})
        wait_until(lambda: _live_and_synced(agent), 30, message=lambda: describe([agent]))

        proxy.blackhole(websocket_only=True)
        wait_until(lambda: not agent.status()["live"], 40, message=lambda: describe([agent]))
        # The socket was dropped for silence and the server asked over HTTP: it answered, so
        # the badge never says Offline while the agent polls (sampled for a while).
        seen = set()
        order = new_id("pedido-")
        sale(agent, order, [(product, 2)])
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            seen.add(agent.status()["state"])
            time.sleep(0.1)
        assert "offline" not in seen, describe([agent])
        wait_until(lambda: order in server_rows(server, "orders"), 20)
        assert server_rows(server, "products")[product]["stock_quantity"] == 48
        assert agent.status()["online"] is True

        proxy.restore()
        wait_until(lambda: _live_and_synced(agent), 60, message=lambda: describe([agent]))
