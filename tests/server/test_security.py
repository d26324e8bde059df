"""Security end to end: keys on every /api route, per-machine keys from the CLI, keys never
logged, and no listening on the network without a key (DESIGN "Security")."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.serverproc import ROOT

KEY = "master-key-9c1e5b2a"


def eid() -> str:
    return str(uuid.uuid4())


# Every /api route of the app, with a request that succeeds when the key is right. The test
# below checks this table against the app's own routes, so a new route cannot be forgotten.
ROUTES: list[tuple[str, str, object]] = [
    (
        "POST",
        "/api/sync",
        {"type": "product_created", "data": {"id": "p1", "name": "Pão"}, "event_id": "e-1"},
    ),
    (
        "POST",
        "/api/sync/batch",
        {"events": [{"eventId": "e-2", "table": "orders", "record": {"id": "o1"}}]},
    ),
    ("GET", "/api/sync/changes?since=0", None),
    (
        "POST",
        "/api/sync/bootstrap/technical_sheets",
        {"machineId": "m", "localUpdates": [{"id": "ft0", "name": "Bolo", "eventId": "e-b"}]},
    ),
    ("GET", "/api/sync/diagnostics", None),
    ("GET", "/api/sync/orders", None),
    ("GET", "/api/sync/reconcile", None),
    (
        "POST",
        "/api/sync/reconcile",
        {"machineId": "m", "clientSummary": {"products": {"count": 1}}},
    ),
    ("GET", "/api/sync/reconcile/history?limit=5", None),
    ("GET", "/api/sync/reconcile/buckets?table=products", None),
    ("GET", "/api/sync/reconcile/rows?table=products&buckets=1", None),
    ("GET", "/api/sync/products?since=0", None),
    ("POST", "/api/sync/report", {"machineId": "m", "state": "synced"}),
    ("POST", "/api/sync/supplies", {"localUpdates": [{"eventId": "e-3", "record": {"id": "s1"}}]}),
    ("GET", "/api/stats", None),
    ("GET", "/api/products", None),
    ("GET", "/api/orders?start_date=2024-01-01&end_date=2030-01-31", None),
    ("GET", "/api/supplies", None),
    ("GET", "/api/order_items", None),
    ("GET", "/api/products/p1", None),
    ("POST", "/api/products", {"id": "p2", "name": "Broa"}),
    ("PUT", "/api/products/p2", {"name": "Broa de milho"}),
    ("PATCH", "/api/products/p2", {"price": "2.00"}),
    ("DELETE", "/api/products/p2", None),
    ("GET", "/api/orders/o1", None),
    ("POST", "/api/orders", {"id": "o2", "total": "1.00"}),
    ("PUT", "/api/orders/o2", {"status": "Pago"}),
    ("PATCH", "/api/orders/o2", {"status": "Entregue"}),
    ("DELETE", "/api/orders/o2", None),
    ("POST", "/api/supplies", {"id": "s2", "name": "Sal"}),
    ("GET", "/api/supplies/s2", None),
    ("PUT", "/api/supplies/s2", {"unit": "kg"}),
    ("PATCH", "/api/supplies/s2", {"stock": 3}),
    ("DELETE", "/api/supplies/s2", None),
    ("POST", "/api/order_items", {"id": "i1", "order_id": "o1"}),
    ("GET", "/api/order_items/i1", None),
    ("PUT", "/api/order_items/i1", {"quantity": 2}),
    ("PATCH", "/api/order_items/i1", {"price": "1.50"}),
    ("DELETE", "/api/order_items/i1", None),
    ("GET", "/api/technical_sheets", None),
    ("POST", "/api/technical_sheets", {"id": "ft1", "name": "Pão", "components": []}),
    ("GET", "/api/technical_sheets/ft1", None),
    ("PUT", "/api/technical_sheets/ft1", {"yield": "12"}),
    ("PATCH", "/api/technical_sheets/ft1", {"isActive": False}),
    ("DELETE", "/api/technical_sheets/ft1", None),
]


def _template(path: str) -> str:
    """/api/products/p2?x=1 -> /api/products/{row_id}, to compare with the app's route paths."""
    path = path.split("?")[0]
    tables = "products|supplies|orders|order_items|technical_sheets"
    path = re.sub(rf"^/api/sync/bootstrap/({tables})$", "/api/sync/bootstrap/{table}", path)
    path = re.sub(rf"^/api/sync/({tables})$", "/api/sync/{table}", path)
    return re.sub(rf"^/api/({tables})/[^/]+$", r"/api/\1/{row_id}", path)


def test_the_route_table_covers_every_api_route(tmp_path):
    from server.app import create_app
    from server.settings import Settings

    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path / 'routes.db'}", data_dir=tmp_path)
    )
    try:
        declared = {
            (method.upper(), path)
            for path, operations in app.openapi()["paths"].items()
            if path.startswith("/api/")
            for method in operations
        }
    finally:
        app.state.sync.db.close_all()
    covered = {(m, _template(p)) for m, p, _ in ROUTES}
    assert declared - covered == set()


