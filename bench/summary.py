"""The one table of `make bench`: each line of issue 12's table, measured against its anchor.

`Line` is one row (work | measured | anchor | ratio | aim | met?); the `*_lines` functions
turn each benchmark's results into rows (a benchmark that failed or was skipped still gets
its rows, saying so, never a silent gap); `render` writes the markdown block with the date,
the commit and the load average before and after; `append_history` adds it to
bench/results/history.md, from which five consecutive runs are copied into the README.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HISTORY = ROOT / "bench" / "results" / "history.md"

INGEST_AIM = 0.30
THROUGHPUT_AIM = 3.0
P50_AIM_MS = 5.0
READS_AIM_MS = 50.0
LOSS_AIM_S = 15.0
RSS_AIM_MB = 80.0
# "No periodic wake-ups beyond the socket keep-alive": pings sized for the 15 s detection aim
# come every ~5 s, 12 a minute, each waking the live connection's thread for the ping and
# for its pong: 24, rounded up to 30 (bench/README.md).
WAKEUPS_AIM_PER_MIN = 30.0


@dataclass
class Line:
    work: str
    measured: str
    anchor: str
    ratio: str
    aim: str
    met: bool | None  # None: for information, no aim of its own

    @property
    def verdict(self) -> str:
        return {True: "yes", False: "**NO**", None: "–"}[self.met]


@dataclass
class Meta:
    started: dt.datetime
    seconds: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    quick: bool = False
    commit: str = ""
    notes: list[str] = field(default_factory=list)


def failed(work: str, aim: str, why: str) -> Line:
    return Line(work, f"not measured: {why}", "–", "–", aim, False)


def ingest_line(rows: Sequence[Any], skipped: dict[str, str], error: str | None) -> Line:
    """server_bench.Row of PostgreSQL, batch 100, one client."""
    work = "server ingest, batches of 100 over HTTP, PostgreSQL"
    aim = f"≥ {INGEST_AIM:.0%} of direct"
    if error or "postgresql" in skipped:
        return failed(work, aim, error or skipped["postgresql"])
    match = [r for r in rows if r.backend == "postgresql" and r.batch == 100 and r.clients == 1]
    if not match:
        return failed(work, aim, "no PostgreSQL row at batch 100")
    r = match[0]
    return Line(
        work,
        f"{r.rate:,.0f} events/s ({r.server_cpu / r.events * 1e6:,.0f} µs server CPU/event)",
        f"raw psycopg executemany upsert {r.direct_rate:,.0f} events/s",
        f"{r.ratio:.1%}",
        aim,
        r.ratio >= INGEST_AIM,
    )


def agent_lines(results: dict[str, Any] | None, error: str | None) -> list[Line]:
    """agent_bench.run's results: throughput, then live latency p50 and p99."""
    works = (
        "products from A's loopback to B, end to end",
        "one update A → B while live, p50",
        "one update A → B while live, p99",
    )
    aims = (f"≥ {THROUGHPUT_AIM:.0f}× (stretch 5×)", f"≤ {P50_AIM_MS:.0f} ms", "< PouchDB's")
    if error or results is None:
        return [failed(w, a, error or "no result") for w, a in zip(works, aims, strict=True)]
    pdv, pouch = results["pdvsync"], results["pouchdb"]
    t, lat = pdv["throughput"], pdv["latency"]
    docs = f"{pdv['docs']:,} {works[0]}"
    have_pouch = "skipped" not in pouch
    why_not = pouch.get("skipped", "")
    detail = "" if t.get("complete", True) else " (partial: not all reached B in time)"
    cpu = t.get("cpuMicrosPerDoc")
    if cpu:
        detail += " (CPU µs/doc: " + ", ".join(f"{w} {v:,.0f}" for w, v in cpu.items()) + ")"
    if have_pouch:
        pt, pl = pouch["throughput"]["docsPerSecond"], pouch["latency"]
        ratio = t["docsPerSecond"] / pt
        throughput = Line(
            docs,
            f"{t['docsPerSecond']:,.0f} docs/s{detail}",
            f"PouchDB {pt:,.0f} docs/s",
            f"{ratio:.2f}×",
            aims[0],
            ratio >= THROUGHPUT_AIM and t.get("complete", True),
        )
    else:
        throughput = Line(
            docs,
            f"{t['docsPerSecond']:,.0f} docs/s{detail}",
            f"PouchDB skipped: {why_not}",
            "–",
            aims[0],
            False,
        )
    p50, p99 = lat.get("p50"), lat.get("p99")
    # How B saw each update (agent_bench --latency-mode): its long-poll, or polling.
    mode = pdv.get("latencyMode")
    how = {
        "wait": " (read waiting for a change)",
        "watch": " (long-poll, then a read)",
        "poll": f" (polled every {pdv.get('pollMs', 0):g} ms)",
    }
    seen = how.get(mode, "") if isinstance(mode, str) else ""
    pouch_p50 = f"; PouchDB {pl['p50']:.1f} ms" if have_pouch and pl.get("p50") else ""
    median = Line(
        works[1],
        _ms(p50) + seen,
        f"aim {P50_AIM_MS:.0f} ms{pouch_p50}",
        f"{p50 / P50_AIM_MS:.2f}×" if p50 is not None else "–",
        aims[1],
        p50 is not None and p50 <= P50_AIM_MS,
    )
    pouch_p99 = pl.get("p99") if have_pouch else None
    tail = Line(
        works[2],
        _ms(p99) + seen,
        f"PouchDB {_ms(pouch_p99)}" if pouch_p99 else f"PouchDB skipped: {why_not}",
        f"{p99 / pouch_p99:.2f}×" if p99 is not None and pouch_p99 else "–",
        aims[2],
        p99 is not None and pouch_p99 is not None and p99 < pouch_p99,
    )
    return [throughput, median, tail]


