"""The panel's login sessions: a random token in the browser's cookie, its hash in the
database (admin_sessions), with the session's CSRF token and its two deadlines.

A session ends 12 h after the login whatever happens (absolute) and after 2 h without a
request (idle); both come from the settings (PANEL_SESSION_*). The database holds only the
SHA-256 of the token: a copy of the database (a backup) opens no session. Every server
process reads the same table, so a session works behind a load balancer and a logout or an
`admin passwd` ends it everywhere at once.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from protocol import now_ms

from ..db import Models, tuples
from .accounts import Admin

TOKEN_BYTES = 32


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SessionPolicy:
    max_age_ms: int = 12 * 3600 * 1000
    idle_ms: int = 2 * 3600 * 1000

    @classmethod
    def from_seconds(cls, max_age: int, idle: int) -> SessionPolicy:
        return cls(max_age_ms=max_age * 1000, idle_ms=idle * 1000)

    @property
    def touch_every_ms(self) -> int:
        """How stale `last_seen_at` may get before a request writes it again: one write per
        minute at most, but often enough that the idle timeout stays exact to a tenth."""
        return max(1, min(60_000, self.idle_ms // 10))


@dataclass(frozen=True)
class Session:
    admin: Admin
    csrf_token: str
    token_hash: str
    created_at: int
    expires_at: int


class Sessions:
    def __init__(
        self, models: Models, policy: SessionPolicy, clock: Callable[[], int] = now_ms
    ) -> None:
        self.m = models
        self.policy = policy
        self.clock = clock

    def open(self, admin: Admin) -> tuple[str, Session]:
        """A new session for `admin`: (the clear token for the cookie, the session)."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self.clock()
        session = Session(
            admin=admin,
            csrf_token=secrets.token_urlsafe(TOKEN_BYTES),
            token_hash=hash_token(token),
            created_at=now,
            expires_at=now + self.policy.max_age_ms,
        )
        S = self.m.AdminSession
        with self.m.db.connection_context(), self.m.db.atomic():
            self._purge(now)
            S.create(
                token_hash=session.token_hash,
                admin_id=admin.id,
                csrf_token=session.csrf_token,
                created_at=now,
                expires_at=session.expires_at,
                last_seen_at=now,
            )
        return token, session

    def resolve(self, token: str | None, *, touch: bool = True) -> Session | None:
        """The live session of a cookie's token (its idle clock restarted unless `touch` is
        False), or None when there is none, it expired, or its account is gone or disabled."""
        if not token or len(token) > 200:
            return None
        S, A = self.m.AdminSession, self.m.Admin
        digest = hash_token(token)  # looked up by hash: timing says nothing about the token
        now = self.clock()
        with self.m.db.connection_context():
            query = (
                S.select(
                    S.admin_id,
                    S.csrf_token,
                    S.created_at,
                    S.expires_at,
                    S.last_seen_at,
                    A.username,
                    A.tenant_id,
                    A.disabled,
                )
                .join(A, on=(S.admin_id == A.id))
                .where(S.token_hash == digest)
            )
            row = next(tuples(query), None)
            if row is None:
                return None
            admin_id, csrf, created_at, expires_at, last_seen_at, username, tenant, disabled = row
            idle = now - last_seen_at >= self.policy.idle_ms
            if disabled or now >= expires_at or idle:
                S.delete().where(S.token_hash == digest).execute()
                return None
            if touch and now - last_seen_at >= self.policy.touch_every_ms:
                S.update(last_seen_at=now).where(S.token_hash == digest).execute()
        return Session(
            admin=Admin(id=admin_id, username=username, tenant=tenant),
            csrf_token=csrf,
            token_hash=digest,
            created_at=created_at,
            expires_at=expires_at,
        )

    def close(self, token_hash: str) -> None:
        """End one session (logout; a login replacing the browser's old session)."""
        S = self.m.AdminSession
        with self.m.db.connection_context():
            S.delete().where(S.token_hash == token_hash).execute()

    def _purge(self, now: int) -> None:
        """Forget sessions that ended (absolute or idle), so the table stays small."""
        S = self.m.AdminSession
        S.delete().where(
            (S.expires_at <= now) | (S.last_seen_at <= now - self.policy.idle_ms)
        ).execute()
