"""Offset between this machine's clock and the server's, from request round trips.

Each response carries the server's time; the sample with the shortest round trip among the
recent ones is the most trustworthy (NTP's idea, simplified).
"""

from __future__ import annotations

import threading
import time
from collections import deque


def local_ms() -> int:
    return time.time_ns() // 1_000_000


class ClockOffset:
    def __init__(self, initial_ms: int = 0, window: int = 8, skew_ms: int = 0) -> None:
        self._samples: deque[tuple[int, int]] = deque(maxlen=window)  # (rtt, offset)
        self._offset = initial_ms
        self._lock = threading.Lock()
        self.skew_ms = skew_ms  # test hook: pretend the local clock is off by this much

    def local_now(self) -> int:
        return local_ms() + self.skew_ms

    def observe(self, sent_at: int, received_at: int, server_ms: int) -> None:
        rtt = max(0, received_at - sent_at)
        offset = server_ms - (sent_at + received_at) // 2
        with self._lock:
            self._samples.append((rtt, offset))
            self._offset = min(self._samples)[1]

    @property
    def offset_ms(self) -> int:
        with self._lock:
            return self._offset

    def server_now(self) -> int:
        """This machine's best estimate of the server's clock, to stamp local edits."""
        return self.local_now() + self.offset_ms
