"""Migration 0004: what the manager's panel keeps, every table keyed by the shop first.

- pdv_reports: the last report of each PDV (the whole report as JSON, plus the columns the
  panel and the metrics sort and filter on); pdv_report_history: at most one row per PDV
  per minute (state, pending, lag), 24 h kept, for the chart.
- pdv_sockets: when each PDV's live socket last opened and closed (any server process), so
  a PDV that stops shows Offline within seconds instead of after its reports' silence.
- pdv_commands: what the panel asked a PDV to do (today: reconcile), kept until done and a
  while after; its id is random text, so a restored database never hands a PDV the id of
  a command it already ran.
- event_minutes: the events each push applied, skipped as stale or rejected, per shop and
  minute (incremented in the push's transaction), 8 days kept.
- admins, admin_sessions, login_failures: the panel's managers (a NULL shop: every shop),
  their sessions (the token and CSRF token hashed/kept server-side) and the failed logins
  the rate limit counts.

Times are epoch milliseconds (BIGINT), as everywhere else; a `minute` is the epoch
milliseconds of the minute's start (a multiple of 60 000).
"""

from __future__ import annotations

import peewee as pw

from ..db import is_postgres
from .steps import create_index


def m0004_panel(db: pw.Database) -> None:
    pg = is_postgres(db)
    boolean = "BOOLEAN NOT NULL DEFAULT FALSE" if pg else "INTEGER NOT NULL DEFAULT 0"
    serial = "SERIAL PRIMARY KEY" if pg else "INTEGER PRIMARY KEY AUTOINCREMENT"
    for statement in (
        "CREATE TABLE pdv_reports (tenant_id VARCHAR(64) NOT NULL, "
        "machine_id VARCHAR(128) NOT NULL, received_at BIGINT NOT NULL, report TEXT NOT NULL, "
        "state VARCHAR(16) NOT NULL, pending BIGINT NOT NULL, oldest_pending_age_ms BIGINT, "
        "dead_letters BIGINT NOT NULL, clock_offset_ms BIGINT NOT NULL, cursor BIGINT NOT NULL, "
        "version VARCHAR(200), hostname VARCHAR(200), PRIMARY KEY (tenant_id, machine_id))",
        "CREATE TABLE pdv_report_history (tenant_id VARCHAR(64) NOT NULL, "
        "machine_id VARCHAR(128) NOT NULL, minute BIGINT NOT NULL, state VARCHAR(16) NOT NULL, "
        "pending BIGINT NOT NULL, lag BIGINT, PRIMARY KEY (tenant_id, machine_id, minute))",
        "CREATE TABLE pdv_sockets (tenant_id VARCHAR(64) NOT NULL, "
        "machine_id VARCHAR(128) NOT NULL, opened_at BIGINT NOT NULL, closed_at BIGINT, "
        "PRIMARY KEY (tenant_id, machine_id))",
        "CREATE TABLE pdv_commands (id VARCHAR(64) NOT NULL PRIMARY KEY, "
        "tenant_id VARCHAR(64) NOT NULL, machine_id VARCHAR(128) NOT NULL, "
        "kind VARCHAR(32) NOT NULL, strategy VARCHAR(32) NOT NULL, requested_by VARCHAR(128), "
        "created_at BIGINT NOT NULL, delivered_at BIGINT, finished_at BIGINT, result TEXT)",
        "CREATE TABLE event_minutes (tenant_id VARCHAR(64) NOT NULL, minute BIGINT NOT NULL, "
        "applied BIGINT NOT NULL DEFAULT 0, stale BIGINT NOT NULL DEFAULT 0, "
        "rejected BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (tenant_id, minute))",
        f"CREATE TABLE admins (id {serial}, username VARCHAR(128) NOT NULL UNIQUE, "
        "password_hash TEXT NOT NULL, tenant_id VARCHAR(64), created_at BIGINT NOT NULL, "
        f"disabled {boolean})",
        "CREATE TABLE admin_sessions (token_hash VARCHAR(128) NOT NULL PRIMARY KEY, "
        "admin_id INTEGER NOT NULL REFERENCES admins (id) ON DELETE CASCADE, "
        "csrf_token VARCHAR(128) NOT NULL, created_at BIGINT NOT NULL, "
        "expires_at BIGINT NOT NULL, last_seen_at BIGINT NOT NULL)",
        'CREATE TABLE login_failures ("key" VARCHAR(200) NOT NULL, failed_at BIGINT NOT NULL)',
    ):
        db.execute_sql(statement)
    create_index(db, "pdv_commands", ("tenant_id", "machine_id", "created_at"))
    create_index(db, "pdv_commands", ("created_at",))  # old commands expire by age
    create_index(db, "pdv_report_history", ("minute",))  # history expires by age
    create_index(db, "event_minutes", ("minute",))  # kept 8 days
    create_index(db, "admin_sessions", ("admin_id",))
    create_index(db, "admin_sessions", ("expires_at",))
    create_index(db, "login_failures", ("key", "failed_at"))
    create_index(db, "login_failures", ("failed_at",))
