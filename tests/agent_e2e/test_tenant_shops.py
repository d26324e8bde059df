"""Two shops on one server, through real agent processes (`SYNC_TENANT_ID`): a PDV of shop A
gets shop A's rows and live notices only; a PDV moved to another shop stops syncing with the
reason (in `pdvsync-agent status` too) and keeps its sales until it is pointed back."""

from __future__ import annotations

import json
import threading
from urllib.parse import urlencode

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.agent_e2e.conftest import describe, new_id, push, sale, wait_until
from tests.agentproc import AgentProcess
from tests.installer._agentcli import run_agent
from tests.server.test_cli_keys import keys_cli
from tests.serverproc import ServerProcess

# Polling far apart: a row that arrives within seconds came with a live notice.
SLOW_POLL = {"SYNC_INTERVAL_MS": "120000"}


def shop_rows(server: ServerProcess, table: str, tenant: str | None) -> dict[str, dict]:
    params = {"tenantId": tenant} if tenant else {}
    with server.client() as c:
        r = c.get(f"/api/{table}", params=params)
    assert r.status_code == 200, r.text
    return {row["id"]: row for row in r.json()[table]}


def shop_head(server: ServerProcess, tenant: str | None) -> int:
    with server.client() as c:
        r = c.get("/api/stats", headers={"x-tenant-id": tenant} if tenant else {})
    assert r.status_code == 200, r.text
    return int(r.json()["cursor"])


class Listener:
    """A raw live socket of one shop, keeping every message it hears."""

    def __init__(self, server: ServerProcess, tenant: str) -> None:
        query = urlencode({"tenantId": tenant, "machineId": f"ouvinte-{tenant}"})
        self.url = server.url.replace("http://", "ws://") + f"/api/sync/ws?{query}"
        self.messages: list[dict] = []
        self.socket: ClientConnection | None = None
        self._open = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert self._open.wait(15), "the listener's socket did not open"

    def _read(self) -> None:
        with connect(self.url, open_timeout=10) as socket:
            self.socket = socket
            self._open.set()
            try:
                for message in socket:
                    self.messages.append(json.loads(message))
            except ConnectionClosed:  # closed at the end of the test
                pass

    def notices(self) -> list[dict]:
        return [m for m in self.messages if m.get("type") == "changes"]

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()
        self._reader.join(5)


def shop_rows_with(server: ServerProcess, key: str, tenant: str) -> dict[str, dict]:
    with server.client(key) as c:
        r = c.get("/api/products", headers={"x-tenant-id": tenant})
    assert r.status_code == 200, r.text
    return {row["id"]: row for row in r.json()["products"]}


def settled(agent: AgentProcess, server: ServerProcess, tenant: str) -> bool:
    s = agent.status()
    return s["pending"] == 0 and s["online"] is True and s["cursor"] == shop_head(server, tenant)


def test_each_pdv_gets_its_own_shops_rows_and_live_notices_only(server, agent_factory):
    a1 = agent_factory(server, "caixa-a1", env={"SYNC_TENANT_ID": "loja-a", **SLOW_POLL})
    a2 = agent_factory(server, "caixa-a2", env={"SYNC_TENANT_ID": "loja-a", **SLOW_POLL})
    b1 = agent_factory(server, "caixa-b1", env={"SYNC_TENANT_ID": "loja-b", **SLOW_POLL})
    d1 = agent_factory(server, "caixa-d1", env=SLOW_POLL)  # no shop: the default one
    agents = [a1, a2, b1, d1]
    wait_until(lambda: all(a.status()["live"] for a in agents), message=lambda: describe(agents))
    assert [a.status()["tenantId"] for a in agents] == ["loja-a", "loja-a", "loja-b", "default"]
    listen_b = Listener(server, "loja-b")
    listen_a = Listener(server, "loja-a")
    try:
        wait_until(lambda: listen_a.messages and listen_b.messages)  # both hellos
        assert listen_b.messages[0]["type"] == "hello"
        assert listen_b.messages[0]["tenantId"] == "loja-b"

        # Shop A sells: its other PDV hears of it at once; shop B and the default hear nothing.
        product = new_id("p-")
        push(a1, "products", {"id": product, "name": "Bolo A", "stock_quantity": 10})
        sale(a1, new_id("o-"), [(product, 2)])
        wait_until(
            lambda: a2.rows("products").get(product, {}).get("stock_quantity") == 8,
            timeout=15,
            message=lambda: describe([a1, a2]),
        )
        wait_until(lambda: settled(a1, server, "loja-a") and settled(a2, server, "loja-a"))
        wait_until(lambda: listen_a.notices())
        assert listen_b.notices() == []
        for other, shop in ((b1, "loja-b"), (d1, None)):
            assert other.rows("products") == {} and other.rows("orders") == {}
            assert other.status()["cursor"] == shop_head(server, shop) == 0

        # The same id in shop B is shop B's own row; shop A never sees it.
        push(b1, "products", {"id": product, "name": "Bolo B", "stock_quantity": 3})
        wait_until(lambda: settled(b1, server, "loja-b"), message=lambda: describe([b1]))
        wait_until(lambda: listen_b.notices())
        assert shop_rows(server, "products", "loja-b")[product]["name"] == "Bolo B"
        assert shop_rows(server, "products", "loja-a")[product]["name"] == "Bolo A"
        assert shop_rows(server, "products", None) == {}
        assert a2.rows("products")[product]["name"] == "Bolo A"
        wait_until(lambda: settled(a2, server, "loja-a"))
        assert a2.rows("products")[product]["stock_quantity"] == 8
        assert d1.rows("products") == {}
        for agent, shop in ((a1, "loja-a"), (a2, "loja-a"), (b1, "loja-b"), (d1, "default")):
            report = agent.post("/api/sync/reconcile", {"strategy": "none"})
            assert report["isConsistent"] is True, (agent.machine_id, shop, report)
    finally:
        listen_a.close()
        listen_b.close()


