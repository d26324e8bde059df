"""`python -m server ...` with a bad configuration: one clear line on stderr, never a traceback,
a non-zero exit, and nothing listening. Real processes, as a shop's operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serverproc import ROOT

_CONFIG_VARS = ("DATABASE_URL", "API_SECRET_KEY", "HOST", "PORT", "NODE_ENV", "ENV", "CORS_ORIGINS",
                "DATA_DIR", "MAX_BODY_BYTES", "LOG_DIR")


def run(cwd: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """`python -m server <args>` in `cwd` with only the configuration given in `env`."""
    e = {k: v for k, v in os.environ.items() if k not in _CONFIG_VARS}
    e.update({"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8", **env})
    return subprocess.run([sys.executable, "-m", "server", *args], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=timeout)


def one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "listening" not in result.stdout.lower() and "sync ready" not in result.stdout.lower(), result.stdout
    return lines[0]


# -- m5: a port outside 1..65535 ---------------------------------------------------------------


@pytest.mark.parametrize("args,env,name", [
    (["--port", "99999"], {}, "--port"),
    (["--port", "65536"], {}, "--port"),
    (["--port", "-1"], {}, "--port"),
    ([], {"PORT": "99999"}, "PORT"),
    ([], {"PORT": "0"}, "PORT"),
    ([], {"PORT": "-1"}, "PORT"),
])
def test_a_port_out_of_range_is_a_configuration_error(tmp_path, args, env, name):
    done = run(tmp_path, "--env-file", "", "serve", *args, DATA_DIR=str(tmp_path / "data"), **env)
    line = one_line(done)
    assert done.returncode == 2
    assert line.startswith("Configuration error: ") and name in line and "1 to 65535" in line, line
    assert not (tmp_path / "data").exists()  # refused before anything was opened


def test_a_port_out_of_range_in_dotenv_is_a_configuration_error(tmp_path):
    (tmp_path / ".env").write_text("PORT=70000\n", encoding="utf-8")
    done = run(tmp_path, "serve", DATA_DIR=str(tmp_path / "data"))
    assert done.returncode == 2
    assert "PORT: 70000" in one_line(done)

