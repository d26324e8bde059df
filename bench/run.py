"""`make bench`: every line of issue 12's table, measured in one run, in one summary table.

In turn, each on its own fresh processes and temp folders (127.0.0.1 only):

1. server ingest — `bench.server_bench.ingest`: batches of 100 over HTTP on PostgreSQL,
   beside raw psycopg `executemany` upserts of the same rows;
2. agent end to end — `bench.agent_bench.run`: products from A's loopback to B and live
   update latency, beside PouchDB;
3. list reads — `bench.reads_bench`: `GET /api/products` on a server (SQLite, then
   PostgreSQL) and on a synced agent, beside the raw read + json floor;
4. idle — `bench.idle_bench`: a headless agent and the tray app (under Xvfb), socket up,
   nothing happening: CPU, RSS, wake-ups;
5. silent network loss — `bench.netloss_bench`: T → badge Offline through a proxy that goes
   silent.

A part that fails is reported as such in its lines and the others still run. The summary
(work | measured | anchor | ratio | aim | met?, with the date, the commit and the load
average before and after) is printed, and appended to bench/results/history.md; with
`--runs N`, N runs in a row and then one table of all of them side by side; the detailed
tables of each part are in bench/results/ too. Exit status 0 when every part ran (aims met
or not), 1 when one failed, 130 when interrupted.

    python -m bench.run [--quick] [--only ingest,agent,reads,idle,netloss] [--runs 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/run.py` as well as `python -m bench.run`
    sys.path.insert(0, str(ROOT))

from bench import agent_bench, idle_bench, netloss_bench, reads_bench, server_bench  # noqa: E402
from bench import summary as sm  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PARTS = ("ingest", "agent", "reads", "idle", "netloss")


@dataclass(frozen=True)
class Sizes:
    ingest_events: int
    agent_args: list[str]
    rows: int
    requests: int
    idle_s: float
    loss_trials: int
    loss_bound_s: float


FULL = Sizes(
    ingest_events=20_000,
    agent_args=[],  # the agent bench's own defaults: 10,000 products, 200 updates
    rows=10_000,
    requests=20,
    idle_s=30.0,
    loss_trials=2,
    loss_bound_s=60.0,
)
QUICK = Sizes(
    ingest_events=2_000,
    agent_args=["--docs", "1000", "--updates", "30", "--idle", "2", "--latency-budget", "10"],
    rows=1_000,
    requests=5,
    idle_s=5.0,
    loss_trials=1,
    loss_bound_s=45.0,
)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _why(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"{type(exc).__name__}: {first}"[:200]


def run_ingest(sizes: Sizes) -> list[sm.Line]:
    try:
        rows, skipped, notes = server_bench.ingest(
            "postgresql", [(100, sizes.ingest_events, 1)], log
        )
    except Exception as exc:  # a part that fails must not take the others with it
        log(f"ingest failed:\n{traceback.format_exc()}")
        return [sm.ingest_line([], {}, _why(exc))]
    (RESULTS / "server.md").write_text(server_bench.render(rows, notes, skipped), encoding="utf-8")
    return [sm.ingest_line(rows, skipped, None)]


def run_agent(sizes: Sizes) -> list[sm.Line]:
    try:
        results, _ = agent_bench.run(agent_bench.parse_args(sizes.agent_args))
    except Exception as exc:
        log(f"agent end to end failed:\n{traceback.format_exc()}")
        return sm.agent_lines(None, _why(exc))
    return sm.agent_lines(results, None)


def run_reads_and_idle(sizes: Sizes, parts: set[str], work: Path) -> list[sm.Line]:
    """Reads on the SQLite shop server and an agent, idle agents on the same shop, then
    reads on PostgreSQL (its own cluster)."""
    key = secrets.token_urlsafe(24)
    procs: list[agent_bench.Proc] = []
    reads: list[reads_bench.ReadStats] = []
    reads_skipped: dict[str, str] = {}
    idle_out: list[sm.Line] = []
    try:
        shop = reads_bench.start_shop(work, key, sizes.rows, procs, log)
        shop_url = shop[1]
        if "reads" in parts:
            try:
                reads += reads_bench.reads_sqlite_and_agent(
                    work, key, shop, sizes.rows, sizes.requests, procs, log
                )
            except Exception as exc:
                log(f"reads failed:\n{traceback.format_exc()}")
                reads_skipped |= {"server (sqlite)": _why(exc), "agent loopback": _why(exc)}
        if "idle" in parts:
            try:
                stats, tray_skipped = idle_bench.run_idle(
                    work, key, shop_url, sizes.idle_s, True, log
                )
                idle_out = sm.idle_lines(stats, tray_skipped, None)
            except Exception as exc:
                log(f"idle failed:\n{traceback.format_exc()}")
                idle_out = sm.idle_lines([], None, _why(exc))
    except Exception as exc:  # the shop itself did not start
        log(f"shop server failed:\n{traceback.format_exc()}")
        if "reads" in parts:
            reads_skipped |= {"server (sqlite)": _why(exc), "agent loopback": _why(exc)}
        if "idle" in parts:
            idle_out = sm.idle_lines([], None, _why(exc))
    finally:
        for p in reversed(procs):
            p.stop()
    if "reads" in parts:
        try:
            pg, why = reads_bench.reads_postgres(work, key, sizes.rows, sizes.requests, log)
        except Exception as exc:
            log(f"reads on PostgreSQL failed:\n{traceback.format_exc()}")
            pg, why = None, _why(exc)
        if pg is not None:
            reads.append(pg)
        else:
            reads_skipped["server (postgresql)"] = why or "not measured"
    out = sm.reads_lines(reads, reads_skipped, sizes.rows) if "reads" in parts else []
    (RESULTS / "reads.json").write_text(
        json.dumps([asdict(r) for r in reads], indent=2), encoding="utf-8"
    )
    return out + idle_out


def run_netloss(sizes: Sizes, work: Path) -> list[sm.Line]:
    try:
        trials = netloss_bench.run_netloss(
            work, secrets.token_urlsafe(24), sizes.loss_trials, sizes.loss_bound_s, log
        )
    except Exception as exc:
        log(f"silent network loss failed:\n{traceback.format_exc()}")
        return sm.loss_lines([], _why(exc))
    (RESULTS / "netloss.json").write_text(
        json.dumps([asdict(t) for t in trials], indent=2), encoding="utf-8"
    )
    return sm.loss_lines(trials, None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run of the harness")
    p.add_argument(
        "--only", default=",".join(PARTS), help=f"comma-separated parts of {', '.join(PARTS)}"
    )
    p.add_argument(
        "--runs", type=int, default=1, help="consecutive runs; more than one adds a table of all"
    )
    p.add_argument("--history", type=Path, default=sm.HISTORY, help="where the summary is appended")
    args = p.parse_args(argv)
    parts = {x.strip() for x in args.only.split(",") if x.strip()}
    if not parts <= set(PARTS):
        p.error(f"--only: unknown part(s) {', '.join(sorted(parts - set(PARTS)))}")
    if not sys.platform.startswith("linux"):
        print("The benchmarks read /proc: Linux only.", file=sys.stderr)
        return 2
    if args.runs < 1:
        p.error("--runs: at least 1")
    sizes = QUICK if args.quick else FULL

    def on_term(*_: Any) -> None:
        raise KeyboardInterrupt

    # Ctrl-C and SIGTERM reach the cleanup, even when started with SIGINT ignored.
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    RESULTS.mkdir(parents=True, exist_ok=True)
    runs: list[tuple[sm.Meta, list[sm.Line]]] = []
    try:
        for k in range(args.runs):
            if args.runs > 1:
                log(f"run {k + 1} of {args.runs}")
            meta, lines = one_run(sizes, parts, args.quick)
            block = sm.render(lines, meta)
            print(block, flush=True)
            log(f"summary appended to {sm.append_history(block, args.history)}")
            runs.append((meta, lines))
    except KeyboardInterrupt:
        log("interrupted: every process started was stopped, temp folders removed")
        return 130
    if len(runs) > 1:
        table = sm.render_runs(runs)
        print(table)
        sm.append_history(table, args.history)
    failed = any(x.measured.startswith("not measured") for _, lines in runs for x in lines)
    return 1 if failed else 0


def one_run(sizes: Sizes, parts: set[str], quick: bool) -> tuple[sm.Meta, list[sm.Line]]:
    started, t0 = dt.datetime.now(dt.UTC), time.monotonic()
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="pdvsync-bench-run-"))
    lines: list[sm.Line] = []
    try:
        if "ingest" in parts:
            log("1/5 server ingest (PostgreSQL, batches of 100)")
            lines += run_ingest(sizes)
        if "agent" in parts:
            log("2/5 agent end to end, beside PouchDB")
            lines += run_agent(sizes)
        if parts & {"reads", "idle"}:
            log("3-4/5 list reads and the idle agent")
            lines += run_reads_and_idle(sizes, parts, work)
        if "netloss" in parts:
            log("5/5 silent network loss")
            lines += run_netloss(sizes, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    meta = sm.Meta(
        started=started,
        seconds=time.monotonic() - t0,
        load_before=load_before,
        load_after=os.getloadavg(),
        quick=quick,
        commit=sm.git_commit(),
        notes=[
            "ratio = measured ÷ anchor (throughput and ingest: higher is better; times and "
            "sizes: lower is better). Rates move with whatever else the machine runs: "
            "compare the load average, and the CPU figures (here and in bench/results/*.md).",
        ],
    )
    return meta, lines


if __name__ == "__main__":
    sys.exit(main())
