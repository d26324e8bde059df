"""`pdvsync-server` / `python -m server`: serve, migrate, backup, restore, smoke, reliability,
keys and machines (the last four for one shop, `--tenant`, where it matters), and admin (the
panel's manager accounts)."""

from __future__ import annotations

import argparse
import logging
import sys

from protocol.tenancy import DEFAULT_TENANT

from .cli_common import CliError, _migrated, _open_database, _redact, _settings, _tenant
from .cli_machines import cmd_keys, cmd_machines
from .settings import SettingsError, is_loopback

log = logging.getLogger("server")


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app
    from .logs import configure_logging, redact_server_logs

    settings = _settings(args)
    configure_logging(settings)
    if not is_loopback(settings.host) and not settings.api_secret_key:
        print(
            f"Refusing to listen on {settings.host} without API_SECRET_KEY: every PDV on the network "
            "could read and change the shop's data. Set API_SECRET_KEY (in .env or the environment), "
            "or listen on 127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    # Reach and migrate the database before uvicorn starts: a failure there is one clear line
    # here, not two tracebacks and "Application startup failed" from the app's lifespan.
    db, _ = _migrated(settings, "Cannot start: database unavailable")
    db.close_all()
    app = create_app(settings)
    state = app.state.sync

    class _Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets)
            if self.started:
                port = settings.port
                for server in getattr(self, "servers", []):
                    for sock in server.sockets:
                        port = sock.getsockname()[1]
                print(f"✓ Server listening on port {port}", flush=True)
                print(
                    f"✓ Database connected ({state.db_info.backend}: {state.db_info.location})",
                    flush=True,
                )
                print("✓ Sync ready", flush=True)

        async def shutdown(self, sockets=None):
            # The panel's event streams never end by themselves: end them first, or the
            # graceful shutdown would wait for them forever (server/panel/live.py).
            app.state.panel_streams.close_all()
            await super().shutdown(sockets)

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info" if not settings.production else "warning",
        access_log=not settings.production,
        ws="auto",
        # A PDV gone silent (network lost, machine dead) has its socket closed within 15 s,
        # so the panel shows it Offline soon after (server/presence.py); one ping per PDV
        # every 10 s costs nothing, here or on the PDV (which pings every 5 s itself).
        ws_ping_interval=10,
        ws_ping_timeout=5,
        # Behind a reverse proxy the operator names (TRUSTED_PROXIES), the address it forwards
        # is the client's; anyone else's X-Forwarded-* headers are ignored.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
    )
    redact_server_logs()  # after uvicorn.Config, which (re)configures uvicorn's loggers
    server = _Server(config)
    server.run()
    return 0 if server.started else 1


def cmd_migrate(args: argparse.Namespace) -> int:
    import peewee as pw

    from .migrations import LATEST, current_version, migrate

    settings = _settings(args)
    db, info = _open_database(settings)
    try:
        with db.connection_context():
            before = current_version(db)
        applied = migrate(db)
    except (pw.DatabaseError, pw.InterfaceError, RuntimeError) as exc:
        reason = _redact(str(exc), settings) or type(exc).__name__
        print(f"Migrate failed ({info.backend} {info.location}): {reason}", file=sys.stderr)
        return 1
    finally:
        db.close_all()
    if applied:
        versions = ", ".join(map(str, applied))
        print(f"{info.backend} {info.location}: schema v{before} -> v{LATEST} (applied {versions})")
    else:
        print(f"{info.backend} {info.location}: schema v{LATEST} (up to date)")
    return 0


def cmd_admin(args: argparse.Namespace) -> int:
    from .panel.commands import run_admin

    return run_admin(args)


def _os_error(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc} (check DATA_DIR, DATABASE_URL and --file)"