def test_a_pdv_moved_to_another_shop_stops_with_the_reason_and_keeps_its_sales(
    server, agent_factory, tmp_path
):
    pdv = agent_factory(server, "caixa-1", env={"SYNC_TENANT_ID": "loja-a"})
    product = new_id("p-")
    push(pdv, "products", {"id": product, "name": "Pão", "stock_quantity": 20})
    wait_until(lambda: settled(pdv, server, "loja-a"), message=lambda: describe([pdv]))
    assert pdv.status()["syncedTenantId"] == "loja-a"

    pdv.stop()
    pdv.extra_env["SYNC_TENANT_ID"] = "loja-b"
    pdv.restart()
    sale(pdv, new_id("o-"), [(product, 3)])
    wait_until(lambda: pdv.status()["lastErrorCode"] == "tenant_changed")
    status = pdv.status()
    assert (status["state"], status["pending"], status["live"]) == ("offline", 3, False)
    assert (status["tenantId"], status["syncedTenantId"]) == ("loja-b", "loja-a")
    assert shop_rows(server, "orders", "loja-b") == {} == shop_rows(server, "orders", "loja-a")
    assert shop_head(server, "loja-b") == 0

    # What the manager reads at the console: the JSON for scripts, the reason in Portuguese.
    cli = run_agent(tmp_path, "status", "--local-port", str(pdv.port))
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["tenantId"] == "loja-b"
    assert "este PDV tem dados da loja loja-a; configurado para a loja loja-b" in cli.stderr

    # Pointed back at its shop: the sale kept on the PDV arrives, stock exact.
    pdv.stop()
    pdv.extra_env["SYNC_TENANT_ID"] = "loja-a"
    pdv.restart()
    wait_until(lambda: settled(pdv, server, "loja-a"), message=lambda: describe([pdv]))
    assert len(shop_rows(server, "orders", "loja-a")) == 1
    assert shop_rows(server, "products", "loja-a")[product]["stock_quantity"] == 17
    assert pdv.status()["state"] == "synced"


def test_a_machine_key_of_another_shop_is_refused_with_the_reason(server, agent_factory):
    issued = keys_cli(server, "issue", "--machine", "caixa-1", "--tenant", "loja-a")
    assert issued.returncode == 0, issued.stderr
    key = issued.stdout.strip().splitlines()[-1]
    pdv = agent_factory(server, "caixa-1", env={"SYNC_TENANT_ID": "loja-b", "SYNC_API_KEY": key})
    push(pdv, "products", {"id": new_id("p-"), "name": "Pão"})
    wait_until(
        lambda: pdv.status()["lastErrorCode"] == "tenant_forbidden", message=lambda: describe([pdv])
    )
    status = pdv.status()
    assert (status["state"], status["authRefused"], status["pending"]) == ("offline", True, 1)
    assert status["syncedTenantId"] is None  # refused: the store holds no shop's data yet
    assert status["live"] is False
    assert shop_rows_with(server, key, "loja-a") == {}
