"""The PDVs of a shop as the panel sees them: each one's last report and its history, the
snapshot of cards (known machines ∪ reporting ones, last seen, lag, offline after 90 s of
silence or soon after its live socket closed: server/presence.py), the events per minute, the server's health, and forgetting a machine.

Times are epoch milliseconds; a `minute` is the epoch ms of the minute's start. Everything
is the context's shop's.
"""

from __future__ import annotations

from typing import Any, TypedDict

from protocol.reports import STATE_LABELS, PdvReport

from . import commands as _commands
from . import presence, sql
from .context import ServiceContext
from .db import dicts, tuples

MINUTE_MS = 60_000
# A PDV reports at least every 30 s: silent (no report, no request) for longer than this,
# it is shown offline whatever its last report said.
OFFLINE_AFTER_MS = 90_000
HISTORY_KEEP_MS = 24 * 3_600_000
EVENT_MINUTES_KEEP_MS = 8 * 86_400_000


def minute_of(ms: int) -> int:
    return ms - ms % MINUTE_MS


class PendingCommand(TypedDict):
    id: str
    strategy: str
    createdAt: int
    deliveredAt: int | None


class LastCommand(TypedDict):
    id: str
    finishedAt: int
    result: dict[str, Any]  # {status, detail?, reconcile?}


class PdvCard(TypedDict):
    """One PDV of the shop, as the panel shows it. Times are epoch ms."""

    machineId: str
    hostname: str | None
    version: str | None
    state: str  # the report's (protocol.reports.PDV_STATES); "offline" when silent > 90 s
    label: str  # the state's words (STATE_LABELS)
    lastSeenAt: int | None  # the later of its last report and its last request
    pending: int
    oldestPendingAgeMs: int | None  # as of reportedAt (add the time since for "now")
    deadLetters: int
    clockOffsetMs: int | None
    cursor: int | None  # the report's, else the one its last pull recorded
    lag: int | None  # the shop's head minus `cursor`
    lastReconcile: dict[str, Any] | None  # {at, status, strategy, isConsistent, mismatches, ...}
    lastError: str | None
    lastErrorCode: str | None
    live: bool  # its live socket was up at its last report (and it is not silent)
    reportedAt: int | None  # None: it never reported (a front end, an older agent)
    pendingCommand: PendingCommand | None  # the newest one not finished
    lastCommand: LastCommand | None  # the newest one finished


class MinuteCount(TypedDict):
    minute: int
    applied: int
    stale: int
    rejected: int


class Health(TypedDict):
    """The server's side of the panel's health box (live sockets come from the hub)."""

    database: str  # "ok" | "error"
    head: int | None
    eventsLastMinute: int  # events pushed in the last 60 s (applied, stale or rejected)
    conflictsLastMinute: int  # of which stale (an older edit than the stored one)
    eventsLast15Min: int
    conflictsLast15Min: int


# -- recording --------------------------------------------------------------------------------


def bump_minute(ctx: ServiceContext, now: int, applied: int, stale: int, rejected: int) -> None:
    """Count one push's events in its minute (in the push's transaction: one upsert)."""
    if applied or stale or rejected:
        ctx.db.execute_sql(*bump_minute_statement(ctx, now, applied, stale, rejected))


def bump_minute_statement(
    ctx: ServiceContext, now: int, applied: int, stale: int, rejected: int
) -> tuple[str, tuple[Any, ...]]:
    """`bump_minute`'s statement and parameters (server/pushdb.py sends it with others)."""
    p = ctx.db.param
    return (
        "INSERT INTO event_minutes (tenant_id, minute, applied, stale, rejected) "
        f"VALUES ({p}, {p}, {p}, {p}, {p}) ON CONFLICT (tenant_id, minute) DO UPDATE SET "
        "applied = event_minutes.applied + excluded.applied, "
        "stale = event_minutes.stale + excluded.stale, "
        "rejected = event_minutes.rejected + excluded.rejected",
        (ctx.tenant, minute_of(now), applied, stale, rejected),
    )


def _result_of(report: PdvReport) -> dict[str, dict[str, Any]]:
    """The commands a report says are done: id -> result `{status, detail, reconcile?}`."""
    out: dict[str, dict[str, Any]] = {
        r.id: {"status": r.status, "detail": r.detail} for r in report.command_results
    }
    last = report.last_reconcile
    if last is not None and last.command_id:
        entry = out.setdefault(last.command_id, {"status": last.status, "detail": None})
        entry["reconcile"] = last.wire()
    return out


