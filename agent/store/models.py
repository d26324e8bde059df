"""Peewee models of the agent's SQLite store: typed once here, bound per database (no globals).

- one view table per synchronised table (what the POS reads: the server's state with this
  machine's pending edits applied on top);
- `server_rows`: the last server version of every row this machine knows (the "shadow"),
  so a view row can always be rebuilt as shadow + pending outbox events;
- `outbox`: local writes not yet acknowledged by the server (and recently sent ones, kept
  to answer POS retries idempotently), dead letters included;
- `view_tombstones`: view rows that disappeared lately (the seed's reads by `lastSync` tell
  a front end about them);
- `sync_state`: cursor, machine id and other small facts; `reconcile_log`: local history.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import peewee as pw

from protocol import TABLES, Kind, Table
from protocol.extras import canonical_json, from_canonical


class DecimalText(pw.TextField):
    """Exact decimals as canonical text: SQLite's NUMERIC affinity would make them floats."""

    def db_value(self, value: Any) -> Any:
        return None if value is None else str(Decimal(value))

    def python_value(self, value: Any) -> Any:
        return None if value is None else Decimal(str(value))


class JsonText(pw.TextField):
    """A JSON field's value as canonical JSON text (protocol.extras): exact and portable."""

    def db_value(self, value: Any) -> Any:
        return None if value is None else canonical_json(value)

    def python_value(self, value: Any) -> Any:
        return None if value is None else from_canonical(value)


class ExtraText(pw.TextField):
    """A row's undeclared fields (`_extra`, a dict) as canonical JSON text; NULL when none."""

    def db_value(self, value: Any) -> Any:
        return canonical_json(value) if value else None

    def python_value(self, value: Any) -> Any:
        return from_canonical(value) if value else {}


def column_name(wire_name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in wire_name)


class ViewModel(pw.Model):
    """The columns every view table has, typed; `bind_models` builds each table's model with
    all its columns from the protocol's schema (`_view_model`)."""

    id = pw.CharField(max_length=128, primary_key=True)
    updated_at = pw.BigIntegerField()
    createdAt = pw.BigIntegerField(null=True, column_name="created_at", index=True)
    # The row's reconcile digest (protocol.row_digest) in two unsigned 32-bit halves, kept
    # by the store with every write of the row (migration 2).
    digest_hi = pw.BigIntegerField(default=0)
    digest_lo = pw.BigIntegerField(default=0)
    # The fields nobody declared (migration 3), and the local clock (ms) of the row's last
    # write: the seed's reads by `lastSync` choose rows by it.
    extra = ExtraText(null=True)
    changed_at = pw.BigIntegerField(default=0, index=True)


def _view_model(db: pw.Database, table: Table) -> type[ViewModel]:
    # Every column is declared here, in the schema's order (not inherited from ViewModel).
    attrs: dict[str, Any] = {
        "id": pw.CharField(max_length=128, primary_key=True),
        "updated_at": pw.BigIntegerField(),
    }
    for f in table.fields:
        col = column_name(f.name)
        if f.kind is Kind.TEXT:
            attrs[f.name] = pw.TextField(null=True, column_name=col)
        elif f.kind is Kind.DECIMAL:
            attrs[f.name] = DecimalText(null=True, column_name=col)
        elif f.kind is Kind.BOOLEAN:
            attrs[f.name] = pw.BooleanField(null=True, column_name=col)  # 0/1 in SQLite
        elif f.kind is Kind.JSON:
            attrs[f.name] = JsonText(null=True, column_name=col)
        else:
            attrs[f.name] = pw.BigIntegerField(
                null=True, column_name=col, index=f.name == "createdAt"
            )
    attrs["digest_hi"] = pw.BigIntegerField(default=0)
    attrs["digest_lo"] = pw.BigIntegerField(default=0)
    attrs["extra"] = ExtraText(null=True)
    attrs["changed_at"] = pw.BigIntegerField(default=0, index=True)
    attrs["Meta"] = type("Meta", (), {"database": db, "table_name": table.name})
    return type("".join(p.title() for p in table.name.split("_")), (ViewModel,), attrs)