def test_every_api_route_needs_the_key_and_health_stays_open(server_factory, database_url):
    server = server_factory(database_url=database_url, env={"API_SECRET_KEY": KEY})
    with (
        httpx.Client(base_url=server.url, timeout=10) as anonymous,
        server.client("wrong-key") as wrong,
        server.client(KEY) as good,
    ):
        for method, path, body in ROUTES:
            for client in (anonymous, wrong):
                r = client.request(method, path, json=body)
                assert r.status_code == 401, (method, path, r.status_code, r.text)
                assert (
                    r.json()["success"] is False
                    and r.json()["error"]
                    and r.json()["code"] == "unauthorized"
                )
            r = good.request(method, path, json=body)
            assert r.status_code == 200, (method, path, r.status_code, r.text)
        for client in (anonymous, wrong, good):
            assert client.get("/health").status_code == 200
        # Nothing the refused requests carried was applied: only the good ones.
        assert good.get("/api/stats").json()["eventsProcessed"] == len(
            [
                r
                for r in ROUTES
                if r[0] in ("POST", "PUT", "PATCH", "DELETE")
                and "reconcile" not in r[1]
                and "report" not in r[1]  # a PDV's report is no event
            ]
        )
    output = server.settled_output()
    assert KEY not in output
    assert "wrong-key" not in output


def run_cli(server, *args: str) -> subprocess.CompletedProcess:
    """`python -m server --env-file '' <args>` on the server's own database."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "API_SECRET_KEY")}
    env.update({"DATA_DIR": str(server.data_dir), "PYTHONPATH": str(ROOT)})
    if server.database_url:
        env["DATABASE_URL"] = server.database_url
    return subprocess.run(
        [sys.executable, "-m", "server", "--env-file", "", *args],
        cwd=server.data_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def poll_status(client: httpx.Client, path: str, want: int, timeout: float = 15.0) -> int:
    """GET `path` until it answers `want` (bounded: a key change may take a few seconds)."""
    deadline = time.monotonic() + timeout
    status = client.get(path).status_code
    while status != want and time.monotonic() < deadline:
        time.sleep(0.2)
        status = client.get(path).status_code
    return status


def test_machine_keys_issue_list_and_revoke(server_factory, database_url):
    server = server_factory(database_url=database_url, env={"API_SECRET_KEY": KEY})
    issued = run_cli(server, "keys", "issue", "--machine", "caixa-1")
    assert issued.returncode == 0, issued.stderr
    keys = [line.strip() for line in issued.stdout.splitlines() if line.strip().startswith("pdv_")]
    assert len(keys) == 1, issued.stdout
    machine_key = keys[0]
    key_id = re.search(r"Key (\d+)", issued.stdout).group(1)

    with server.client(machine_key) as c:
        assert poll_status(c, "/api/products", 200) == 200
        r = c.post(
            "/api/sync/products",
            json={
                "machineId": "caixa-1",
                "localUpdates": [{"eventId": eid(), "record": {"id": "p", "name": "x"}}],
            },
        )
        assert r.status_code == 200
        with connect(
            server.url.replace("http", "ws") + "/api/sync/ws",
            additional_headers={"x-api-key": machine_key},
            open_timeout=10,
        ) as ws:
            assert '"hello"' in ws.recv(timeout=10)

        for args in (("keys", "list"), ("keys", "list", "--json")):
            listed = run_cli(server, *args)
            assert listed.returncode == 0, listed.stderr
            assert "caixa-1" in listed.stdout
            assert machine_key[4:10] not in listed.stdout  # not even the first characters

        revoked = run_cli(server, "keys", "revoke", key_id)
        assert revoked.returncode == 0, revoked.stderr
        assert poll_status(c, "/api/products", 401) == 401
        assert "revoked" in run_cli(server, "keys", "list").stdout
        assert run_cli(server, "keys", "revoke", key_id).returncode != 0  # already revoked

    with server.client(KEY) as c:  # the shared key still works
        assert c.get("/api/products").status_code == 200
    assert machine_key not in server.settled_output()


def test_keys_never_reach_the_server_output(server_factory, tmp_path):
    server = server_factory(
        database_url=f"sqlite:///{tmp_path / 'log.db'}",
        env={"API_SECRET_KEY": KEY, "NODE_ENV": "development"},
    )
    ws = server.url.replace("http", "ws") + "/api/sync/ws"
    with server.client(KEY) as c:
        assert c.get("/api/stats").status_code == 200
        assert c.get("/api/sync/products", params={"since": 0, "apiKey": KEY}).status_code == 200
    with httpx.Client(base_url=server.url, headers={"x-api-key": "guessed-" + KEY[::-1]}) as c:
        assert c.get("/api/products").status_code == 401
    with connect(ws + f"?apiKey={KEY}&machineId=caixa-1", open_timeout=10) as conn:
        assert '"hello"' in conn.recv(timeout=10)
    with (
        connect(ws + f"?apiKey=wrong-{KEY}", open_timeout=10) as conn,
        pytest.raises(ConnectionClosed),
    ):
        conn.recv(timeout=10)
    output = server.settled_output()
    assert "WebSocket /api/sync/ws" in output  # the access log is on: the lines were written...
    assert KEY not in output and KEY[::-1] not in output  # ...without the keys


def _serve_refusal(
    tmp_path: Path, args: list[str], env_extra: dict[str, str]
) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "API_SECRET_KEY", "HOST", "PORT")
    }
    env.update({"DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT), **env_extra})
    return subprocess.run(
        [sys.executable, "-m", "server", "--env-file", "", "serve", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "args,env",
    [
        (["--host", "0.0.0.0"], {}),
        ([], {"HOST": "0.0.0.0"}),
        (["--host", "192.168.1.100"], {"API_SECRET_KEY": ""}),
    ],
)
def test_a_non_loopback_host_without_a_key_refuses_to_start(tmp_path, args, env):
    # The refusal happens before anything binds: nothing listens on the network here.
    done = _serve_refusal(tmp_path, args, env)
    assert done.returncode != 0
    assert "API_SECRET_KEY" in done.stderr and "Refusing" in done.stderr
    assert "listening" not in done.stdout.lower()
