"""Fixtures of the cluster tests: N real server processes on one PostgreSQL behind a real
HAProxy (Debian's `haproxy`, in the foreground on 127.0.0.1), as the README's "Several
server processes behind a load balancer" describes.

HAProxy missing: the tests skip, except in CI (`CI` or `PDVSYNC_REQUIRE_HAPROXY=1`), where
they fail, as PostgreSQL's do; `.ci/run` installs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.agentproc import free_port
from tests.serverproc import ServerProcess

REQUIRED = os.environ.get("PDVSYNC_REQUIRE_HAPROXY") == "1" or os.environ.get("CI", "").lower() in (
    "1",
    "true",
    "yes",
)

# The configuration the README shows (its ports filled in): plain HTTP load balancing with
# health checks on /health, WebSockets kept open for an hour (`timeout tunnel`), and a
# request that could not reach a server (refused connection, or no answer at all from one
# that died) sent to another one: safe, every write carries its eventId. The client's address
# goes on in X-Forwarded-For, which the servers believe from HAProxy only (TRUSTED_PROXIES).
CONFIG = """\
global
    maxconn 2000

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    retries 3
    option redispatch
    retry-on conn-failure empty-response
    option forwardfor

frontend pdvsync
    bind 127.0.0.1:{port}
    default_backend servers

backend servers
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    default-server check inter 500ms fall 2 rise 2
{servers}
"""


def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")


class Haproxy:
    """`start()` writes the configuration, checks it (`haproxy -c`) and runs HAProxy in the
    foreground (`-db`) until `stop()`; `url` is its frontend."""

    def __init__(self, binary: str, workdir: Path, backends: list[int]) -> None:
        self.binary = binary
        self.workdir = workdir
        self.backends = backends
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "haproxy.cfg"
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    def config(self) -> str:
        servers = "\n".join(
            f"    server s{n} 127.0.0.1:{port}" for n, port in enumerate(self.backends, 1)
        )
        return CONFIG.format(port=self.port, servers=servers)

    def start(self, timeout: float = 20.0) -> Haproxy:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config())
        check = subprocess.run(
            [self.binary, "-c", "-f", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert check.returncode == 0, f"haproxy -c: {check.stdout}{check.stderr}"
        self.proc = subprocess.Popen(
            [self.binary, "-db", "-f", str(self.config_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        proc = self.proc

        def read() -> None:
            assert proc.stdout
            for line in proc.stdout:
                self.output.append(line.rstrip("\n"))

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError("haproxy exited:\n" + "\n".join(self.output[-20:]))
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("haproxy not ready:\n" + "\n".join(self.output[-20:]))
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()


class Cluster:
    """`servers` (real server processes on one database) and `haproxy` in front of them."""

    def __init__(self, servers: list[ServerProcess], haproxy: Haproxy) -> None:
        self.servers = servers
        self.haproxy = haproxy

    @property
    def url(self) -> str:
        return self.haproxy.url


@pytest.fixture
def haproxy_bin() -> str:
    binary = haproxy_binary()
    if binary is None:
        reason = "haproxy not installed (apt-get install -y --no-install-recommends haproxy)"
        if REQUIRED:
            pytest.fail(f"HAProxy is required here (CI): {reason}")
        pytest.skip(reason)
    return binary


@pytest.fixture
def cluster(haproxy_bin, pg_url, tmp_path) -> Iterator[Cluster]:
    """Three server processes on one PostgreSQL database, HAProxy in front."""
    servers: list[ServerProcess] = []
    haproxy: Haproxy | None = None
    try:
        # One after the other: the first one migrates the database, the others find it done.
        for n in range(3):
            server = ServerProcess(
                tmp_path / f"server{n + 1}",
                database_url=pg_url,
                env={"TRUSTED_PROXIES": "127.0.0.1"},
            )
            servers.append(server.start())
        haproxy = Haproxy(haproxy_bin, tmp_path / "haproxy", [s.port for s in servers]).start()
        yield Cluster(servers, haproxy)
    finally:
        if haproxy is not None:
            haproxy.stop()
        for s in servers:
            s.kill()
