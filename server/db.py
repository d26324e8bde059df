"""Database connection and the server's peewee models: typed once, bound per database.

SQLite is the embedded default (one file in the data folder); PostgreSQL is used when
`DATABASE_URL=postgresql://...`. Money and stock are exact: NUMERIC on PostgreSQL, canonical
decimal TEXT on SQLite (SQLite's NUMERIC affinity would turn them into binary floats). JSON
values and the fields nobody declared are canonical JSON text on both (protocol/extras.py).

The synchronised tables' models follow protocol/schema.py: a column declared there is a
model field here with no edit (its migration adds it to the database: server/migrations/).
Every key leads with the shop (`tenant_id`), so PostgreSQL can be distributed by shop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlparse

import peewee as pw
from playhouse.pool import PooledSqliteDatabase

from protocol import TABLES, Kind, Table
from protocol.extras import canonical_json, from_canonical

from .pool import PooledPostgres

# A peewee field type name of our own, mapped per backend in `connect_database`.
_EXACT = "EXACT_DECIMAL"


class ExactDecimalField(pw.Field):
    field_type = _EXACT

    def db_value(self, value: Any) -> Any:
        return None if value is None else str(Decimal(value))

    def python_value(self, value: Any) -> Any:
        return None if value is None else Decimal(str(value))


class CanonicalJsonField(pw.TextField):
    """A JSON value as its canonical text (protocol.extras.canonical_json); NULL is None."""

    def db_value(self, value: Any) -> Any:
        return None if value is None else canonical_json(value)

    def python_value(self, value: Any) -> Any:
        return None if value is None else from_canonical(value)


class ExtraField(pw.TextField):
    """A row's undeclared fields (`_extra`, a dict) as canonical JSON; NULL when none."""

    def db_value(self, value: Any) -> Any:
        return canonical_json(value) if value else None

    def python_value(self, value: Any) -> Any:
        return from_canonical(value) if value else {}


# A shop's id (protocol.tenancy: at most 64 characters); '' in sync_state holds what is the
# database's, not a shop's (its identity).
TENANT_LENGTH = 64


if TYPE_CHECKING:
    from .db_panel import (
        AdminModel,
        AdminSessionModel,
        EventMinuteModel,
        LoginFailureModel,
        PdvCommandModel,
        PdvReportHistoryModel,
        PdvReportModel,
        PdvSocketModel,
    )

    class PooledDatabase(pw.Database):
        """What `connect_database` returns, as mypy should see it (playhouse ships no types):
        a peewee database whose connections are pooled."""

        def close_all(self) -> None:
            """Close every pooled connection (at shutdown)."""


@dataclass(frozen=True)
class DatabaseInfo:
    backend: str  # "sqlite" | "postgresql"
    location: str  # file path or host:port/dbname (never the password)


def parse_database_url(url: str | None, data_dir: Path) -> tuple[str, dict[str, Any]]:
    """`DATABASE_URL` -> (backend, connection kwargs). Unset means SQLite in `data_dir`."""
    if not url:
        return "sqlite", {"path": str(Path(data_dir) / "pdvsync.db")}
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme in ("postgresql", "postgres", "psycopg3", "postgresql+psycopg"):
        kwargs: dict[str, Any] = {"database": unquote(parsed.path.lstrip("/")) or "postgres"}
        if parsed.hostname:
            kwargs["host"] = parsed.hostname
        if parsed.port:
            kwargs["port"] = parsed.port
        if parsed.username:
            kwargs["user"] = unquote(parsed.username)
        if parsed.password:
            kwargs["password"] = unquote(parsed.password)
        return "postgresql", kwargs
    if scheme == "sqlite":
        # sqlite:///relative/file.db or sqlite:////absolute/file.db
        path = unquote(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else ""
        return "sqlite", {"path": path or str(Path(data_dir) / "pdvsync.db")}
    raise ValueError(
        f"DATABASE_URL: unsupported scheme '{scheme}' (use postgresql:// or sqlite:///)"
    )


def connect_database(url: str | None, data_dir: Path) -> tuple[PooledDatabase, DatabaseInfo]:
    backend, kwargs = parse_database_url(url, data_dir)
    if backend == "sqlite":
        path = Path(kwargs["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        db = PooledSqliteDatabase(
            str(path),
            max_connections=32,
            stale_timeout=600,
            # synchronous=FULL: an acknowledged event must survive a power cut, and in WAL
            # mode NORMAL may lose the last commits. IMMEDIATE takes the write lock at BEGIN,
            # so two writers queue on busy_timeout instead of failing on lock upgrade.
            pragmas={
                "journal_mode": "wal",
                "synchronous": "full",
                "foreign_keys": 1,
                "busy_timeout": 10_000,
            },
            lock_type="IMMEDIATE",
            timeout=10,
            # Pooled connections move between worker threads, one thread at a time.
            check_same_thread=False,
            field_types={_EXACT: "TEXT"},
        )
        return db, DatabaseInfo("sqlite", str(path))
    db = PooledPostgres(
        kwargs.pop("database"),
        max_connections=48,
        stale_timeout=300,
        timeout=10,
        connect_timeout=5,
        field_types={_EXACT: "NUMERIC(18,4)"},
        **kwargs,
    )
    where = f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 5432)}/{db.database}"
    return db, DatabaseInfo("postgresql", where)


