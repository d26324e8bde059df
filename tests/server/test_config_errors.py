"""`python -m server ...` with a bad configuration: one clear line on stderr, never a traceback,
a non-zero exit, and nothing listening. Real processes, as a shop's operator runs them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serverproc import ROOT

_CONFIG_VARS = (
    "DATABASE_URL",
    "API_SECRET_KEY",
    "HOST",
    "PORT",
    "NODE_ENV",
    "ENV",
    "CORS_ORIGINS",
    "DATA_DIR",
    "MAX_BODY_BYTES",
    "LOG_DIR",
    "TRUSTED_PROXIES",
)


def run(cwd: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """`python -m server <args>` in `cwd` with only the configuration given in `env`."""
    e = {k: v for k, v in os.environ.items() if k not in _CONFIG_VARS}
    e.update({"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8", **env})
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=cwd,
        env=e,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "listening" not in result.stdout.lower() and "sync ready" not in result.stdout.lower(), (
        result.stdout
    )
    return lines[0]


# -- m5: a port outside 1..65535 ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args,env,name",
    [
        (["--port", "99999"], {}, "--port"),
        (["--port", "65536"], {}, "--port"),
        (["--port", "-1"], {}, "--port"),
        ([], {"PORT": "99999"}, "PORT"),
        ([], {"PORT": "0"}, "PORT"),
        ([], {"PORT": "-1"}, "PORT"),
    ],
)
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


@pytest.mark.parametrize("value", ["proxy.local", "10.0.0.300", "10.0.0.0/33", "*"])
def test_a_trusted_proxy_that_is_no_address_is_a_configuration_error(tmp_path, value):
    done = run(tmp_path, "--env-file", "", "serve", "--port", "0", TRUSTED_PROXIES=value)
    line = one_line(done)
    assert done.returncode == 2
    assert line.startswith("Configuration error: TRUSTED_PROXIES: ") and value in line, line


# -- m6: database, data folder and --env-file ------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--port", "0"],
        ["migrate"],
        ["keys", "list"],
        ["machines", "list"],
        ["backup"],
        ["restore", "--file", "x.sql"],
    ],
)
def test_an_unsupported_database_url_is_a_configuration_error(tmp_path, args):
    done = run(tmp_path, "--env-file", "", *args, DATABASE_URL="mysql://u:pw-9c1e@db/shop")
    line = one_line(done)
    assert done.returncode == 2
    assert line.startswith("Configuration error: DATABASE_URL: unsupported scheme 'mysql'"), line
    assert "pw-9c1e" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--port", "0"],
        ["migrate"],
        ["keys", "issue", "--machine", "caixa-1"],
        ["machines", "list"],
    ],
)
def test_a_data_dir_that_cannot_be_created_is_one_clear_line(tmp_path, args):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be", encoding="utf-8")
    done = run(tmp_path, "--env-file", "", *args, DATA_DIR=str(blocker / "data"))
    line = one_line(done)
    assert done.returncode == 2
    assert "DATA_DIR" in line and str(blocker / "data") in line, line


def test_restore_into_a_data_dir_that_cannot_be_created_is_one_clear_line(tmp_path):
    made = run(tmp_path, "--env-file", "", "migrate", DATA_DIR=str(tmp_path / "good"))
    assert made.returncode == 0, made.stderr
    backup = tmp_path / "b.db"
    written = run(
        tmp_path, "--env-file", "", "backup", "--file", str(backup), DATA_DIR=str(tmp_path / "good")
    )
    assert written.returncode == 0, written.stderr
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x", encoding="utf-8")
    line = one_line(
        run(
            tmp_path,
            "--env-file",
            "",
            "restore",
            "--file",
            str(backup),
            DATA_DIR=str(blocker / "data"),
        )
    )
    assert line.startswith("Restore failed, nothing was changed") and "DATA_DIR" in line, line


def test_serve_with_postgresql_unreachable_is_one_line_without_the_password(tmp_path):
    url = f"postgresql://pdv:s3cret-pw-41f0@127.0.0.1:{_free_port()}/shop"
    done = run(tmp_path, "--env-file", "", "serve", "--port", "0", DATABASE_URL=url)
    line = one_line(done)
    assert done.returncode == 1
    assert line.startswith("Cannot start: database unavailable (postgresql 127.0.0.1:"), line
    assert "Connection refused" in line, line
    assert "s3cret-pw-41f0" not in done.stdout + done.stderr
    assert "Application startup failed" not in done.stdout + done.stderr


def test_an_explicit_env_file_must_exist_the_default_one_may_be_absent(tmp_path):
    missing = tmp_path / "nonexistent.env"
    for args in (["migrate"], ["serve", "--port", "0"], ["keys", "list"]):
        done = run(tmp_path, "--env-file", str(missing), *args)
        line = one_line(done)
        assert done.returncode == 2
        assert line == f"Configuration error: --env-file: {missing} does not exist", line
    done = run(tmp_path, "--env-file", str(tmp_path), "migrate")
    assert "is a folder, not a file" in one_line(done)
    assert not (tmp_path / "data").exists()  # no empty database made on the defaults

    # No --env-file and no ./.env: the defaults, silently (SQLite in ./data).
    done = run(tmp_path, "migrate")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data" / "pdvsync.db").exists()
    # --env-file '' reads no file at all.
    assert run(tmp_path, "--env-file", "", "migrate").returncode == 0
