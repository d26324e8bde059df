"""agent/ui/bridge.py: a future's outcome reaches the GUI from the event loop, never inside
the call that asked for it, even when the work was already done."""

from __future__ import annotations

import concurrent.futures
from typing import Any

from agent.ui.bridge import EngineBridge


class _DoneMonitor:
    """What the bridge uses of a SyncMonitor, with work that is over before it is asked."""

    def add_listener(self, callback: Any) -> None:
        """No status changes in these tests: nothing to tell a listener."""

    def _done(self, value: Any = None, error: Exception | None = None) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
        return future

    def sync_now_async(self) -> concurrent.futures.Future:
        return self._done({"ok": True})

    def reconcile_async(self, strategy: str | None) -> concurrent.futures.Future:
        return self._done(error=ValueError("servidor inacessível"))


def test_an_outcome_already_there_arrives_after_the_call(qtbot) -> None:
    bridge = EngineBridge(_DoneMonitor())  # type: ignore[arg-type]
    got: list[Any] = []
    bridge.syncFinished.connect(got.append)
    bridge.reconcileFailed.connect(got.append)
    bridge.sync_now()
    bridge.reconcile()
    assert got == []  # not inside the calls
    qtbot.waitUntil(lambda: len(got) == 2)
    assert got == [{"ok": True}, "ValueError: servidor inacessível"]
