"""`python -m server serve`: the seed's readiness lines, configuration from `.env` in the
working directory, CORS, clean stop and clear configuration errors."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.serverproc import ROOT


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "DATABASE_URL",
            "API_SECRET_KEY",
            "HOST",
            "PORT",
            "NODE_ENV",
            "ENV",
            "CORS_ORIGINS",
            "DATA_DIR",
            "MAX_BODY_BYTES",
            "LOG_DIR",
        )
    }
    env.update({"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **extra})
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(cwd: Path, args: list[str], env: dict[str, str], timeout: float = 30.0):
    """Run `python -m server <args>` in `cwd` until 'Sync ready'; yields (process, output lines)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if "Sync ready" in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            assert proc.poll() is None, "server exited:\n" + "\n".join(lines)
            assert time.monotonic() < deadline, "server not ready:\n" + "\n".join(lines)
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        reader.join(5)
        assert proc.stdout
        proc.stdout.close()


def test_prints_the_three_readiness_lines(live_server, database_url):
    out = live_server.output
    listening = next(i for i, line in enumerate(out) if "✓ Server listening on port" in line)
    connected = next(i for i, line in enumerate(out) if "✓ Database connected" in line)
    ready = next(i for i, line in enumerate(out) if "✓ Sync ready" in line)
    assert listening < connected < ready
    assert out[listening].endswith(f"port {live_server.port}")
    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    assert backend in out[connected]
    assert ":@" not in out[connected] and "password" not in out[connected].lower()
    with live_server.client() as c:
        assert c.get("/health").json()["status"] == "ok"


def test_reads_dotenv_from_the_working_directory_and_the_environment_wins(tmp_path):
    port = _free_port()
    (tmp_path / ".env").write_text(
        "# the seed's variables\n"
        f"PORT={port}\n"
        "NODE_ENV=production\n"
        "API_SECRET_KEY=from-dotenv-5d1c\n"
        f"DATABASE_URL=sqlite:///{tmp_path / 'dotenv.db'}\n"
        "CORS_ORIGINS=https://seu-frontend.com\n",
        encoding="utf-8",
    )
    with serve(tmp_path, ["serve"], _clean_env()) as (_, lines):
        assert f"✓ Server listening on port {port}" in lines
        assert any(str(tmp_path / "dotenv.db") in line for line in lines)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            assert c.get("/api/products").status_code == 401
            r = c.get(
                "/api/products",
                headers={"x-api-key": "from-dotenv-5d1c", "origin": "https://seu-frontend.com"},
            )
            assert r.status_code == 200
            assert r.headers["access-control-allow-origin"] == "https://seu-frontend.com"
    assert (tmp_path / "dotenv.db").exists()

    # An environment variable wins over the file.
    with (
        serve(tmp_path, ["serve"], _clean_env(API_SECRET_KEY="from-env-77aa")),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c,
    ):
        assert c.get("/api/products", headers={"x-api-key": "from-dotenv-5d1c"}).status_code == 401
        assert c.get("/api/products", headers={"x-api-key": "from-env-77aa"}).status_code == 200

    # `--env-file` names another file; `--port` wins over both.
    other = tmp_path / "other.env"
    other.write_text(f"DATABASE_URL=sqlite:///{tmp_path / 'other.db'}\n", encoding="utf-8")
    with serve(tmp_path, ["--env-file", str(other), "serve", "--port", "0"], _clean_env()) as (
        _,
        lines,
    ):
        port2 = int(re.search(r"listening on port (\d+)", "\n".join(lines)).group(1))
        with httpx.Client(base_url=f"http://127.0.0.1:{port2}", timeout=10) as c:
            assert c.get("/api/products").status_code == 200  # no key in that file
    assert (tmp_path / "other.db").exists()


def test_cors_allows_only_the_configured_origins(server_factory, tmp_path):
    allowed = "http://caixa.local:3000"
    server = server_factory(
        database_url=f"sqlite:///{tmp_path / 'cors.db'}",
        env={"CORS_ORIGINS": f"{allowed}, https://admin.example", "NODE_ENV": "production"},
    )
    with server.client() as c:
        r = c.get("/api/products", headers={"origin": allowed})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == allowed
        r = c.get("/api/products", headers={"origin": "https://admin.example"})
        assert r.headers["access-control-allow-origin"] == "https://admin.example"
        r = c.get("/api/products", headers={"origin": "http://evil.example"})
        assert "access-control-allow-origin" not in r.headers
        preflight = {
            "access-control-request-method": "POST",
            # What the seed's client sends: its key and its shop.
            "access-control-request-headers": "content-type,x-api-key,x-tenant-id",
        }
        r = c.options("/api/sync/products", headers={"origin": allowed, **preflight})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == allowed
        allowed_headers = r.headers["access-control-allow-headers"].lower()
        assert "x-api-key" in allowed_headers and "x-tenant-id" in allowed_headers
        r = c.options("/api/sync/products", headers={"origin": "http://evil.example", **preflight})
        assert "access-control-allow-origin" not in r.headers


def test_production_without_cors_origins_allows_no_cross_origin(server_factory, tmp_path):
    server = server_factory(
        database_url=f"sqlite:///{tmp_path / 'prod.db'}", env={"NODE_ENV": "production"}
    )
    with server.client() as c:
        for origin in ("http://caixa.local:3000", "null", "https://seu-frontend.com"):
            r = c.get("/api/products", headers={"origin": origin})
            assert r.status_code == 200
            assert "access-control-allow-origin" not in r.headers
            r = c.options(
                "/api/products", headers={"origin": origin, "access-control-request-method": "GET"}
            )
            assert "access-control-allow-origin" not in r.headers
        assert c.get("/docs").status_code == 404  # no API explorer in production either


def test_stops_cleanly_on_sigint(server_factory, tmp_path):
    server = server_factory(database_url=f"sqlite:///{tmp_path / 'stop.db'}")
    server.stop()
    assert server.proc.returncode in (0, 130)  # 130: the conventional status after Ctrl+C
    assert any("Application shutdown complete" in line for line in server.output)
    assert not any("Traceback" in line for line in server.output)


def test_configuration_errors_are_clear(tmp_path):
    for env, needle in (
        ({"PORT": "abc"}, "PORT"),
        ({"NODE_ENV": "staging"}, "NODE_ENV"),
        ({"MAX_BODY_BYTES": "lots"}, "MAX_BODY_BYTES"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "server", "--env-file", "", "serve"],
            cwd=tmp_path,
            env=_clean_env(DATA_DIR=str(tmp_path), **env),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done
        assert "Configuration error" in done.stderr and needle in done.stderr
        assert "Traceback" not in done.stderr