def is_postgres(db: pw.Database) -> bool:
    return isinstance(db, pw.PostgresqlDatabase)


def column_name(wire_name: str) -> str:
    """`imageUrlId` -> `image_url_id`: columns are snake_case, wire names stay as the seed's."""
    out = []
    for ch in wire_name:
        if ch.isupper():
            out.append("_" + ch.lower())
        else:
            out.append(ch)
    return "".join(out)


def _data_field(kind: Kind, wire_name: str) -> pw.Field:
    col = column_name(wire_name)
    if kind is Kind.TEXT:
        return pw.TextField(null=True, column_name=col)
    if kind is Kind.DECIMAL:
        return ExactDecimalField(null=True, column_name=col)
    if kind is Kind.BOOLEAN:
        return pw.BooleanField(null=True, column_name=col)
    if kind is Kind.JSON:
        return CanonicalJsonField(null=True, column_name=col)
    return pw.BigIntegerField(null=True, column_name=col)  # INTEGER; TIMESTAMP: epoch ms


# Columns of a synchronised table besides its key (tenant_id, id) and its fields. `lww_at`
# is the edit time of the last winning upsert or delete (the conflict clock); `updated_at`
# also moves with increments; `changed_at` is the server clock of the commit that last
# changed the row (the seed's reads by `lastSync`, server/seedsync.py); `extra` holds the
# fields nobody declared.
META_COLUMNS = ("updated_at", "lww_at", "deleted", "seq", "digest", "bucket", "changed_at", "extra")

# Indexes beyond the key, as migration 0003 made them: (columns) per table, every one
# leading with the shop.
DATA_INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    "orders": (("tenant_id", "createdAt"),),
    "order_items": (("tenant_id", "order_id"),),
}


class DataModel(pw.Model):
    """The columns every synchronised table has, typed; `bind_models` builds each table's
    model with all its columns from the protocol's schema (`_data_model`)."""

    tenant_id = pw.CharField(max_length=TENANT_LENGTH)
    id = pw.CharField(max_length=128)
    updated_at = pw.BigIntegerField()
    lww_at = pw.BigIntegerField()
    deleted = pw.BooleanField(default=False)
    seq = pw.BigIntegerField()
    digest = pw.BigIntegerField(default=0)
    bucket = pw.SmallIntegerField(default=0)
    changed_at = pw.BigIntegerField()
    extra = ExtraField(null=True)
    # Every synchronised table has it (protocol.TABLES); the plain reads filter by it. A table
    # without it would still get this column: peewee copies the base's fields a model lacks.
    createdAt = pw.BigIntegerField(null=True, column_name="created_at")


