"""The idle agent: CPU, memory and wake-ups while the socket is up and nothing happens.

Two real agents synced with the same server (which holds the shop's products), measured
side by side over the same `seconds`, once each has caught up and settled:

- the headless agent (`python -m agent --headless`), as a PDV without a desktop runs it;
- the tray app (`python -m agent` with a display), under a throwaway Xvfb with a `trayer`
  panel, so the tray icon really exists (see /work/shared/STACK.md); skipped, with the
  reason, when Xvfb is missing.

From /proc (Linux only): CPU time (utime + stime, all threads) as % of one core; VmRSS at the
end; wake-ups, the voluntary context switches of every thread of the process
(/proc/<pid>/task/*/status: the process's own status file counts its main thread only), per
minute. Aims (issue 12): no periodic wake-ups beyond the socket keep-alive — taken as at most
bench.summary.WAKEUPS_AIM_PER_MIN — and RSS ≤ 80 MB with the tray.

    python -m bench.idle_bench [--seconds 30] [--rows 10000] [--no-tray]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.agent_bench import BenchError, Proc, cpu_seconds, memory_mb, start_agent
from bench.reads_bench import start_shop, wait_caught_up

SETTLE_S = 3.0

Log = Callable[[str], None]


@dataclass
class IdleStats:
    who: str  # "headless" or "tray"
    seconds: float
    cpu_percent: float
    rss_mb: float
    wakeups_per_min: float  # voluntary context switches, every thread
    main_wakeups_per_min: float  # the main thread alone (what /proc/<pid>/status shows)
    threads: int
    top_threads: list[str] = field(default_factory=list)  # "name/tid: n/min", busiest first


def thread_switches(pid: int) -> dict[int, tuple[str, int]]:
    """tid -> (thread name, voluntary context switches) of every thread of `pid`."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError, ValueError):
            base = f"/proc/{pid}/task/{tid}"
            with open(f"{base}/comm") as f:
                name = f.read().strip()
            with open(f"{base}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        out[int(tid)] = (name, int(line.split()[1]))
    return out


def measure(procs: dict[str, Proc], seconds: float) -> list[IdleStats]:
    """Every process of `procs` over the same `seconds`."""
    start = {who: (cpu_seconds(p.pid), thread_switches(p.pid)) for who, p in procs.items()}
    t0 = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    out = []
    for who, p in procs.items():
        if p.proc.poll() is not None:
            raise BenchError(f"{p.name} exited while idle:\n{p.tail()}")
        cpu0, sw0 = start[who]
        sw1 = thread_switches(p.pid)
        per_thread = {tid: (name, n - sw0.get(tid, (name, 0))[1]) for tid, (name, n) in sw1.items()}
        per_min = 60.0 / elapsed
        busiest = sorted(per_thread.items(), key=lambda kv: -kv[1][1])[:4]
        out.append(
            IdleStats(
                who=who,
                seconds=elapsed,
                cpu_percent=(cpu_seconds(p.pid) - cpu0) / elapsed * 100,
                rss_mb=memory_mb(p.pid).get("VmRSS", 0.0),
                wakeups_per_min=sum(n for _, n in per_thread.values()) * per_min,
                main_wakeups_per_min=per_thread.get(p.pid, ("", 0))[1] * per_min,
                threads=len(sw1),
                top_threads=[f"{name}/{tid}: {n * per_min:.0f}" for tid, (name, n) in busiest],
            )
        )
    return out


@contextlib.contextmanager
def virtual_display(work: Path) -> Iterator[dict[str, str]]:
    """A throwaway Xvfb (its own display number) with a trayer panel: the environment of a
    Qt app that should see a system tray. Raises BenchError when Xvfb is missing."""
    if not shutil.which("Xvfb"):
        raise BenchError("Xvfb is not installed (apt-get install xvfb xauth trayer)")
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    os.close(write_fd)
    panel: subprocess.Popen[bytes] | None = None
    try:
        ready, _, _ = select.select([read_fd], [], [], 15)
        number = os.read(read_fd, 32).decode().strip() if ready else ""
        if not number.isdigit():
            raise BenchError("Xvfb did not report its display within 15 s")
        env = {"DISPLAY": f":{number}", "QT_QPA_PLATFORM": "xcb"}
        if shutil.which("trayer"):
            panel = subprocess.Popen(
                ["trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel"]
                + ["--width", "200", "--height", "32"],
                env={**os.environ, "DISPLAY": env["DISPLAY"], "HOME": str(work)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            time.sleep(0.5)  # the panel owns the tray selection before the app looks for it
        yield env
    finally:
        os.close(read_fd)
        for child in (panel, xvfb):
            if child is not None and child.poll() is None:
                child.terminate()
                try:
                    child.wait(5)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait(5)


def run_idle(
    work: Path, key: str, server_url: str, seconds: float, tray: bool, log: Log
) -> tuple[list[IdleStats], str | None]:
    """Headless and tray agents against `server_url`: their figures, and why the tray was
    skipped (None when it was measured)."""
    procs: list[Proc] = []
    skipped: str | None = None if tray else "--no-tray"
    try:
        with contextlib.ExitStack() as stack:
            watched: dict[str, tuple[Proc, str]] = {
                "headless": start_agent(work, "idle", server_url, key, procs)
            }
            if tray:
                try:
                    display = stack.enter_context(virtual_display(work))
                    watched["tray"] = start_agent(
                        work, "tray", server_url, key, procs, tray_env=display
                    )
                except BenchError as exc:
                    skipped = str(exc).splitlines()[0]
                    log(f"idle with the tray skipped: {exc}")
            for proc, url in watched.values():
                wait_caught_up(url, server_url, key, proc)
            time.sleep(SETTLE_S)  # the catch-up's last replies and reports are over
            stats = measure({who: proc for who, (proc, _) in watched.items()}, seconds)
            for s in stats:
                log(
                    f"idle {s.who}: {s.cpu_percent:.2f} % of a core, RSS {s.rss_mb:.0f} MB, "
                    f"{s.wakeups_per_min:.0f} wake-ups/min ({s.threads} threads; main thread "
                    f"{s.main_wakeups_per_min:.0f}/min; busiest {', '.join(s.top_threads)})"
                )
            for p in reversed(procs):
                p.stop()
            return stats, skipped
    finally:
        for p in reversed(procs):
            p.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.idle_bench", description=__doc__)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--rows", type=int, default=10_000, help="products on the server")
    p.add_argument("--no-tray", action="store_true")
    args = p.parse_args(argv)

    def log(msg: str) -> None:
        print(f"[idle] {msg}", file=sys.stderr, flush=True)

    work = Path(tempfile.mkdtemp(prefix="pdvsync-idle-"))
    key = secrets.token_urlsafe(24)
    procs: list[Proc] = []
    try:
        _, url = start_shop(work, key, args.rows, procs, log)
        run_idle(work, key, url, args.seconds, not args.no_tray, log)
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
