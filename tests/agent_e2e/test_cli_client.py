"""`pdvsync-agent status|sync|reconcile` find the running agent the way `run` configured it
(flag > environment > config file), and refuse an impossible port with a clear message."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.agentproc import ROOT


def cli(agent, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        cwd=ROOT,
        env={**agent._env(), **env},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_status_finds_the_agent_through_its_config_file(server, agent_factory):
    agent = agent_factory(server, "caixa-cfg")
    config = agent.root / "client.json"
    config.write_text(json.dumps({"local_port": agent.port}), encoding="utf-8")
    for argv in (("--config", str(config), "status"), ("status", "--config", str(config))):
        r = cli(agent, *argv)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["machineId"] == "caixa-cfg"
    r = cli(agent, "sync", SYNC_LOCAL_PORT=str(agent.port))
    assert r.returncode == 0, r.stderr
    r = cli(agent, "--config", str(config), "status", "--local-port", "1")  # the flag wins
    assert r.returncode == 1 and "nada em 127.0.0.1:1" in r.stderr


def test_an_impossible_port_is_refused_clearly(server, agent_factory):
    agent = agent_factory(server, "caixa-port")
    for port in ("-5", "99999", "0"):
        r = cli(agent, "status", "--local-port", port)
        assert r.returncode == 2, (port, r.stdout, r.stderr)
        assert "local_port" in r.stderr and "Traceback" not in r.stderr
