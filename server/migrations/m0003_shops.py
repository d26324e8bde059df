"""Migration 0003: several shops on one server, the whole shop schema, fields nobody declared.

- Every key leads with the shop (`tenant_id`): the synchronised tables (key (tenant_id,
  id)), sync_state (each shop's sequence head, horizon and counters; the database's own
  identity under the reserved shop ''), sync_events (the same eventId in two shops is two
  events), sync_machines; reconcile_log and api_keys get the column. Everything already
  there belongs to the default shop, so PDVs that name no shop keep working.
- The seed's columns, each existing row getting the column's default
  (protocol/schema.py `Field.default` as it was declared for this migration), and the new
  table technical_sheets.
- `extra` (the fields nobody declared, canonical JSON) and `changed_at` (the server clock of
  the commit that last changed a row, for the seed's reads by `lastSync`). Rows already
  there get the migration's time: their last commit is not known (`updated_at` is an edit
  time, hours before the commit for a PDV's offline sale), and no seed client could read
  them by `lastSync` before (the server did not answer its reads), so each such client
  gets every row once, never misses one.
- bootstrap_state: the seed's one-time fill of an empty table, per shop and table.
- Every digest recomputed (digest v2: non-null fields and extras, protocol/checksum.py).
"""

from __future__ import annotations

import peewee as pw

from protocol import now_ms, schema_v3

from .steps import (
    add_column,
    add_columns,
    create_data_table,
    create_index,
    data_indexes,
    lead_with_tenant,
    recompute_digests,
)

# The seed's columns and table, from one frozen list shared with the agent's store migration.
NEW_COLUMNS = schema_v3.NEW_COLUMNS
TECHNICAL_SHEETS = schema_v3.TECHNICAL_SHEETS

# The v1 tables, their indexes as migration 0001 named them, and the columns that get a
# (tenant_id, column) index now.
DATA_TABLES = {
    "products": ((), ("frozen_products_seq",)),
    "orders": (("created_at",), ("frozen_orders_seq", "frozen_orders_created_at")),
    "order_items": (("order_id",), ("frozen_order_items_seq", "frozen_order_items_order_id")),
    "supplies": ((), ("frozen_supplies_seq",)),
}


def m0003_shops(db: pw.Database) -> None:
    now = now_ms()
    for table, (indexed, old_indexes) in DATA_TABLES.items():
        add_columns(db, table, NEW_COLUMNS.get(table, []), recompute=False)
        add_column(db, table, "changed_at", "BIGINT NOT NULL", str(now))
        add_column(db, table, "extra", "TEXT", "NULL")
        lead_with_tenant(db, table, ("id",), drop_indexes=old_indexes)
        data_indexes(db, table, *indexed)
    create_data_table(db, "technical_sheets", TECHNICAL_SHEETS)

    lead_with_tenant(
        db,
        "sync_state",
        ("key",),
        fill="CASE WHEN key = 'database_id' THEN '' ELSE 'default' END",
    )
    lead_with_tenant(
        db, "sync_events", ("event_id",), drop_indexes=("frozen_sync_events_created_at",)
    )
    create_index(db, "sync_events", ("created_at",))  # idempotency records expire by age
    lead_with_tenant(db, "sync_machines", ("machine_id",))

    add_column(db, "reconcile_log", "tenant_id", "VARCHAR(64) NOT NULL", "'default'")
    db.execute_sql('DROP INDEX IF EXISTS "frozen_reconcile_log_machine_id"')
    create_index(db, "reconcile_log", ("tenant_id", "id"))
    create_index(db, "reconcile_log", ("tenant_id", "machine_id"))
    add_column(db, "api_keys", "tenant_id", "VARCHAR(64) NOT NULL", "'default'")

    db.execute_sql(
        "CREATE TABLE bootstrap_state (tenant_id VARCHAR(64) NOT NULL, "
        "table_name VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL, "
        "machine_id VARCHAR(128), started_at BIGINT, completed_at BIGINT, "
        "records_count BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (tenant_id, table_name))"
    )
    for table in DATA_TABLES:
        recompute_digests(db, table)
