"""`pdvsync-server admin add|passwd|remove|list`: the panel's manager accounts.

Everything typed is checked before the database is opened (bad input changes nothing and
exits 2 with one line); a password is read from the terminal without echo, or as one line
of stdin (`--password-stdin`), and is never printed.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from ..cli_common import CliError, _migrated, _settings, _tenant
from ..db import bind_models
from .accounts import AccountError, Accounts, check_username
from .passwords import PasswordError, check_policy


def _read_password(args: argparse.Namespace, username: str) -> str:
    """The new password: one line of stdin with --password-stdin, else typed twice at the
    terminal (never echoed). Checked against the policy before the database is opened."""
    if args.password_stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    else:
        if not sys.stdin.isatty():
            raise CliError(
                "Admin: no terminal to type the password in; pipe it with --password-stdin", 2
            )
        password = getpass.getpass(f"Password for {username}: ")
        if getpass.getpass("Repeat the password: ") != password:
            raise CliError("Admin: the passwords do not match; nothing was changed", 2)
    try:
        check_policy(password)
    except PasswordError as exc:
        raise CliError(f"Admin: {exc}; nothing was changed", 2) from None
    return password


def run_admin(args: argparse.Namespace) -> int:
    """`admin add|passwd|remove|list` (server/cli.py parses the arguments)."""
    # Everything typed is checked before the database is opened: bad input changes nothing.
    tenant = _tenant(args, None) if args.admin_cmd == "add" else None
    try:
        username = check_username(args.username) if args.admin_cmd != "list" else ""
    except AccountError as exc:
        raise CliError(f"Admin: {exc}", 2) from None
    password = _read_password(args, username) if args.admin_cmd in ("add", "passwd") else ""
    settings = _settings(args)
    db, _ = _migrated(settings, "Admin: database unavailable")
    accounts = Accounts(bind_models(db))
    try:
        if args.admin_cmd == "add":
            accounts.add(username, password, tenant)
            shop = f"shop '{tenant}'" if tenant else "every shop"
            print(f"Admin '{username}' added: opens the panel of {shop}.")
        elif args.admin_cmd == "passwd":
            ended = accounts.set_password(username, password)
            print(f"Password of '{username}' changed; {ended} open session(s) ended.")
        elif args.admin_cmd == "remove":
            ended = accounts.remove(username)
            print(f"Admin '{username}' removed; {ended} open session(s) ended.")
        else:
            _print_list(
                accounts.list(idle_ms=settings.panel_session_idle_seconds * 1000), args.json
            )
    except AccountError as exc:
        raise CliError(f"Admin: {exc}", 2) from None
    finally:
        db.close_all()
    return 0


def _print_list(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        shop = row["tenantId"] or "(every shop)"
        state = "  disabled" if row["disabled"] else ""
        print(
            f"{row['username']:<24} shop {shop:<16} created {row['createdAt']}  "
            f"sessions {row['sessions']}{state}"
        )
