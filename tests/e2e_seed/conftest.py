"""Fixtures of the seed-client end-to-end tests: where the seed's client points (a real
server process, or a real agent's loopback API in front of one), and what is true there.

`target` runs a test three times: against the server on SQLite, against the server on
PostgreSQL, and against an agent (on a SQLite server). Each target offers the same few
operations, so one test body proves the seed's wire behaviour on both sides.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from protocol import parse_ms
from protocol.schema import TABLES, Kind
from protocol.tenancy import TENANT_HEADER
from tests.agent_e2e.conftest import agent_factory, servers, wait_until  # noqa: F401 - fixtures
from tests.agentproc import AgentProcess
from tests.seedclient import SeedClient
from tests.serverproc import ServerProcess

ALL_TABLES = ("products", "orders", "order_items", "supplies", "technical_sheets")


def tenant_headers(tenant: str | None) -> dict[str, str]:
    return {TENANT_HEADER: tenant} if tenant else {}


def server_push(
    server_url: str,
    table: str,
    *records: dict[str, Any],
    machine_id: str = "outro-pdv",
    tenant: str | None = None,
    api_key: str | None = None,
) -> list[dict[str, Any]]:
    """Records pushed straight to a server by another PDV, with our agents' own protocol
    (a cursor in the body: the push answer pages the pull, as agents do). Their results."""
    body = {
        "machineId": machine_id,
        "cursor": 0,
        "localUpdates": [{"eventId": str(uuid.uuid4()), "record": r} for r in records],
    }
    headers = tenant_headers(tenant) | ({"x-api-key": api_key} if api_key else {})
    with httpx.Client(base_url=server_url, timeout=30, headers=headers) as c:
        r = c.post(f"/api/sync/{table}", json=body)
    assert r.status_code == 200, f"push {table}: {r.status_code} {r.text}"
    results = r.json()["results"]
    assert all(x["status"] == "applied" for x in results), results
    return results


def server_live(
    server_url: str, table: str, tenant: str | None = None, api_key: str | None = None
) -> dict[str, dict[str, Any]]:
    """The live rows of a table on a server, read through the agents' change feed (the
    cursor protocol that issue 10 leaves as it was), so the truth does not depend on the
    seed routes under test."""
    rows: dict[str, dict[str, Any]] = {}
    since = 0
    headers = tenant_headers(tenant) | ({"x-api-key": api_key} if api_key else {})
    with httpx.Client(base_url=server_url, timeout=30, headers=headers) as c:
        for _ in range(10_000):
            r = c.get("/api/sync/changes", params={"since": since, "limit": 1000})
            assert r.status_code == 200, r.text
            page = r.json()
            for change in page["changes"]:
                if change["table"] != table:
                    continue
                record = change["record"]
                if record.get("_deleted"):
                    rows.pop(record["id"], None)
                else:
                    rows[record["id"]] = record
            since = page["cursor"]
            if not page["hasMore"]:
                return rows
    raise AssertionError("the change feed did not end")


def server_head(server_url: str, tenant: str | None = None) -> int:
    with httpx.Client(base_url=server_url, timeout=30, headers=tenant_headers(tenant)) as c:
        r = c.get("/api/stats")
    assert r.status_code == 200, r.text
    return int(r.json()["cursor"])


def agent_settled(agent: AgentProcess, server_url: str, tenant: str | None = None) -> bool:
    """Nothing pending, online, and pulled to the server's head (of the agent's shop)."""
    s = agent.status()
    return (
        s["pending"] == 0 and s["online"] is True and s["cursor"] == server_head(server_url, tenant)
    )


@dataclass
class Target:
    """Where a seed client points: `kind` is "server" or "agent"."""

    kind: str
    backend: str
    server: ServerProcess
    agent: AgentProcess | None = None
    clients: list[SeedClient] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.agent.url if self.agent else self.server.url

    def __str__(self) -> str:
        return f"{self.kind}-{self.backend}"

    def client(self, machine_id: str = "front-1", **kw: Any) -> SeedClient:
        c = SeedClient(self.url, machine_id, **kw)
        self.clients.append(c)
        return c

    def settle(self, timeout: float = 30.0) -> None:
        """For an agent: wait until its outbox is empty and it has pulled to the server's
        head, so writes made on either side are visible on both."""
        if self.agent is not None:
            agent = self.agent
            wait_until(
                lambda: agent_settled(agent, self.server.url),
                timeout=timeout,
                message=lambda: (
                    f"agent did not settle: {agent.status()}\n" + "\n".join(agent.output[-20:])
                ),
            )

    def write_elsewhere(self, table: str, *records: dict[str, Any]) -> None:
        """Another PDV writes straight to the server; an agent target then pulls it."""
        server_push(self.server.url, table, *records)
        self.settle()

    def truth(self, table: str) -> dict[str, dict[str, Any]]:
        """The live rows of a table where the client points (server: through the change
        feed; agent: its local view, `GET /api/{table}`)."""
        if self.agent is not None:
            return self.agent.rows(table)
        return server_live(self.server.url, table)

    def get(self, path: str, **params: Any) -> httpx.Response:
        with httpx.Client(base_url=self.url, timeout=30) as c:
            return c.get(path, params=params)

    def post(self, path: str, body: Any) -> httpx.Response:
        with httpx.Client(base_url=self.url, timeout=30) as c:
            return c.post(path, json=body)


@pytest.fixture(
    params=[
        "server-sqlite",
        pytest.param("server-postgresql", marks=pytest.mark.postgres),
        "agent-sqlite",
    ]
)
def target(request, servers, agent_factory, tmp_path) -> Iterator[Target]:  # noqa: F811
    """The seed's client's other end, once per kind: a server per backend, and an agent."""
    kind, backend = request.param.split("-")
    url = (
        request.getfixturevalue("pg_url")
        if backend == "postgresql"
        else f"sqlite:///{Path(tmp_path) / 'server.db'}"
    )
    server = servers.start(url)
    agent = agent_factory(server, "pdv-1") if kind == "agent" else None
    t = Target(kind, backend, server, agent)
    t.settle()
    yield t


@pytest.fixture
def sqlite_server(servers, tmp_path) -> ServerProcess:  # noqa: F811
    return servers.start(f"sqlite:///{Path(tmp_path) / 'server.db'}")


def _same(table: str, key: str, sent: Any, got: Any) -> bool:
    f = TABLES[table].find(key)
    if sent is None or got is None or f is None:
        return bool(sent == got)
    if f.kind is Kind.DECIMAL:
        return Decimal(str(sent)) == Decimal(str(got))
    if f.kind is Kind.TIMESTAMP:
        return parse_ms(sent) == parse_ms(got)
    return bool(sent == got)


def assert_carries(table: str, sent: dict[str, Any], got: dict[str, Any] | None) -> None:
    """`got` (a record read back) carries every value `sent` wrote, by the field's kind:
    decimals by value, timestamps by instant, everything else (booleans, JSON, undeclared
    fields) exactly."""
    assert got is not None, f"{table}/{sent.get('id')} was not read back"
    for key, value in sent.items():
        if key in ("eventId", "updatedAt", "tenantId", "_op", "_deleted"):
            continue
        if value is None:  # null: read back as null, or left out
            assert got.get(key) is None, f"{table}/{sent['id']}.{key}: {got.get(key)!r}"
            continue
        assert key in got, f"{table}/{sent['id']}: {key} missing from {got}"
        assert _same(table, key, value, got[key]), (
            f"{table}/{sent['id']}.{key}: sent {value!r}, read back {got[key]!r}"
        )