def reads_lines(stats: Sequence[Any], skipped: dict[str, str], rows: int) -> list[Line]:
    """reads_bench.ReadStats of each place; `skipped`: place -> why it was not measured."""
    aim = f"≤ {READS_AIM_MS:.0f} ms"
    out = []
    for s in stats:
        out.append(
            Line(
                f"GET /api/products of {s.rows:,} rows, {s.where}",
                f"median {s.median_ms:.1f} ms (p95 {s.p95_ms:.1f}, cold {s.cold_ms:.0f}; "
                f"CPU {s.cpu_ms:.0f} ms/request)",
                f"aim {READS_AIM_MS:.0f} ms; floor (raw read + json) {s.floor_ms:.1f} ms "
                f"(CPU {s.floor_cpu_ms:.0f} ms)",
                f"{s.median_ms / READS_AIM_MS:.2f}×",
                aim,
                s.median_ms <= READS_AIM_MS,
            )
        )
    for where, why in skipped.items():
        out.append(failed(f"GET /api/products of {rows:,} rows, {where}", aim, why))
    return out


def loss_lines(trials: Sequence[Any], error: str | None) -> list[Line]:
    """netloss_bench.LossTrial of each trial: the badge (the aim) and the server's end."""
    work = "silent network loss → badge Offline"
    aim = f"≤ {LOSS_AIM_S:.0f} s"
    if error or not trials:
        return [failed(work, aim, error or "no trial")]
    bound = trials[0].bound_s

    def worst(values: list[float | None]) -> tuple[float | None, str]:
        seen = [v for v in values if v is not None]
        each = ", ".join(f"{v:.1f}" if v is not None else f">{bound:.0f}" for v in values)
        return (max(seen) if len(seen) == len(values) else None), each

    badge, badge_each = worst([t.agent_offline_s for t in trials])
    server, server_each = worst([t.server_closed_s for t in trials])
    agent_sock, agent_each = worst([t.agent_closed_s for t in trials])
    n = len(trials)
    return [
        Line(
            work,
            f"{_s(badge, bound)} worst of {n} (each: {badge_each} s)",
            f"aim {LOSS_AIM_S:.0f} s",
            f"{badge / LOSS_AIM_S:.2f}×" if badge is not None else "–",
            aim,
            badge is not None and badge <= LOSS_AIM_S,
        ),
        Line(
            "silent network loss → each end drops the socket",
            f"agent {_s(agent_sock, bound)} ({agent_each}); server {_s(server, bound)} "
            f"({server_each})",
            "–",
            "–",
            "–",
            None,
        ),
    ]


