"""Silent network loss: how long until the agent's badge says Offline, and the server lets go.

A production server (SQLite, an API key) and a headless agent, both real processes on
127.0.0.1; the agent reaches the server only through `bench.blackhole.BlackholeProxy`. Once
the agent is online with its live socket up, after a random 2–6 s (so the fault does not
always fall at the same point of the keep-alive cycle), the proxy goes silent at time T:
nothing forwarded either way, no socket closed, no RST, no FIN (a cable pulled between two
switches, a Wi-Fi that stops carrying packets). Then, every 100 ms:

- the agent's `GET /api/sync/status` (its loopback, not through the proxy): T → `state` is
  "offline" is the figure, aimed at 15 s or less (issue 12);
- /proc/net/tcp: T → the agent's socket of the live WebSocket leaves ESTABLISHED (the agent
  gave it up), and T → the server's end of it does (the server gave it up).

A trial ends when all three are seen or after `bound` seconds; then the proxy aborts the
silent connections, forwards again, and the next trial waits for the agent to be live again.

    python -m bench.netloss_bench [--trials 2] [--bound 60]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from bench.agent_bench import BenchError, Proc, start_agent, start_server, wait_online
from bench.blackhole import BlackholeProxy, Pair

AIM_S = 15.0  # issue 12: a silent loss noticed within 15 s, badge Offline
POLL_S = 0.1
# /proc/net/tcp `st` column (include/net/tcp_states.h).
TCP_STATES = {
    "01": "ESTABLISHED",
    "02": "SYN_SENT",
    "03": "SYN_RECV",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "09": "LAST_ACK",
    "0A": "LISTEN",
    "0B": "CLOSING",
}

Log = Callable[[str], None]


@dataclass
class LossTrial:
    """Seconds from T; None: not seen within the bound."""

    agent_offline_s: float | None
    agent_closed_s: float | None
    server_closed_s: float | None
    bound_s: float


def tcp_state(local_port: int, remote_port: int, table: str | None = None) -> str | None:
    """The state of the IPv4 loopback socket local_port → remote_port, None when gone.
    `table`: the text of /proc/net/tcp (read now when not given)."""
    if table is None:
        with open("/proc/net/tcp") as f:
            table = f.read()
    want = (f"{local_port:04X}", f"{remote_port:04X}")
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4:
            continue
        local, remote = fields[1].split(":")[1], fields[2].split(":")[1]
        if (local, remote) == want:
            return TCP_STATES.get(fields[3], fields[3])
    return None


def live_pair(proxy: BlackholeProxy) -> Pair | None:
    """The newest WebSocket connection through the proxy whose agent end is established."""
    for pair in reversed(proxy.pairs()):
        if pair.websocket and tcp_state(pair.client_port, proxy.port) == "ESTABLISHED":
            return pair
    return None


def agent_state(client: httpx.Client) -> str | None:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        return client.get("/api/sync/status", timeout=1.0).json().get("state")
    return None


def one_trial(
    proxy: BlackholeProxy, agent: httpx.Client, server_port: int, bound: float, log: Log
) -> LossTrial:
    pair = live_pair(proxy)
    if pair is None:
        raise BenchError("no live WebSocket through the proxy")
    t = proxy.blackhole()
    offline = agent_closed = server_closed = None
    while time.monotonic() - t < bound:
        now = time.monotonic() - t
        if offline is None and agent_state(agent) == "offline":
            offline = now
        with open("/proc/net/tcp") as f:
            table = f.read()
        if agent_closed is None and tcp_state(pair.client_port, proxy.port, table) != "ESTABLISHED":
            agent_closed = now
        if (
            server_closed is None
            and tcp_state(server_port, pair.upstream_port, table) != "ESTABLISHED"
        ):
            server_closed = now
        if None not in (offline, agent_closed, server_closed):
            break
        time.sleep(max(0.0, POLL_S - (time.monotonic() - t - now)))
    trial = LossTrial(offline, agent_closed, server_closed, bound)
    log(
        "silent loss, from T: "
        + ", ".join(
            f"{label} {_s(v, bound)}"
            for label, v in (
                ("badge offline", offline),
                ("agent closed its socket", agent_closed),
                ("server closed its socket", server_closed),
            )
        )
    )
    return trial


def _s(value: float | None, bound: float) -> str:
    return f"{value:.1f} s" if value is not None else f"> {bound:.0f} s"


def run_netloss(work: Path, key: str, trials: int, bound: float, log: Log) -> list[LossTrial]:
    procs: list[Proc] = []
    proxy: BlackholeProxy | None = None
    try:
        _, server_url = start_server(work, key, procs, name="loss-server")
        server_port = urlsplit(server_url).port or 0
        proxy = BlackholeProxy(server_port)
        proxy.start()
        agent_proc, agent_url = start_agent(work, "loss", proxy.url, key, procs)
        out: list[LossTrial] = []
        with httpx.Client(base_url=agent_url, timeout=5) as agent:
            for _ in range(trials):
                wait_online(agent, "loss", agent_proc, timeout=90)
                time.sleep(random.uniform(2.0, 6.0))
                out.append(one_trial(proxy, agent, server_port, bound, log))
                proxy.restore()
        return out
    finally:
        if proxy is not None:
            proxy.stop()
        for p in reversed(procs):
            p.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.netloss_bench", description=__doc__)
    p.add_argument("--trials", type=int, default=2)
    p.add_argument("--bound", type=float, default=60.0, help="seconds a trial may last")
    args = p.parse_args(argv)

    def log(msg: str) -> None:
        print(f"[netloss] {msg}", file=sys.stderr, flush=True)

    work = Path(tempfile.mkdtemp(prefix="pdvsync-netloss-"))
    try:
        run_netloss(work, secrets.token_urlsafe(24), args.trials, args.bound, log)
        return 0
    except BenchError as exc:
        log(f"failed: {exc}")
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