def _data_model(db: pw.Database, table: Table) -> type[DataModel]:
    # Every column is declared here, in the schema's order (not inherited from DataModel).
    attrs: dict[str, Any] = {
        "tenant_id": pw.CharField(max_length=TENANT_LENGTH),
        "id": pw.CharField(max_length=128),
        "updated_at": pw.BigIntegerField(),
        "lww_at": pw.BigIntegerField(),
        "deleted": pw.BooleanField(default=False),
        "seq": pw.BigIntegerField(),
        "digest": pw.BigIntegerField(default=0),
        "bucket": pw.SmallIntegerField(default=0),
        "changed_at": pw.BigIntegerField(),
        "extra": ExtraField(null=True),
    }
    for f in table.fields:
        attrs[f.name] = _data_field(f.kind, f.name)
    indexes = [
        (("tenant_id", "seq"), False),
        (("tenant_id", "changed_at"), False),
        *((cols, False) for cols in DATA_INDEXES.get(table.name, ())),
    ]
    attrs["Meta"] = type(
        "Meta",
        (),
        {
            "database": db,
            "table_name": table.name,
            "primary_key": pw.CompositeKey("tenant_id", "id"),
            "indexes": indexes,
        },
    )
    name = "".join(p.title() for p in table.name.split("_"))
    return type(name, (DataModel,), attrs)


# The other tables' models, typed here once; `bind_models` subclasses them per database.


class SyncStateModel(pw.Model):
    tenant_id = pw.CharField(max_length=TENANT_LENGTH)  # '': the database's own (identity)
    key = pw.CharField(max_length=64)
    value = pw.BigIntegerField(default=0)

    class Meta:
        primary_key = pw.CompositeKey("tenant_id", "key")


class EventModel(pw.Model):
    tenant_id = pw.CharField(max_length=TENANT_LENGTH)
    event_id = pw.CharField(max_length=128)
    machine_id = pw.CharField(max_length=128, null=True)
    table_name = pw.CharField(max_length=32)
    record_id = pw.CharField(max_length=128)
    status = pw.CharField(max_length=32)
    result = pw.TextField()  # the JSON result returned to the pusher, replayed on duplicates
    seq = pw.BigIntegerField(null=True)
    created_at = pw.BigIntegerField(index=True)

    class Meta:
        primary_key = pw.CompositeKey("tenant_id", "event_id")


class MachineModel(pw.Model):
    tenant_id = pw.CharField(max_length=TENANT_LENGTH)
    machine_id = pw.CharField(max_length=128)
    first_seen = pw.BigIntegerField()
    last_seen = pw.BigIntegerField()
    cursor = pw.BigIntegerField(default=0)
    events_pushed = pw.BigIntegerField(default=0)

    class Meta:
        primary_key = pw.CompositeKey("tenant_id", "machine_id")


class ReconcileLogModel(pw.Model):
    id = pw.AutoField()
    tenant_id = pw.CharField(max_length=TENANT_LENGTH)
    machine_id = pw.CharField(max_length=128)
    status = pw.CharField(max_length=16)  # consistent | divergent | retry
    is_consistent = pw.BooleanField()
    mismatches_count = pw.IntegerField()
    mismatches = pw.TextField()
    client_summary = pw.TextField()
    server_summary = pw.TextField()
    cursor = pw.BigIntegerField()
    created_at = pw.BigIntegerField(index=True)

    class Meta:
        indexes = ((("tenant_id", "id"), False), (("tenant_id", "machine_id"), False))


class ApiKeyModel(pw.Model):
    id = pw.AutoField()
    tenant_id = pw.CharField(max_length=TENANT_LENGTH)  # the shop the machine belongs to
    machine_id = pw.CharField(max_length=128)
    key_hash = pw.CharField(max_length=64, unique=True)  # sha256 hex; the key is never stored
    prefix = pw.CharField(max_length=16)
    created_at = pw.BigIntegerField()
    revoked_at = pw.BigIntegerField(null=True)


class BootstrapStateModel(pw.Model):
    """The seed's bootstrap of one shop's table (server/bootstrap.py)."""

    tenant_id = pw.CharField(max_length=TENANT_LENGTH)
    table_name = pw.CharField(max_length=64)
    status = pw.CharField(max_length=16)  # in_progress | completed
    machine_id = pw.CharField(max_length=128, null=True)
    started_at = pw.BigIntegerField(null=True)  # also renewed between chunks (the lease)
    completed_at = pw.BigIntegerField(null=True)
    records_count = pw.BigIntegerField(default=0)

    class Meta:
        primary_key = pw.CompositeKey("tenant_id", "table_name")


