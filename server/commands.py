"""Commands from the panel to a PDV (today: reconcile with a strategy): stored per shop and
machine, handed over on the live socket, on the socket's connect and in every report's
reply, until the PDV reports how it ended; and the notices that tell the live hub of every
server process about them (and the panel that something changed).

A command's id is random text, never reused (an agent remembers the ids it ran, and a
restored database must not hand it one of those again). "All PDVs" is one command per known
machine of the shop. A newer reconcile asked for the same PDV supersedes one still waiting
(a manager clicking twice does not queue two). Commands are kept `KEEP_MS` after they were
asked for: one never delivered by then expires.

Notices (`Notice`): on PostgreSQL a NOTIFY on `COMMANDS_CHANNEL` in the writing transaction
(every process LISTENs, server/hub.py); on SQLite (one process) the context's `on_command`
callback after the commit.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Sequence
from typing import Any, NotRequired, TypedDict

import peewee as pw

from protocol import ProtocolError
from protocol.reports import Command, CommandKind
from protocol.vocabulary import DivergenceStrategy, choices

from .context import ServiceContext
from .db import dicts, tuples

COMMANDS_CHANNEL = "pdvsync_commands"
KEEP_MS = 7 * 86_400_000
REQUESTED_BY_MAX = 128


class Notice(TypedDict):
    """Something the panel (and, for `command`, the PDV's sockets) must hear of.

    kind: `command` (a new command: `command` is its socket message), `report` (a PDV
    reported), `finished` (a command finished), `forgotten` (a machine was forgotten)."""

    tenant: str
    kind: str
    machineId: str | None
    command: NotRequired[dict[str, Any]]


def notice(
    ctx: ServiceContext, kind: str, machine_id: str | None, command: Command | None = None
) -> Notice:
    out: Notice = {"tenant": ctx.tenant, "kind": kind, "machineId": machine_id}
    if command is not None:
        out["command"] = command.message()
    return out


def notify_in_transaction(ctx: ServiceContext, notices: Sequence[Notice]) -> None:
    """PostgreSQL: NOTIFY each notice, sent when the transaction commits (never for a
    rollback). SQLite: nothing (see `notify_after_commit`)."""
    if not ctx.postgres:
        return
    for n in notices:
        ctx.db.execute_sql("SELECT pg_notify(%s, %s)", (COMMANDS_CHANNEL, json.dumps(n)))


def notify_after_commit(ctx: ServiceContext, notices: Sequence[Notice]) -> None:
    """SQLite: tell this process's hub (`on_command`). PostgreSQL: nothing (NOTIFY did)."""
    if ctx.postgres or ctx.on_command is None:
        return
    for n in notices:
        ctx.on_command(n["tenant"], n["kind"], n["machineId"], n.get("command"))


def _strategy(value: object) -> DivergenceStrategy:
    try:
        return DivergenceStrategy(str(value))
    except ValueError:
        raise ProtocolError(
            "invalid_strategy", f"strategy: expected one of {choices(DivergenceStrategy)}"
        ) from None


def known_machines(ctx: ServiceContext) -> list[str]:
    """This shop's machines: those that made a request and those that reported, sorted."""
    m = ctx.models
    found = {
        mid
        for (mid,) in tuples(
            m.Machine.select(m.Machine.machine_id).where(m.Machine.tenant_id == ctx.tenant)
        )
    }
    found |= {
        mid
        for (mid,) in tuples(
            m.PdvReport.select(m.PdvReport.machine_id).where(m.PdvReport.tenant_id == ctx.tenant)
        )
    }
    return sorted(found)


def request(
    ctx: ServiceContext,
    machine_id: str | None,
    strategy: DivergenceStrategy | str,
    requested_by: str | None,
) -> list[str]:
    """Ask one machine (or every known machine of the shop, `machine_id` None) to reconcile
    with `strategy`. Returns the new commands' ids; 404 `unknown_machine` for a machine the
    shop does not know, 422 `invalid_strategy`."""
    chosen = _strategy(strategy)
    who = requested_by[:REQUESTED_BY_MAX] if requested_by else None
    C = ctx.models.PdvCommand
    with ctx.connection():
        known = known_machines(ctx)
        if machine_id is not None and machine_id not in known:
            raise ProtocolError(
                "unknown_machine",
                f"machine {machine_id[:64]!r} is not known in this shop",
                status=404,
            )
        targets = [machine_id] if machine_id is not None else known
        now = ctx.clock()
        made: list[Command] = []
        notices: list[Notice] = []
        with ctx.db.atomic():
            if targets:
                waiting = (
                    (C.tenant_id == ctx.tenant)
                    & C.machine_id.in_(targets)
                    & C.finished_at.is_null()
                    & (C.kind == CommandKind.RECONCILE.value)
                )
                superseded = [cid for (cid,) in tuples(C.select(C.id).where(waiting))]
                if superseded:
                    C.update(finished_at=now, result={"status": "superseded"}).where(
                        C.id.in_(superseded)
                    ).execute()
            for target in targets:
                command = Command(secrets.token_hex(16), CommandKind.RECONCILE.value, chosen)
                C.insert(
                    id=command.id,
                    tenant_id=ctx.tenant,
                    machine_id=target,
                    kind=command.kind,
                    strategy=chosen.value,
                    requested_by=who,
                    created_at=now,
                ).execute()
                made.append(command)
                notices.append(notice(ctx, "command", target, command))
            notify_in_transaction(ctx, notices)
        notify_after_commit(ctx, notices)
    return [c.id for c in made]


def _waiting(ctx: ServiceContext, machine_id: str, now: int) -> pw.Expression:
    C = ctx.models.PdvCommand
    return (
        (C.tenant_id == ctx.tenant)
        & (C.machine_id == machine_id)
        & C.finished_at.is_null()
        & (C.created_at >= now - KEEP_MS)
    )


def pending(
    ctx: ServiceContext, machine_id: str, now: int, *, deliver: bool = True
) -> list[Command]:
    """The machine's commands not finished yet, oldest first (delivered ones too: a PDV
    runs each id once, so handing one over again is harmless, and losing one is not).
    `deliver`: they are being handed over now (their first `delivered_at`). Runs on the
    caller's connection (and transaction, when it has one)."""
    C = ctx.models.PdvCommand
    rows = list(
        dicts(
            C.select(C.id, C.kind, C.strategy)
            .where(_waiting(ctx, machine_id, now))
            .order_by(C.created_at, C.id)
        )
    )
    commands = [Command(r["id"], r["kind"], _strategy(r["strategy"])) for r in rows]
    if deliver and commands:
        mark_delivered(ctx, [c.id for c in commands], now)
    return commands


def mark_delivered(ctx: ServiceContext, ids: Sequence[str], now: int) -> None:
    """The first time these commands were handed to their PDV (later ones change nothing)."""
    if not ids:
        return
    C = ctx.models.PdvCommand
    C.update(delivered_at=now).where(
        (C.tenant_id == ctx.tenant) & C.id.in_(list(ids)) & C.delivered_at.is_null()
    ).execute()


def finish(
    ctx: ServiceContext, machine_id: str, results: dict[str, dict[str, Any]], now: int
) -> list[str]:
    """Mark this machine's unfinished commands among `results` (id -> result) finished.
    Another machine's command, or one already finished, is left as it is. Returns the ids
    finished. Runs in the caller's transaction."""
    if not results:
        return []
    C = ctx.models.PdvCommand
    open_ids = [
        cid
        for (cid,) in tuples(
            C.select(C.id).where(
                (C.tenant_id == ctx.tenant)
                & (C.machine_id == machine_id)
                & C.id.in_(list(results))
                & C.finished_at.is_null()
            )
        )
    ]
    for cid in open_ids:
        C.update(finished_at=now, result=results[cid]).where(C.id == cid).execute()
    return sorted(open_ids)


def prune(ctx: ServiceContext, now: int) -> None:
    """Forget this shop's commands asked for more than KEEP_MS ago."""
    C = ctx.models.PdvCommand
    C.delete().where((C.tenant_id == ctx.tenant) & (C.created_at < now - KEEP_MS)).execute()


def forget(ctx: ServiceContext, machine_ids: Iterable[str]) -> int:
    C = ctx.models.PdvCommand
    return (
        C.delete()
        .where((C.tenant_id == ctx.tenant) & C.machine_id.in_(list(machine_ids)))
        .execute()
    )
