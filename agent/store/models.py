"""Peewee models of the agent's local SQLite store, bound per database (no globals).

- one view table per synchronised table (what the POS reads: the server's state with this
  machine's pending edits applied on top);
- `server_rows`: the last server version of every row this machine knows (the "shadow"),
  so a view row can always be rebuilt as shadow + pending outbox events;
- `outbox`: local writes not yet acknowledged by the server (and recently sent ones, kept
  to answer POS retries idempotently), dead letters included;
- `sync_state`: cursor, machine id and other small facts; `reconcile_log`: local history.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import peewee as pw

from protocol import TABLES, Kind, Table


class DecimalText(pw.TextField):
    """Exact decimals as canonical text: SQLite's NUMERIC affinity would make them floats."""

    def db_value(self, value: Any) -> Any:
        return None if value is None else str(Decimal(value))

    def python_value(self, value: Any) -> Any:
        return None if value is None else Decimal(str(value))


def column_name(wire_name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in wire_name)


def _view_model(base: type[pw.Model], table: Table) -> type[pw.Model]:
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
        else:
            attrs[f.name] = pw.BigIntegerField(
                null=True, column_name=col, index=f.name == "createdAt"
            )
    # The row's reconcile digest (protocol.row_digest) in two unsigned 32-bit halves, kept
    # by the store with every write of the row (migration 2).
    attrs["digest_hi"] = pw.BigIntegerField(default=0)
    attrs["digest_lo"] = pw.BigIntegerField(default=0)
    attrs["Meta"] = type("Meta", (), {"table_name": table.name})
    return type("".join(p.title() for p in table.name.split("_")), (base,), attrs)


@dataclass
class StoreModels:
    db: pw.Database
    views: dict[str, type[pw.Model]]
    ServerRow: type[pw.Model]
    Outbox: type[pw.Model]
    State: type[pw.Model]
    ReconcileLog: type[pw.Model]


def bind_models(db: pw.Database) -> StoreModels:
    class Base(pw.Model):
        class Meta:
            database = db

    class ServerRow(Base):
        table_name = pw.CharField(max_length=32)
        row_id = pw.CharField(max_length=128)
        data = pw.TextField()  # the wire record as the server sent it
        deleted = pw.BooleanField(default=False)
        updated_at = pw.BigIntegerField()

        class Meta:
            table_name = "server_rows"
            primary_key = pw.CompositeKey("table_name", "row_id")

    class Outbox(Base):
        id = pw.AutoField()  # the per-device increasing event number
        event_id = pw.CharField(max_length=128, unique=True)
        table_name = pw.CharField(max_length=32)
        record_id = pw.CharField(max_length=128)
        op = pw.CharField(max_length=16)
        payload = pw.TextField()  # the wire record pushed to the server
        group_id = pw.CharField(max_length=128, null=True)  # events of one atomic sale
        state = pw.CharField(max_length=8, default="pending", index=True)  # pending|sent|dead
        created_at = pw.BigIntegerField()
        attempts = pw.IntegerField(default=0)
        next_attempt_at = pw.BigIntegerField(default=0)
        last_error = pw.TextField(null=True)
        sent_at = pw.BigIntegerField(null=True)
        result = pw.TextField(null=True)

        class Meta:
            table_name = "outbox"
            indexes = ((("table_name", "record_id", "state"), False),)

    class State(Base):
        key = pw.CharField(max_length=64, primary_key=True)
        value = pw.TextField()

        class Meta:
            table_name = "sync_state"

    class ReconcileLog(Base):
        id = pw.AutoField()
        created_at = pw.BigIntegerField()
        status = pw.CharField(max_length=16)  # consistent | divergent | repaired | retry | error
        is_consistent = pw.BooleanField()
        strategy = pw.CharField(max_length=32)
        mismatches = pw.TextField()  # JSON list as the server reported
        repair = pw.TextField(null=True)  # JSON: what the repair did
        server_log_id = pw.IntegerField(null=True)
        error = pw.TextField(null=True)

        class Meta:
            table_name = "reconcile_log"

    views = {name: _view_model(Base, t) for name, t in TABLES.items()}
    return StoreModels(db, views, ServerRow, Outbox, State, ReconcileLog)
