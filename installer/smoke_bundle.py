#!/usr/bin/env python3
"""Run the built bundle as a real agent against a real server, for a minute at most.

    python installer/smoke_bundle.py build/dist/pdvsync-agent

`--self-test` proves the bundle starts, opens a store and builds the tray; it does not start
the loopback API (uvicorn), the HTTP client or the WebSocket, whose pieces PyInstaller only
bundles if the spec names them. This does: a server from the source tree on 127.0.0.1 (its
SQLite in a temporary folder), the bundle's console executable `run --headless` against it,
a sale written through the agent's loopback API reaches the server, a product written on the
server by another machine reaches the agent over its live WebSocket, and the agent reports
`synced`. One line and
exit 0 on success; the agent's output and the reason on failure. Used by `installer/build`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
WINDOWS = sys.platform == "win32"


class SmokeFailed(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SmokeFailed(f"timed out waiting for {what}")


def isolated_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNC_", "NEXT_PUBLIC_SYNC_", "PDVSYNC_"))}
    env.update(HOME=str(home), USERPROFILE=str(home), APPDATA=str(home / "AppData" / "Roaming"),
               LOCALAPPDATA=str(home / "AppData" / "Local"), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local" / "share"), XDG_CONFIG_DIRS=str(home / "etc-xdg"),
               QT_QPA_PLATFORM="offscreen")
    if not WINDOWS:
        env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    env.update(extra)
    return env


def smoke(bundle: Path) -> str:
    cli = bundle / ("pdvsync-agent-cli.exe" if WINDOWS else "pdvsync-agent-cli")
    if not cli.exists():
        raise SmokeFailed(f"{cli} not found")
    with tempfile.TemporaryDirectory(prefix="pdvsync-smoke-") as tmp:
        tmp_path = Path(tmp)
        server_port, agent_port = free_port(), free_port()
        server_url, agent_url = f"http://127.0.0.1:{server_port}", f"http://127.0.0.1:{agent_port}"
        server_env = isolated_env(tmp_path / "server-home", DATA_DIR=str(tmp_path / "server"),
                                  DATABASE_URL=f"sqlite:///{tmp_path / 'server.db'}", PORT=str(server_port),
                                  HOST="127.0.0.1")
        server_env.pop("API_SECRET_KEY", None)
        agent_log = tmp_path / "agent-output.txt"
        procs: list[subprocess.Popen] = []
        try:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "server", "--env-file", "", "serve"],
                cwd=ROOT, env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_for("the server", lambda: httpx.get(f"{server_url}/health", timeout=2).status_code == 200)
            with agent_log.open("wb") as out:
                procs.append(subprocess.Popen(
                    [str(cli), "run", "--headless", "--server", server_url, "--machine-id", "bundle-smoke",
                     "--data-dir", str(tmp_path / "agent"), "--log-dir", str(tmp_path / "logs"),
                     "--local-port", str(agent_port)],
                    env=isolated_env(tmp_path / "agent-home", SYNC_INTERVAL_MS="500"),
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
                try:
                    return _exercise(server_url, agent_url, procs[-1])
                except SmokeFailed as exc:
                    out.flush()
                    raise SmokeFailed(f"{exc}\n--- agent output ---\n{agent_log.read_text(errors='replace')}") from None
        finally:
            for proc in reversed(procs):
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _exercise(server_url: str, agent_url: str, agent: subprocess.Popen) -> str:
    def agent_up() -> bool:
        if agent.poll() is not None:
            raise SmokeFailed(f"the bundled agent exited with code {agent.returncode}")
        return httpx.get(f"{agent_url}/health", timeout=2).status_code == 200

    wait_for("the bundled agent's loopback API", agent_up, timeout=60)

    # A product and a sale written on this PDV reach the server.
    product = str(uuid.uuid4())
    r = httpx.post(f"{agent_url}/api/products", json={"id": product, "name": "Pão de teste",
                                                       "price": "1.50", "stock_quantity": 5}, timeout=10)
    if r.status_code >= 300:
        raise SmokeFailed(f"loopback write refused: {r.status_code} {r.text}")
    order = str(uuid.uuid4())
    r = httpx.post(f"{agent_url}/api/sync/batch", timeout=10, json={"events": [
        {"eventId": str(uuid.uuid4()), "table": table, "record": record} for table, record in (
            ("orders", {"id": order, "total": "3.00", "status": "Pago"}),
            ("order_items", {"id": f"{order}-1", "order_id": order, "product_id": product, "quantity": 2,
                             "price": "1.50"}),
            ("products", {"id": product, "_op": "increment", "stock_quantity": -2}),
        )
    ]})
    if r.status_code >= 300:
        raise SmokeFailed(f"loopback sale refused: {r.status_code} {r.text}")

    def on_server() -> bool:
        rows = {p["id"]: p for p in httpx.get(f"{server_url}/api/products", timeout=5).json()["products"]}
        return product in rows and float(rows[product]["stock_quantity"]) == 3

    wait_for("the sale to reach the server", on_server)

    # The live connection (websockets, bundled by name) is up, and another machine's
    # product written on the server reaches this PDV.
    wait_for("the agent's WebSocket to the server",
             lambda: httpx.get(f"{agent_url}/api/sync/status", timeout=5).json().get("live") is True)
    other = str(uuid.uuid4())
    r = httpx.post(f"{server_url}/api/sync/products", timeout=10, json={
        "machineId": "another-pdv",
        "localUpdates": [{"eventId": str(uuid.uuid4()), "record": {"id": other, "name": "Sonho", "price": "4.00"}}]})
    if r.status_code >= 300:
        raise SmokeFailed(f"server write refused: {r.status_code} {r.text}")
    wait_for("the other machine's product to reach the agent",
             lambda: httpx.get(f"{agent_url}/api/products/{other}", timeout=5).status_code == 200)
    wait_for("the agent to report synced",
             lambda: httpx.get(f"{agent_url}/api/sync/status", timeout=5).json().get("state") == "synced")
    status = httpx.get(f"{agent_url}/api/sync/status", timeout=5).json()
    return f"bundle smoke OK: loopback API, push, WebSocket, pull, status {status.get('label')!r} in the bundled agent"


def main(argv: list[str]) -> int:
    bundle = Path(argv[1]) if len(argv) > 1 else ROOT / "build" / "dist" / "pdvsync-agent"
    try:
        print(smoke(bundle), flush=True)
    except SmokeFailed as exc:
        print(f"bundle smoke FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
