"""The engine pushes its outbox on the live socket when the server's hello says it takes
pushes (agent/sync/socketpush.py), over HTTP otherwise; either way the same answer, applied
the same way, and the same failures (413 splitting, dead letters, refused shop or key, a
socket lost before the reply: nothing lost, nothing applied twice).

Real parts: a server process (uvicorn on 127.0.0.1, SQLite or PostgreSQL), the engine's own
WebSocket and HTTP clients, the agent's SQLite store in a temporary file. The engine's parts
run on the test's event loop (`auto_sync=False`): the live socket as a task, each sync cycle
when the test asks for it. Which way a push went is read from the server's metrics
(`pdvsync_push_seconds_count` by route).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest

from agent.store.store import DEAD, Store
from agent.sync.engine import Engine, SyncSettings
from agent.sync.errors import SyncError
from protocol import TABLES, dumps, parse_change
from tests import serverproc
from tests.server.test_cli_keys import keys_cli
from tests.serverproc import ServerProcess

BATCH, SOCKET = "/api/sync/batch", "/api/sync/ws"


def push_counts(server) -> dict[str, float]:
    """How many pushes the server answered, by way (`/api/sync/batch` or the socket)."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    counts = {BATCH: 0.0, SOCKET: 0.0}
    for line in text.splitlines():
        if line.startswith("pdvsync_push_seconds_count{"):
            route = line.split('route="', 1)[1].split('"', 1)[0]
            counts[route] = float(line.rsplit(" ", 1)[1])
    return counts


def server_rows(server, table: str, key: str | None = None) -> dict[str, dict]:
    with server.client(key) as c:
        return {r["id"]: r for r in c.get(f"/api/{table}").json()[table]}


def server_head(server) -> int:
    with server.client() as c:
        return c.get("/api/stats").json()["cursor"]


class Pdv:
    """One agent's engine on the test's loop, its live socket a task."""

    def __init__(self, tmp_path: Path, server, name: str, **settings: Any) -> None:
        self.server = server
        self.engine = Engine(
            Store(tmp_path / f"{name}.db"),
            SyncSettings(
                server_url=server.url,
                machine_id=name,
                auto_sync=False,
                auto_reconcile=False,
                **settings,
            ),
        )
        self.store = self.engine.store
        self.client = self.engine.context.client
        self.live_task: asyncio.Task | None = None

    async def go_live(self) -> None:
        """Open the socket and wait until it takes pushes (after a first cycle, which
        adopts the server's database identity)."""
        await self.cycle()
        self.live_task = asyncio.create_task(self.engine.live.run())
        await until(lambda: self.client.push_channel is not None, "the socket takes pushes")
        await self.cycle()  # the catch-up pull every (re)connection asks for

    async def cycle(self, *, force: bool = False) -> None:
        await self.engine.cycle.run(force=force)

    def write(self, table: str, record: dict, *, group: str | None = None) -> str:
        event_id = str(uuid.uuid4())
        [result] = self.store.write(
            [(event_id, parse_change(TABLES[table], record))], self.engine.now(), group_id=group
        )
        assert result["status"] == "accepted", result
        return event_id

    def plant(self, event_id: str, table: str, payload: dict, group: str | None = None) -> None:
        """An event the store would not write itself (an older agent's), put in the outbox."""
        self.store.m.Outbox.create(
            event_id=event_id,
            table_name=table,
            record_id=payload["id"],
            op="upsert",
            payload=dumps({**payload, "updatedAt": self.engine.now()}),
            group_id=group,
            state="pending",
            created_at=self.engine.now(),
            next_attempt_at=0,
        )

    def rows(self, table: str) -> dict[str, dict]:
        return {r["id"]: r for r in self.store.list(table)}

    async def close(self) -> None:
        self.engine.context.stopping = True
        if self.live_task is not None:
            self.live_task.cancel()
            await asyncio.gather(self.live_task, return_exceptions=True)
        await self.client.aclose()
        self.store.close()


