"""A real sync server in a subprocess (`python -m server serve`) on 127.0.0.1, for tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


class ServerProcess:
    """Start with `start()`; `url` is http://127.0.0.1:<port>; `stop()` or `kill()` ends it."""

    def __init__(
        self,
        data_dir: Path,
        *,
        database_url: str | None = None,
        env: dict[str, str] | None = None,
        port: int = 0,
        args: list[str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.database_url = database_url
        self.extra_env = env or {}
        self.port = port
        self.args = args or []
        self.proc: subprocess.Popen | None = None
        self.output: list[str] = []
        self.url = ""

    def start(self, timeout: float = 20.0) -> ServerProcess:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "API_SECRET_KEY", "HOST", "PORT")
        }
        env.update(
            {"DATA_DIR": str(self.data_dir), "PYTHONUNBUFFERED": "1", "NODE_ENV": "development"}
        )
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server",
                "--env-file",
                "",
                "serve",
                "--port",
                str(self.port),
                *self.args,
            ],
            cwd=self.data_dir,
            env={**env, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()

        def read() -> None:
            assert self.proc and self.proc.stdout
            for line in self.proc.stdout:
                self.output.append(line.rstrip("\n"))
                m = re.search(r"Server listening on port (\d+)", line)
                if m:
                    self.port = int(m.group(1))
                if "Sync ready" in line:
                    ready.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not ready.is_set():
            if self.proc.poll() is not None:
                time.sleep(0.2)
                raise RuntimeError("server exited:\n" + "\n".join(self.output[-40:]))
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("server did not become ready:\n" + "\n".join(self.output[-40:]))
            ready.wait(0.05)
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def client(self, api_key: str | None = None, timeout: float = 10.0) -> httpx.Client:
        headers = {"x-api-key": api_key} if api_key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def settled_output(self, timeout: float = 10.0) -> str:
        """The output so far, once every line the server wrote before now has been read: one
        more request, then wait for its access-log line (the server writes in order, the
        reader reads in order). Assertions that a secret is *absent* need this, or they can
        pass on lines still in the pipe. Needs the access log (NODE_ENV=development)."""

        def health_lines() -> int:
            return sum("/health" in line for line in list(self.output))

        before = health_lines()
        with httpx.Client(base_url=self.url, timeout=timeout) as c:
            c.get("/health")
        deadline = time.monotonic() + timeout
        while health_lines() <= before:
            if time.monotonic() > deadline:
                raise AssertionError("the server's access log did not show GET /health")
            time.sleep(0.02)
        return "\n".join(self.output)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._close()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._close()

    def _close(self) -> None:
        if self.proc and self.proc.stdout and self.proc.poll() is not None:
            self._reader.join(timeout=5)  # it ends at EOF, now that the process is gone
            self.proc.stdout.close()
