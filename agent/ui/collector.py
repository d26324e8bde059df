"""Python's garbage collector, run on the GUI thread only.

The tray's Qt objects (windows, actions, closed trays) sit in reference cycles with their
Python wrappers, so only the cyclic collector frees them. Left automatic, it runs on
whatever thread happens to allocate when a threshold is crossed: the sync engine's or the
loopback API's. A Qt object destroyed from another thread than its own is undefined
behaviour, seen here as crashes and a hung shutdown. So the tray turns automatic
collection off and runs it, with the same thresholds, from a timer on the GUI thread.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer


class GuiGarbageCollector(QObject):
    def __init__(self, parent: QObject | None = None, interval_ms: int = 1000) -> None:
        super().__init__(parent)
        self._thresholds = gc.get_threshold()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect_due)
        self._timer.start()

    def collect_due(self) -> int:
        """Collect the oldest generation whose threshold is crossed (it takes the younger
        ones with it), as the automatic collector would have; returns what it freed."""
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > self._thresholds[generation]:
                return gc.collect(generation)
        return 0

    def stop(self) -> None:
        self._timer.stop()
        gc.enable()