async def until(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"not reached: {what}"
        await asyncio.sleep(0.02)
    return value


def run(tmp_path: Path, server, scenario: Callable[..., Awaitable[None]], *names: str, **kw):
    async def main() -> None:
        pdvs = [Pdv(tmp_path, server, name, **kw) for name in names or ("caixa-1",)]
        try:
            await asyncio.wait_for(scenario(*pdvs), timeout=120)
        finally:
            for pdv in pdvs:
                await pdv.close()

    asyncio.run(main())


def assert_same_as_server(pdv: Pdv) -> None:
    assert pdv.store.pending_count() == 0 and pdv.store.cursor == server_head(pdv.server)
    for table in ("products", "orders", "order_items"):
        assert pdv.rows(table) == server_rows(pdv.server, table), table


def test_while_live_pushes_go_on_the_socket_and_their_replies_apply_as_over_http(
    tmp_path, live_server
):
    async def scenario(a: Pdv, b: Pdv) -> None:
        await a.go_live()
        # Uncompressed: deflating each small message cost more than it saved on a LAN.
        ws = a.engine.live._ws
        assert ws is not None and "Sec-WebSocket-Extensions" not in ws.response.headers
        await b.cycle()  # b has no socket: it polls and pushes over HTTP
        before = push_counts(live_server)
        a.write("products", {"id": "pao", "name": "Pão", "stock_quantity": 10})
        await a.cycle()
        sale = str(uuid.uuid4())
        a.write("orders", {"id": "o1", "total": "7.50", "status": "Pago"}, group=sale)
        a.write("products", {"id": "pao", "_op": "increment", "stock_quantity": -3}, group=sale)
        await a.cycle()
        await b.cycle()  # b pulls what a pushed
        b.write("products", {"id": "broa", "name": "Broa", "stock_quantity": 4})
        b.write("products", {"id": "pao", "_op": "increment", "stock_quantity": -1})
        await b.cycle()
        after = push_counts(live_server)
        assert after[SOCKET] - before[SOCKET] == 2  # a's two pushes
        assert after[BATCH] - before[BATCH] == 1  # b's one
        await a.cycle(force=True)  # pulls b's changes (no notice is waited for here)
        for pdv in (a, b):
            assert_same_as_server(pdv)
        assert server_rows(live_server, "products")["pao"]["stock_quantity"] == 6
        status = a.engine.status()
        assert status["online"] is True and status["lastError"] is None

    run(tmp_path, live_server, scenario, "caixa-1", "caixa-2")


def test_a_hello_that_does_not_offer_pushes_keeps_them_on_http(tmp_path, live_server):
    async def scenario(a: Pdv) -> None:
        heard = a.engine.live._notice

        async def as_an_older_server(message: str | bytes) -> None:
            data = json.loads(message)
            if data.get("type") == "hello":
                message = json.dumps(
                    {k: v for k, v in data.items() if k not in ("push", "database")}
                )
            await heard(message)

        a.engine.live._notice = as_an_older_server  # type: ignore[method-assign]
        await a.cycle()
        a.live_task = asyncio.create_task(a.engine.live.run())
        await until(lambda: a.engine.facts.live, "live")
        before = push_counts(live_server)
        a.write("products", {"id": "pao", "name": "Pão"})
        await a.cycle()
        after = push_counts(live_server)
        assert a.client.push_channel is None
        assert (after[BATCH] - before[BATCH], after[SOCKET] - before[SOCKET]) == (1, 0)
        assert_same_as_server(a)

    run(tmp_path, live_server, scenario)


# The last release whose live socket took no pushes (its hello offers none).
BEFORE_SOCKET_PUSH = "1295b6a"


@pytest.fixture(scope="session")
def older_release(tmp_path_factory) -> Path:
    """That release's source tree (`git archive`: nothing checked out in place)."""
    root = tmp_path_factory.mktemp("release-before-socket-push")
    archive = subprocess.run(
        ["git", "-C", str(serverproc.ROOT), "archive", "--format=tar", BEFORE_SOCKET_PUSH],
        capture_output=True,
        timeout=60,
    )
    if archive.returncode != 0:  # a shallow clone: the hello-level test below still runs
        pytest.skip(f"release {BEFORE_SOCKET_PUSH} not in this checkout")
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True, timeout=60)
    return root


def test_a_server_of_the_release_before_gets_the_pushes_over_http(
    tmp_path, database_url, older_release
):
    with mock.patch.object(serverproc, "ROOT", older_release):
        server = ServerProcess(tmp_path / "old-server", database_url=database_url).start()

    async def scenario(a: Pdv) -> None:
        await a.cycle()
        a.live_task = asyncio.create_task(a.engine.live.run())
        await until(lambda: a.engine.facts.live, "live")
        a.write("products", {"id": "pao", "name": "Pão", "stock_quantity": 10})
        a.write("products", {"id": "pao", "_op": "increment", "stock_quantity": -2})
        await a.cycle()
        counts = push_counts(server)
        assert a.client.push_channel is None
        assert (counts[BATCH], counts[SOCKET]) == (1, 0)
        assert_same_as_server(a)
        assert server_rows(server, "products")["pao"]["stock_quantity"] == 8

    try:
        run(tmp_path, server, scenario)
    finally:
        server.kill()