def idle_lines(stats: Sequence[Any], tray_skipped: str | None, error: str | None) -> list[Line]:
    """idle_bench.IdleStats of the headless agent and of the tray app."""
    wake_work, rss_work = "idle headless agent: wake-ups", "idle agent with the tray: RSS"
    wake_aim = f"≤ {WAKEUPS_AIM_PER_MIN:.0f}/min (keep-alive only)"
    rss_aim = f"≤ {RSS_AIM_MB:.0f} MB"
    if error:
        return [failed(wake_work, wake_aim, error), failed(rss_work, rss_aim, error)]
    by = {s.who: s for s in stats}
    out = []
    if "headless" in by:
        h = by["headless"]
        out.append(
            Line(
                wake_work,
                f"{h.wakeups_per_min:.0f}/min over {h.seconds:.0f} s ({h.cpu_percent:.2f}% of a "
                f"core, RSS {h.rss_mb:.0f} MB)",
                f"keep-alive only: {WAKEUPS_AIM_PER_MIN:.0f}/min",
                f"{h.wakeups_per_min / WAKEUPS_AIM_PER_MIN:.1f}×",
                wake_aim,
                h.wakeups_per_min <= WAKEUPS_AIM_PER_MIN,
            )
        )
    if "tray" in by:
        t = by["tray"]
        out.append(
            Line(
                rss_work,
                f"{t.rss_mb:.0f} MB ({t.wakeups_per_min:.0f} wake-ups/min, {t.cpu_percent:.2f}% "
                "of a core)",
                f"aim {RSS_AIM_MB:.0f} MB",
                f"{t.rss_mb / RSS_AIM_MB:.2f}×",
                rss_aim,
                t.rss_mb <= RSS_AIM_MB,
            )
        )
    else:
        out.append(failed(rss_work, rss_aim, tray_skipped or "not measured"))
    return out


def _short(measured: str) -> str:
    """The figure of a `measured` cell without its details in parentheses."""
    short = measured.split(" (")[0]
    for prefix in ("median ",):
        short = short.removeprefix(prefix)
    return short.split(" over ")[0].split(" worst of ")[0]


def _ms(v: float | None) -> str:
    return f"{v:.1f} ms" if v is not None else "n/a"


def _s(v: float | None, bound: float) -> str:
    return f"{v:.1f} s" if v is not None else f"> {bound:.0f} s"


def _load(v: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.2f}" for x in v)


def render(lines: Sequence[Line], meta: Meta) -> str:
    met = sum(1 for x in lines if x.met)
    judged = sum(1 for x in lines if x.met is not None)
    head = (
        f"### make bench{' --quick' if meta.quick else ''} — "
        f"{meta.started.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
    )
    out = [
        head,
        "",
        f"Commit {meta.commit or 'unknown'} · {os.cpu_count()} CPUs · Python "
        f"{platform.python_version()} · run took {meta.seconds / 60:.1f} min · load average "
        f"(1/5/15 min) before {_load(meta.load_before)}, after {_load(meta.load_after)}",
        "",
        "| work | measured | anchor | ratio | aim | met? |",
        "|---|---|---|---:|---|:---:|",
    ]
    for x in lines:
        cells = (x.work, x.measured, x.anchor, x.ratio, x.aim, x.verdict)
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    out += ["", f"{met} of {judged} aims met."]
    out += [f"- {n}" for n in meta.notes]
    return "\n".join(out) + "\n"


def render_runs(runs: Sequence[tuple[Meta, Sequence[Line]]]) -> str:
    """Consecutive runs side by side (`--runs N`): each line's ratio and verdict per run,
    how many runs met its aim, and the load of each run, for the README."""
    first = runs[0][0]
    head = f"### make bench, {len(runs)} consecutive runs — from {first.started:%Y-%m-%d %H:%M} UTC"
    cols = [f"run {k}" for k in range(1, len(runs) + 1)]
    out = [
        head,
        "",
        "| work | aim | " + " | ".join(cols) + " | met in |",
        "|---|---|" + "---:|" * len(cols) + ":---:|",
    ]
    for line in runs[0][1]:
        # By name, not position: a part that failed in one run may list its lines elsewhere.
        same = [next((x for x in lines if x.work == line.work), None) for _, lines in runs]
        found = [x for x in same if x is not None]
        cells = [
            "–"
            if x is None
            else _short(x.measured)
            + ("" if x.ratio == "–" else f" · {x.ratio}")
            + {True: " ✓", False: " ✗", None: ""}[x.met]
            for x in same
        ]
        met = "–" if line.met is None else f"{sum(1 for x in found if x.met)} of {len(runs)}"
        row = [line.work, line.aim, *cells, met]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    loads = [f"{m.load_before[0]:.1f} → {m.load_after[0]:.1f}" for m, _ in runs]
    out.append("| load average (1 min) before → after | | " + " | ".join(loads) + " | |")
    minutes = sum(m.seconds for m, _ in runs) / 60
    out += [
        "",
        f"Each cell: the figure · measured ÷ anchor (✓ aim met). All runs: {minutes:.0f} min.",
    ]
    return "\n".join(out) + "\n"


def append_history(block: str, path: Path = HISTORY) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(block + "\n")
    return path


def git_commit() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return ""
    return rev + (" (with local changes)" if dirty else "")
