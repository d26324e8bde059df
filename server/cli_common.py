"""What every `pdvsync-server` command shares: its one-line error (`CliError`), the settings
from `--env-file`/`--host`/`--port`, a checked `--tenant`, and the database opened and
migrated with a readable message when that fails."""

from __future__ import annotations

import argparse

from protocol.tenancy import DEFAULT_TENANT

from .settings import Settings, SettingsError


class CliError(Exception):
    """A command cannot go on; `main` prints the one-line message and exits with `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _settings(args: argparse.Namespace) -> Settings:
    env_file = getattr(args, "env_file", None)
    if env_file is None:
        settings = Settings.load(env_file=".env")  # the default file may be absent
    else:
        settings = Settings.load(env_file=env_file, env_file_required=True)  # '' reads no file
    port = getattr(args, "port", None)
    if port is not None and not 0 <= port <= 65535:
        # uvicorn would not refuse it: the socket layer takes the port modulo 65536.
        raise SettingsError(f"--port: {port} is not a port from 1 to 65535 (0: any free port)")
    return settings.with_overrides(host=getattr(args, "host", None), port=port)


def _tenant(args: argparse.Namespace, default: str | None = DEFAULT_TENANT) -> str | None:
    """`--tenant` checked as the server checks a shop id (exit 2 on a bad one); `default`
    when it is not given."""
    from protocol import ProtocolError
    from protocol.tenancy import parse_tenant

    value = getattr(args, "tenant", None)
    if value is None:
        return default
    try:
        tenant = parse_tenant(value, "--tenant")
    except ProtocolError as exc:
        raise CliError(f"Configuration error: {exc.message}", 2) from None
    if tenant is None:
        raise CliError("Configuration error: --tenant: empty (omit it for the default shop)", 2)
    return tenant


def _redact(text: str, settings: Settings) -> str:
    """A database error message, first line only, without the password of DATABASE_URL."""
    from .db import parse_database_url

    lines = text.strip().splitlines()
    line = lines[0].strip() if lines else ""
    _, conn = parse_database_url(settings.database_url, settings.data_dir)
    password = conn.get("password")
    return line.replace(password, "***") if password else line


def _open_database(settings: Settings):
    """(db, info) for the configured database, or CliError when its folder cannot be made."""
    from .db import connect_database

    try:
        return connect_database(settings.database_url, settings.data_dir)
    except OSError as exc:  # SQLite: the folder of the file (DATA_DIR) cannot be created
        where = exc.filename or settings.data_dir
        raise CliError(
            f"Configuration error: cannot use the database folder {where}: {exc.strerror or exc} "
            "(check DATA_DIR or DATABASE_URL)",
            2,
        ) from None


def _migrated(settings: Settings, what: str):
    """Open and migrate the database; one clear line (CliError) when that fails."""
    import peewee as pw

    from .migrations import migrate

    db, info = _open_database(settings)
    try:
        migrate(db)
    except (pw.DatabaseError, pw.InterfaceError, RuntimeError) as exc:
        db.close_all()
        reason = _redact(str(exc), settings) or type(exc).__name__
        raise CliError(f"{what} ({info.backend} {info.location}): {reason}") from None
    return db, info