# The other tables' models, typed here once; `bind_models` subclasses them per database.


class ServerRowModel(pw.Model):
    table_name = pw.CharField(max_length=32)
    row_id = pw.CharField(max_length=128)
    data = pw.TextField()  # the wire record as the server sent it
    deleted = pw.BooleanField(default=False)
    updated_at = pw.BigIntegerField()

    class Meta:
        primary_key = pw.CompositeKey("table_name", "row_id")


class OutboxModel(pw.Model):
    id = pw.AutoField()  # the per-device increasing event number
    event_id = pw.CharField(max_length=128, unique=True)
    table_name = pw.CharField(max_length=32)
    record_id = pw.CharField(max_length=128)
    op = pw.CharField(max_length=16)
    payload = pw.TextField()  # the wire record pushed to the server
    group_id = pw.CharField(max_length=128, null=True)  # events of one atomic sale
    state = pw.CharField(max_length=8, default="pending", index=True)  # an OutboxState
    created_at = pw.BigIntegerField()
    attempts = pw.IntegerField(default=0)
    next_attempt_at = pw.BigIntegerField(default=0)
    last_error = pw.TextField(null=True)
    sent_at = pw.BigIntegerField(null=True)
    result = pw.TextField(null=True)

    class Meta:
        indexes = ((("table_name", "record_id", "state"), False),)


class TombstoneModel(pw.Model):
    """A view row that disappeared (deleted here, by a pulled tombstone, or by a rebuild),
    kept a while so a front end reading by `lastSync` is told; gone when the row is back."""

    table_name = pw.CharField(max_length=32)
    row_id = pw.CharField(max_length=128)
    changed_at = pw.BigIntegerField(index=True)  # local clock (ms) of the disappearance

    class Meta:
        primary_key = pw.CompositeKey("table_name", "row_id")


class StateModel(pw.Model):
    key = pw.CharField(max_length=64, primary_key=True)
    value = pw.TextField()


class ReconcileLogModel(pw.Model):
    id = pw.AutoField()
    created_at = pw.BigIntegerField()
    status = pw.CharField(max_length=16)  # a ReconcileStatus
    is_consistent = pw.BooleanField()
    strategy = pw.CharField(max_length=32)  # a DivergenceStrategy
    mismatches = pw.TextField()  # JSON list as the server reported
    repair = pw.TextField(null=True)  # JSON: what the repair did
    server_log_id = pw.IntegerField(null=True)
    error = pw.TextField(null=True)


@dataclass
class StoreModels:
    db: pw.Database
    views: dict[str, type[ViewModel]]
    ServerRow: type[ServerRowModel]
    Outbox: type[OutboxModel]
    Tombstone: type[TombstoneModel]
    State: type[StateModel]
    ReconcileLog: type[ReconcileLogModel]


def bind_models(db: pw.Database) -> StoreModels:
    class ServerRow(ServerRowModel):
        class Meta:
            database = db
            table_name = "server_rows"
            primary_key = pw.CompositeKey("table_name", "row_id")

    class Outbox(OutboxModel):
        class Meta:
            database = db
            table_name = "outbox"
            indexes = ((("table_name", "record_id", "state"), False),)

    class Tombstone(TombstoneModel):
        class Meta:
            database = db
            table_name = "view_tombstones"
            primary_key = pw.CompositeKey("table_name", "row_id")

    class State(StateModel):
        class Meta:
            database = db
            table_name = "sync_state"

    class ReconcileLog(ReconcileLogModel):
        class Meta:
            database = db
            table_name = "reconcile_log"

    views = {name: _view_model(db, t) for name, t in TABLES.items()}
    return StoreModels(db, views, ServerRow, Outbox, Tombstone, State, ReconcileLog)
