"""The PostgreSQL client programs a backup and a restore run (pg_dump, psql, pg_restore): where
to find them, how to run them (the password in libpq's environment, never on a command line),
the one line of their error output worth showing, and the SQL the restore wraps around a dump.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .migrations import LATEST


class BackupError(RuntimeError):
    """A backup or restore could not be done; the message says why, in one line."""


def find_pg_tool(name: str) -> str:
    """A PostgreSQL client program: $PG_BINDIR, then PATH, then the usual install folders."""
    exe = name + (".exe" if sys.platform == "win32" else "")
    bindir = os.environ.get("PG_BINDIR")
    if bindir:
        candidate = Path(bindir) / exe
        if candidate.is_file():
            return str(candidate)
        raise BackupError(f"{name} not found in PG_BINDIR={bindir}")
    found = shutil.which(name)
    if found:
        return found
    patterns = [
        "/usr/lib/postgresql/*/bin",
        "/usr/pgsql-*/bin",
        "/opt/homebrew/opt/postgresql*/bin",
        r"C:\Program Files\PostgreSQL\*\bin",
    ]
    folders = [d for p in patterns for d in glob.glob(p)]
    for folder in sorted(folders, key=_version_key, reverse=True):
        candidate = Path(folder) / exe
        if candidate.is_file():
            return str(candidate)
    raise BackupError(
        f"{name} not found: install the PostgreSQL client tools, put them on PATH or set PG_BINDIR"
    )


def _version_key(folder: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", folder)) or (0,)


def _pg_env(conn: dict[str, Any]) -> dict[str, str]:
    """libpq environment for the tools: the password never goes on a command line."""
    env = dict(os.environ)
    env["PGDATABASE"] = str(conn["database"])
    for key, var in (
        ("host", "PGHOST"),
        ("port", "PGPORT"),
        ("user", "PGUSER"),
        ("password", "PGPASSWORD"),
    ):
        if conn.get(key) is not None:
            env[var] = str(conn[key])
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    return env


def run_tool(cmd: list[str], conn: dict[str, Any], what: str) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(
            cmd, env=_pg_env(conn), capture_output=True, text=True, errors="replace"
        )
    except OSError as exc:
        raise BackupError(f"{what}: cannot run {cmd[0]}: {exc.strerror or exc}") from None
    if result.returncode != 0:
        raise BackupError(f"{what}: {_tool_error(result.stderr, conn)}")
    return result


def _tool_error(stderr: str, conn: dict[str, Any]) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    # The line that names the problem: psql prints "psql:file:12: ERROR:  ...", pg_dump "pg_dump: error: ...".
    chosen = next(
        (ln for ln in lines if "ERROR:" in ln or "error:" in ln or "FATAL:" in ln),
        lines[0] if lines else "",
    )
    chosen = re.sub(r"^(psql|pg_dump|pg_restore):(\S*:\d+:)?\s*", "", chosen)
    chosen = re.sub(r"^(error|ERROR|FATAL):\s*", "", chosen)
    password = conn.get("password")
    if password:
        chosen = chosen.replace(str(password), "***")
    return chosen or "failed without a message"


def backup_postgres(conn: dict[str, Any], target: Path, custom: bool) -> None:
    cmd = [
        find_pg_tool("pg_dump"),
        "--no-owner",
        "--no-privileges",
        "--no-password",
        "--format=custom" if custom else "--format=plain",
        "--file",
        str(target),
    ]
    run_tool(cmd, conn, "pg_dump failed")


# Runs in the restore transaction before the dump: our tables go, whatever else is there stays.
def drop_script(tables: list[str]) -> str:
    return "".join(f'DROP TABLE IF EXISTS public."{t}" CASCADE;\n' for t in tables)


# Runs in the restore transaction after the dump: a dump of some other database rolls back.
VERIFY_SCRIPT = f"""
DO $pdvsync$
BEGIN
  IF pg_catalog.to_regclass('public.schema_version') IS NULL
     OR pg_catalog.to_regclass('public.products') IS NULL THEN
    RAISE EXCEPTION 'not a PDV Sync backup (no schema_version or products table); nothing was changed';
  END IF;
  IF (SELECT MAX(version) FROM public.schema_version) > {LATEST} THEN
    RAISE EXCEPTION 'the backup''s schema is newer than this server (v{LATEST}): upgrade the server first';
  END IF;
END
$pdvsync$;
"""
