"""The PDV's reports to the server (protocol/reports.py): what only the PDV knows (its badge,
outbox, refused changes, last reconcile, clock), for the manager's panel.

One report at start, then every `REPORT_EVERY_MS`, and one about a second after a change of
the badge's state, the pending count, the dead letters or the last reconcile (changes that
come together make one report). A report's reply lists the panel's commands not finished
yet (the live socket brings them too): they go to the command runner. A server without the
route (an older one) is asked again only every `OLD_SERVER_RETRY_MS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any

from protocol import parse_ms
from protocol.reports import REPORT_EVERY_MS
from protocol.version import __version__

from .commands import CommandRunner
from .context import SyncContext
from .errors import Rejected, ServerError, Throttled

log = logging.getLogger(__name__)

DEBOUNCE_S = 1.0
OLD_SERVER_RETRY_MS = 600_000


def _key(status: dict[str, Any]) -> tuple[Any, ...]:
    """What, changed, is reported at once."""
    last = status.get("lastReconcile") or {}
    return (status.get("state"), status.get("pending"), status.get("deadLetters"), last.get("id"))


class Reporter:
    def __init__(self, context: SyncContext, commands: CommandRunner) -> None:
        self.context = context
        self.commands = commands
        self._last_key: tuple[Any, ...] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self.sent = 0  # reports the server took (tests, diagnostics)
        # `align(when)`: the loop time to wake up at for a report due at `when` at the
        # latest (the engine puts it on the live socket's keep-alive: one wake-up for both).
        self.align: Callable[[float], float] = lambda when: when

    # -- triggers (any thread) --------------------------------------------------------------

    def watch(self, status: dict[str, Any]) -> None:
        """A status listener: report soon when what matters changed."""
        key = _key(status)
        if key != self._last_key:
            self._last_key = key
            self.poke()

    def poke(self) -> None:
        """Report soon (debounced); from any thread."""
        loop, changed = self._loop, self._changed
        if loop is None or changed is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(changed.set)

    # -- the schedule (a task of the engine) ------------------------------------------------

    async def run(self) -> None:
        """Report until cancelled (the engine stops)."""
        self._loop = asyncio.get_running_loop()
        self._changed = changed = asyncio.Event()
        clock, loop = self.context.clock, asyncio.get_running_loop()
        next_at = clock.local_now()  # one at start
        while not self.context.stopping:
            wait = max(0.0, (next_at - clock.local_now()) / 1000)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(self.align(loop.time() + wait)):
                    await changed.wait()
            if changed.is_set():
                await asyncio.sleep(DEBOUNCE_S)  # what changes together, one report
                changed.clear()
            next_at = clock.local_now() + await self.send()

    async def send(self) -> int:
        """Send one report now; the ms until the next one is due."""
        ctx = self.context
        body = self.build()
        try:
            reply = await ctx.client.report(body)
        except Throttled as exc:
            return max(exc.retry_after_ms, REPORT_EVERY_MS)
        except Rejected as exc:
            if exc.status in (404, 405):
                log.info("the server takes no reports (an older version)")
                return OLD_SERVER_RETRY_MS
            log.warning("report refused: %s", exc.detail)
            return REPORT_EVERY_MS
        except ServerError as exc:  # offline, refused key...: the badge already says so
            log.debug("report not sent: %s", exc.detail)
            return REPORT_EVERY_MS
        except Exception:  # a bug here must not stop the engine
            log.exception("report failed")
            return REPORT_EVERY_MS
        self.sent += 1
        self.commands.reported([r["id"] for r in body["commandResults"]])
        for command in reply.get("commands") or []:
            self.commands.receive(command)
        return REPORT_EVERY_MS

    # -- the report -------------------------------------------------------------------------

    def build(self) -> dict[str, Any]:
        """The report as it is now (protocol/reports.py)."""
        ctx = self.context
        status = ctx.board.status()
        return {
            "machineId": ctx.machine_id,
            "tenantId": ctx.tenant,
            "state": status["state"],
            "label": status["label"],
            "pending": status["pending"],
            "oldestPendingAgeMs": status["oldestPendingAgeMs"],
            "deadLetters": status["deadLetters"],
            "live": status["live"],
            "lastError": status["lastError"],
            "lastErrorCode": status["lastErrorCode"],
            "lastSuccessAt": status["lastSuccessAt"],
            "clockOffsetMs": status["clockOffsetMs"],
            "cursor": status["cursor"],
            "version": __version__,
            "hostname": socket.gethostname(),
            "lastReconcile": self._last_reconcile(),
            "commandResults": self.commands.results(),
        }

    def _last_reconcile(self) -> dict[str, Any] | None:
        """The newest entry of the local reconcile log (it outlives a restart)."""
        entries = self.context.store.reconcile_history(1)
        if not entries:
            return None
        e = entries[0]
        return {
            "at": parse_ms(e["created_at"]) if e["created_at"] else None,
            "status": e["status"],
            "strategy": e["strategy"],
            "isConsistent": e["is_consistent"],
            "mismatches": [
                {"table": str(m.get("table")), "reason": str(m.get("reason") or "")}
                for m in (e["mismatches"] or [])[:20]
                if isinstance(m, dict)
            ],
            "serverLogId": e["server_log_id"],
            "commandId": self.commands.command_of(e["id"]),
        }
