"""List reads: `GET /api/products` of 10,000 rows, on the server and on an agent's loopback.

What a POS does when it opens its product list. Measured on real processes, 127.0.0.1 only:

- a production server (`python -m server serve`, an API key) on SQLite, holding `rows`
  products pushed through its own API (`POST /api/sync/products`, batches of 1,000);
- the same on PostgreSQL (a throwaway cluster, `tests/pgcluster.py`), when its binaries exist;
- a headless agent (`python -m agent --headless`) that synced those products from the SQLite
  server, read on its loopback API.

Each is read `requests + 1` times from one keep-alive `httpx.Client`, sequentially, each
reply read to its last byte: the first is the cold figure (first read of that process),
the others give the median and p95. The floor beside it is the same rows read in this
process with the raw driver (`sqlite3` on the very database file, `psycopg` on the very
database) and encoded with `json.dumps`: what any server must at least do. The aim
(issue 12) is a median of 50 ms or less.

    python -m bench.reads_bench [--rows 10000] [--requests 20] [--backend sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.agent_bench import (
    BenchError,
    Proc,
    cpu_seconds,
    server_head,
    start_agent,
    start_server,
)
from bench.server_bench import encode_batches, make_records, push_all
from tests.pgcluster import PgCluster, PostgresUnavailable

AIM_MS = 50.0  # issue 12: a list of 10,000 rows in 50 ms or less
FILL_BATCH = 1000

Log = Callable[[str], None]


@dataclass
class ReadStats:
    where: str  # "server (sqlite)", "server (postgresql)", "agent loopback"
    rows: int
    cold_ms: float
    median_ms: float
    p95_ms: float
    floor_ms: float  # raw driver read + json.dumps of the same rows, median
    body_bytes: int
    # CPU time of the serving process per warm request, and of the floor per read: much
    # steadier than the wall clock on a machine busy with other work.
    cpu_ms: float = 0.0
    floor_cpu_ms: float = 0.0

    @property
    def ratio_to_aim(self) -> float:
        return self.median_ms / AIM_MS


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]


def time_reads(
    url: str, headers: dict[str, str], requests: int, expect: int, pid: int
) -> tuple[float, list[float], int, float]:
    """(cold ms, warm ms each, body bytes, CPU ms of process `pid` per warm request) of
    `GET /api/products`, checked to list `expect`."""
    times: list[float] = []
    size = 0
    cpu0 = 0.0
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for i in range(requests + 1):
            if i == 1:
                cpu0 = cpu_seconds(pid)
            t0 = time.perf_counter()
            reply = client.get("/api/products")
            body = reply.content  # every byte received
            times.append((time.perf_counter() - t0) * 1000)
            if reply.status_code != 200:
                raise BenchError(f"GET {url}/api/products -> {reply.status_code}: {body[:200]!r}")
            if i in (0, requests):  # parse off the clock, twice: the first and the last
                listed = len(json.loads(body)["products"])
                if listed != expect:
                    raise BenchError(f"{url}/api/products listed {listed} rows, not {expect}")
            size = len(body)
    cpu = (cpu_seconds(pid) - cpu0) * 1000 / max(1, requests)
    return times[0], times[1:], size, cpu


Floor = tuple[float, float]  # (median wall ms, median CPU ms of this process) per read


def _floor(read: Callable[[], list[Any]], repeats: int) -> Floor:
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        json.dumps({"success": True, "products": read()}, default=str)
        walls.append((time.perf_counter() - t0) * 1000)
        cpus.append((time.process_time() - c0) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def floor_sqlite(db: Path, repeats: int) -> Floor:
    """Every product row read with sqlite3 and json-encoded, in this process."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return _floor(lambda: [dict(r) for r in conn.execute("SELECT * FROM products")], repeats)
    finally:
        conn.close()


