"""The test proxy itself: pushes get 429 (with Retry-After) only while refusing; reads,
reports and the live WebSocket pass through to a real server, on kept-alive connections."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.serverproc import ServerProcess

from .throttle import ThrottleProxy, is_push


def _batch(machine_id: str) -> dict:
    return {
        "machineId": machine_id,
        "events": [
            {
                "eventId": str(uuid.uuid4()),
                "table": "products",
                "record": {"id": f"p-{uuid.uuid4().hex[:8]}", "name": "Pão", "price": "0.75"},
            }
        ],
    }


def test_only_pushes_are_refused():
    assert is_push("POST", "/api/sync/batch")
    assert is_push("POST", "/api/sync/products?x=1")
    assert is_push("POST", "/api/sync")
    assert is_push("POST", "/api/sync/bootstrap/products")
    for method, target in [
        ("GET", "/api/sync/batch"),
        ("GET", "/api/sync/products"),
        ("POST", "/api/sync/report"),
        ("POST", "/api/sync/reconcile"),
        ("POST", "/api/sync/reconcile/rows"),
        ("GET", "/api/sync/changes?since=0"),
    ]:
        assert not is_push(method, target), (method, target)


def test_the_proxy_refuses_pushes_and_forwards_the_rest(tmp_path):
    server = ServerProcess(tmp_path / "server", database_url=f"sqlite:///{tmp_path / 's.db'}")
    server.start()
    try:
        with (
            ThrottleProxy(server.url, retry_after_s=2) as proxy,
            httpx.Client(base_url=proxy.url, timeout=10) as client,
        ):
            assert client.get("/health").status_code == 200
            assert client.post("/api/sync/batch", json=_batch("caixa-9")).status_code == 200

            proxy.refusing = True
            refused = client.post("/api/sync/batch", json=_batch("caixa-9"))
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "2"
            assert refused.json()["success"] is False
            # Reads still reach the server on the same kept-alive connection.
            changes = client.get("/api/sync/changes", params={"since": 0, "machineId": "caixa-9"})
            assert changes.status_code == 200, changes.text
            assert len(changes.json()["changes"]) == 1

            proxy.refusing = False
            assert client.post("/api/sync/batch", json=_batch("caixa-9")).status_code == 200
            assert proxy.refused == 1

            ws_url = proxy.url.replace("http://", "ws://") + "/api/sync/ws?machineId=caixa-9"
            with connect(ws_url, open_timeout=10) as ws:
                hello = json.loads(ws.recv(timeout=10))
                assert hello["cursor"] == 2, hello
                # Refusing drops the live sockets (pushes on them would pass untouched)...
                proxy.refusing = True
                with pytest.raises(ConnectionClosed):
                    ws.recv(timeout=10)
            # ...and answers a new one 503, so the PDV pushes over HTTP and meets the 429.
            with pytest.raises(InvalidStatus) as refused_socket:
                connect(ws_url, open_timeout=10)
            assert refused_socket.value.response.status_code == 503
            assert proxy.sockets_refused == 1
            proxy.refusing = False
            with connect(ws_url, open_timeout=10) as ws:
                assert json.loads(ws.recv(timeout=10))["type"] == "hello"
    finally:
        server.kill()