def cmd_backup(args: argparse.Namespace) -> int:
    from .backup import BackupError, backup

    try:
        path = backup(_settings(args), args.file)
    except BackupError as exc:
        print(f"Backup failed: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. a target folder that cannot be created
        print(f"Backup failed: {_os_error(exc)}", file=sys.stderr)
        return 1
    print(f"Backup written to {path}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from .backup import BackupError, restore

    try:
        restore(_settings(args), args.file, force=args.force)
    except BackupError as exc:
        print(f"Restore failed: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. DATA_DIR cannot be created
        print(f"Restore failed, nothing was changed: {_os_error(exc)}", file=sys.stderr)
        return 1
    print(f"Restored {args.file}.")
    print("Restart the server; PDVs whose cursor is ahead of the backup will be told to resync.")
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    from .checks import smoke

    tenant = _tenant(args, None)
    return smoke(args.url, api_key=args.api_key or _settings(args).api_secret_key, tenant=tenant)


def cmd_reliability(args: argparse.Namespace) -> int:
    from .checks import reliability

    tenant = _tenant(args, None)
    key = args.api_key or _settings(args).api_secret_key
    return reliability(args.url, api_key=key, tenant=tenant)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pdvsync-server", description="PDV Sync server")
    p.add_argument(
        "--env-file",
        default=None,
        help="dotenv file to read, which must exist ('' reads none; default: ./.env if present)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="start the sync server")
    s.add_argument("--host", help="address to listen on (default HOST or 127.0.0.1)")
    s.add_argument(
        "--port", type=int, help="port 1-65535 (default PORT or 3001; 0: any free port, printed)"
    )
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("migrate", help="create or upgrade the database schema")
    s.set_defaults(func=cmd_migrate)

    s = sub.add_parser("backup", help="write a backup of the database")
    s.add_argument("--file", help="target file (default: backups/pdvsync-YYYYMMDD-HHMMSS.<ext>)")
    s.set_defaults(func=cmd_backup)

    s = sub.add_parser("restore", help="restore a backup into the database")
    s.add_argument("--file", required=True)
    s.add_argument("--force", action="store_true", help="overwrite a database that has data")
    s.set_defaults(func=cmd_restore)

    for name, func, text in (
        ("smoke", cmd_smoke, "check health, reconcile and reconcile history of a running server"),
        (
            "reliability",
            cmd_reliability,
            "check idempotency, stale conflicts and tombstones on a running server",
        ),
    ):
        s = sub.add_parser(name, help=text)
        s.add_argument("--url", default="http://127.0.0.1:3001")
        s.add_argument("--api-key", help="x-api-key to send (default: API_SECRET_KEY)")
        s.add_argument(
            "--tenant", help="the shop to check, sent as x-tenant-id (default: the default shop)"
        )
        s.set_defaults(func=func)

    s = sub.add_parser("keys", help="per-machine API keys")
    ks = s.add_subparsers(dest="keys_cmd", required=True)
    k = ks.add_parser("issue", help="issue a key for a machine of one shop")
    k.add_argument("--machine", required=True)
    k.add_argument("--tenant", help=f"the machine's shop (default: {DEFAULT_TENANT})")
    k = ks.add_parser("list", help="list keys (never the keys themselves)")
    k.add_argument("--json", action="store_true")
    k = ks.add_parser("revoke", help="revoke a key by id")
    k.add_argument("id", type=int)
    s.set_defaults(func=cmd_keys)

    s = sub.add_parser("machines", help="known machines and tombstone garbage collection")
    ms = s.add_subparsers(dest="machines_cmd", required=True)
    k = ms.add_parser("list", help="known machines, with their shop")
    k.add_argument("--tenant", help="only this shop's machines (default: every shop)")
    k = ms.add_parser(
        "forget", help="forget a retired machine so its cursor no longer holds tombstones"
    )
    k.add_argument("machine")
    k.add_argument("--tenant", help=f"the machine's shop (default: {DEFAULT_TENANT})")
    k = ms.add_parser("gc", help="purge tombstones every known machine has pulled past")
    k.add_argument("--keep-events-days", type=int, default=30)
    s.set_defaults(func=cmd_machines)

    s = sub.add_parser("admin", help="the panel's manager accounts (/painel)")
    ads = s.add_subparsers(dest="admin_cmd", required=True)
    k = ads.add_parser("add", help="a new manager (password typed twice, or --password-stdin)")
    k.add_argument("username")
    k.add_argument("--tenant", help="the manager's shop (default: every shop)")
    k.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    k = ads.add_parser("passwd", help="change a manager's password (ends their sessions)")
    k.add_argument("username")
    k.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    k = ads.add_parser("remove", help="remove a manager (ends their sessions)")
    k.add_argument("username")
    k = ads.add_parser("list", help="managers, their shop and open sessions (never a password)")
    k.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_admin)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SettingsError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        return 2
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
