"""Issue 12's list reads, measured: `GET /api/products` of N products on a real server (SQLite
or PostgreSQL) and on a real agent synced from it; warm p50/p95 and the server's CPU per GET.

    .venv/bin/python -m scripts.measure_reads [--backends sqlite,postgresql,agent] [--rows 10000]
        [--reads 40] [--writes] [--others]

Loopback only. Prints one line per target: p50/p95/min/max ms over `--reads` GETs on one
keep-alive connection, after `--warm` unmeasured GETs, and CPU ms per GET of the answering
process (the figure to compare on a shared machine). `--writes`: also GETs each right after
a patch of one product, and after one new product; `--others`: also the other list routes
and the seed's `GET /api/sync/products`. The agent is synced from the SQLite server.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.server_bench import cpu_seconds, encode_batches, make_records, push_all
from tests.agentproc import AgentProcess
from tests.pgcluster import PgCluster
from tests.serverproc import ServerProcess

OTHER_ROUTES = ("/api/supplies", "/api/orders", "/api/order_items", "/api/sync/products")


def time_gets(url: str, path: str, pid: int, reads: int, warm: int) -> dict[str, Any]:
    with httpx.Client(base_url=url, timeout=120.0) as client:
        for _ in range(warm):
            client.get(path).raise_for_status()
        took = []
        cpu0 = cpu_seconds([pid])
        for _ in range(reads):
            t0 = time.perf_counter()
            r = client.get(path)
            took.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
        cpu = (cpu_seconds([pid]) - cpu0) * 1000 / reads
        size = len(r.content)
    took.sort()
    return {
        "p50": statistics.median(took),
        "p95": took[int(len(took) * 0.95) - 1],
        "min": took[0],
        "max": took[-1],
        "cpu_ms": cpu,
        "bytes": size,
    }


def time_after_writes(url: str, pid: int, reads: int, new: bool) -> dict[str, Any]:
    """Each GET right after one write: a patch of an existing product, or (`new`) a product
    that joins the list (the list order is asked again)."""
    with httpx.Client(base_url=url, timeout=120.0) as client:
        ids = [p["id"] for p in client.get("/api/products").json()["products"][:reads]]
        took = []
        cpu = 0.0
        for i in range(reads):
            if new:
                w = client.post("/api/products", json={"name": f"novo {i}", "price": "1.00"})
            else:
                w = client.patch(f"/api/products/{ids[i]}", json={"price": f"{i % 90 + 1}.25"})
            w.raise_for_status()
            cpu0 = cpu_seconds([pid])
            t0 = time.perf_counter()
            r = client.get("/api/products")
            took.append((time.perf_counter() - t0) * 1000)
            cpu += cpu_seconds([pid]) - cpu0
            r.raise_for_status()
    took.sort()
    return {
        "p50": statistics.median(took),
        "p95": took[int(len(took) * 0.95) - 1],
        "min": took[0],
        "max": took[-1],
        "cpu_ms": cpu * 1000 / reads,
        "bytes": len(r.content),
    }


def fill(url: str, rows: int) -> None:
    """`rows` products, plus a few orders, items and supplies, pushed in batches of 500."""
    push_all(url, "measure-fill", encode_batches(make_records("p", rows), 500))
    now = "2026-01-15T12:00:00.000Z"
    batch = []
    for i in range(200):
        oid = f"o-{i:05d}"
        batch.append({"table": "orders", "record": {"id": oid, "createdAt": now, "total": "10.50"}})
        batch.append(
            {
                "table": "order_items",
                "record": {"id": f"i-{i:05d}", "order_id": oid, "quantity": 1, "price": "10.50"},
            }
        )
        batch.append({"table": "supplies", "record": {"id": f"s-{i:05d}", "name": f"s{i}"}})
    events = [{"eventId": str(uuid.uuid4()), **e} for e in batch]
    with httpx.Client(base_url=url, timeout=120.0) as c:
        r = c.post("/api/sync/batch", json={"machineId": "measure-fill", "events": events})
        if r.status_code != 200:
            print("extra tables not filled:", r.status_code, r.text[:300], file=sys.stderr)


def wait_agent(agent: AgentProcess, rows: int, timeout: float = 300) -> None:
    end = time.time() + timeout
    while time.time() < end:
        with contextlib.suppress(httpx.HTTPError):
            got = len(agent.get("/api/products")["products"])
            if got >= rows:
                return
        time.sleep(1)
    raise RuntimeError("agent did not sync in time")


def report(name: str, path: str, m: dict[str, Any]) -> None:
    print(
        f"{name:11s} {path:20s} p50 {m['p50']:7.1f} ms  p95 {m['p95']:7.1f} ms  "
        f"min {m['min']:6.1f}  max {m['max']:7.1f}  cpu {m['cpu_ms']:6.1f} ms/GET  "
        f"{m['bytes']:,} bytes",
        flush=True,
    )


def measure(name: str, url: str, pid: int, args: argparse.Namespace) -> None:
    report(name, "/api/products", time_gets(url, "/api/products", pid, args.reads, args.warm))
    if args.writes:
        for new, label in ((False, "after patch"), (True, "after insert")):
            report(name, label, time_after_writes(url, pid, max(5, args.reads // 2), new))
    if args.others:
        for path in OTHER_ROUTES:
            report(name, path, time_gets(url, path, pid, max(5, args.reads // 4), 2))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--backends", default="sqlite,postgresql,agent")
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--reads", type=int, default=40)
    p.add_argument("--warm", type=int, default=3)
    p.add_argument("--others", action="store_true", help="also the other list routes")
    p.add_argument("--writes", action="store_true", help="also GETs right after a write")
    args = p.parse_args(argv)
    wanted = args.backends.split(",")
    with tempfile.TemporaryDirectory(prefix="measure-reads-") as tmp, contextlib.ExitStack() as st:
        root = Path(tmp)
        sqlite_server = None
        if "sqlite" in wanted or "agent" in wanted:
            sqlite_server = ServerProcess(root / "sqlite").start()
            st.callback(sqlite_server.stop)
            fill(sqlite_server.url, args.rows)
        if "sqlite" in wanted and sqlite_server:
            measure("server-sqlite", sqlite_server.url, sqlite_server.proc.pid, args)
        if "postgresql" in wanted:
            cluster = PgCluster().start()
            st.callback(cluster.stop)
            pg = ServerProcess(root / "pg", database_url=cluster.createdb("measure")).start()
            st.callback(pg.stop)
            fill(pg.url, args.rows)
            measure("server-pg", pg.url, pg.proc.pid, args)
        if "agent" in wanted and sqlite_server:
            agent = AgentProcess(root / "agent", server_url=sqlite_server.url, machine_id="m-read")
            agent.start()
            st.callback(agent.stop)
            wait_agent(agent, args.rows)
            time.sleep(2)  # let the engine settle (reconcile, reports)
            measure("agent", agent.url, agent.proc.pid, args)
    print(json.dumps({"rows": args.rows, "reads": args.reads}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
