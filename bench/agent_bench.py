"""Agent benchmark (`make bench`, after the server's): PDV Sync end to end, beside PouchDB.

A real server (`python -m server serve`, SQLite default, production settings, an API key) and
two real agents, A and B (`python -m agent --headless`), all on 127.0.0.1. Measured:

- throughput: A takes N products through its loopback API (POST /api/sync/products, batches
  of `--batch`, one client, one request at a time); the time for A to accept them, and the
  time until B holds them all (B's /api/sync/status cursor reaches the server's head after
  the N inserts: B commits rows and cursor in one transaction). docs/s end to end.
- live latency: one rename of one product on A, until B's loopback shows it: B's record read
  waits for a change (`?after=&wait=`), or with `--latency-mode watch` B waits on its
  long-poll (`GET /api/sync/watch`) then reads, or with `poll` it polls
  GET /api/products/{id} every `--poll-ms` (bench/live_latency.py); sequential updates,
  p50/p95/p99; the timed requests go through the standard library's keep-alive
  `http.client` (httpx's own ~0.3 ms per request is the tool's, not the system's).
- idle: B left alone for `--idle` s: CPU time from /proc/<pid>/stat (utime+stime) as % of
  one core, and RSS (VmRSS) from /proc/<pid>/status.

The same with PouchDB (bench/pouch/bench.js: an express-pouchdb server and two live-syncing
PouchDB clients, three node processes), installed with npm on first use; skipped with the
reason when node or npm are missing. A markdown table with both side by side is printed and
written to bench/results/agent.md (JSON beside it). Everything is cleaned up on the way out,
on failure and on Ctrl-C too.

    python -m bench.agent_bench [--docs 10000] [--batch 100] [--updates 200]
                                [--latency-mode wait|watch|poll] [--poll-ms 2]
                                [--idle 10] [--no-pouch] [--pouch-adapter leveldb|memory]
                                [--timeout 90] [--latency-budget 40] [--pouch-timeout 60]

Every phase is bounded (about 4 minutes in all at worst, about 2 usually); a throughput run
that does not finish in time is reported as partial rather than failing the whole run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench import live_latency

ROOT = Path(__file__).resolve().parent.parent
POUCH_DIR = ROOT / "bench" / "pouch"
RESULTS_DIR = ROOT / "bench" / "results"
HOST = "127.0.0.1"  # the only address this benchmark talks to
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# Reference figures measured earlier for PouchDB on these machines (issue 3).
POUCH_REFERENCE = {"docs_per_s": 2800, "p99_ms": 19}
AIM_THROUGHPUT_RATIO = 3.0


class BenchError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"[agent-bench] {message}", file=sys.stderr, flush=True)


# -- processes -------------------------------------------------------------------------------


class Proc:
    """A child process in its own session, its output in a log file."""

    def __init__(
        self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path, log_path: Path
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal reaches us only; we stop it
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.output())
            if m:
                return m
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{self.name}: no '{pattern}' within {timeout:.0f} s:\n{self.tail()}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus anything that would point a child elsewhere or change it."""
    drop = (
        "DATABASE_URL",
        "API_SECRET_KEY",
        "HOST",
        "PORT",
        "DISPLAY",
        "WAYLAND_DISPLAY",
        "PDVSYNC_CLOCK_SKEW_MS",
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in drop and not k.startswith(("SYNC_", "NEXT_PUBLIC_SYNC_"))
    }
    env.update({"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), **extra})
    return env


def start_server(
    work: Path,
    key: str,
    procs: list[Proc],
    *,
    name: str = "server",
    database_url: str | None = None,
) -> tuple[Proc, str]:
    """A production server in `work/<name>` (SQLite there unless `database_url` is given)."""
    data = work / name
    data.mkdir()
    env = clean_env(
        DATA_DIR=str(data), LOG_DIR=str(data / "logs"), NODE_ENV="production", API_SECRET_KEY=key
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    proc = Proc(
        name,
        [sys.executable, "-m", "server", "--env-file", "", "serve", "--host", HOST, "--port", "0"],
        env=env,
        cwd=data,
        log_path=work / f"{name}.out",
    )
    procs.append(proc)  # stopped by the caller, even if it never gets ready
    port = int(proc.wait_for(r"Server listening on port (\d+)", 30).group(1))
    proc.wait_for(r"Sync ready", 30)
    return proc, f"http://{HOST}:{port}"


def start_agent(
    work: Path,
    name: str,
    server_url: str,
    key: str,
    procs: list[Proc],
    *,
    tray_env: dict[str, str] | None = None,
) -> tuple[Proc, str]:
    """A headless agent; with `tray_env` (a display's variables) the tray app instead."""
    data = work / f"agent-{name}"
    data.mkdir()
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "agent",
        *([] if tray_env is not None else ["--headless"]),
        "--server",
        server_url,
        "--machine-id",
        f"bench-{name}",
        "--data-dir",
        str(data),
        "--local-port",
        str(port),
        "--log-dir",
        str(data / "logs"),
        "--config",
        str(data / "agent.json"),
    ]  # no such file: defaults, not the user's config
    env = clean_env(SYNC_API_KEY=key)
    if tray_env is not None:
        # The tray touches per-user places (autostart entry, single-instance socket, site
        # config): all of them inside the agent's own folder, never the real user's.
        home = data / "home"
        home.mkdir()
        env.update(
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_CONFIG_DIRS=str(home / "etc-xdg"),
            XDG_DATA_HOME=str(home / ".local" / "share"),
            XDG_CACHE_HOME=str(home / ".cache"),
            XDG_RUNTIME_DIR=str(home),
            TMPDIR=str(home),
            **tray_env,
        )
    proc = Proc(
        f"agent {name}",
        argv,
        env=env,
        cwd=data,
        log_path=work / f"agent-{name}.out",
    )
    procs.append(proc)
    if tray_env is None:
        port = int(proc.wait_for(r"Local API on http://127\.0\.0\.1:(\d+)", 30).group(1))
    else:  # the tray prints nothing: its loopback API answering is the sign
        wait_listening(proc, port, 30)
    return proc, f"http://{HOST}:{port}"


def wait_listening(proc: Proc, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise BenchError(f"{proc.name} exited ({proc.proc.returncode}):\n{proc.tail()}")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"http://{HOST}:{port}/health", timeout=2).raise_for_status()
            return
        time.sleep(0.1)
    raise BenchError(f"{proc.name}: loopback API not up within {timeout:.0f} s:\n{proc.tail()}")


def wait_online(client: httpx.Client, name: str, proc: Proc, timeout: float = 30.0) -> None:
    """Until the agent has synced once and holds its live connection to the server."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise BenchError(f"agent {name} exited:\n{proc.tail()}")
        with contextlib.suppress(httpx.HTTPError, ValueError):
            status = client.get("/api/sync/status").json()
            if status.get("online") and status.get("live") and status.get("pending") == 0:
                return
        time.sleep(0.05)
    raise BenchError(
        f"agent {name} not online and live within {timeout:.0f} s: {status}\n{proc.tail()}"
    )


# -- measurements ----------------------------------------------------------------------------


def product(i: int) -> dict[str, Any]:
    return {
        "id": f"p-{i:06d}",
        "name": f"Produto {i}",
        "description": "Pão francês artesanal, fermentação natural, 50 g",
        "price": "12.50",
        "category": "Padaria",
        "imageUrlId": f"img-{i}",
        "stock_quantity": 100,
    }


def push_body(records: list[dict[str, Any]]) -> bytes:
    updates = [{"eventId": str(uuid.uuid4()), "record": r} for r in records]
    # With a cursor the answer is the rows written (our protocol); without one it would be
    # the seed client's answer, the whole table, on every request.
    return json.dumps({"localUpdates": updates, "cursor": 0}).encode()


def post_products(client: live_latency.Client, records: list[dict[str, Any]]) -> None:
    r = client.post(
        "/api/sync/products",
        content=push_body(records),
        headers={"content-type": "application/json"},
    )
    if r.status_code != 200:
        raise BenchError(f"A refused a write: HTTP {r.status_code} {r.text[:300]}")
    bad = [x for x in r.json().get("results", []) if x.get("status") != "accepted"]
    if bad:
        raise BenchError(f"A did not accept {len(bad)} of {len(records)} records: {bad[0]}")


def server_head(server_url: str, key: str) -> int:
    r = httpx.get(f"{server_url}/api/stats", headers={"x-api-key": key}, timeout=10)
    r.raise_for_status()
    return int(r.json()["cursor"])


def measure_throughput(
    a: httpx.Client,
    b: httpx.Client,
    server_url: str,
    key: str,
    docs: int,
    batch: int,
    timeout: float,
) -> dict[str, Any]:
    """Bounded by `timeout` (writes and wait together); past it the figures are partial:
    `complete` is False and docs/s counts what B held by then."""
    base = server_head(server_url, key)  # each new product is one server change after it
    records = [product(i) for i in range(docs)]
    t0 = time.perf_counter()
    deadline = t0 + timeout
    sent = 0
    for i in range(0, docs, batch):
        if time.perf_counter() > deadline:
            break
        post_products(a, records[i : i + batch])
        sent = min(docs, i + batch)
    accepted = time.perf_counter() - t0
    log(f"throughput: A accepted {sent} products in {accepted:.2f} s; waiting for B")
    a_drained = None
    held = 0
    while True:
        now = time.perf_counter()
        if a_drained is None and a.get("/api/sync/status").json().get("pending") == 0:
            a_drained = now - t0
        held = int(b.get("/api/sync/status").json().get("cursor", 0)) - base
        if held >= docs or now > deadline:
            break
        time.sleep(0.02)
    end_to_end = time.perf_counter() - t0
    complete = held >= docs
    while a_drained is None and time.perf_counter() < deadline + 10:  # A hears its last reply
        if a.get("/api/sync/status").json().get("pending") == 0:
            a_drained = time.perf_counter() - t0
        else:
            time.sleep(0.02)
    count = len(b.get("/api/products", timeout=60).json()["products"])
    if complete and count < docs:
        raise BenchError(f"B's cursor is at the head but it lists only {count} of {docs} products")
    if complete:
        log(
            f"throughput: B holds all {docs} after {end_to_end:.2f} s ({docs / end_to_end:,.0f} docs/s)"
        )
    else:
        log(
            f"throughput: NOT COMPLETE within {timeout:.0f} s: A accepted {sent}, B holds {max(held, 0)}"
        )
    return {
        "complete": complete,
        "acceptedOnA": sent,
        "acceptSeconds": accepted,
        "acceptDocsPerSecond": sent / accepted if accepted else None,
        "pushedSeconds": a_drained,
        "endToEndSeconds": end_to_end,
        "docsPerSecond": max(held, 0) / end_to_end,
        "heldOnB": max(held, 0),
        "countOnB": count,
    }


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 is fields[0]
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def memory_mb(pid: int) -> dict[str, float]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out


def measure_idle(proc: Proc, seconds: float) -> dict[str, Any]:
    pid = proc.pid
    c0, w0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    c1, w1 = cpu_seconds(pid), time.monotonic()
    mem = memory_mb(pid)
    out = {
        "seconds": w1 - w0,
        "cpuPercent": (c1 - c0) / (w1 - w0) * 100,
        "rssMB": mem.get("VmRSS"),
        "peakRssMB": mem.get("VmHWM"),
    }
    log(
        f"idle B: {out['cpuPercent']:.2f} % of one core, RSS {_f(out['rssMB'], 0)} MB (peak {_f(out['peakRssMB'], 0)} MB)"
    )
    return out


def run_pdvsync(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    key = secrets.token_urlsafe(24)
    procs: list[Proc] = []
    try:
        server, server_url = start_server(work, key, procs)
        agent_a, url_a = start_agent(work, "a", server_url, key, procs)
        agent_b, url_b = start_agent(work, "b", server_url, key, procs)
        log(f"server {server_url}, agent A {url_a}, agent B {url_b}")
        with (
            httpx.Client(base_url=url_a, timeout=30) as a,
            httpx.Client(base_url=url_b, timeout=30) as b,
        ):
            wait_online(a, "A", agent_a)
            wait_online(b, "B", agent_b)
            trio = {"a": agent_a.pid, "server": server.pid, "b": agent_b.pid}
            cpu0 = {who: cpu_seconds(pid) for who, pid in trio.items()}
            throughput = measure_throughput(
                a, b, server_url, key, args.docs, args.batch, args.timeout
            )
            # CPU per product of each process: steadier than docs/s on a busy machine.
            throughput["cpuMicrosPerDoc"] = {
                who: (cpu_seconds(pid) - cpu0[who]) / max(1, throughput["heldOnB"]) * 1e6
                for who, pid in trio.items()
            }
            log(
                "throughput: CPU per product "
                + ", ".join(f"{w} {v:.0f} µs" for w, v in throughput["cpuMicrosPerDoc"].items())
            )
            time.sleep(0.5)
            pid = product(0)["id"]
            light = args.latency_client == "stdlib"  # else the throughput's httpx clients
            with (
                live_latency.LightClient(url_a) if light else contextlib.nullcontext(a) as timed_a,
                live_latency.LightClient(url_b) if light else contextlib.nullcontext(b) as timed_b,
            ):
                until = {
                    "wait": lambda: live_latency.by_waiting_read(timed_b, pid),
                    "watch": lambda: live_latency.by_watching(timed_b, pid),
                    "poll": lambda: live_latency.by_polling(timed_b, pid, args.poll_ms),
                }[args.latency_mode]()
                latency = live_latency.measure_latency(
                    lambda name: post_products(timed_a, [{"id": pid, "name": name}]),
                    until,
                    args.updates,
                    args.latency_budget,
                    log,
                )
            log(
                f"latency ({args.latency_mode}): p50 {_f(latency['p50'], 1)} ms, "
                f"p95 {_f(latency['p95'], 1)} ms, p99 {_f(latency['p99'], 1)} ms"
                + (f", {latency['timeouts']} timeouts" if latency["timeouts"] else "")
            )
        time.sleep(1.0)
        idle = measure_idle(agent_b, args.idle)
        return {
            "system": "PDV Sync",
            "backend": "sqlite",
            "processes": 3,
            "docs": args.docs,
            "batch": args.batch,
            "latencyMode": args.latency_mode,
            "latencyClient": args.latency_client,
            "pollMs": args.poll_ms,
            "throughput": throughput,
            "latency": latency,
            "idle": idle,
        }
    except BaseException:
        for p in procs:
            if p.proc.poll() is not None or isinstance(sys.exc_info()[1], BenchError):
                log(f"--- {p.name} output (tail) ---\n{p.tail(15)}")
        raise
    finally:
        for p in reversed(procs):
            p.stop()


# -- PouchDB ---------------------------------------------------------------------------------


def ensure_pouch_deps() -> str | None:
    """None when bench/pouch is ready to run; otherwise why PouchDB is skipped."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node:
        return "node is not installed"
    if (POUCH_DIR / "node_modules" / "express-pouchdb").is_dir():
        return None
    if not npm:
        return "npm is not installed (needed once to install bench/pouch's dependencies)"
    cmd = [
        npm,
        "ci" if (POUCH_DIR / "package-lock.json").is_file() else "install",
        "--no-audit",
        "--no-fund",
    ]
    log(f"installing PouchDB dependencies: {' '.join(cmd[1:])} in bench/pouch")
    try:
        r = subprocess.run(cmd, cwd=POUCH_DIR, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        return "npm install took longer than 240 s"
    if r.returncode != 0:
        return f"npm failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-400:]}"
    return None


def run_pouch(work: Path, args: argparse.Namespace, cap: float) -> dict[str, Any]:
    """`cap`: seconds the whole PouchDB run may take (what is left of the overall budget)."""
    reason = ensure_pouch_deps()
    if reason:
        return {"skipped": reason}
    pouch_dir = work / "pouch"
    argv = [
        "node",
        str(POUCH_DIR / "bench.js"),
        "--dir",
        str(pouch_dir),
        "--docs",
        str(args.docs),
        "--batch",
        str(args.batch),
        "--updates",
        str(args.updates),
        "--idle",
        str(args.idle),
        "--adapter",
        args.pouch_adapter,
        "--timeout",
        str(int(args.pouch_timeout)),
        "--budget",
        str(int(args.latency_budget)),
    ]
    proc = subprocess.Popen(
        argv,
        cwd=POUCH_DIR,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # its stderr (progress) goes to ours
    try:
        out, _ = proc.communicate(timeout=cap)
    except subprocess.TimeoutExpired:
        return {"skipped": f"the PouchDB run took longer than {cap:.0f} s and was stopped"}
    finally:
        if proc.poll() is None:  # timeout or Ctrl-C: its children exit when it goes
            proc.kill()
            proc.wait(5)
    if proc.returncode != 0:
        return {"skipped": f"the PouchDB run failed (exit {proc.returncode}); see its output above"}
    return json.loads(out.strip().splitlines()[-1])


# -- report ----------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _ratio(pdv: float | None, pouch: float | None) -> str:
    if pdv is None or not pouch:
        return "n/a"
    return f"{pdv / pouch:.2f}×"


def render(pdv: dict[str, Any], pouch: dict[str, Any], meta: dict[str, Any]) -> str:
    have_pouch = "skipped" not in pouch
    t, lat, idle = pdv["throughput"], pdv["latency"], pdv["idle"]
    pt = pouch.get("throughput", {}) if have_pouch else {}
    pl = pouch.get("latency", {}) if have_pouch else {}
    pi = pouch.get("idle", {}) if have_pouch else {}
    rows = [
        ("A accepts the products (s)", "lower", t["acceptSeconds"], pt.get("acceptSeconds"), 2),
        (
            "B holds them all (s, end to end)",
            "lower",
            t["endToEndSeconds"] if t.get("complete", True) else None,
            pt.get("endToEndSeconds"),
            2,
        ),
        (
            "**throughput end to end (docs/s)**",
            "higher",
            t["docsPerSecond"],
            pt.get("docsPerSecond"),
            0,
        ),
        ("live latency p50 (ms)", "lower", lat["p50"], pl.get("p50"), 1),
        ("live latency p95 (ms)", "lower", lat["p95"], pl.get("p95"), 1),
        ("**live latency p99 (ms)**", "lower", lat["p99"], pl.get("p99"), 1),
        ("live latency max (ms)", "lower", lat["max"], pl.get("max"), 1),
        (
            "idle CPU of client B (% of one core)",
            "lower",
            idle["cpuPercent"],
            pi.get("cpuPercent"),
            2,
        ),
        ("RSS of client B after the run (MB)", "lower", idle["rssMB"], pi.get("rssMB"), 0),
    ]
    lines = [
        f"## Agent benchmark — {meta['date']}",
        "",
        f"{pdv['docs']:,} products written to A in batches of {pdv['batch']} (one client, sequential), "
        f"then {meta['updates']} sequential renames of one product (at most {meta['latencyBudget']:.0f} s), "
        f"seen on B {_latency_short(pdv)}; "
        f"idle {meta['idle']:.0f} s. "
        "Server + A + B are three processes on 127.0.0.1 for both systems.",
        "",
        "| measurement | PDV Sync | PouchDB | PDV ÷ PouchDB | better |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for label, better, a, b, digits in rows:
        lines.append(
            f"| {label} | {_f(a, digits)} | {_f(b, digits) if have_pouch else 'skipped'} | "
            f"{_ratio(a, b) if have_pouch else 'n/a'} | {better} |"
        )
    lines.append("")
    if not t.get("complete", True):
        lines.append(
            f"**PDV Sync throughput run not complete** within its bound: A accepted {t['acceptedOnA']:,}, "
            f"B held {t['heldOnB']:,} after {t['endToEndSeconds']:.0f} s; the docs/s above count those."
        )
    for name, run in (("PDV Sync", lat), ("PouchDB", pl)):
        if run and (run.get("count", 0) < run.get("asked", 0) or run.get("timeouts")):
            lines.append(
                f"{name} latency: {run['count']} of {run['asked']} updates measured "
                f"({run.get('timeouts', 0)} not seen within 5 s; the rest did not fit in the time budget)."
            )
    if have_pouch:
        ratio = t["docsPerSecond"] / pt["docsPerSecond"]
        ok_t = ratio >= AIM_THROUGHPUT_RATIO
        ok_l = lat["p99"] is not None and pl.get("p99") is not None and lat["p99"] < pl["p99"]
        lines.append(
            f"Aim (issue 3): throughput ≥ {AIM_THROUGHPUT_RATIO:.0f}× PouchDB — "
            f"**{'met' if ok_t else 'not met'}** ({ratio:.2f}×); p99 lower than PouchDB — "
            f"**{'met' if ok_l else 'not met'}** ({_f(lat['p99'], 1)} vs {_f(pl.get('p99'), 1)} ms)."
        )
    else:
        lines.append(f"PouchDB skipped: {pouch['skipped']}.")
    lines.append(
        f"Reference PouchDB figures measured earlier on these machines: ≈{POUCH_REFERENCE['docs_per_s']:,} "
        f"docs/s, p99 ≈ {POUCH_REFERENCE['p99_ms']} ms."
    )
    lines += [
        "",
        "How it is measured:",
        "- PDV Sync: server `python -m server serve` (SQLite, NODE_ENV=production, API key), agents "
        "`python -m agent --headless`; writes are `POST /api/sync/products` on A; B is done when its "
        "`/api/sync/status` cursor reaches the server's head (rows and cursor commit together), then "
        "its `GET /api/products` is checked to list all. Latency (time from before A's POST): "
        + _latency_method(pdv)
        + (
            " Both timed requests use one keep-alive `http.client` connection each."
            if pdv.get("latencyClient", "stdlib") == "stdlib"
            else " The timed requests use httpx (as before 2026-12-05)."
        )
        + f" A drained its outbox to the server after {_f(t.get('pushedSeconds'), 2)} s.",
    ]
    if have_pouch:
        lines.append(
            f"- PouchDB {pouch['versions']['pouchdb']} ({pouch['adapter']} adapter) with express-pouchdb "
            f"{pouch['versions']['expressPouchdb']} on node {pouch['versions']['node']}: A and B each "
            "`db.sync(server, {live, retry})`; `bulkDocs` of the batch on A; B is done when its local "
            "changes feed has shown every doc; latency from before A's `put` until B's changes feed "
            "shows the new name (event-driven, no polling)."
        )
    lines += [
        f"- Machine: {meta['cpus']} CPUs, Python {meta['python']}, {meta['platform']}; commit {meta['commit']}. "
        "Other work on the machine at the same time skews these figures: compare within one run.",
        "",
    ]
    return "\n".join(lines)


def _latency_short(pdv: dict[str, Any]) -> str:
    mode = pdv.get("latencyMode", "poll")
    if mode == "wait":
        return "by its record read waiting for a change (`GET /api/products/{id}?after=&wait=`)"
    if mode == "watch":
        return "by its long-poll (`GET /api/sync/watch`) then a read"
    return f"by polling its record every {pdv['pollMs']:g} ms"


def _latency_method(pdv: dict[str, Any]) -> str:
    mode = pdv.get("latencyMode", "poll")
    if mode == "wait":
        return (
            "event-driven: B's `GET /api/products/{id}?after=<token>&wait=<ms>` answers the "
            "record once B's store changed after the token, again until it shows the new name."
        )
    if mode == "watch":
        return (
            "event-driven: B waits on its long-poll `GET /api/sync/watch?after=&wait=`, then "
            "reads `GET /api/products/{id}`, until it shows the new name."
        )
    return (
        f"polled: B's `GET /api/products/{{id}}` every {pdv['pollMs']:g} ms until it shows "
        "the new name."
    )


def git_commit() -> str:
    try:
        r = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return r.stdout.strip() + (" (with local changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.agent_bench", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--docs", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--updates", type=int, default=200)
    p.add_argument(
        "--latency-mode",
        choices=live_latency.MODES,
        default="wait",
        help="how B learns of each rename: its record read waiting for a change (wait), its "
        "long-poll GET /api/sync/watch then a read (watch), or polling the record every "
        "--poll-ms (poll)",
    )
    p.add_argument(
        "--poll-ms", type=float, default=2.0, help="B's polling interval with --latency-mode poll"
    )
    p.add_argument(
        "--latency-client",
        choices=("stdlib", "httpx"),
        default="stdlib",
        help="the client of the timed requests: one keep-alive http.client connection each "
        "(stdlib), or httpx as before 2026-12-05, ~0.3 ms of Python more per request",
    )
    p.add_argument("--idle", type=float, default=10.0, help="seconds of idle measurement")
    p.add_argument(
        "--timeout",
        type=float,
        default=90.0,
        help="bound of the PDV Sync throughput run, writes and wait (s); past it the figures are partial",
    )
    p.add_argument(
        "--latency-budget", type=float, default=40.0, help="bound of each latency run (s)"
    )
    p.add_argument(
        "--pouch-timeout", type=float, default=60.0, help="bound of the PouchDB throughput wait (s)"
    )
    p.add_argument("--no-pouch", action="store_true", help="skip the PouchDB comparison")
    p.add_argument("--pouch-adapter", choices=["leveldb", "memory"], default="leveldb")
    p.add_argument(
        "--budget",
        type=float,
        default=240.0,
        help="overall time budget (s); the PouchDB run gets what is left, at least 60 s",
    )
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "agent.md")
    args = p.parse_args(argv)
    if args.docs < 1 or args.batch < 1 or args.updates < 1:
        p.error("--docs, --batch and --updates must be at least 1")
    return args


def run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """The whole comparison, as `make bench` runs it: the results (`pdvsync`, `pouchdb`,
    `meta`) and their markdown table, also written to `args.out`. Raises BenchError."""
    work = Path(tempfile.mkdtemp(prefix="pdvsync-agent-bench-"))
    started = time.monotonic()
    try:
        log(f"work folder {work}")
        pdv = run_pdvsync(work, args)
        if args.no_pouch:
            pouch: dict[str, Any] = {"skipped": "--no-pouch"}
        else:
            log("PouchDB comparison")
            used = time.monotonic() - started
            pouch = run_pouch(work, args, cap=max(60.0, args.budget - used))
            if "skipped" in pouch:
                log(f"PouchDB skipped: {pouch['skipped']}")
        meta = {
            "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(terse=True),
            "commit": git_commit(),
            "updates": args.updates,
            "idle": args.idle,
            "latencyBudget": args.latency_budget,
        }
        table = render(pdv, pouch, meta)
        results = {"pdvsync": pdv, "pouchdb": pouch, "meta": meta}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table, encoding="utf-8")
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=2), encoding="utf-8")
        log(
            f"written to {args.out} (and {args.out.with_suffix('.json').name}); took {time.monotonic() - started:.0f} s"
        )
        return results, table
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("The agent benchmark reads /proc: Linux only.", file=sys.stderr)
        return 2

    def on_term(*_: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C must reach the cleanup even when started with SIGINT ignored (e.g. in background).
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _, table = run(args)
        print(table)
        return 0
    except BenchError as exc:
        print(f"agent benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("agent benchmark interrupted; cleaned up", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


if __name__ == "__main__":
    sys.exit(main())