def floor_postgres(url: str, repeats: int) -> Floor:
    """Every product row read with psycopg and json-encoded, in this process (PostgreSQL's
    own CPU is not counted in the CPU figure)."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, row_factory=dict_row) as conn:
        return _floor(lambda: conn.execute("SELECT * FROM products").fetchall(), repeats)


def fill(server_url: str, key: str, rows: int, tag: str) -> None:
    """`rows` new products on the server, through its own API."""
    bodies = encode_batches(make_records(tag, rows), FILL_BATCH)
    push_all(server_url, f"bench-fill-{tag}", bodies, headers={"x-api-key": key})


def wait_caught_up(
    agent_url: str, server_url: str, key: str, proc: Proc, timeout: float = 120.0
) -> None:
    """Until the agent holds everything the server has (cursor at the head, nothing
    pending, live socket up)."""
    head = server_head(server_url, key)
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise BenchError(f"{proc.name} exited:\n{proc.tail()}")
        with contextlib.suppress(httpx.HTTPError, ValueError):
            status = httpx.get(f"{agent_url}/api/sync/status", timeout=5).json()
            if (
                int(status.get("cursor") or 0) >= head
                and status.get("pending") == 0
                and status.get("live")
            ):
                return
        time.sleep(0.1)
    raise BenchError(f"{proc.name} did not catch up within {timeout:.0f} s: {status}")


def find_db(folder: Path, name: str) -> Path:
    found = sorted(folder.rglob(name))
    if not found:
        raise BenchError(f"no {name} under {folder}")
    return found[0]


def measure(
    where: str,
    url: str,
    pid: int,
    key: str,
    rows: int,
    requests: int,
    floor: Callable[[], Floor],
    log: Log,
) -> ReadStats:
    """`pid`: the process serving `url`, whose CPU time is counted."""
    cold, warm, size, cpu = time_reads(url, {"x-api-key": key}, requests, rows, pid)
    floor_ms, floor_cpu = floor()
    stats = ReadStats(
        where,
        rows,
        cold,
        statistics.median(warm),
        p95(warm),
        floor_ms,
        body_bytes=size,
        cpu_ms=cpu,
        floor_cpu_ms=floor_cpu,
    )
    log(
        f"reads {where}: cold {cold:.0f} ms, median {stats.median_ms:.1f} ms, p95 "
        f"{stats.p95_ms:.1f} ms, CPU {cpu:.1f} ms/request; floor {floor_ms:.1f} ms "
        f"(CPU {floor_cpu:.1f} ms); {size / 1e6:.1f} MB"
    )
    return stats


def reads_sqlite_and_agent(
    work: Path,
    key: str,
    server: tuple[Proc, str],
    rows: int,
    requests: int,
    procs: list[Proc],
    log: Log,
) -> list[ReadStats]:
    """The SQLite server at `server_url` (already holding `rows` products, its data in
    `work/shop`) and a fresh headless agent that syncs them."""
    server_proc, server_url = server
    server_db = find_db(work / "shop", "pdvsync.db")
    out = [
        measure(
            "server (sqlite)",
            server_url,
            server_proc.pid,
            key,
            rows,
            requests,
            lambda: floor_sqlite(server_db, requests),
            log,
        )
    ]
    agent, agent_url = start_agent(work, "reads", server_url, key, procs)
    wait_caught_up(agent_url, server_url, key, agent)
    agent_db = find_db(work / "agent-reads", "agent.db")
    out.append(
        measure(
            "agent loopback",
            agent_url,
            agent.pid,
            key,
            rows,
            requests,
            lambda: floor_sqlite(agent_db, requests),
            log,
        )
    )
    agent.stop()
    return out


def reads_postgres(
    work: Path, key: str, rows: int, requests: int, log: Log
) -> tuple[ReadStats | None, str | None]:
    """A server on a throwaway PostgreSQL cluster: its figures, or why it was skipped."""
    procs: list[Proc] = []
    cluster = PgCluster()
    try:
        cluster.start()
        url = cluster.createdb("reads")
        server, server_url = start_server(work, key, procs, name="pg-server", database_url=url)
        fill(server_url, key, rows, "pg")
        return (
            measure(
                "server (postgresql)",
                server_url,
                server.pid,
                key,
                rows,
                requests,
                lambda: floor_postgres(url, requests),
                log,
            ),
            None,
        )
    except PostgresUnavailable as exc:
        log(f"reads on PostgreSQL skipped: {exc}")
        return None, str(exc)
    finally:
        for p in reversed(procs):
            p.stop()
        cluster.stop()


def start_shop(work: Path, key: str, rows: int, procs: list[Proc], log: Log) -> tuple[Proc, str]:
    """A SQLite server in `work/shop` holding `rows` products (the reads and idle scenes)."""
    proc, url = start_server(work, key, procs, name="shop")
    t0 = time.monotonic()
    fill(url, key, rows, "shop")
    log(f"shop server {url}: {rows:,} products pushed in {time.monotonic() - t0:.1f} s")
    return proc, url


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.reads_bench", description=__doc__)
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--requests", type=int, default=20)
    p.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = p.parse_args(argv)

    def log(msg: str) -> None:
        print(f"[reads] {msg}", file=sys.stderr, flush=True)

    work = Path(tempfile.mkdtemp(prefix="pdvsync-reads-"))
    key = secrets.token_urlsafe(24)
    procs: list[Proc] = []
    try:
        if args.backend in ("sqlite", "both"):
            shop = start_shop(work, key, args.rows, procs, log)
            reads_sqlite_and_agent(work, key, shop, args.rows, args.requests, procs, log)
        if args.backend in ("postgresql", "both"):
            reads_postgres(work, key, args.rows, args.requests, log)
        return 0
    except BenchError as exc:
        log(f"failed: {exc}")
        return 1
    finally:
        for proc in reversed(procs):
            proc.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
