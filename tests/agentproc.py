"""A real agent in a subprocess (`python -m agent --headless ...`) on 127.0.0.1, for tests.

Like `tests/serverproc.py`: `start()` waits for the "Local API on" line; `url` is the
agent's loopback API; `stop()` sends SIGTERM, `kill()` SIGKILL; `restart()` starts it again
on the same data folder (and the same port). Nothing touches the real user folders: HOME
and the XDG folders point into the agent's own temporary folder, and no keyring is used.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_ENV = {
    "SYNC_INTERVAL_MS": "300",
    "SYNC_RETRY_ATTEMPTS": "3",
    "SYNC_RETRY_BASE_DELAY_MS": "100",
    "SYNC_RETRY_MAX_DELAY_MS": "500",
    "SYNC_AUTO": "true",
    "SYNC_AUTO_RECONCILE": "false",
    "SYNC_RECONCILE_INTERVAL_MS": "60000",
    "SYNC_DIVERGENCE_STRATEGY": "refresh_mismatched",
}

# Variables of the developer's own agent that must not leak into a test agent.
_SCRUB = ("SYNC_", "NEXT_PUBLIC_SYNC_", "PDVSYNC_CLOCK_SKEW_MS", "DISPLAY", "WAYLAND_DISPLAY")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AgentProcess:
    def __init__(
        self,
        root: Path,
        *,
        server_url: str,
        machine_id: str,
        env: dict[str, str] | None = None,
        port: int = 0,
    ) -> None:
        self.root = Path(root)
        self.data_dir = self.root / "data"
        self.log_dir = self.root / "logs"
        self.home = self.root / "home"
        self.server_url = server_url
        self.machine_id = machine_id
        self.extra_env = env or {}
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.output: list[str] = []
        self.url = ""
        self._reader: threading.Thread | None = None

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
        env.update(
            {
                "HOME": str(self.home),
                "XDG_CONFIG_HOME": str(self.home / ".config"),
                "XDG_DATA_HOME": str(self.home / ".local" / "share"),
                "XDG_STATE_HOME": str(self.home / ".local" / "state"),
                "XDG_CACHE_HOME": str(self.home / ".cache"),
                "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": str(ROOT),
                **DEFAULT_ENV,
                **self.extra_env,
            }
        )
        return env

    def start(self, timeout: float = 20.0) -> AgentProcess:
        for attempt in range(3):
            port = self.port or free_port()
            try:
                self._start(port, timeout)
                self.port = port
                return self
            except _PortInUse:
                if self.port or attempt == 2:
                    raise RuntimeError(
                        "agent could not listen:\n" + "\n".join(self.output[-40:])
                    ) from None
        raise AssertionError("unreachable")

    def _start(self, port: int, timeout: float) -> None:
        for d in (self.data_dir, self.log_dir, self.home):
            d.mkdir(parents=True, exist_ok=True)
        self.output = []
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent",
                "--headless",
                "--server",
                self.server_url,
                "--machine-id",
                self.machine_id,
                "--data-dir",
                str(self.data_dir),
                "--local-port",
                str(port),
                "--log-dir",
                str(self.log_dir),
                "--config",
                str(self.root / "agent.json"),
            ],
            cwd=self.root,
            env=self._env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()
        proc = self.proc

        def read() -> None:
            assert proc.stdout
            for line in proc.stdout:
                self.output.append(line.rstrip("\n"))
                m = re.search(r"Local API on (http://127\.0\.0\.1:\d+)", line)
                if m:
                    self.url = m.group(1)
                    ready.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not ready.is_set():
            if proc.poll() is not None:
                self._close()
                if proc.returncode == 4:
                    raise _PortInUse()
                raise RuntimeError(
                    f"agent {self.machine_id} exited ({proc.returncode}):\n"
                    + "\n".join(self.output[-40:])
                )
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"agent {self.machine_id} did not start:\n" + "\n".join(self.output[-40:])
                )
            ready.wait(0.05)

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    # -- conveniences, all through the loopback API -----------------------------------

    def get(self, path: str, **kw) -> dict:
        with self.client() as c:
            r = c.get(path, **kw)
        assert r.status_code == 200, f"{self.machine_id} GET {path}: {r.status_code} {r.text}"
        return r.json()

    def post(
        self,
        path: str,
        body: dict | None = None,
        *,
        expect: int | None = 200,
        timeout: float = 60.0,
    ) -> dict:
        with self.client(timeout) as c:
            r = c.post(path, json=body) if body is not None else c.post(path)
        if expect is not None:
            assert r.status_code == expect, (
                f"{self.machine_id} POST {path}: {r.status_code} {r.text}"
            )
        return r.json()

    def status(self) -> dict:
        return self.get("/api/sync/status")

    def rows(self, table: str) -> dict[str, dict]:
        """The agent's view of a table, by id."""
        body = self.get(f"/api/{table}")
        return {r["id"]: r for r in body[table]}

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM: the agent finishes its current work and exits."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._close()
        return self.proc.returncode if self.proc else None

    def kill(self) -> None:
        """SIGKILL: no chance to clean up (a power cut, as far as the agent can tell)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._close()

    def restart(self, timeout: float = 20.0) -> AgentProcess:
        """Start again on the same data folder and port (after `stop()` or `kill()`)."""
        if self.alive:
            self.stop()
        return self.start(timeout)

    def _close(self) -> None:
        if self.proc and self.proc.stdout and self.proc.poll() is not None:
            if self._reader:
                self._reader.join(timeout=5)
            self.proc.stdout.close()

    def log_text(self) -> str:
        path = self.log_dir / "agent.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


class _PortInUse(Exception):
    pass
