"""Managers' accounts: who may open the panel, for which shop, and the check of a login.

An account belongs to one shop (`tenant`) or, with no shop, to every shop of the server.
Accounts are made by the command line (`pdvsync-server admin ...`); the panel only reads
them. Changing a password or removing an account ends that account's sessions at once.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocol import now_ms, to_iso

from ..db import Models
from .passwords import burn, check_policy, hash_password, verify_password

USERNAME_MAX = 64
_USERNAME = re.compile(rf"[a-z0-9._@-]{{1,{USERNAME_MAX}}}")

# scrypt takes 16 MiB and tens of milliseconds per check: a burst of logins (many names,
# many addresses, so the rate limit does not stop it) must not take the server's memory.
_HASHING = threading.BoundedSemaphore(4)


class AccountError(ValueError):
    """A username or account the command cannot act on; the message says why."""


@dataclass(frozen=True)
class Admin:
    """A logged-in manager as the panel sees it; `tenant` None: every shop."""

    id: int
    username: str
    tenant: str | None

    @property
    def all_shops(self) -> bool:
        return self.tenant is None

    def can_see(self, tenant: str) -> bool:
        """Whether this manager may see and act on shop `tenant`."""
        return self.tenant is None or self.tenant == tenant


def normalize_username(text: str) -> str:
    """Usernames ignore case and surrounding blanks (a phone capitalises the first letter)."""
    return text.strip().lower()


def check_username(text: str) -> str:
    """The normalized username, or AccountError when it is not 1-64 of a-z 0-9 . _ @ -."""
    name = normalize_username(text)
    if not _USERNAME.fullmatch(name):
        raise AccountError(
            f"username: 1 to {USERNAME_MAX} letters, digits, '.', '_', '@' or '-' "
            f"(got {text[:40]!r})"
        )
    return name


class Accounts:
    def __init__(self, models: Models, clock: Callable[[], int] = now_ms) -> None:
        self.m = models
        self.clock = clock

    def _admin(self, row: Any) -> Admin:
        return Admin(id=row.id, username=row.username, tenant=row.tenant_id)

    # -- the panel ---------------------------------------------------------------------

    def authenticate(self, username: str, password: str) -> Admin | None:
        """The account if `password` is its password, else None: an unknown or disabled
        user costs the same work and gets the same answer as a wrong password."""
        name = normalize_username(username)
        row = None
        if _USERNAME.fullmatch(name):
            A = self.m.Admin
            with self.m.db.connection_context():
                row = A.get_or_none(A.username == name)
        with _HASHING:
            if row is None or row.disabled:
                burn(password)
                return None
            ok = verify_password(password, row.password_hash)
        return self._admin(row) if ok else None

    def get(self, admin_id: int) -> Admin | None:
        """An enabled account by id (a session's owner)."""
        A = self.m.Admin
        with self.m.db.connection_context():
            row = A.get_or_none((A.id == admin_id) & (A.disabled == False))  # noqa: E712
        return self._admin(row) if row is not None else None

    # -- the command line --------------------------------------------------------------

    def add(self, username: str, password: str, tenant: str | None) -> Admin:
        """A new account (`tenant` already checked, None: every shop); AccountError when
        the name is taken, PasswordError when the password is refused."""
        name = check_username(username)
        check_policy(password)
        A = self.m.Admin
        with self.m.db.connection_context(), self.m.db.atomic():
            if A.select().where(A.username == name).exists():
                raise AccountError(f"an account named '{name}' already exists")
            row = A.create(
                username=name,
                password_hash=hash_password(password),
                tenant_id=tenant,
                created_at=self.clock(),
                disabled=False,
            )
        return self._admin(row)

    def _existing(self, username: str) -> Any:
        name = check_username(username)
        A = self.m.Admin
        row = A.get_or_none(A.username == name)
        if row is None:
            raise AccountError(f"no account named '{name}'")
        return row

    def _end_sessions(self, admin_id: int) -> int:
        S = self.m.AdminSession
        return int(S.delete().where(S.admin_id == admin_id).execute())

    def set_password(self, username: str, password: str) -> int:
        """A new password; ends the account's sessions (returns how many)."""
        check_policy(password)
        new_hash = hash_password(password)
        A = self.m.Admin
        with self.m.db.connection_context(), self.m.db.atomic():
            row = self._existing(username)
            A.update(password_hash=new_hash).where(A.id == row.id).execute()
            return self._end_sessions(row.id)

    def remove(self, username: str) -> int:
        """Delete the account and end its sessions (returns how many)."""
        A = self.m.Admin
        with self.m.db.connection_context(), self.m.db.atomic():
            row = self._existing(username)
            ended = self._end_sessions(row.id)
            A.delete().where(A.id == row.id).execute()
            return ended

    def list(self, idle_ms: int | None = None) -> list[dict[str, Any]]:
        """Every account: name, shop, created, disabled, open sessions (never a hash); a
        session unused for `idle_ms` is not open any more."""
        A, S = self.m.Admin, self.m.AdminSession
        now = self.clock()
        alive = S.expires_at > now
        if idle_ms is not None:
            alive &= S.last_seen_at > now - idle_ms
        with self.m.db.connection_context():
            open_sessions: dict[int, int] = {}
            for s in S.select(S.admin_id).where(alive):
                open_sessions[s.admin_id] = open_sessions.get(s.admin_id, 0) + 1
            return [
                {
                    "username": a.username,
                    "tenantId": a.tenant_id,
                    "createdAt": to_iso(a.created_at),
                    "disabled": bool(a.disabled),
                    "sessions": open_sessions.get(a.id, 0),
                }
                for a in A.select(A.id, A.username, A.tenant_id, A.created_at, A.disabled).order_by(
                    A.username
                )
            ]
