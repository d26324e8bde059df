"""The panel's commands on this PDV (today: reconcile with a strategy): each id run at most
once, in the order received, and its result kept until a report has told the server.

Commands arrive on the live socket and in every report's reply (protocol/reports.py), so the
same id often comes more than once: the ids run are remembered in the store (`sync_state`,
the last `KEEP` of them), and written down before the command starts, so one interrupted
by a crash is never run again (it is reported as interrupted instead).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, TypedDict

from protocol import ProtocolError
from protocol.reports import Command, CommandKind, parse_command
from protocol.vocabulary import ReconcileStatus

from .context import SyncContext
from .reconcile import Reconciler

log = logging.getLogger(__name__)

STATE_KEY = "panel_commands"  # the store's fact: the commands run, as JSON
KEEP = 50  # commands remembered (far more than a panel asks between two reports)
RUNNING = "running"
INTERRUPTED = "interrupted"  # the agent stopped while running it
UNSUPPORTED = "unsupported"  # a kind this agent does not know


class Ran(TypedDict):
    """One command run (or running), as the store keeps it."""

    id: str
    status: str  # RUNNING, a ReconcileStatus value, UNSUPPORTED or INTERRUPTED
    detail: str | None
    logId: int | None  # its reconcile in the local reconcile log
    reported: bool  # a report carrying its result reached the server


class CommandRunner:
    """Receives commands (on the engine's loop), runs them one at a time (`run`, a task of
    the engine), and keeps their results for the reporter."""

    def __init__(
        self, context: SyncContext, reconciler: Reconciler, on_done: Callable[[], None]
    ) -> None:
        """`on_done()`: a command finished (the reporter reports at once)."""
        self.context = context
        self.reconciler = reconciler
        self._on_done = on_done
        self._queue: asyncio.Queue[Command] | None = None
        self._queued: set[str] = set()
        self._ran: list[Ran] = self._load()
        interrupted = [e for e in self._ran if e["status"] == RUNNING]
        for entry in interrupted:  # the agent stopped during it: never run again
            entry["status"] = INTERRUPTED
            entry["detail"] = "the PDV stopped while running it"
            entry["reported"] = False
        if interrupted:
            self._save()

    # -- what ran (the store) -----------------------------------------------------------------

    def _load(self) -> list[Ran]:
        text = self.context.store.get_state(STATE_KEY)
        try:
            entries = json.loads(text) if text else []
        except ValueError:
            entries = []
        if not isinstance(entries, list):
            return []
        return [
            Ran(
                id=e["id"],
                status=str(e.get("status") or INTERRUPTED),
                detail=e.get("detail"),
                logId=e.get("logId"),
                reported=bool(e.get("reported")),
            )
            for e in entries
            if isinstance(e, dict) and isinstance(e.get("id"), str)
        ]

    def _save(self) -> None:
        self._ran = self._ran[-KEEP:]
        self.context.store.set_state(STATE_KEY, json.dumps(self._ran))

    def _entry(self, command_id: str) -> Ran | None:
        return next((e for e in self._ran if e["id"] == command_id), None)

    # -- receiving (the live socket, a report's reply) -----------------------------------

    def receive(self, data: object) -> None:
        """A command message or reply entry; on the engine's loop. One already run is not
        run again (its result is reported again, in case the server missed it)."""
        try:
            command = parse_command(data)
        except ProtocolError as exc:
            log.warning("ignored a command: %s", exc.message)
            return
        ran = self._entry(command.id)
        if ran is not None:
            if ran["status"] != RUNNING and ran["reported"]:
                ran["reported"] = False  # the server still lists it: tell it again
                self._save()
                self._on_done()
            return
        if command.id in self._queued:
            return
        if self._queue is None:
            self._queue = asyncio.Queue()
        self._queued.add(command.id)
        self._queue.put_nowait(command)

    async def run(self) -> None:
        """Run the commands received, one at a time, until cancelled (the engine stops)."""
        if self._queue is None:
            self._queue = asyncio.Queue()
        while True:
            command = await self._queue.get()
            try:
                await self._run_one(command)
            finally:
                self._queued.discard(command.id)

    async def _run_one(self, command: Command) -> None:
        entry: Ran = {
            "id": command.id,
            "status": RUNNING,
            "detail": None,
            "logId": None,
            "reported": False,
        }
        self._ran.append(entry)
        self._save()  # before it runs: at most once, even across a crash
        if command.kind != CommandKind.RECONCILE:
            entry["status"] = UNSUPPORTED
            entry["detail"] = f"unknown command kind {command.kind!r}"
        else:
            log.info("the panel asked for a reconcile (%s)", command.strategy.value)
            try:
                # Not `manual`: a command from the panel never accepts another server database
                # on this PDV's behalf (the manager does that at the PDV).
                report = await self.reconciler.run(command.strategy)
            except Exception as exc:  # never let a command stop the engine
                log.exception("the panel's reconcile failed")
                entry["status"] = ReconcileStatus.ERROR.value
                entry["detail"] = type(exc).__name__
            else:
                entry["status"] = report["status"].value
                entry["detail"] = report["error"]
                entry["logId"] = report["id"]
        self._save()
        self._on_done()

    # -- what the reporter sends ------------------------------------------------------------

    def results(self) -> list[dict[str, Any]]:
        """`commandResults` of the next report: the finished ones not reported yet."""
        return [
            {"id": e["id"], "status": e["status"], "detail": e["detail"]}
            for e in self._ran
            if e["status"] != RUNNING and not e["reported"]
        ]

    def reported(self, ids: list[str]) -> None:
        """A report carrying these results reached the server."""
        changed = False
        for e in self._ran:
            if e["id"] in ids and not e["reported"]:
                e["reported"] = changed = True
        if changed:
            self._save()

    def command_of(self, log_id: int | None) -> str | None:
        """The command a reconcile (its id in the local log) ran for, if any."""
        if log_id is None:
            return None
        return next((e["id"] for e in self._ran if e["logId"] == log_id), None)
