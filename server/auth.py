"""API keys: the shared `API_SECRET_KEY` and per-machine keys that can be revoked.

Per-machine keys are stored as SHA-256 hashes only; the clear key is shown once, when issued.
Comparisons are constant-time, and no key is ever written to a log. A machine key belongs to
one shop (tenant); the shared key acts for every shop.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from protocol import now_ms, to_iso
from protocol.tenancy import DEFAULT_TENANT

from .db import Models, tuples

# How long a revocation made by another process (the CLI) may take to be noticed.
_CACHE_SECONDS = 3.0


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who made a request: the shared key, a machine key, or nobody when auth is off."""

    kind: str  # "open" | "master" | "machine"
    machine_id: str | None = None
    # The shop a machine key belongs to; None: every shop (the shared key, or no auth).
    tenant: str | None = None


class KeyStore:
    def __init__(self, models: Models, master_key: str | None) -> None:
        self.m = models
        self._master = master_key.encode("utf-8") if master_key else None
        self._lock = threading.Lock()
        # key hash -> (machine id, shop), active keys only
        self._cache: dict[str, tuple[str, str]] = {}
        self._cache_at = 0.0

    def _active(self) -> dict[str, tuple[str, str]]:
        with self._lock:
            if time.monotonic() - self._cache_at < _CACHE_SECONDS:
                return self._cache
        K = self.m.ApiKey
        with self.m.db.connection_context():
            query = K.select(K.key_hash, K.machine_id, K.tenant_id).where(K.revoked_at.is_null())
            rows = {h: (machine, tenant) for h, machine, tenant in tuples(query)}
        with self._lock:
            self._cache, self._cache_at = rows, time.monotonic()
        return rows

    @property
    def master_configured(self) -> bool:
        """Whether the shared API_SECRET_KEY is set (for the CLI's warnings; never the key)."""
        return self._master is not None

    def required(self) -> bool:
        """A key is needed when API_SECRET_KEY is set or any machine key is active."""
        return self._master is not None or bool(self._active())

    def verify_cached(self, presented: str | None) -> tuple[bool, Principal | None]:
        """(True, `verify`'s answer) when it needs no database read: the shared key, or the
        active keys read less than the cache's time ago; (False, None) otherwise."""
        master = self._master
        if master is not None and presented and hmac.compare_digest(presented.encode(), master):
            return True, Principal("master")
        with self._lock:
            fresh = time.monotonic() - self._cache_at < _CACHE_SECONDS
        return (True, self.verify(presented)) if fresh else (False, None)

    def verify(self, presented: str | None) -> Principal | None:
        """The principal for a presented key, or None when it is refused."""
        if not self.required():
            return Principal("open")
        if not presented:
            return None
        candidate = presented.encode("utf-8")
        if self._master is not None and hmac.compare_digest(candidate, self._master):
            return Principal("master")
        digest = hash_key(presented)
        active = self._active()
        # The lookup is by the hash of the key, so timing reveals nothing about the key.
        for stored, (machine_id, tenant) in active.items():
            if hmac.compare_digest(stored, digest):
                return Principal("machine", machine_id, tenant)
        return None

    # -- management (CLI) --------------------------------------------------------------

    def issue(self, machine_id: str, tenant: str = DEFAULT_TENANT) -> tuple[int, str]:
        """A new key for `machine_id` of shop `tenant` (a valid id: protocol/tenancy.py):
        (its id, the clear key, shown only now)."""
        key = "pdv_" + secrets.token_urlsafe(32)
        with self.m.db.connection_context():
            row = self.m.ApiKey.create(
                # `prefix` holds only the fixed "pdv_": no character of the secret is stored.
                tenant_id=tenant,
                machine_id=machine_id,
                key_hash=hash_key(key),
                prefix=key[:4],
                created_at=now_ms(),
            )
        self._cache_at = 0.0
        return row.id, key

    def list(self) -> list[dict[str, Any]]:
        """Id, shop, machine, created, revoked: never any character of a key (older rows'
        stored `prefix` held six characters of the secret; it is not shown)."""
        K = self.m.ApiKey
        with self.m.db.connection_context():
            return [
                {
                    "id": k.id,
                    "tenantId": k.tenant_id,
                    "machineId": k.machine_id,
                    "createdAt": to_iso(k.created_at),
                    "revokedAt": to_iso(k.revoked_at),
                    "active": k.revoked_at is None,
                }
                for k in K.select().order_by(K.id)
            ]

    def revoke(self, key_id: int) -> bool:
        K = self.m.ApiKey
        with self.m.db.connection_context():
            n = (
                K.update(revoked_at=now_ms())
                .where((K.id == key_id) & K.revoked_at.is_null())
                .execute()
            )
        self._cache_at = 0.0
        return n > 0
