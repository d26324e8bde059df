"""Migrations 0001 (the first schema) and 0002 (the database's identity), frozen as shipped."""

from __future__ import annotations

import secrets

import peewee as pw

from ..db import ExactDecimalField


def _frozen(db: pw.Database, name: str, columns: dict[str, pw.Field]) -> type[pw.Model]:
    meta = type("Meta", (), {"database": db, "table_name": name})
    return type(f"Frozen_{name}", (pw.Model,), {**columns, "Meta": meta})


def _data_table(db: pw.Database, name: str, fields: dict[str, pw.Field]) -> type[pw.Model]:
    columns: dict[str, pw.Field] = {
        "id": pw.CharField(max_length=128, primary_key=True),
        "updated_at": pw.BigIntegerField(),
        "lww_at": pw.BigIntegerField(),
        "deleted": pw.BooleanField(default=False),
        "seq": pw.BigIntegerField(index=True),
        "digest": pw.BigIntegerField(default=0),
        "bucket": pw.SmallIntegerField(default=0),
    }
    columns.update(fields)
    return _frozen(db, name, columns)


def _text(index: bool = False) -> pw.Field:
    return pw.TextField(null=True, index=index)


def _dec() -> pw.Field:
    return ExactDecimalField(null=True)


def _int(index: bool = False) -> pw.Field:
    return pw.BigIntegerField(null=True, index=index)


def m0001_initial(db: pw.Database) -> None:
    tables = [
        _data_table(
            db,
            "products",
            {
                "name": _text(),
                "description": _text(),
                "price": _dec(),
                "category": _text(),
                "image_url_id": _text(),
                "stock_quantity": _int(),
                "created_at": _int(),
            },
        ),
        _data_table(
            db,
            "orders",
            {
                "customer_name": _text(),
                "total": _dec(),
                "status": _text(),
                "created_at": _int(index=True),
            },
        ),
        _data_table(
            db,
            "order_items",
            {
                "order_id": _text(index=True),
                "product_id": _text(),
                "quantity": _dec(),
                "price": _dec(),
                "created_at": _int(),
            },
        ),
        _data_table(
            db,
            "supplies",
            {
                "name": _text(),
                "stock": _dec(),
                "unit": _text(),
                "cost_per_unit": _dec(),
                "created_at": _int(),
            },
        ),
        _frozen(
            db,
            "sync_state",
            {
                "key": pw.CharField(max_length=64, primary_key=True),
                "value": pw.BigIntegerField(default=0),
            },
        ),
        _frozen(
            db,
            "sync_events",
            {
                "event_id": pw.CharField(max_length=128, primary_key=True),
                "machine_id": pw.CharField(max_length=128, null=True),
                "table_name": pw.CharField(max_length=32),
                "record_id": pw.CharField(max_length=128),
                "status": pw.CharField(max_length=32),
                "result": pw.TextField(),
                "seq": pw.BigIntegerField(null=True),
                "created_at": pw.BigIntegerField(index=True),
            },
        ),
        _frozen(
            db,
            "sync_machines",
            {
                "machine_id": pw.CharField(max_length=128, primary_key=True),
                "first_seen": pw.BigIntegerField(),
                "last_seen": pw.BigIntegerField(),
                "cursor": pw.BigIntegerField(default=0),
                "events_pushed": pw.BigIntegerField(default=0),
            },
        ),
        _frozen(
            db,
            "reconcile_log",
            {
                "id": pw.AutoField(),
                "machine_id": pw.CharField(max_length=128, index=True),
                "status": pw.CharField(max_length=16),
                "is_consistent": pw.BooleanField(),
                "mismatches_count": pw.IntegerField(),
                "mismatches": pw.TextField(),
                "client_summary": pw.TextField(),
                "server_summary": pw.TextField(),
                "cursor": pw.BigIntegerField(),
                "created_at": pw.BigIntegerField(index=True),
            },
        ),
        _frozen(
            db,
            "api_keys",
            {
                "id": pw.AutoField(),
                "machine_id": pw.CharField(max_length=128),
                "key_hash": pw.CharField(max_length=64, unique=True),
                "prefix": pw.CharField(max_length=16),
                "created_at": pw.BigIntegerField(),
                "revoked_at": pw.BigIntegerField(null=True),
            },
        ),
    ]
    db.create_tables(tables, safe=False)
    db.execute_sql("INSERT INTO sync_state (key, value) VALUES ('seq', 0)")


def m0002_database_identity(db: pw.Database) -> None:
    """A random identity for this database, kept by backups and restores. A cursor only means
    something for the database that issued it: agents remember the identity with their cursor
    and stop, instead of following, when the server comes back on another database (a lost
    `.env` falling back to an empty SQLite file, a replaced server PC)."""
    p = db.param
    db.execute_sql(
        f"INSERT INTO sync_state (key, value) VALUES ('database_id', {p})", (secrets.randbits(62),)
    )
