"""`pdvsync-agent` / `python -m agent`: run the agent, or talk to the running one.

pdvsync-agent [run] [--headless] [--server URL] [--machine-id ID] [--tenant SHOP] [--data-dir DIR]
              [--local-port P]
pdvsync-agent status | sync | reconcile [--strategy S]   (asks the running agent)
pdvsync-agent set-key                                     (API key from stdin into the OS keyring)
pdvsync-agent configure --server URL --machine-id ID [--tenant SHOP] ...   (the installer)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

log = logging.getLogger("agent")

# Test hook: pretend this machine's clock is off by N ms (used to prove clock correction).
_SKEW_ENV = "PDVSYNC_CLOCK_SKEW_MS"


def _flags(args: argparse.Namespace) -> dict:
    return {
        "server_url": args.server,
        "machine_id": args.machine_id,
        "tenant_id": args.tenant,
        "data_dir": Path(args.data_dir) if args.data_dir else None,
        "local_port": args.local_port,
        "log_dir": Path(args.log_dir) if args.log_dir else None,
    }


def cmd_run(args: argparse.Namespace) -> int:
    from .config import ConfigError, load
    from .instance import AlreadyRunning
    from .runtime import AgentRuntime, configure_logging

    try:
        config = load(_flags(args), config_file=Path(args.config) if args.config else None)
    except ConfigError as exc:
        print(f"Configuração inválida: {exc}", file=sys.stderr)
        return 2
    log_path = configure_logging(
        config.resolved_log_dir(), verbose=args.verbose, console=sys.stderr is not None
    )
    headless = args.headless or not _has_display()
    if not headless:
        try:
            from .ui.app import run_tray
        except ImportError as exc:  # a build without Qt
            log.warning("tray not available (%s); running headless", exc)
        else:
            return run_tray(config, config_path=Path(args.config) if args.config else None)
    api_key = os.environ.get("SYNC_API_KEY") or os.environ.get("NEXT_PUBLIC_SYNC_API_KEY") or None
    try:
        runtime = AgentRuntime(
            config, api_key=api_key, clock_skew_ms=int(os.environ.get(_SKEW_ENV, "0") or 0)
        )
    except AlreadyRunning as exc:
        print(f"Já existe um agente em execução: {exc}", file=sys.stderr)
        return 3
    try:
        runtime.start()
    except OSError as exc:
        print(f"Não foi possível iniciar a API local: {exc}", file=sys.stderr)
        return 4
    print(
        f"✓ Agent {runtime.config.machine_id} syncing with {config.server_url}"
        f" (shop {config.tenant})",
        flush=True,
    )
    print(f"✓ Local API on http://127.0.0.1:{runtime.bound_port}", flush=True)
    print(f"✓ Data in {runtime.data_dir}; log in {log_path}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    # POSIX: a signal interrupts the wait, so it needs no timeout (no wake-up a second while
    # idle). Windows: a wait without one would not see Ctrl+C.
    step = None if os.name == "posix" else 1.0
    try:
        while not done.wait(step):
            pass
    finally:
        runtime.stop()
    return 0


def _has_display() -> bool:
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _local(
    args: argparse.Namespace,
    method: str,
    path: str,
    body: dict | None = None,
    timeout: float = 130.0,
) -> int:
    import httpx

    from .config import ConfigError, load

    # The port as `run` resolves it: flag > environment > config files (--config included).
    try:
        port = load(
            {"local_port": args.local_port},
            config_file=Path(args.config) if getattr(args, "config", None) else None,
        ).local_port
    except ConfigError as exc:
        print(f"Configuração inválida: {exc}", file=sys.stderr)
        return 2
    try:
        r = httpx.request(method, f"http://127.0.0.1:{port}{path}", json=body, timeout=timeout)
    except httpx.HTTPError:
        print(f"O agente não está em execução (nada em 127.0.0.1:{port}).", file=sys.stderr)
        return 1
    data = r.json()
    print(json.dumps(data, indent=2, ensure_ascii=False))
    error = _sync_error(data)
    if error:
        print(f"Erro: {error}", file=sys.stderr)
    return 0 if r.status_code < 400 else 1


def _sync_error(answer: object) -> str | None:
    """The sync error of a status or reconcile answer in the manager's words: the JSON on
    stdout stays for scripts (English `lastError`/`error` and its code), and the manager at
    the console reads this line in Portuguese, worded as in the tray."""
    if not isinstance(answer, dict):
        return None
    code = answer.get("lastErrorCode") or answer.get("errorCode")
    detail = answer.get("lastError") or answer.get("error")
    if not code:
        return None
    try:
        from .ui.presentation import error_text
    except ImportError:  # a build without Qt: the English detail
        return str(detail or code)
    return error_text(str(code), str(detail) if detail else None)


def cmd_status(args: argparse.Namespace) -> int:
    return _local(args, "GET", "/api/sync/status")


def cmd_sync(args: argparse.Namespace) -> int:
    return _local(args, "POST", "/api/sync/now")


def cmd_reconcile(args: argparse.Namespace) -> int:
    return _local(
        args, "POST", "/api/sync/reconcile", {"strategy": args.strategy} if args.strategy else None
    )


def cmd_details(args: argparse.Namespace) -> int:
    from PySide6.QtCore import QCoreApplication

    from .ui.single_instance import instance_name, send_to_running

    _app = QCoreApplication.instance() or QCoreApplication([])
    if send_to_running(instance_name()):
        return 0
    print("O PDV Sync (bandeja) não está em execução.", file=sys.stderr)
    return 1


def cmd_configure(args: argparse.Namespace) -> int:
    """Used by the installer, on install and on upgrade: hand over the API key, then set the
    server, machine name and shop in the machine-wide settings, keeping whatever else they
    hold.

    The key goes first: if it cannot be stored, nothing is written and the installer stops,
    rather than leaving a PDV configured for a server it has no key for.
    """
    from .config import AgentConfig, ConfigError, _bool, site_config_file, update_file
    from .handoff import stage_key
    from .secrets import SecretStoreError

    target = Path(args.file) if args.file else site_config_file()
    changes: dict = {"server_url": args.server, "machine_id": args.machine_id}
    if args.tenant is not None:
        # Given empty (the installer's field left blank): the default shop, written as null
        # so an earlier shop in the file does not stay. Not given: the file's shop stays.
        changes["tenant_id"] = args.tenant or None
    try:
        AgentConfig(**changes).validate()
        if args.start_with_os is not None:
            changes["start_with_os"] = _bool(args.start_with_os)
    except (ConfigError, ValueError) as exc:
        print(f"Configuração inválida: {exc}", file=sys.stderr)
        return 2
    key = os.environ.get(args.api_key_env, "").strip() if args.api_key_env else ""
    if key:
        try:
            where = stage_key(key)
        except (OSError, SecretStoreError, ValueError) as exc:
            print(f"Não foi possível guardar a chave de API: {exc}", file=sys.stderr)
            return 1
        print(
            f"Chave de API entregue ao agente ({'cofre do sistema' if where == 'keyring' else 'protegida'})."
        )
    try:
        _config, note = update_file(target, changes)
    except ConfigError as exc:  # a hand-edited value in the existing file is invalid
        print(f"Configuração inválida em {target}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. not elevated: the machine config folder is read-only
        print(f"Não foi possível gravar a configuração em {target}: {exc}", file=sys.stderr)
        return 1
    if note:
        print(f"Aviso: o arquivo de configuração anterior estava ilegível ({note}).")
    print(f"Configuração gravada em {target}")
    return 0


def cmd_pending(args: argparse.Namespace) -> int:
    """Used by the uninstaller: how many local changes are not yet on the server.

    Prints the number (exit 0), or explains on stderr why it cannot tell (exit 1) — the
    uninstaller then warns instead of claiming there is nothing pending."""
    from .config import default_data_dir
    from .store.unsent import StoreUnreadable, count_unsent

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    try:
        print(count_unsent(data_dir / "agent.db"))
    except StoreUnreadable as exc:
        print(f"Não foi possível ler o banco local em {data_dir}: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_quit(args: argparse.Namespace) -> int:
    """Ask the running tray to quit cleanly (the installer does this before upgrading)."""
    from PySide6.QtCore import QCoreApplication

    from .ui.single_instance import instance_name, send_to_running

    _app = QCoreApplication.instance() or QCoreApplication([])
    return 0 if send_to_running(instance_name(), "quit") else 1


def cmd_set_key(args: argparse.Namespace) -> int:
    from .secrets import SecretStoreError, set_api_key

    key = sys.stdin.readline().strip()
    try:
        set_api_key(key or None)
    except SecretStoreError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print("Chave salva no cofre do sistema." if key else "Chave removida.")
    return 0


def _run_options(parser: argparse.ArgumentParser, *, default: object = None) -> None:
    parser.add_argument(
        "--headless", action="store_true", default=default or False, help="no tray icon"
    )
    parser.add_argument(
        "--server", default=default, help="sync server URL, e.g. http://192.168.1.100:3001"
    )
    parser.add_argument(
        "--machine-id", default=default, help="this PDV's name (default: generated once)"
    )
    parser.add_argument(
        "--tenant",
        default=default,
        help="this PDV's shop on a server holding several (default: the default shop)",
    )
    parser.add_argument(
        "--data-dir", default=default, help="local store folder (default: platform data folder)"
    )
    parser.add_argument(
        "--log-dir", default=default, help="log folder (default: platform log folder)"
    )
    parser.add_argument(
        "--config", default=default, help="config file (default: platform config folder/agent.json)"
    )
    parser.add_argument("--verbose", action="store_true", default=default or False)


def build_parser() -> argparse.ArgumentParser:
    # Options accepted before and after the command (`--local-port 4100 status` and
    # `status --local-port 4100`). After it they default to SUPPRESS: a default there would
    # overwrite the value given before the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--local-port", type=int, help="loopback API port (default 4000)")
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument(
        "--local-port", type=int, default=argparse.SUPPRESS, help="loopback API port (default 4000)"
    )
    client = argparse.ArgumentParser(
        add_help=False, parents=[after]
    )  # commands that ask the running agent
    client.add_argument(
        "--config", default=argparse.SUPPRESS, help="config file the running agent was started with"
    )
    p = argparse.ArgumentParser(
        prog="pdvsync-agent", description="PDV Sync agent", parents=[common]
    )
    _run_options(p)
    p.add_argument("--self-test", action="store_true", help="check this installation and exit")
    sub = p.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run the agent (default)", parents=[after])
    _run_options(run, default=argparse.SUPPRESS)
    sub.add_parser("status", help="status of the running agent", parents=[client])
    sub.add_parser("sync", help="push and pull now", parents=[client])
    r = sub.add_parser("reconcile", help="reconcile now", parents=[client])
    r.add_argument("--strategy", choices=["none", "refresh_mismatched", "full_resync"])
    sub.add_parser("details", help="open the running tray's details window")
    sub.add_parser("quit", help="ask the running tray to quit cleanly")
    c = sub.add_parser("configure", help="write machine-wide settings (used by the installer)")
    c.add_argument("--server", required=True)
    c.add_argument("--machine-id", required=True, dest="machine_id")
    c.add_argument("--tenant", help="this PDV's shop (empty: the default shop)")
    c.add_argument("--start-with-os", help="true/false")
    c.add_argument("--api-key-env", help="name of an environment variable holding the API key")
    c.add_argument("--file", help="write here instead of the machine config folder")
    d = sub.add_parser("pending", help="count local changes not yet on the server")
    d.add_argument("--data-dir", dest="data_dir", default=argparse.SUPPRESS)
    sub.add_parser("set-key", help="read the API key from stdin into the OS keyring")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.self_test:
        from .selftest import run_self_test

        return run_self_test()
    handlers = {
        "status": cmd_status,
        "sync": cmd_sync,
        "reconcile": cmd_reconcile,
        "details": cmd_details,
        "set-key": cmd_set_key,
        "configure": cmd_configure,
        "pending": cmd_pending,
        "quit": cmd_quit,
    }
    try:
        return handlers.get(args.command or "run", cmd_run)(args)
    except KeyboardInterrupt:
        return 130


def entry() -> int:
    """The agent's own process (`python -m agent`, the `pdvsync-agent` script, the bundle):
    `main` after `lean_process` (agent/memory.py), which must come before anything imports
    the modules it keeps out and before any thread starts. Not in `main`, which tests call
    in a process that also runs the server."""
    from .memory import lean_process

    lean_process()
    return main()


if __name__ == "__main__":
    sys.exit(entry())
