"""`pdvsync-server keys` (issue, list, revoke a PDV's own key) and `pdvsync-server machines`
(list, forget, gc): the shop's machines from the command line."""

from __future__ import annotations

import argparse
import json
import sys

from protocol.tenancy import DEFAULT_TENANT

from .cli_common import _migrated, _settings, _tenant


def _open_keys(args):
    from .auth import KeyStore
    from .db import bind_models

    settings = _settings(args)
    db, _ = _migrated(settings, "Keys: database unavailable")
    return KeyStore(bind_models(db), settings.api_secret_key)


def cmd_keys(args: argparse.Namespace) -> int:
    tenant = _tenant(args)  # before opening anything: a bad shop id changes nothing
    keys = _open_keys(args)
    if args.keys_cmd == "issue":
        assert tenant is not None
        first = not any(r["active"] for r in keys.list())
        key_id, key = keys.issue(args.machine, tenant)
        print(
            f"Key {key_id} for machine '{args.machine}' of shop '{tenant}' "
            "(shown once, store it now):"
        )
        print(key)
        # server/auth.py: while any machine key is active, a key is required on every /api
        # route and the WebSocket, API_SECRET_KEY or not. Say so: a keyless shop that issues
        # its first key locks out every PDV that has none.
        print(
            "Warning: while any machine key is active, the server requires a key from every PDV and "
            "client (x-api-key on every /api route and the WebSocket), even without API_SECRET_KEY; "
            "one without a key gets 401 within 3 seconds. Give every PDV its own key "
            "(pdvsync-agent set-key) or the shared API_SECRET_KEY.",
            file=sys.stderr,
        )
        if first and not keys.master_configured:
            print(
                "This is the first active key and API_SECRET_KEY is not set here: "
                "until now the server accepted requests without a key.",
                file=sys.stderr,
            )
        return 0
    if args.keys_cmd == "list":
        rows = keys.list()
        if args.json:
            print(json.dumps(rows, indent=2))
        for r in rows if not args.json else []:
            state = "active" if r["active"] else f"revoked {r['revokedAt']}"
            print(
                f"{r['id']:>4}  shop {r['tenantId']:<16} {r['machineId']:<24} "
                f"created {r['createdAt']}  {state}"
            )
        return 0
    if args.keys_cmd == "revoke":
        if keys.revoke(args.id):
            print(f"Key {args.id} revoked.")
            if not any(r["active"] for r in keys.list()) and not keys.master_configured:
                print(
                    "No active machine key is left and API_SECRET_KEY is not set here: the server "
                    "accepts requests without a key again.",
                    file=sys.stderr,
                )
            return 0
        print(f"No active key with id {args.id}.", file=sys.stderr)
        return 1
    return 2


def cmd_machines(args: argparse.Namespace) -> int:
    from .db import bind_models
    from .service import SyncService

    # `list` without --tenant: every shop; `forget` without it: the default shop.
    tenant = _tenant(args, None if args.machines_cmd == "list" else DEFAULT_TENANT)
    settings = _settings(args)
    db, _ = _migrated(settings, "Machines: database unavailable")
    models = bind_models(db)
    service = SyncService(models)
    if args.machines_cmd == "list":
        for shop in [tenant] if tenant is not None else service.tenants():
            for m in service.scoped(shop).stats()["machines"]:
                print(
                    f"shop {shop:<16} {m['machineId']:<24} cursor {m['cursor']:>8}  "
                    f"last seen {m['lastSeen']}  events {m['eventsPushed']}"
                )
        return 0
    if args.machines_cmd == "forget":
        M = models.Machine
        with db.connection_context():
            n = M.delete().where((M.tenant_id == tenant) & (M.machine_id == args.machine)).execute()
        print(
            f"Forgot {args.machine} of shop '{tenant}'."
            if n
            else f"No machine '{args.machine}' in shop '{tenant}'."
        )
        return 0 if n else 1
    if args.machines_cmd == "gc":
        print(json.dumps(service.collect_garbage(keep_events_days=args.keep_events_days)))
        return 0
    return 2
