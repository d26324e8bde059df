"""Two shops' PDVs on three server processes behind HAProxy (one PostgreSQL): every PDV
converges with its shop, nothing (rows or live notices) crosses between the shops, and a
server process killed with -9 in the middle of the sales loses nothing (issue 10, section 3).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.agent_e2e.conftest import describe, push, sale
from tests.agentproc import AgentProcess
from tests.e2e_seed.conftest import agent_settled, server_live, wait_until
from tests.serverproc import ServerProcess

from .conftest import Cluster

SHOPS = ("loja-a", "loja-b")
MACHINES = ("caixa-1", "caixa-2")  # the same PDV names in both shops
SALES_PER_PDV = 15
TABLES = ("products", "orders", "order_items")

pytestmark = pytest.mark.postgres


class NoticeWatcher:
    """A live socket of one shop through HAProxy, recording the notices it hears."""

    def __init__(self, base_url: str, tenant: str) -> None:
        self.url = base_url.replace("http://", "ws://") + f"/api/sync/ws?tenantId={tenant}"
        self.tenant = tenant
        self.notices: list[dict[str, Any]] = []
        self.socket: ClientConnection | None = None
        self._open = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()
        assert self._open.wait(15), f"the {tenant} watcher's socket did not open"

    def _listen(self) -> None:
        headers = {"x-tenant-id": self.tenant}
        with connect(self.url, additional_headers=headers, open_timeout=10) as socket:
            self.hello = json.loads(socket.recv(timeout=10))
            self.socket = socket
            self._open.set()
            try:
                for message in socket:
                    notice = json.loads(message)
                    if notice.get("type") == "changes":
                        self.notices.append(notice)
            except ConnectionClosed:  # closed at the end of the test
                pass

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()
        self._thread.join(5)


@pytest.fixture
def pdvs(cluster: Cluster, tmp_path: Path) -> Iterator[dict[tuple[str, str], AgentProcess]]:
    """Two PDVs per shop, pointed at HAProxy, each with its shop setting; killed at the end."""
    started = {
        (shop, machine): AgentProcess(
            tmp_path / f"pdv-{shop}-{machine}",
            server_url=cluster.url,
            machine_id=machine,
            env={"SYNC_TENANT_ID": shop},
        )
        for shop in SHOPS
        for machine in MACHINES
    }
    try:
        with ThreadPoolExecutor(len(started)) as pool:
            list(pool.map(lambda a: a.start(), started.values()))
        yield started
    finally:
        for agent in started.values():
            agent.kill()


def live_sockets(server: ServerProcess, shop: str) -> int:
    """The live sockets of `shop` on this one server process (asked directly, not through
    HAProxy)."""
    with httpx.Client(base_url=server.url, timeout=10) as c:
        r = c.get("/api/stats", headers={"x-tenant-id": shop})
    assert r.status_code == 200, r.text
    return int(r.json()["liveClients"])


def shop_converged(cluster: Cluster, shop: str, pdvs: list[AgentProcess]) -> bool:
    if not all(agent_settled(p, cluster.url, shop) for p in pdvs):
        return False
    for table in TABLES:
        truth = server_live(cluster.url, table, tenant=shop)
        if any(p.rows(table) != truth for p in pdvs):
            return False
    return True


@pytest.mark.timeout(300)
def test_two_shops_on_three_server_processes_behind_haproxy(cluster: Cluster, pdvs):
    everyone = list(pdvs.values())
    by_shop = {shop: [pdvs[(shop, m)] for m in MACHINES] for shop in SHOPS}
    wait_until(
        lambda: all(p.status()["live"] for p in everyone), message=lambda: describe(everyone)
    )

    # The same product id in both shops, each shop its own.
    for shop in SHOPS:
        push(
            by_shop[shop][0],
            "products",
            {"id": "pao", "name": f"Pão francês ({shop})", "stock_quantity": 1000},
        )
    for shop in SHOPS:
        wait_until(
            lambda shop=shop: shop_converged(cluster, shop, by_shop[shop]),
            timeout=30,
            message=lambda: describe(everyone),
        )
        for p in by_shop[shop]:
            assert p.rows("products")["pao"]["name"] == f"Pão francês ({shop})"

    # Live notices stay in their shop: while only one shop writes, the other hears nothing.
    watchers = {shop: NoticeWatcher(cluster.url, shop) for shop in SHOPS}
    try:
        assert [w.hello.get("tenantId") for w in watchers.values()] == list(SHOPS)
        for writer, quiet in (SHOPS, SHOPS[::-1]):
            heard = {shop: len(w.notices) for shop, w in watchers.items()}
            for n in range(3):
                push(by_shop[writer][1], "products", {"id": f"{writer}-{n}", "name": "Novo"})
            wait_until(
                lambda writer=writer: shop_converged(cluster, writer, by_shop[writer]),
                timeout=30,
                message=lambda: describe(everyone),
            )
            time.sleep(1.0)  # a notice that crossed would have arrived by now
            assert len(watchers[writer].notices) > heard[writer], writer
            assert len(watchers[quiet].notices) == heard[quiet], watchers[quiet].notices
            assert not any(
                p.rows("products").keys() & {f"{writer}-{n}" for n in range(3)}
                for p in by_shop[quiet]
            )
    finally:
        for w in watchers.values():
            w.close()

    # Sales on every PDV; the server process holding the most live sockets dies (kill -9)
    # while they go on: pushes in flight, sockets cut, requests HAProxy must send elsewhere.
    victim = max(cluster.servers, key=lambda s: sum(live_sockets(s, shop) for shop in SHOPS))
    assert sum(live_sockets(victim, shop) for shop in SHOPS) >= 2  # 4 sockets, 3 processes
    sold: dict[str, list[str]] = {shop: [] for shop in SHOPS}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def sell(shop: str, pdv: AgentProcess) -> None:
        try:
            for n in range(SALES_PER_PDV):
                order_id = f"{shop}-{pdv.machine_id}-{n}-{uuid.uuid4().hex[:6]}"
                result = sale(pdv, order_id, [("pao", 1)])
                assert {r["status"] for r in result["results"]} == {"accepted"}, result
                with lock:
                    sold[shop].append(order_id)
                time.sleep(0.1)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def count() -> int:
        with lock:
            return sum(len(ids) for ids in sold.values())

    threads = [threading.Thread(target=sell, args=(shop, p)) for (shop, _), p in pdvs.items()]
    for t in threads:
        t.start()
    total = SALES_PER_PDV * len(pdvs)
    wait_until(lambda: count() >= total // 3 or errors, timeout=60)
    victim.kill()  # SIGKILL: no goodbye to its sockets or its half-done requests
    at_the_kill = count()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert at_the_kill < total - len(pdvs)  # sales went on after the kill, on every PDV

    for shop in SHOPS:
        wait_until(
            lambda shop=shop: shop_converged(cluster, shop, by_shop[shop]),
            timeout=90,
            message=lambda: describe(everyone) + "\n" + "\n".join(cluster.haproxy.output[-20:]),
        )
    for shop in SHOPS:
        other = SHOPS[1] if shop == SHOPS[0] else SHOPS[0]
        orders = server_live(cluster.url, "orders", tenant=shop)
        assert set(orders) == set(sold[shop])  # every sale arrived, only this shop's
        assert not set(orders) & set(sold[other])
        items = server_live(cluster.url, "order_items", tenant=shop)
        assert Counter(i["order_id"] for i in items.values()) == Counter(sold[shop])
        products = server_live(cluster.url, "products", tenant=shop)
        assert products["pao"]["stock_quantity"] == 1000 - len(sold[shop])  # stock exact
        assert products["pao"]["name"] == f"Pão francês ({shop})"
        # Every PDV whose socket went through the dead process reconnected through HAProxy.
        wait_until(lambda shop=shop: all(p.status()["live"] for p in by_shop[shop]))
        for p in by_shop[shop]:
            result = p.post("/api/sync/reconcile", {"strategy": "none"})
            assert result["isConsistent"] is True, result
    assert len(sold[SHOPS[0]]) == len(sold[SHOPS[1]]) == SALES_PER_PDV * len(MACHINES)


def test_behind_haproxy_the_login_limit_counts_each_client_not_the_balancer(cluster: Cluster):
    """HAProxy forwards the client's address (`option forwardfor`) and the servers believe it
    from HAProxy only (TRUSTED_PROXIES): a guesser is held back, the manager on another PC
    is not — even though both reach the servers from the balancer's address."""
    from tests.server.test_panel_auth import PASSWORD, add_admin, client, login

    add_admin(cluster.servers[0], "gerente")
    with client(cluster.haproxy, "127.0.0.2") as guesser:
        for i in range(5):
            assert login(guesser, f"guess-{i}", "whatever-123").status_code == 401
        assert login(guesser, "gerente", PASSWORD).status_code == 429
    with client(cluster.haproxy, "127.0.0.3") as manager:
        assert login(manager, "gerente", PASSWORD).status_code == 303
