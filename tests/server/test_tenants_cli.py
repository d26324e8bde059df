"""The command line per shop, through the real entry point against a real server: machines
listed with their shop and forgotten in one shop, smoke and reliability checks of one shop
(`--tenant`), and a bad shop id refused in one line."""

from __future__ import annotations

import re
import uuid

from tests.server.test_bad_input import snapshot
from tests.server.test_security import run_cli


def push_as(server, tenant: str | None, machine: str, row_id: str) -> None:
    headers = {"x-tenant-id": tenant} if tenant else {}
    with server.client() as c:
        r = c.post(
            "/api/sync/products",
            headers=headers,
            json={
                "machineId": machine,
                "cursor": 0,
                "localUpdates": [{"eventId": str(uuid.uuid4()), "record": {"id": row_id}}],
            },
        )
        assert r.status_code == 200, r.text


def test_machines_are_listed_and_forgotten_per_shop(server_factory, database_url):
    server = server_factory(database_url=database_url)
    push_as(server, "loja-a", "caixa-1", "p1")
    push_as(server, None, "caixa-1", "p1")
    push_as(server, None, "caixa-2", "p2")

    listed = run_cli(server, "machines", "list")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split()[:3] for line in listed.stdout.splitlines()]
    assert sorted(rows) == [
        ["shop", "default", "caixa-1"],
        ["shop", "default", "caixa-2"],
        ["shop", "loja-a", "caixa-1"],
    ]
    only_a = run_cli(server, "machines", "list", "--tenant", "loja-a").stdout.splitlines()
    assert [line.split()[:3] for line in only_a] == [["shop", "loja-a", "caixa-1"]]

    # Forgetting is per shop: the default shop's caixa-1 stays.
    done = run_cli(server, "machines", "forget", "caixa-1", "--tenant", "loja-a")
    assert done.returncode == 0 and "Forgot caixa-1 of shop 'loja-a'" in done.stdout
    again = run_cli(server, "machines", "forget", "caixa-1", "--tenant", "loja-a")
    assert again.returncode == 1 and "No machine 'caixa-1' in shop 'loja-a'" in again.stdout
    assert run_cli(server, "machines", "list", "--tenant", "loja-a").stdout == ""
    with server.client() as c:
        machines = sorted(m["machineId"] for m in c.get("/api/stats").json()["machines"])
        assert machines == ["caixa-1", "caixa-2"]

    for args in (
        ("machines", "list", "--tenant", "loja a"),
        ("machines", "forget", "caixa-2", "--tenant", "x" * 65),
        ("smoke", "--url", server.url, "--tenant", "loja/a"),
        ("reliability", "--url", server.url, "--tenant", ""),
    ):
        done = run_cli(server, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "--tenant" in lines[0], done.stderr
        assert not done.stdout  # nothing was checked or changed
    with server.client() as c:
        assert len(c.get("/api/stats").json()["machines"]) == 2


def test_smoke_and_reliability_check_one_shop(server_factory, database_url):
    server = server_factory(database_url=database_url)
    push_as(server, None, "caixa-1", "pao")
    with server.client() as c:
        before = snapshot(c)
    smoke = run_cli(server, "smoke", "--url", server.url, "--tenant", "loja-a")
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    machine = re.search(r"(smoke-[0-9a-f]+)", smoke.stdout).group(1)
    reliability = run_cli(server, "reliability", "--url", server.url, "--tenant", "loja-a")
    assert reliability.returncode == 0, reliability.stdout + reliability.stderr
    with server.client() as c:
        assert snapshot(c) == before  # the default shop saw none of it
        shop_a = {"x-tenant-id": "loja-a"}
        history = c.get("/api/sync/reconcile/history", headers=shop_a).json()["data"]
        assert [e["machine_id"] for e in history] == [machine]
        changes = c.get("/api/sync/changes", params={"since": 0}, headers=shop_a).json()
        assert changes["changes"] and all(
            ch["record"]["id"].startswith("reliability-") for ch in changes["changes"]
        )
