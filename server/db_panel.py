"""The models of the manager's panel's tables (migration 0004), typed once; `bind`
subclasses one per database (server/db.py's `bind_models` does, into `Models`).

PDV reports and their history, the commands the panel sends PDVs, the events per minute,
and the panel's managers, sessions and failed logins. Times are epoch milliseconds; a
`minute` is the epoch milliseconds of the minute's start.
"""

from __future__ import annotations

from typing import TypeVar, cast

import peewee as pw

from .db import TENANT_LENGTH, CanonicalJsonField


class PdvReportModel(pw.Model):
    """The last report of one PDV (protocol/reports.py), and the columns the panel and the
    metrics sort and filter on."""

    tenant_id = pw.CharField(max_length=TENANT_LENGTH)
    machine_id = pw.CharField(max_length=128)
    received_at = pw.BigIntegerField()
    report = CanonicalJsonField()  # the parsed report, in its wire form
    state = pw.CharField(max_length=16)  # waiting | syncing | synced | divergent | offline
    pending = pw.BigIntegerField()
    oldest_pending_age_ms = pw.BigIntegerField(null=True)  # as of received_at
    dead_letters = pw.BigIntegerField()
    clock_offset_ms = pw.BigIntegerField()
    cursor = pw.BigIntegerField()
    version = pw.CharField(max_length=200, null=True)
    hostname = pw.CharField(max_length=200, null=True)

    class Meta:
        primary_key = pw.CompositeKey("tenant_id", "machine_id")


class PdvReportHistoryModel(pw.Model):
    """At most one row per PDV and minute (its last report in that minute), 24 h kept."""

    tenant_id = pw.CharField(max_length=TENANT_LENGTH)
    machine_id = pw.CharField(max_length=128)
    minute = pw.BigIntegerField()
    state = pw.CharField(max_length=16)
    pending = pw.BigIntegerField()
    lag = pw.BigIntegerField(null=True)  # the shop's head minus the reported cursor

    class Meta:
        primary_key = pw.CompositeKey("tenant_id", "machine_id", "minute")


class PdvSocketModel(pw.Model):
    """When a PDV's live socket last opened and last closed, on any server process."""

    tenant_id = pw.CharField(max_length=TENANT_LENGTH)
    machine_id = pw.CharField(max_length=128)
    opened_at = pw.BigIntegerField()
    closed_at = pw.BigIntegerField(null=True)  # None: open (or its process died with it)

    class Meta:
        primary_key = pw.CompositeKey("tenant_id", "machine_id")


class PdvCommandModel(pw.Model):
    """Something the panel asked a PDV to do (kind "reconcile"); `result` once it is done."""

    id = pw.CharField(max_length=64, primary_key=True)  # random: never reused
    tenant_id = pw.CharField(max_length=TENANT_LENGTH)
    machine_id = pw.CharField(max_length=128)
    kind = pw.CharField(max_length=32)
    strategy = pw.CharField(max_length=32)  # protocol.vocabulary.DivergenceStrategy
    requested_by = pw.CharField(max_length=128, null=True)  # the admin's username
    created_at = pw.BigIntegerField()
    delivered_at = pw.BigIntegerField(null=True)  # first handed to the PDV
    finished_at = pw.BigIntegerField(null=True)
    result = CanonicalJsonField(null=True)  # {status, detail?, reconcile?}


class EventMinuteModel(pw.Model):
    """A shop's pushed events per minute, by outcome (incremented by every push)."""

    tenant_id = pw.CharField(max_length=TENANT_LENGTH)
    minute = pw.BigIntegerField()
    applied = pw.BigIntegerField(default=0)
    stale = pw.BigIntegerField(default=0)
    rejected = pw.BigIntegerField(default=0)

    class Meta:
        primary_key = pw.CompositeKey("tenant_id", "minute")


class AdminModel(pw.Model):
    """A manager of the panel; `tenant_id` None: an admin of every shop."""

    id = pw.AutoField()
    username = pw.CharField(max_length=128, unique=True)
    password_hash = pw.TextField()
    tenant_id = pw.CharField(max_length=TENANT_LENGTH, null=True)
    created_at = pw.BigIntegerField()
    disabled = pw.BooleanField(default=False)


class AdminSessionModel(pw.Model):
    """A panel session: the cookie's token is stored hashed, with the session's CSRF token.
    Deleted with its admin (ON DELETE CASCADE)."""

    token_hash = pw.CharField(max_length=128, primary_key=True)
    admin_id = pw.IntegerField(index=True)
    csrf_token = pw.CharField(max_length=128)
    created_at = pw.BigIntegerField()
    expires_at = pw.BigIntegerField(index=True)
    last_seen_at = pw.BigIntegerField()


class LoginFailureModel(pw.Model):
    """One failed login, under `key` (a username or an address) for the rate limit."""

    key = pw.CharField(max_length=200)
    failed_at = pw.BigIntegerField(index=True)

    class Meta:
        primary_key = False
        indexes = ((("key", "failed_at"), False),)


M = TypeVar("M", bound=pw.Model)


def bind(db: pw.Database, base: type[M], table: str) -> type[M]:
    """`base` bound to `db` as the table `table` (a subclass: the typed base stays unbound)."""
    meta = type("Meta", (), {"database": db, "table_name": table})
    return cast(type[M], type(base.__name__.removesuffix("Model"), (base,), {"Meta": meta}))
