"""When to show a tray message: only on lasting transitions into `Com Divergência` or
`Offline/Erro`, and back to normal, never in the grace period after start or wake-up.

Pure logic (no Qt): `observe(state, now)` on every status, `due(now)` when `next_due()` says.
"""

from __future__ import annotations

from dataclasses import dataclass


def category(state: str) -> str:
    return state if state in ("offline", "divergent") else "normal"


@dataclass
class Notice:
    category: str  # offline | divergent | normal
    previous: str


class NotificationPolicy:
    def __init__(
        self, started_at: int, *, grace_ms: int = 15_000, debounce_ms: int = 8_000
    ) -> None:
        self.grace_until = started_at + grace_ms
        self.debounce_ms = debounce_ms
        self.grace_ms = grace_ms
        self.announced = "normal"  # what the cashier was last told (nothing = all is well)
        self._candidate = "normal"
        self._since = started_at

    def wake(self, now: int) -> None:
        """After sleep/resume the network takes a moment: a fresh grace period."""
        self.grace_until = now + self.grace_ms

    def observe(self, state: str, now: int) -> None:
        cat = category(state)
        if cat != self._candidate:
            self._candidate = cat
            self._since = now

    def next_due(self) -> int | None:
        """When `due` may give a notice (a time on the same clock), None when it will not
        without a new state: the moment to look again, instead of looking every second."""
        if self._candidate == self.announced:
            return None
        return max(self.grace_until, self._since + self.debounce_ms)

    def due(self, now: int) -> Notice | None:
        """The message to show now, if any. Each lasting change is announced once."""
        if now < self.grace_until:
            return None
        if self._candidate == self.announced:
            return None
        if now - self._since < self.debounce_ms:
            return None
        notice = Notice(self._candidate, self.announced)
        self.announced = self._candidate
        return notice
