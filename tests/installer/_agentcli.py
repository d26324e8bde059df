"""Run `python -m agent ...` as a real subprocess, with every user folder inside tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def isolated_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SYNC_", "NEXT_PUBLIC_SYNC_", "PDVSYNC_", "PYTHON_KEYRING"))
    }
    home = tmp_path / "home"
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_DIRS=str(tmp_path / "etc-xdg"),
        XDG_DATA_DIRS=str(tmp_path / "usr-share"),
        TMPDIR=str(tmp_path),
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
        QT_QPA_PLATFORM="offscreen",
    )
    env.update(extra)
    return env


def run_agent(
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 30,
    **extra_env: str,
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        cwd=ROOT,
        env=env or isolated_env(tmp_path, **extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
