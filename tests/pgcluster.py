"""A throwaway PostgreSQL cluster for tests and benchmarks (initdb + pg_ctl, loopback only).

Running as root, initdb and pg_ctl must run as the `postgres` user (see shared STACK.md).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here, or the cluster did not start."""


def find_bindir() -> Path | None:
    explicit = os.environ.get("PDVSYNC_PG_BINDIR")
    candidates = [explicit] if explicit else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """Start with `start()`, get `url(dbname)`, `createdb(name)`, stop with `stop()`."""

    def __init__(self) -> None:
        self.bindir = find_bindir()
        if self.bindir is None:
            raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found")
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pdvsync-pg-"))
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = list(args)
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    def start(self) -> PgCluster:
        if self._as_postgres:
            shutil.chown(self.dir, "postgres")
        os.chmod(self.dir, 0o700)
        data = self.dir / "data"
        r = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        if r.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {r.stderr.strip()[-500:]}")
        opts = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200"
        )
        r = self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(self.dir / "log"),
            "-w",
            "-t",
            "30",
            "-o",
            opts,
            "start",
        )
        if r.returncode != 0:
            log = (
                (self.dir / "log").read_text(errors="replace")[-800:]
                if (self.dir / "log").exists()
                else ""
            )
            raise PostgresUnavailable(f"pg_ctl start failed: {r.stderr.strip()} {log}")
        return self

    def createdb(self, name: str) -> str:
        r = self._run(
            str(self.bindir / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            name,
        )
        if r.returncode != 0:
            raise PostgresUnavailable(f"createdb {name} failed: {r.stderr.strip()}")
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.dir / "data"),
            "-m",
            "immediate",
            "-w",
            "stop",
        )
        shutil.rmtree(self.dir, ignore_errors=True)


if __name__ == "__main__":  # manual use: python -m tests.pgcluster
    import time

    c = PgCluster().start()
    print(c.createdb("dev"), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        c.stop()