def record_report(ctx: ServiceContext, report: PdvReport) -> list[_commands.Command]:
    """Keep `report` as its machine's last (and in the minute's history), finish the commands
    it says are done, and return the machine's commands still to run (now delivered)."""
    R, H = ctx.models.PdvReport, ctx.models.PdvReportHistory
    machine = report.machine_id
    wire = report.wire()
    with ctx.connection():
        with ctx.db.atomic():
            now = ctx.clock()
            if wire["lastReconcile"] is None:
                # A PDV that restarted has not reconciled since: its last one is still the
                # one before.
                before = R.select(R.report).where(
                    (R.tenant_id == ctx.tenant) & (R.machine_id == machine)
                )
                for (kept,) in tuples(before):
                    wire["lastReconcile"] = (kept or {}).get("lastReconcile")
            row = {
                "tenant_id": ctx.tenant,
                "machine_id": machine,
                "received_at": now,
                "report": wire,
                "state": report.state,
                "pending": report.pending,
                "oldest_pending_age_ms": report.oldest_pending_age_ms,
                "dead_letters": report.dead_letters,
                "clock_offset_ms": report.clock_offset_ms,
                "cursor": report.cursor,
                "version": report.version,
                "hostname": report.hostname,
            }
            R.insert(row).on_conflict(
                conflict_target=[R.tenant_id, R.machine_id],
                update={k: v for k, v in row.items() if k not in ("tenant_id", "machine_id")},
            ).execute()
            lag = max(0, sql.head(ctx) - report.cursor)
            minute = {"state": report.state, "pending": report.pending, "lag": lag}
            H.insert(
                tenant_id=ctx.tenant, machine_id=machine, minute=minute_of(now), **minute
            ).on_conflict(
                conflict_target=[H.tenant_id, H.machine_id, H.minute], update=minute
            ).execute()
            finished = _commands.finish(ctx, machine, _result_of(report), now)
            todo = _commands.pending(ctx, machine, now)
            _prune(ctx, now)
            notices = [_commands.notice(ctx, "report", machine)]
            notices += [_commands.notice(ctx, "finished", machine) for _ in finished[:1]]
            _commands.notify_in_transaction(ctx, notices)
        _commands.notify_after_commit(ctx, notices)
    return todo


def _prune(ctx: ServiceContext, now: int) -> None:
    """What the panel no longer shows: history older than a day, minutes older than 8 days,
    commands older than a week (index range deletes: nothing to do costs a probe)."""
    H, E = ctx.models.PdvReportHistory, ctx.models.EventMinute
    H.delete().where((H.tenant_id == ctx.tenant) & (H.minute < now - HISTORY_KEEP_MS)).execute()
    E.delete().where(
        (E.tenant_id == ctx.tenant) & (E.minute < now - EVENT_MINUTES_KEEP_MS)
    ).execute()
    _commands.prune(ctx, now)


def forget_machine(ctx: ServiceContext, machine_id: str) -> bool:
    """Forget a retired machine: its cursor no longer holds tombstones back (`machines
    forget`), and its report, history and commands go. False when the shop knew nothing
    of it."""
    m = ctx.models
    with ctx.connection():
        with ctx.db.atomic():
            gone = 0
            for model in (m.Machine, m.PdvReport, m.PdvReportHistory, m.PdvSocket):
                gone += (
                    model.delete()
                    .where((model.tenant_id == ctx.tenant) & (model.machine_id == machine_id))
                    .execute()
                )
            gone += _commands.forget(ctx, [machine_id])
            notices = [_commands.notice(ctx, "forgotten", machine_id)] if gone else []
            _commands.notify_in_transaction(ctx, notices)
        _commands.notify_after_commit(ctx, notices)
    with ctx.cache_lock:  # its next pull records its cursor again
        ctx.pulls_seen.pop((ctx.tenant, machine_id), None)
    return bool(gone)


# -- reading ----------------------------------------------------------------------------------


def pdv_snapshot(ctx: ServiceContext, now: int) -> list[PdvCard]:
    """Every PDV of the shop (known machines ∪ reporting ones), by machine id."""
    m = ctx.models
    M, R, C = m.Machine, m.PdvReport, m.PdvCommand
    with ctx.connection():
        head = sql.head(ctx)
        machines = {
            r["machine_id"]: r
            for r in dicts(
                M.select(M.machine_id, M.last_seen, M.cursor).where(M.tenant_id == ctx.tenant)
            )
        }
        reports = {
            r["machine_id"]: r
            for r in dicts(
                R.select(R.machine_id, R.received_at, R.report).where(R.tenant_id == ctx.tenant)
            )
        }
        sockets = presence.sockets(ctx)
        commands = list(
            dicts(
                C.select(
                    C.id,
                    C.machine_id,
                    C.strategy,
                    C.created_at,
                    C.delivered_at,
                    C.finished_at,
                    C.result,
                )
                .where((C.tenant_id == ctx.tenant) & (C.created_at >= now - _commands.KEEP_MS))
                .order_by(C.created_at, C.id)
            )
        )
    waiting: dict[str, PendingCommand] = {}
    done: dict[str, LastCommand] = {}
    for c in commands:  # oldest first: the newest of each kind wins
        if c["finished_at"] is None:
            waiting[c["machine_id"]] = {
                "id": c["id"],
                "strategy": c["strategy"],
                "createdAt": c["created_at"],
                "deliveredAt": c["delivered_at"],
            }
        elif c["result"] and c["result"].get("status") != "superseded":
            done[c["machine_id"]] = {
                "id": c["id"],
                "finishedAt": c["finished_at"],
                "result": c["result"],
            }
    cards = []
    for machine_id in sorted(set(machines) | set(reports)):
        cards.append(
            _card(
                machine_id,
                machines.get(machine_id),
                reports.get(machine_id),
                sockets.get(machine_id),
                head,
                now,
                waiting.get(machine_id),
                done.get(machine_id),
            )
        )
    return cards


