"""The login rate limit: after 5 failures for one username or one address within 15 minutes,
logins from there wait. The failures are rows of login_failures, so every server process of
a shop counts the same ones (a guesser cannot spread its tries over the processes behind a
load balancer), and a restart forgets nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from protocol import now_ms

from ..db import Models
from .accounts import normalize_username

MAX_FAILURES = 5
WINDOW_MS = 15 * 60 * 1000
_KEY_MAX = 200


def user_key(username: str) -> str:
    """The key counting a username's failures (any text typed, bounded)."""
    return ("user:" + normalize_username(username))[:_KEY_MAX]


def address_key(address: str) -> str:
    """The key counting an address's failures (the peer's IP as the server sees it)."""
    return ("ip:" + address)[:_KEY_MAX]


class LoginLimiter:
    def __init__(
        self,
        models: Models,
        clock: Callable[[], int] = now_ms,
        *,
        max_failures: int = MAX_FAILURES,
        window_ms: int = WINDOW_MS,
    ) -> None:
        self.m = models
        self.clock = clock
        self.max_failures = max_failures
        self.window_ms = window_ms

    def wait_ms(self, keys: Iterable[str]) -> int:
        """0 when a login may be tried; else how long until one of these keys is under the
        limit again (its oldest counted failure leaves the window)."""
        F = self.m.LoginFailure
        now = self.clock()
        wait = 0
        with self.m.db.connection_context():
            for key in keys:
                recent = [
                    f.failed_at
                    for f in F.select(F.failed_at)
                    .where((F.key == key) & (F.failed_at > now - self.window_ms))
                    .order_by(F.failed_at.desc())
                    .limit(self.max_failures)
                ]
                if len(recent) >= self.max_failures:
                    wait = max(wait, recent[-1] + self.window_ms - now)
        return wait

    def record_failure(self, keys: Iterable[str]) -> None:
        F = self.m.LoginFailure
        now = self.clock()
        with self.m.db.connection_context(), self.m.db.atomic():
            F.delete().where(F.failed_at <= now - self.window_ms).execute()
            F.insert_many([{"key": key, "failed_at": now} for key in keys]).execute()

    def clear(self, key: str) -> None:
        """Forget a key's failures (a username that just logged in)."""
        F = self.m.LoginFailure
        with self.m.db.connection_context():
            F.delete().where(F.key == key).execute()
