"""A shop for the panel's browser tests and screenshots: a real server process, a manager
created through its CLI, real agent processes (some behind the 429 proxy), and Debian's
chromium launched by Playwright. No pytest here: `scripts/screenshots.py` uses it too."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.agentproc import AgentProcess
from tests.serverproc import ROOT, ServerProcess

from .throttle import ThrottleProxy

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

MANAGER = "gerente"
PASSWORD = "pao-de-queijo-42"  # what the manager types; at least 8 characters
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

# Agents that sync on their own but reconcile only when asked (the panel asks them).
AGENT_ENV = {"SYNC_AUTO": "true", "SYNC_AUTO_RECONCILE": "false"}


def chromium_binary() -> str | None:
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def launch_browser(playwright: Any) -> Any:
    """Debian's chromium, headless, without the network chatter of a first run (the browser
    Playwright would download is not reachable here)."""
    binary = chromium_binary()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=binary, args=CHROMIUM_ARGS)


def new_context(browser: Any, base_url: str, viewport: dict[str, int], **args: Any) -> Any:
    return browser.new_context(
        base_url=base_url,
        viewport=viewport,
        locale="pt-BR",
        timezone_id="America/Sao_Paulo",
        **args,
    )


def run_cli(server: ServerProcess, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """`pdvsync-server <args>` on the server's database, as the shop's IT would type it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "API_SECRET_KEY", "HOST", "PORT")
    }
    env.update(
        {
            "DATA_DIR": str(server.data_dir),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            **server.extra_env,
        }
    )
    if server.database_url:
        env["DATABASE_URL"] = server.database_url
    return subprocess.run(
        [sys.executable, "-m", "server", "--env-file", "", *args],
        cwd=server.data_dir,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def add_manager(
    server: ServerProcess, username: str = MANAGER, password: str = PASSWORD, tenant: str = ""
) -> None:
    """`pdvsync-server admin add USER --password-stdin [--tenant T]`."""
    args = ["admin", "add", username, "--password-stdin"]
    if tenant:
        args += ["--tenant", tenant]
    done = run_cli(server, *args, stdin=password + "\n")
    if done.returncode != 0:
        raise RuntimeError(f"admin add: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    if password in done.stdout + done.stderr:
        raise RuntimeError("admin add echoed the password")


class Shop:
    """One real server plus the agents and proxies started for it; `close()` ends them all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server: ServerProcess | None = None
        self.agents: list[AgentProcess] = []
        self.proxies: list[ThrottleProxy] = []

    def start_server(self, env: dict[str, str] | None = None) -> ServerProcess:
        self.server = ServerProcess(
            self.root / "server",
            database_url=f"sqlite:///{self.root / 'server.db'}",
            env=env or {},
        ).start()
        return self.server

    def proxy(self) -> ThrottleProxy:
        assert self.server is not None
        proxy = ThrottleProxy(self.server.url).start()
        self.proxies.append(proxy)
        return proxy

    def start_agents(
        self, machine_ids: list[str], *, via: dict[str, str] | None = None, **env: str
    ) -> list[AgentProcess]:
        """Start agents at once; `via` maps a machine id to another server URL (a proxy)."""
        assert self.server is not None
        agents = [
            AgentProcess(
                self.root / f"agent-{len(self.agents) + n}",
                server_url=(via or {}).get(m, self.server.url),
                machine_id=m,
                env={**AGENT_ENV, **env},
            )
            for n, m in enumerate(machine_ids)
        ]
        self.agents.extend(agents)
        with ThreadPoolExecutor(len(agents)) as pool:
            list(pool.map(lambda a: a.start(), agents))
        return agents

    def close(self) -> None:
        for agent in self.agents:
            agent.kill()
        for proxy in self.proxies:
            proxy.close()
        if self.server is not None:
            self.server.kill()

    def logs(self) -> str:
        """The last lines of every process (for a failure message)."""
        out = []
        if self.server is not None:
            out += ["--- server", *self.server.output[-30:]]
        for agent in self.agents:
            out += [f"--- {agent.machine_id}", *agent.output[-15:]]
        return "\n".join(out)