def _card(
    machine_id: str,
    machine: dict[str, Any] | None,
    stored: dict[str, Any] | None,
    socket: dict[str, Any] | None,
    head: int,
    now: int,
    waiting: PendingCommand | None,
    done: LastCommand | None,
) -> PdvCard:
    report: dict[str, Any] = (stored or {}).get("report") or {}
    reported_at = stored["received_at"] if stored else None
    seen = [t for t in (reported_at, machine["last_seen"] if machine else None) if t is not None]
    last_seen = max(seen) if seen else None
    # Silent for too long, or its live socket closed and it was not heard of since.
    silent = (
        last_seen is None
        or now - last_seen > OFFLINE_AFTER_MS
        or presence.socket_gone(socket, last_seen, now)
    )
    # Never reported (a front end talking to the server itself, an older agent) but seen:
    # its facts are not known yet.
    state = "offline" if silent else str(report.get("state") or "waiting")
    cursor = report.get("cursor")
    if cursor is None and machine is not None and machine["cursor"] >= 0:
        cursor = machine["cursor"]  # -1: it never pulled
    return {
        "machineId": machine_id,
        "hostname": report.get("hostname"),
        "version": report.get("version"),
        "state": state,
        "label": STATE_LABELS.get(state, state),
        "lastSeenAt": last_seen,
        "pending": int(report.get("pending") or 0),
        "oldestPendingAgeMs": report.get("oldestPendingAgeMs"),
        "deadLetters": int(report.get("deadLetters") or 0),
        "clockOffsetMs": report.get("clockOffsetMs"),
        "cursor": cursor,
        "lag": max(0, head - cursor) if cursor is not None else None,
        "lastReconcile": report.get("lastReconcile"),
        "lastError": report.get("lastError"),
        "lastErrorCode": report.get("lastErrorCode"),
        "live": bool(report.get("live")) and not silent,
        "reportedAt": reported_at,
        "pendingCommand": waiting,
        "lastCommand": done,
    }


def events_per_minute(ctx: ServiceContext, since: int, until: int) -> list[MinuteCount]:
    """The shop's events per minute from the minute of `since` to the one of `until`, every
    minute listed (zeros where nothing was pushed), at most the 8 days kept."""
    last = minute_of(until)
    first = max(minute_of(since), last - EVENT_MINUTES_KEEP_MS)
    if first > last:
        return []
    E = ctx.models.EventMinute
    with ctx.connection():
        rows = {
            r["minute"]: r
            for r in dicts(
                E.select(E.minute, E.applied, E.stale, E.rejected).where(
                    (E.tenant_id == ctx.tenant) & (E.minute >= first) & (E.minute <= last)
                )
            )
        }
    out: list[MinuteCount] = []
    for minute in range(first, last + 1, MINUTE_MS):
        r = rows.get(minute)
        out.append(
            {
                "minute": minute,
                "applied": int(r["applied"]) if r else 0,
                "stale": int(r["stale"]) if r else 0,
                "rejected": int(r["rejected"]) if r else 0,
            }
        )
    return out


def health(ctx: ServiceContext, now: int) -> Health:
    """Whether the database answers, the shop's head, and its events and conflicts in the
    last minute (the receipts of the last 60 s) and the last 15 (the minutes counted)."""
    try:
        with ctx.connection():
            head = sql.head(ctx)
            p = ctx.db.param
            recent = dict(
                ctx.db.execute_sql(
                    "SELECT status, COUNT(*) FROM sync_events WHERE created_at > "
                    f"{p} AND tenant_id = {p} GROUP BY status",
                    (now - MINUTE_MS, ctx.tenant),
                ).fetchall()
            )
            E = ctx.models.EventMinute
            totals = list(
                tuples(
                    E.select(E.applied, E.stale, E.rejected).where(
                        (E.tenant_id == ctx.tenant) & (E.minute >= minute_of(now) - 14 * MINUTE_MS)
                    )
                )
            )
    except Exception:  # any failure to reach the database is "error"
        return {
            "database": "error",
            "head": None,
            "eventsLastMinute": 0,
            "conflictsLastMinute": 0,
            "eventsLast15Min": 0,
            "conflictsLast15Min": 0,
        }
    return {
        "database": "ok",
        "head": head,
        "eventsLastMinute": sum(int(n) for n in recent.values()),
        "conflictsLastMinute": int(recent.get("skipped_stale", 0)),
        "eventsLast15Min": sum(int(a) + int(s) + int(r) for a, s, r in totals),
        "conflictsLast15Min": sum(int(s) for _, s, _ in totals),
    }
