"""Test setup that drives a real agent into each state, shared by the tray tests and
`scripts/screenshots.py`: a server that hangs, the POS's writes through the loopback API,
a divergence planted in the agent's SQLite view, an event the server must refuse.

No Qt and no pytest here."""

from __future__ import annotations

import socket
import sqlite3
import threading
import uuid
from pathlib import Path

import httpx

from agent.runtime import AgentRuntime
from protocol import dumps, now_ms, to_iso
from tests.serverproc import ServerProcess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HangingServer:
    """Accepts TCP connections on 127.0.0.1 and never answers: a server that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="hanging-server", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        """Drop every connection: whoever waited gets an error at once."""
        self._closing.set()
        self._thread.join(5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


def local_api(port: int) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)


def _port(agent: AgentRuntime | int) -> int:
    return agent if isinstance(agent, int) else agent.bound_port


def _db(agent: AgentRuntime | Path) -> Path:
    return agent / "agent.db" if isinstance(agent, Path) else agent.data_dir / "agent.db"


def sell_product(
    agent: AgentRuntime | int,
    name: str = "Pão francês",
    *,
    product_id: str | None = None,
    price: str = "0.75",
) -> str:
    """A new product written on the PDV through its loopback API, as the POS does (one
    pending event). `agent`: a runtime in this process, or the port of an agent process."""
    product_id = product_id or f"p-{uuid.uuid4().hex[:10]}"
    with local_api(_port(agent)) as c:
        r = c.post(
            "/api/sync/products",
            json={
                "localUpdates": [
                    {
                        "eventId": str(uuid.uuid4()),
                        "record": {
                            "id": product_id,
                            "name": name,
                            "price": price,
                            "stock_quantity": 100,
                        },
                    }
                ]
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["status"] == "accepted", r.text
    return product_id


def server_products(server: ServerProcess) -> dict[str, dict]:
    with server.client() as c:
        r = c.get("/api/products")
        assert r.status_code == 200, r.text
        return {row["id"]: row for row in r.json()["products"]}


def plant_divergence(agent: AgentRuntime | Path, product_id: str | None = None) -> str:
    """A row only this PDV has, written straight into its view table (as a bug or a hand
    edit would): the next reconcile finds `products` different from the server."""
    product_id = product_id or f"ghost-{uuid.uuid4().hex[:8]}"
    db = sqlite3.connect(_db(agent), timeout=10)
    try:
        with db:
            db.execute(
                "INSERT INTO products (id, updated_at, name, price, stock_quantity, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (product_id, now_ms(), "Produto fantasma", "9.99", 3, now_ms()),
            )
    finally:
        db.close()
    return product_id


def plant_refused_increment(agent: AgentRuntime | Path, product_id: str) -> str:
    """An outbox event the server must refuse: a stock increment whose result no client
    could read back (past 2^53). Written as raw test setup, as a buggy POS could not."""
    event_id = str(uuid.uuid4())
    stamp = now_ms()
    payload = {
        "id": product_id,
        "_op": "increment",
        "stock_quantity": 2**53 - 1,
        "updatedAt": to_iso(stamp),
    }
    db = sqlite3.connect(_db(agent), timeout=10)
    try:
        with db:
            db.execute(
                "INSERT INTO outbox (event_id, table_name, record_id, op, payload, state, created_at, attempts, next_attempt_at)"
                " VALUES (?, 'products', ?, 'increment', ?, 'pending', ?, 0, 0)",
                (event_id, product_id, dumps(payload), stamp),
            )
    finally:
        db.close()
    return event_id