class SchemaVersionModel(pw.Model):
    version = pw.IntegerField(primary_key=True)
    name = pw.CharField(max_length=100)
    applied_at = pw.BigIntegerField()


@dataclass
class Models:
    db: pw.Database
    data: dict[str, type[DataModel]]  # table name -> model of that synchronised table
    SyncState: type[SyncStateModel]
    Event: type[EventModel]
    Machine: type[MachineModel]
    ReconcileLog: type[ReconcileLogModel]
    ApiKey: type[ApiKeyModel]
    BootstrapState: type[BootstrapStateModel]
    SchemaVersion: type[SchemaVersionModel]
    PdvReport: type[PdvReportModel]
    PdvReportHistory: type[PdvReportHistoryModel]
    PdvSocket: type[PdvSocketModel]
    PdvCommand: type[PdvCommandModel]
    EventMinute: type[EventMinuteModel]
    Admin: type[AdminModel]
    AdminSession: type[AdminSessionModel]
    LoginFailure: type[LoginFailureModel]

    def all(self) -> list[type[pw.Model]]:
        return [
            *self.data.values(),
            self.SyncState,
            self.Event,
            self.Machine,
            self.ReconcileLog,
            self.ApiKey,
            self.BootstrapState,
            self.SchemaVersion,
            self.PdvReport,
            self.PdvReportHistory,
            self.PdvSocket,
            self.PdvCommand,
            self.EventMinute,
            self.Admin,
            self.AdminSession,
            self.LoginFailure,
        ]


def bind_models(db: pw.Database) -> Models:
    class SyncState(SyncStateModel):
        class Meta:
            database = db
            table_name = "sync_state"

    class Event(EventModel):
        class Meta:
            database = db
            table_name = "sync_events"

    class Machine(MachineModel):
        class Meta:
            database = db
            table_name = "sync_machines"

    class ReconcileLog(ReconcileLogModel):
        class Meta:
            database = db
            table_name = "reconcile_log"

    class ApiKey(ApiKeyModel):
        class Meta:
            database = db
            table_name = "api_keys"

    class BootstrapState(BootstrapStateModel):
        class Meta:
            database = db
            table_name = "bootstrap_state"

    class SchemaVersion(SchemaVersionModel):
        class Meta:
            database = db
            table_name = "schema_version"

    from . import db_panel as panel  # it imports this module's field types

    data = {name: _data_model(db, table) for name, table in TABLES.items()}
    return Models(
        db,
        data,
        SyncState,
        Event,
        Machine,
        ReconcileLog,
        ApiKey,
        BootstrapState,
        SchemaVersion,
        PdvReport=panel.bind(db, panel.PdvReportModel, "pdv_reports"),
        PdvReportHistory=panel.bind(db, panel.PdvReportHistoryModel, "pdv_report_history"),
        PdvSocket=panel.bind(db, panel.PdvSocketModel, "pdv_sockets"),
        PdvCommand=panel.bind(db, panel.PdvCommandModel, "pdv_commands"),
        EventMinute=panel.bind(db, panel.EventMinuteModel, "event_minutes"),
        Admin=panel.bind(db, panel.AdminModel, "admins"),
        AdminSession=panel.bind(db, panel.AdminSessionModel, "admin_sessions"),
        LoginFailure=panel.bind(db, panel.LoginFailureModel, "login_failures"),
    )


# peewee's stubs type every row of a query as a model instance, also after `.tuples()` or
# `.dicts()`: these say what the rows are.


def tuples(query: pw.BaseQuery) -> Iterator[tuple[Any, ...]]:
    """The rows of `query` as tuples."""
    return cast(Iterator[tuple[Any, ...]], iter(query.tuples()))


def dicts(query: pw.BaseQuery) -> Iterator[dict[str, Any]]:
    """The rows of `query` as `{field name: value}`."""
    return cast(Iterator[dict[str, Any]], iter(query.dicts()))
