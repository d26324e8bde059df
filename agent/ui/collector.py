"""Python's garbage collector, run on the GUI thread only.

The tray's Qt objects (windows, actions, closed trays) sit in reference cycles with their
Python wrappers, so only the cyclic collector frees them. Left automatic, it runs on
whatever thread happens to allocate when a threshold is crossed: the sync engine's or the
loopback API's. A Qt object destroyed from another thread than its own is undefined
behaviour, seen here as crashes and a hung shutdown. So the tray turns automatic
collection off and runs it, with the same thresholds, on the GUI thread.

When: `request()`, from any thread, checks the thresholds (a few integer comparisons) and
wakes the GUI thread only when a collection is due. The engine calls it on each of its own
wake-ups (`Engine.add_heartbeat`: every keep-alive ping answered, every turn of its loop),
so an idle tray is not woken by a timer of its own. `interval_ms` keeps a periodic check
as well (tests, or a host without an engine).
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, Qt, QTimer, Signal


class GuiGarbageCollector(QObject):
    _due = Signal()

    def __init__(self, parent: QObject | None = None, interval_ms: int | None = None) -> None:
        super().__init__(parent)
        self._thresholds = gc.get_threshold()
        self._asked = False  # a collection is on its way to the GUI thread
        self._stopped = False
        gc.disable()
        # Queued: emitted on any thread, run on this object's (the GUI) thread.
        self._due.connect(self._collect_asked, Qt.ConnectionType.QueuedConnection)
        self._timer: QTimer | None = None
        if interval_ms:
            self._timer = QTimer(self)
            self._timer.setInterval(interval_ms)
            self._timer.timeout.connect(self.collect_due)
            self._timer.start()

    def is_due(self) -> bool:
        counts = gc.get_count()
        return any(counts[g] > self._thresholds[g] for g in (0, 1, 2))

    def request(self) -> None:
        """From any thread: have the GUI thread collect, if a threshold is crossed."""
        if not self._stopped and not self._asked and self.is_due():
            self._asked = True
            self._due.emit()

    def _collect_asked(self) -> None:
        self._asked = False
        if not self._stopped:
            self.collect_due()

    def collect_due(self) -> int:
        """Collect the oldest generation whose threshold is crossed (it takes the younger
        ones with it), as the automatic collector would have; returns what it freed."""
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > self._thresholds[generation]:
                return gc.collect(generation)
        return 0

    def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.stop()
        gc.enable()
