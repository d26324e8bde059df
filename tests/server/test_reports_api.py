"""`POST /api/sync/report` and the panel's commands on the live socket: real server processes
(both backends; two processes on one PostgreSQL), and the app in-process where a test asks
for a command the way the panel does (the service of the running app)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from websockets.sync.client import connect

from server.app import create_app
from server.db import bind_models, connect_database
from server.service import SyncService
from server.settings import Settings
from tests.server.test_cli_keys import keys_cli
from tests.server.test_live import recv_json, ws_url

REPORT = {
    "machineId": "caixa-1",
    "state": "waiting",
    "label": "Aguardando",
    "pending": 3,
    "oldestPendingAgeMs": 65_000,
    "deadLetters": 1,
    "live": False,
    "lastError": "x" * 500,  # cut, not refused
    "lastErrorCode": "server_busy",
    "lastSuccessAt": "2026-02-11T18:00:00.000Z",
    "clockOffsetMs": -1500,
    "cursor": 0,
    "version": "1.0.0",
    "hostname": "CAIXA-01",
    "lastReconcile": None,
    "someFutureField": {"ignored": True},
}


@pytest.fixture
def open_service(tmp_path):
    """`open_service(url)`: a SyncService on a server's database, as the panel's is."""
    dbs = []

    def open_(url: str | None, data_dir: Path) -> SyncService:
        db, _ = connect_database(url, data_dir)
        dbs.append(db)
        return SyncService(bind_models(db))

    yield open_
    for db in dbs:
        db.close_all()


def database_of(server) -> str:
    return server.database_url or f"sqlite:///{server.data_dir / 'pdvsync.db'}"


def test_a_report_is_kept_and_answered_with_the_pdvs_commands(
    server_factory, database_url, open_service
):
    server = server_factory(database_url=database_url)
    with server.client() as c:
        r = c.post("/api/sync/report", json=REPORT)
        assert r.status_code == 200, r.text
        assert r.json()["success"] is True and r.json()["commands"] == []
        assert r.json()["timestamp"].endswith("Z")
    service = open_service(database_of(server), server.data_dir)
    (card,) = service.pdv_snapshot(service.clock())
    assert card["state"] == "waiting" and card["pending"] == 3 and card["deadLetters"] == 1
    assert card["lastError"] == "x" * 200 and card["clockOffsetMs"] == -1500
    assert card["hostname"] == "CAIXA-01" and card["lastErrorCode"] == "server_busy"

    (command_id,) = service.request_reconcile("caixa-1", "refresh_mismatched", "ana")
    with server.client() as c:
        r = c.post("/api/sync/report", json=REPORT)
        assert r.json()["commands"] == [
            {"id": command_id, "kind": "reconcile", "strategy": "refresh_mismatched"}
        ]
        done = {
            **REPORT,
            "state": "synced",
            "lastReconcile": {
                "at": "2026-02-11T18:01:00.000Z",
                "status": "consistent",
                "strategy": "refresh_mismatched",
                "isConsistent": True,
                "mismatches": [],
                "commandId": command_id,
            },
            "commandResults": [{"id": command_id, "status": "consistent"}],
        }
        assert c.post("/api/sync/report", json=done).json()["commands"] == []
    (card,) = service.pdv_snapshot(service.clock())
    assert card["lastCommand"]["id"] == command_id
    assert card["lastCommand"]["result"]["status"] == "consistent"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"state": "sleeping"}, "invalid_report"),
        ({"pending": -1}, "invalid_report"),
        ({"pending": "3"}, "invalid_report"),
        ({"live": "yes"}, "invalid_report"),
        ({"clockOffsetMs": 10**15}, "invalid_report"),
        ({"lastSuccessAt": "yesterday"}, "invalid_report"),
        ({"lastReconcile": {"status": 5}}, "invalid_report"),
        ({"lastReconcile": {"strategy": "none"}}, "invalid_report"),
        ({"lastReconcile": {"status": "consistent", "mismatches": "all"}}, "invalid_report"),
        ({"commandResults": [{"id": "x"}]}, "invalid_report"),
        ({"machineId": None}, "missing_machine_id"),
        ({"machineId": "a\nb"}, "invalid_machine_id"),
    ],
)
def test_a_malformed_report_is_refused_with_its_reason(live_server, change, code):
    with live_server.client() as c:
        r = c.post("/api/sync/report", json={**REPORT, **change})
        assert r.status_code == 422 and r.json()["code"] == code, r.text


def test_a_report_is_refused_as_a_whole_body(live_server):
    with live_server.client() as c:
        r = c.post("/api/sync/report", content=b"[1, 2]")
        assert r.status_code == 422 and r.json()["code"] == "invalid_body"
        r = c.post("/api/sync/report", content=b"{not json")
        assert r.status_code == 400


def test_a_machine_key_reports_only_for_its_machine_and_shop(server_factory, tmp_path):
    server = server_factory(env={"API_SECRET_KEY": "master-key-for-reports"})
    issued = keys_cli(server, "issue", "--machine", "caixa-1")
    key = issued.stdout.strip().splitlines()[-1]
    with server.client() as c:
        assert c.post("/api/sync/report", json=REPORT).status_code == 401
        ok = c.post("/api/sync/report", json=REPORT, headers={"x-api-key": key})
        assert ok.status_code == 200, ok.text
        other = c.post(
            "/api/sync/report", json={**REPORT, "machineId": "caixa-2"}, headers={"x-api-key": key}
        )
        assert other.status_code == 403 and other.json()["code"] == "machine_key_mismatch"
        shop = c.post(
            "/api/sync/report", json={**REPORT, "tenantId": "loja-b"}, headers={"x-api-key": key}
        )
        assert shop.status_code == 403 and shop.json()["code"] == "tenant_forbidden"


def test_the_report_route_is_documented(live_server):
    with live_server.client() as c:
        doc = c.get("/openapi.json").json()
    operation = doc["paths"]["/api/sync/report"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["machineId", "state"] and "tenantId" in body["properties"]
    assert set(operation["responses"]) >= {"200", "400", "401", "403", "409", "413", "422", "503"}


@pytest.mark.postgres
def test_a_command_asked_anywhere_reaches_the_socket_on_another_process(
    server_factory, pg_url, open_service
):
    one = server_factory(database_url=pg_url)
    two = server_factory(database_url=pg_url)
    with one.client() as c:
        assert c.post("/api/sync/report", json=REPORT).status_code == 200
    service = open_service(pg_url, one.data_dir)
    with connect(ws_url(two, "?machineId=caixa-1"), open_timeout=10) as ws:
        assert recv_json(ws)["type"] == "hello"
        # Asked from a third place (the panel of process one, or this test): NOTIFY carries
        # it to every process, and the one holding the socket sends it.
        (command_id,) = service.request_reconcile("caixa-1", "none", "ana")
        assert recv_json(ws) == {
            "type": "command",
            "id": command_id,
            "kind": "reconcile",
            "strategy": "none",
        }
    delivered = None
    for _ in range(100):  # recorded by process two, in a worker thread
        delivered = service.pdv_snapshot(service.clock())[0]["pendingCommand"]["deliveredAt"]
        if delivered:
            break
        time.sleep(0.05)
    assert delivered is not None


def test_a_pdv_that_connects_gets_its_unfinished_commands_after_the_hello(
    server_factory, database_url, open_service
):
    server = server_factory(database_url=database_url)
    with server.client() as c:
        assert c.post("/api/sync/report", json=REPORT).status_code == 200
    service = open_service(database_of(server), server.data_dir)
    ids = service.request_reconcile("caixa-1", "full_resync", "ana")
    with connect(ws_url(server, "?machineId=caixa-1"), open_timeout=10) as ws:
        assert recv_json(ws)["type"] == "hello"
        command = recv_json(ws)
        assert command["type"] == "command" and command["id"] == ids[0]
    # Another machine's socket gets none.
    with connect(ws_url(server, "?machineId=caixa-2"), open_timeout=10) as ws:
        assert recv_json(ws)["type"] == "hello"
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)
    assert service.pdv_snapshot(service.clock())[0]["pendingCommand"]["deliveredAt"] is not None


@contextmanager
def serving(app) -> Iterator[str]:
    """The app on uvicorn in a thread (its state stays reachable from the test)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def test_a_command_goes_out_at_once_to_a_connected_pdv_and_the_panel_hears(tmp_path):
    """In-process (SQLite: one process, no NOTIFY): the app's own service asks, as the
    panel's action does; `hub.panel_events` hears the report, the command and the commit."""
    app = create_app(Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/app.db"))
    state = app.state.sync
    with serving(app) as url:
        subscribed = threading.Event()

        async def listen() -> set[str]:
            kinds: set[str] = set()
            with state.hub.panel_events.subscribe("default") as changes:
                subscribed.set()
                deadline = time.monotonic() + 15
                while not {"report", "command", "commit"} <= kinds:
                    assert time.monotonic() < deadline, kinds
                    kinds |= await changes.wait(0.2)
            return kinds

        heard = asyncio.run_coroutine_threadsafe(listen(), state.hub._loop)
        assert subscribed.wait(10)
        with httpx.Client(base_url=url, timeout=10) as c:
            assert c.post("/api/sync/report", json=REPORT).status_code == 200
            ws_base = url.replace("http://", "ws://")
            with connect(f"{ws_base}/api/sync/ws?machineId=caixa-1", open_timeout=10) as ws:
                assert recv_json(ws)["type"] == "hello"
                (command_id,) = state.service.request_reconcile("caixa-1", "none", "ana")
                assert recv_json(ws) == {
                    "type": "command",
                    "id": command_id,
                    "kind": "reconcile",
                    "strategy": "none",
                }
                body = {
                    "machineId": "caixa-2",
                    "localUpdates": [{"eventId": "e-1", "record": {"id": "p1"}}],
                }
                assert c.post("/api/sync/products", json=body).status_code == 200
                assert recv_json(ws)["type"] == "changes"
        assert heard.result(timeout=20) >= {"report", "command", "commit"}
        assert len(state.hub.panel_events) == 0  # unsubscribed on exit
        for _ in range(100):  # the delivery is recorded in a worker thread
            card = state.service.pdv_snapshot(state.service.clock())[0]
            if card["pendingCommand"]["deliveredAt"]:
                break
            time.sleep(0.05)
        assert card["pendingCommand"]["deliveredAt"] is not None
