"""Fixtures of the end-to-end tests: real agent processes against a real server process,
all on 127.0.0.1, driven only through the agents' loopback HTTP APIs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.agentproc import AgentProcess
from tests.serverproc import ServerProcess


def wait_until(
    predicate: Callable[[], Any],
    timeout: float = 20.0,
    step: float = 0.1,
    message: str | Callable[[], str] = "condition not reached",
) -> Any:
    """Poll `predicate()` until it is truthy (bounded); its value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message() if callable(message) else message)
        time.sleep(step)


def new_id(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def event(record: dict, event_id: str | None = None) -> dict:
    return {"eventId": event_id or str(uuid.uuid4()), "record": record}


def push(agent: AgentProcess, table: str, *records: dict) -> dict:
    """`POST /api/sync/{table}` on an agent, one fresh event per record."""
    return agent.post(f"/api/sync/{table}", {"localUpdates": [event(r) for r in records]})


def increment(
    agent: AgentProcess, product_id: str, delta: int, event_id: str | None = None
) -> dict:
    return agent.post(
        "/api/sync/products",
        {
            "localUpdates": [
                event({"id": product_id, "_op": "increment", "stock_quantity": delta}, event_id)
            ]
        },
    )


def sale(
    agent: AgentProcess, order_id: str, lines: list[tuple[str, int]], customer: str = "Cliente"
) -> dict:
    """An atomic sale through `/api/sync/batch`: order, items, stock decrements."""
    events = [
        {
            "eventId": str(uuid.uuid4()),
            "table": "orders",
            "record": {
                "id": order_id,
                "customerName": customer,
                "total": "10.50",
                "status": "Pago",
            },
        }
    ]
    for n, (product_id, qty) in enumerate(lines):
        events.append(
            {
                "eventId": str(uuid.uuid4()),
                "table": "order_items",
                "record": {
                    "id": f"{order_id}-i{n}",
                    "order_id": order_id,
                    "product_id": product_id,
                    "quantity": qty,
                    "price": "3.50",
                },
            }
        )
        events.append(
            {
                "eventId": str(uuid.uuid4()),
                "table": "products",
                "record": {"id": product_id, "_op": "increment", "stock_quantity": -qty},
            }
        )
    return agent.post("/api/sync/batch", {"events": events})


def drained(agent: AgentProcess) -> bool:
    s = agent.status()
    return s["pending"] == 0 and s["online"] is True


def server_rows(server: ServerProcess, table: str) -> dict[str, dict]:
    with server.client() as c:
        r = c.get(f"/api/{table}")
        assert r.status_code == 200, r.text
        return {row["id"]: row for row in r.json()[table]}


def server_head(server: ServerProcess) -> int:
    with server.client() as c:
        r = c.get("/api/stats")
        assert r.status_code == 200, r.text
        return r.json()["cursor"]


def converged(
    agents: list[AgentProcess],
    server: ServerProcess,
    tables=("products", "orders", "order_items", "supplies"),
):
    """Every agent drained, at the server's head, and showing exactly the server's rows."""
    head = server_head(server)
    for a in agents:
        s = a.status()
        if s["pending"] or s["cursor"] != head:
            return False
    for t in tables:
        want = server_rows(server, t)
        for a in agents:
            if a.rows(t) != want:
                return False
    return True


def differences(
    agents: list[AgentProcess],
    server: ServerProcess,
    tables=("products", "orders", "order_items", "supplies"),
) -> str:
    """What differs between each agent's view and the server (for failure messages)."""
    out = [f"server head {server_head(server)}"]
    for t in tables:
        want = server_rows(server, t)
        for a in agents:
            got = a.rows(t)
            for rid in sorted(set(want) | set(got)):
                if want.get(rid) != got.get(rid):
                    line = f"{a.machine_id} {t}/{rid}: server={want.get(rid)} agent={got.get(rid)}"
                    out.append(line if len(line) < 400 else line[:400] + "...")
    if len(out) > 25:
        out = [*out[:25], f"... and {len(out) - 25} more differences"]
    return "\n".join(out) + "\n" + describe(agents)


def describe(agents: list[AgentProcess]) -> str:
    out = []
    for a in agents:
        try:
            out.append(f"{a.machine_id}: {a.status()}")
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            out.append(f"{a.machine_id}: status unavailable ({exc})")
        out.append("\n".join(a.output[-15:]))
    return "\n".join(out)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'server.db'}"


@pytest.fixture
def servers(tmp_path):
    """`servers.start(database_url)`, `servers.restart(old)` (same database, data dir and port)."""

    class Servers:
        def __init__(self) -> None:
            self.started: list[ServerProcess] = []

        def start(self, database_url: str, **kw) -> ServerProcess:
            proc = ServerProcess(
                Path(tmp_path) / f"server{len(self.started)}", database_url=database_url, **kw
            )
            self.started.append(proc.start())
            return proc

        def restart(self, old: ServerProcess) -> ServerProcess:
            old.kill()
            proc = ServerProcess(
                old.data_dir,
                database_url=old.database_url,
                env=old.extra_env,
                port=old.port,
                args=old.args,
            )
            last: Exception | None = None
            for _ in range(20):  # the old socket may linger a moment
                try:
                    self.started.append(proc.start())
                    return proc
                except RuntimeError as exc:
                    last = exc
                    time.sleep(0.25)
                    proc = ServerProcess(
                        old.data_dir,
                        database_url=old.database_url,
                        env=old.extra_env,
                        port=old.port,
                        args=old.args,
                    )
            raise AssertionError(f"server did not restart on port {old.port}: {last}")

    s = Servers()
    yield s
    for proc in s.started:
        proc.kill()


@pytest.fixture
def server(servers, sqlite_url) -> ServerProcess:
    return servers.start(sqlite_url)


@pytest.fixture
def agent_factory(tmp_path):
    """`agent_factory(server, "caixa-1", env={...})` starts a real agent process."""
    started: list[AgentProcess] = []

    def start(
        server: ServerProcess | str,
        machine_id: str | None = None,
        *,
        env: dict[str, str] | None = None,
        skew_ms: int | None = None,
    ) -> AgentProcess:
        machine_id = machine_id or f"caixa-{len(started) + 1}"
        env = dict(env or {})
        if skew_ms is not None:
            env["PDVSYNC_CLOCK_SKEW_MS"] = str(skew_ms)
        url = server if isinstance(server, str) else server.url
        agent = AgentProcess(
            Path(tmp_path) / f"agent-{machine_id}", server_url=url, machine_id=machine_id, env=env
        )
        started.append(agent)
        return agent.start()

    def many(server: ServerProcess | str, machine_ids: list[str], **kw) -> list[AgentProcess]:
        """Start several agents at once (each one takes a second or two to boot)."""
        from concurrent.futures import ThreadPoolExecutor

        agents = [
            AgentProcess(
                Path(tmp_path) / f"agent-{m}",
                server_url=server if isinstance(server, str) else server.url,
                machine_id=m,
                env=_env(kw),
            )
            for m in machine_ids
        ]
        started.extend(agents)
        with ThreadPoolExecutor(len(agents)) as pool:
            list(pool.map(lambda a: a.start(), agents))
        return agents

    def _env(kw: dict) -> dict[str, str]:
        env = dict(kw.get("env") or {})
        if kw.get("skew_ms") is not None:
            env["PDVSYNC_CLOCK_SKEW_MS"] = str(kw["skew_ms"])
        return env

    start.many = many  # type: ignore[attr-defined]
    yield start
    for agent in started:
        agent.kill()
