"""A per-machine key speaks only for its machine, and a live socket opened with a key stops
receiving changes once that key is revoked."""

from __future__ import annotations

import json
import uuid

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.server.test_cli_keys import keys_cli


def push(client, key: str, machine_id: str | None, record_id: str):
    body = {
        "localUpdates": [{"eventId": str(uuid.uuid4()), "record": {"id": record_id, "name": "x"}}]
    }
    if machine_id is not None:
        body["machineId"] = machine_id
    return client.post("/api/sync/products", json=body, headers={"x-api-key": key})


def test_a_machine_key_cannot_act_as_another_machine(server_factory, database_url):
    server = server_factory(database_url=database_url)
    issued = keys_cli(server, "issue", "--machine", "caixa-9")
    assert issued.returncode == 0, issued.stderr
    key = issued.stdout.strip().splitlines()[-1]
    with server.client() as c:
        assert push(c, key, "caixa-9", "ok").status_code == 200
        assert push(c, key, None, "anon").status_code == 200  # seed-style, no machineId
        r = push(c, key, "caixa-1", "spoof")
        assert r.status_code == 403 and r.json()["code"] == "machine_key_mismatch", r.text
        r = c.get(
            "/api/sync/changes",
            params={"since": 0, "machineId": "caixa-1"},
            headers={"x-api-key": key},
        )
        assert r.status_code == 403
        assert (
            c.get(
                "/api/sync/changes",
                params={"since": 0, "machineId": "caixa-9"},
                headers={"x-api-key": key},
            ).status_code
            == 200
        )
        ids = {
            p["id"] for p in c.get("/api/products", headers={"x-api-key": key}).json()["products"]
        }
        assert ids == {"ok", "anon"}

    url = server.url.replace("http://", "ws://") + "/api/sync/ws?machineId=caixa-1"
    with connect(url, additional_headers={"x-api-key": key}, open_timeout=10) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd.code == 4403


def test_a_revoked_key_closes_its_live_socket(server_factory, database_url):
    server = server_factory(database_url=database_url)
    issued = keys_cli(server, "issue", "--machine", "caixa-9")
    key = issued.stdout.strip().splitlines()[-1]
    keys_cli(
        server, "issue", "--machine", "caixa-8"
    )  # another key stays active: keys stay required
    listed = json.loads(keys_cli(server, "list", "--json").stdout)
    key_id = next(
        k["id"]
        for k in listed
        if "caixa-9" in (k.get("machine"), k.get("machineId"), k.get("machine_id"))
    )
    url = server.url.replace("http://", "ws://") + "/api/sync/ws?machineId=caixa-9"
    with connect(url, additional_headers={"x-api-key": key}, open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        assert keys_cli(server, "revoke", str(key_id)).returncode == 0
        with pytest.raises(ConnectionClosed) as closed:  # within the recheck + cache delay
            ws.recv(timeout=30)
        assert closed.value.rcvd.code == 4401