def test_a_socket_lost_between_the_push_and_its_reply_loses_and_repeats_nothing(
    tmp_path, live_server
):
    async def scenario(a: Pdv) -> None:
        await a.go_live()
        a.write("products", {"id": "pao", "name": "Pão", "stock_quantity": 10})
        await a.cycle()
        heard = a.engine.live._notice
        dropped: list[dict] = []

        async def lose_the_reply(message: str | bytes) -> None:
            data = json.loads(message)
            if data.get("type") == "pushed" and not dropped:
                dropped.append(data)  # the server committed and answered; the link dies
                ws = a.engine.live._ws
                assert ws is not None
                ws.transport.abort()
                return
            await heard(message)

        a.engine.live._notice = lose_the_reply  # type: ignore[method-assign]
        first = a.client.push_channel
        before = push_counts(live_server)
        a.write("products", {"id": "pao", "_op": "increment", "stock_quantity": -3})
        await a.cycle()
        assert dropped and dropped[0]["status"] == 200
        status = a.engine.status()
        assert status["online"] is False and status["lastErrorCode"] == SyncError.NETWORK
        assert a.store.pending_count() == 1  # not acknowledged: it goes again
        assert server_rows(live_server, "products")["pao"]["stock_quantity"] == 7  # applied

        # The socket comes back; the event goes again (over HTTP, once, after a push
        # without an answer) and the server replays its receipt.
        await until(
            lambda: a.client.push_channel not in (None, first), "the socket is back", timeout=30
        )
        await a.cycle(force=True)
        assert_same_as_server(a)
        assert server_rows(live_server, "products")["pao"]["stock_quantity"] == 7  # once
        # Then the socket again.
        a.write("products", {"id": "pao", "name": "Pão francês"})
        await a.cycle()
        after = push_counts(live_server)
        assert after[SOCKET] - before[SOCKET] == 2 and after[BATCH] - before[BATCH] == 1
        assert_same_as_server(a)

    run(tmp_path, live_server, scenario)


def test_a_push_too_big_for_the_body_limit_is_split_on_the_socket(
    tmp_path, server_factory, database_url
):
    server = server_factory(database_url=database_url, env={"MAX_BODY_BYTES": "3000"})

    async def scenario(a: Pdv) -> None:
        await a.go_live()
        before = push_counts(server)
        for i in range(40):
            a.write("products", {"id": f"p{i:02d}", "name": f"Produto {i}"})
        await a.cycle()
        after = push_counts(server)
        assert after[BATCH] == before[BATCH] and after[SOCKET] - before[SOCKET] > 2
        assert a.store.dead_letters() == []
        assert_same_as_server(a)
        assert len(server_rows(server, "products")) == 40

    run(tmp_path, server, scenario)


def test_events_the_server_names_invalid_become_dead_letters_over_the_socket(tmp_path, live_server):
    async def scenario(a: Pdv) -> None:
        await a.go_live()
        before = push_counts(live_server)
        a.plant("old-format", "products", {"id": "p6", "price": "muito caro"}, group="sale-1")
        a.plant("its-sale", "products", {"id": "p7", "name": "Rosca"}, group="sale-1")
        a.write("products", {"id": "p8", "name": "Sonho"})
        await a.cycle()
        dead = {e.event_id: e for e in a.store.dead_letters()}
        assert set(dead) == {"old-format", "its-sale"}
        assert all(e.state == DEAD for e in dead.values())
        assert dead["its-sale"].reason == "part_of_refused_sale"
        assert set(server_rows(live_server, "products")) == {"p8"}
        after = push_counts(live_server)
        assert after[BATCH] == before[BATCH] and after[SOCKET] - before[SOCKET] == 2

    run(tmp_path, live_server, scenario)


def test_a_record_of_another_shop_is_refused_over_the_socket_as_over_http(tmp_path, live_server):
    async def scenario(a: Pdv) -> None:
        await a.go_live()
        before = push_counts(live_server)
        a.plant("other-shop", "products", {"id": "x", "name": "x", "tenantId": "outra"})
        await a.cycle()
        status = a.engine.status()
        assert status["online"] is False
        assert status["lastErrorCode"] == SyncError.TENANT_REFUSED
        assert a.store.pending_count() == 1 and server_rows(live_server, "products") == {}
        after = push_counts(live_server)
        assert after[BATCH] == before[BATCH] and after[SOCKET] - before[SOCKET] == 1

    run(tmp_path, live_server, scenario)


def test_a_revoked_key_is_refused_and_nothing_more_is_applied(
    tmp_path, server_factory, database_url
):
    server = server_factory(database_url=database_url)
    key = keys_cli(server, "issue", "--machine", "caixa-1").stdout.strip().splitlines()[-1]
    # Another key stays active, so keys stay required after the revocation (and reads use it).
    other = keys_cli(server, "issue", "--machine", "caixa-8").stdout.strip().splitlines()[-1]
    listed = json.loads(keys_cli(server, "list", "--json").stdout)
    key_id = next(k["id"] for k in listed if "caixa-1" in json.dumps(k))

    async def scenario(a: Pdv) -> None:
        await a.go_live()
        a.write("products", {"id": "pao", "name": "Pão"})
        await a.cycle()
        assert push_counts(server)[SOCKET] == 1
        revoked = await asyncio.to_thread(keys_cli, server, "revoke", str(key_id))
        assert revoked.returncode == 0
        n = 0

        def refused() -> bool:
            return a.engine.status()["lastErrorCode"] == SyncError.AUTH_REFUSED

        deadline = time.monotonic() + 30
        while not refused():
            assert time.monotonic() < deadline, a.engine.status()
            n += 1
            a.write("products", {"id": f"late{n}", "name": "depois"})
            await a.cycle(force=True)
            await asyncio.sleep(0.2)
        rows = server_rows(server, "products", other)
        assert a.store.pending_count() >= 1 and f"late{n}" not in rows

    run(tmp_path, server, scenario, api_key=key)
