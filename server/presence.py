"""Whether a PDV's live socket is up, as every server process sees it.

A PDV that reports every 30 s is shown offline after 90 s of silence (server/pdvs.py). Its
live socket says it sooner: when the agent stops or its machine dies, the socket closes
(at once on a clean stop, within the server's ping timeout on a silent loss). Each process
records, in `pdv_sockets`, when a machine's socket opened and when its last one in that
process closed; the panel then shows the PDV offline once the socket has been closed for
`SOCKET_GRACE_MS` with nothing heard from the PDV since — a reconnect (to any process)
or any request cancels it. Times come from the server's own clock, so processes agree.
"""

from __future__ import annotations

from typing import Any

from .context import ServiceContext
from .db import dicts

# A socket that comes back within this (a server restart, a network blip) is not an outage.
SOCKET_GRACE_MS = 10_000


def socket_changed(ctx: ServiceContext, machine_id: str, opened: bool, now: int) -> None:
    """Record that `machine_id`'s socket opened (`opened`) or that its last one in this
    process closed."""
    S = ctx.models.PdvSocket
    with ctx.connection():
        if opened:
            S.insert(
                tenant_id=ctx.tenant, machine_id=machine_id, opened_at=now, closed_at=None
            ).on_conflict(
                conflict_target=[S.tenant_id, S.machine_id],
                update={S.opened_at: now, S.closed_at: None},
            ).execute()
        else:
            # Only a close after the last open counts: a late close of an older socket (on
            # another process) must not hide the newer one.
            S.update(closed_at=now).where(
                (S.tenant_id == ctx.tenant) & (S.machine_id == machine_id) & (S.opened_at <= now)
            ).execute()


def sockets(ctx: ServiceContext) -> dict[str, dict[str, Any]]:
    """The shop's socket rows by machine id (call inside a connection)."""
    S = ctx.models.PdvSocket
    query = S.select(S.machine_id, S.opened_at, S.closed_at).where(S.tenant_id == ctx.tenant)
    return {r["machine_id"]: r for r in dicts(query)}


def socket_gone(row: dict[str, Any] | None, last_seen: int | None, now: int) -> bool:
    """The machine's socket closed more than the grace ago and was not reopened, and the
    machine was not heard of (report, request) after it closed."""
    if row is None or row["closed_at"] is None:
        return False
    closed = int(row["closed_at"])
    if closed < int(row["opened_at"]) or (last_seen is not None and last_seen > closed):
        return False
    return now - closed >= SOCKET_GRACE_MS
