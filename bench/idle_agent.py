"""Idle agent benchmark (issue 12): what an agent with nothing to do costs its PDV.

A real server (`python -m server serve`, SQLite) and one real agent on 127.0.0.1 with the
production defaults (polling 5 s while the socket is down, reconcile every 60 s), live and
synced, then left alone. Over each window of `--seconds`, from /proc:

- wake-ups: voluntary context switches of all the agent's threads (/proc/<pid>/task/*/status;
  the process's own status file counts its main thread only), per minute, and per thread;
- CPU: utime + stime of the process (/proc/<pid>/stat), as % of one core;
- memory: VmRSS at the end of the window.

`--tray` runs the agent with its tray icon on a private Xvfb display with a real tray
(`trayer`), as a PDV does (needs `Xvfb` and `trayer`, see /work/shared/STACK.md); without it
the agent runs headless. `--as-shipped` keeps out of the agent everything the installer's
bundle leaves out (the `excluded` list of installer/pdvsync-agent.spec). The agent itself
already keeps out the part of it that its dependencies would import through optional
imports (agent/memory.py: psycopg, rich, uvloop...); the rest of the list (unused Qt
modules, tkinter...) is never imported anyway.

    python -m bench.idle_agent [--seconds 60] [--windows 1] [--tray] [--as-shipped] [--settle 10]

Context switches hardly depend on what else the machine does; CPU % does a little (cache,
frequency): compare runs made in the same minutes.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.agentproc import AgentProcess, free_port  # noqa: E402
from tests.serverproc import ServerProcess  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
# The engine's production defaults (tests/agentproc.py makes test agents far busier).
PRODUCTION_ENV = {
    "SYNC_INTERVAL_MS": "5000",
    "SYNC_RETRY_ATTEMPTS": "3",
    "SYNC_RETRY_BASE_DELAY_MS": "500",
    "SYNC_RETRY_MAX_DELAY_MS": "5000",
    "SYNC_AUTO_RECONCILE": "true",
    "SYNC_RECONCILE_INTERVAL_MS": "60000",
}


SPEC = ROOT / "installer" / "pdvsync-agent.spec"


def shipped_site(folder: Path) -> str:
    """A `sitecustomize` that makes the bundle's excluded modules unimportable; the
    PYTHONPATH that uses it."""
    found = re.search(r"^excluded = (\[.*?^\])", SPEC.read_text(), re.S | re.M)
    if not found:
        raise SystemExit(f"no `excluded = [...]` in {SPEC}")
    excluded = ast.literal_eval(found.group(1))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        f"import sys\nfor name in {excluded!r}:\n    sys.modules.setdefault(name, None)\n"
    )
    return f"{folder}{os.pathsep}{ROOT}"


def thread_switches(pid: int) -> dict[int, tuple[str, int, int]]:
    """tid -> (thread name, voluntary, involuntary context switches)."""
    found: dict[int, tuple[str, int, int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        fields = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
        found[int(task.name)] = (
            fields.get("Name", "?").strip(),
            int(fields.get("voluntary_ctxt_switches", "0")),
            int(fields.get("nonvoluntary_ctxt_switches", "0")),
        )
    return found


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(pid: int, seconds: float) -> dict:
    before, cpu0, t0 = thread_switches(pid), cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    after, cpu1, t1 = thread_switches(pid), cpu_seconds(pid), time.monotonic()
    elapsed = t1 - t0
    per_thread = []
    for tid, (name, vol, invol) in after.items():
        _, vol0, invol0 = before.get(tid, (name, 0, 0))
        per_thread.append((tid, name, vol - vol0, invol - invol0))
    per_thread.sort(key=lambda t: -t[2])
    voluntary = sum(t[2] for t in per_thread)
    involuntary = sum(t[3] for t in per_thread)
    return {
        "seconds": elapsed,
        "voluntary_per_min": voluntary * 60 / elapsed,
        "involuntary_per_min": involuntary * 60 / elapsed,
        "cpu_percent": 100 * (cpu1 - cpu0) / elapsed,
        "rss_mb": rss_mb(pid),
        "threads": per_thread,
    }


class TrayAgent(AgentProcess):
    """The agent with its tray (no --headless) on `display`; ready when its API answers."""

    def __init__(self, root: Path, *, display: str, **kw: Any) -> None:
        super().__init__(root, **kw)
        self.display = display

    def start(self, timeout: float = 30.0) -> TrayAgent:
        for d in (self.data_dir, self.log_dir, self.home):
            d.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        env = {**self._env(), "DISPLAY": self.display, "QT_QPA_PLATFORM": "xcb"}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent",
                "--server",
                self.server_url,
                "--machine-id",
                self.machine_id,
                "--data-dir",
                str(self.data_dir),
                "--local-port",
                str(self.port),
                "--log-dir",
                str(self.log_dir),
                "--config",
                str(self.root / "agent.json"),
            ],
            cwd=self.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tray agent exited ({self.proc.returncode})")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/api/sync/status", timeout=2).status_code == 200:
                    return self
            time.sleep(0.2)
        raise RuntimeError("tray agent did not answer")

    def _close(self) -> None:
        """Nothing to close: unlike the headless agent's, this process's output goes to
        /dev/null (no pipe, no reader thread)."""


@contextlib.contextmanager
def x_display():
    """A private Xvfb display with a tray (trayer) on it."""
    if not (shutil.which("Xvfb") and shutil.which("trayer")):
        raise SystemExit("--tray needs Xvfb and trayer (apt-get install xvfb trayer)")
    number = 90 + os.getpid() % 9
    display = f":{number}"
    xvfb = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "800x600x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    trayer = subprocess.Popen(
        ["trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel"]
        + ["--width", "200", "--height", "32"],
        env={**os.environ, "DISPLAY": display},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    try:
        yield display
    finally:
        for proc in (trayer, xvfb):
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--windows", type=int, default=1)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--tray", action="store_true")
    parser.add_argument("--as-shipped", action="store_true")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="idle-agent-")))
        server = ServerProcess(tmp / "server", database_url=f"sqlite:///{tmp / 'server.db'}")
        server.start()
        stack.callback(server.kill)
        url, machine = server.url, "caixa-idle"
        env = dict(PRODUCTION_ENV)
        if args.as_shipped:
            env["PYTHONPATH"] = shipped_site(tmp / "shipped")
        if args.tray:
            display = stack.enter_context(x_display())
            agent: AgentProcess = TrayAgent(
                tmp / "agent",
                display=display,
                server_url=url,
                machine_id=machine,
                env=env,
            )
        else:
            agent = AgentProcess(tmp / "agent", server_url=url, machine_id=machine, env=env)
        agent.start()
        stack.callback(agent.kill)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = agent.status()
            if status["live"] and status["online"] and status["state"] == "synced":
                break
            time.sleep(0.2)
        else:
            raise SystemExit(f"the agent did not get live and synced: {agent.status()}")
        time.sleep(args.settle)
        assert agent.proc is not None
        pid = agent.proc.pid
        mode = "tray (Xvfb + trayer)" if args.tray else "headless"
        mode += ", as shipped" if args.as_shipped else ", development venv"
        load = os.getloadavg()
        print(f"idle agent, {mode}, load average {load[0]:.2f} {load[1]:.2f}")
        for n in range(args.windows):
            m = measure(pid, args.seconds)
            print(
                f"window {n + 1}: {m['seconds']:.0f} s  wake-ups {m['voluntary_per_min']:.0f}/min"
                f"  involuntary {m['involuntary_per_min']:.0f}/min"
                f"  CPU {m['cpu_percent']:.3f}% of a core  RSS {m['rss_mb']:.1f} MB"
            )
            for tid, name, vol, invol in m["threads"]:
                if vol or invol:
                    print(f"    thread {tid} {name}: {vol} voluntary, {invol} involuntary")
        print(f"final status: {agent.status()['state']}, live={agent.status()['live']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
