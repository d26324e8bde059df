"""The raw-SQL helpers of the sync service: fixed statement texts for what every push and
pull runs, and the conversion of rows between their stored and their in-memory form.

The small statements every request runs are fixed SQL texts: built through peewee they cost
more Python than the database needs to run them (see the benches in bench/).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar, cast

import peewee as pw

from protocol import TABLES, Table

from .context import ServiceContext
from .db import META_COLUMNS

# Keys per `IN (...)` list: well under SQLite's variable limit.
CHUNK = 500

T = TypeVar("T")

# peewee's context manager that raises driver errors as peewee's (pw.IntegrityError...), as
# its own queries do; its stubs declare the ExceptionWrapper class but not this instance.
driver_errors = _driver_errors = cast(pw.ExceptionWrapper, vars(pw)["__exception_wrapper__"])


def quote(name: str) -> str:
    """An SQL identifier, double-quoted (SQLite and PostgreSQL alike)."""
    return '"' + name.replace('"', '""') + '"'


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# -- rows: stored form <-> in-memory form ---------------------------------------------------


def from_db(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row (field names of the model) -> the row the merge rule and `to_wire` take."""
    out = dict(row)
    out["updatedAt"] = out.pop("updated_at")
    out["_deleted"] = bool(out.pop("deleted"))
    out["_extra"] = out.pop("extra", None) or {}
    return out


def to_db(ctx: ServiceContext, table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """A merged row of this context's shop -> the values of its model's fields."""
    out = {
        "tenant_id": ctx.tenant,
        "id": row["id"],
        "updated_at": row["updatedAt"],
        "lww_at": row["lww_at"],
        "deleted": bool(row.get("_deleted")),
        "seq": row["seq"],
        "digest": row["digest"],
        "bucket": row["bucket"],
        "changed_at": row["changed_at"],
        "extra": row.get("_extra") or None,
    }
    for name in table.field_names:
        out[name] = row.get(name)
    return out


# -- sync_state and sync_machines -------------------------------------------------------------


def states(ctx: ServiceContext, *keys: str) -> list[int]:
    """Values of this shop's sync_state keys (0 when absent), in one query."""
    p = ctx.db.param
    cursor = ctx.db.execute_sql(
        f"SELECT key, value FROM sync_state WHERE tenant_id = {p} "
        f"AND key IN ({', '.join([p] * len(keys))})",
        (ctx.tenant, *keys),
    )
    found = dict(cursor.fetchall())
    return [int(found.get(k) or 0) for k in keys]


def head(ctx: ServiceContext) -> int:
    """This shop's sequence head: the number of its last committed change."""
    return states(ctx, "seq")[0]


def bump_state(ctx: ServiceContext, head: int, *, applied: int, stale: int, rejected: int) -> None:
    """This shop's new sequence head and counters, in one statement."""
    ctx.db.execute_sql(
        *bump_state_statement(ctx, head, applied=applied, stale=stale, rejected=rejected)
    )


def bump_state_statement(
    ctx: ServiceContext, head: int, *, applied: int, stale: int, rejected: int
) -> tuple[str, list[Any]]:
    """`bump_state`'s statement and parameters (server/pushdb.py sends it with others)."""
    rows: list[Any] = [ctx.tenant, "seq", head]
    for key, n in (
        ("events_applied", applied),
        ("conflicts_stale", stale),
        ("events_rejected", rejected),
    ):
        if n:
            rows += [ctx.tenant, key, n]
    p = ctx.db.param
    values = ", ".join([f"({p}, {p}, {p})"] * (len(rows) // 3))
    return (
        f"INSERT INTO sync_state (tenant_id, key, value) VALUES {values} "
        "ON CONFLICT (tenant_id, key) DO UPDATE SET value = CASE WHEN excluded.key = 'seq' "
        "THEN excluded.value ELSE sync_state.value + excluded.value END",
        rows,
    )


def set_state(ctx: ServiceContext, key: str, value: int) -> None:
    """Set one of this shop's sync_state values."""
    p = ctx.db.param
    ctx.db.execute_sql(
        f"INSERT INTO sync_state (tenant_id, key, value) VALUES ({p}, {p}, {p}) "
        "ON CONFLICT (tenant_id, key) DO UPDATE SET value = excluded.value",
        (ctx.tenant, key, value),
    )


def touch_machine(
    ctx: ServiceContext, machine_id: str, now: int, *, pushed: int = 0, cursor: int | None = None
) -> None:
    """Record that a machine of this shop was seen (and its cursor, when given)."""
    ctx.db.execute_sql(*touch_machine_statement(ctx, machine_id, now, pushed=pushed, cursor=cursor))


def touch_machine_statement(
    ctx: ServiceContext, machine_id: str, now: int, *, pushed: int = 0, cursor: int | None = None
) -> tuple[str, tuple[Any, ...]]:
    """`touch_machine`'s statement and parameters (server/pushdb.py sends it with others)."""
    # A machine first seen pushing or reconciling has pulled nothing yet: cursor -1
    # holds back garbage collection like 0, and never passes for a pull that began at 0.
    p = ctx.db.param
    return (
        "INSERT INTO sync_machines "
        "(tenant_id, machine_id, first_seen, last_seen, cursor, events_pushed) "
        f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}) ON CONFLICT (tenant_id, machine_id) DO UPDATE "
        "SET last_seen = excluded.last_seen, "
        "events_pushed = sync_machines.events_pushed + excluded.events_pushed, "
        f"cursor = COALESCE({p}, sync_machines.cursor)",
        (ctx.tenant, machine_id, now, now, -1 if cursor is None else cursor, pushed, cursor),
    )


# -- reads and writes of many rows ------------------------------------------------------------


def select_by_keys(
    ctx: ServiceContext,
    model: type[pw.Model],
    fields: list[pw.Field],
    key: pw.Field,
    keys: Sequence[str],
) -> list[tuple[Any, ...]]:
    """This shop's rows whose `key` is one of `keys`, as tuples of `fields`.

    On PostgreSQL the statement is sent unprepared, so it is planned for the table as it
    is now. Through peewee, psycopg prepares it after 5 runs and PostgreSQL then keeps a
    generic plan costed on the table of that moment: on a young database, a sequential
    scan that every push repeats over a table that keeps growing. One array parameter
    keeps the text short, so psycopg caches its parsing.
    """
    cols = ", ".join(quote(f.column_name) for f in fields)
    head = (
        f"SELECT {cols} FROM {quote(model._meta.table_name)} "
        f"WHERE tenant_id = {ctx.db.param} AND {quote(key.column_name)}"
    )
    with _driver_errors:  # driver errors as peewee's, like every other query
        cursor = ctx.db.cursor()
        if ctx.postgres:
            cursor.execute(f"{head} = ANY(%s)", [ctx.tenant, list(keys)], prepare=False)
        else:
            cursor.execute(f"{head} IN ({', '.join('?' * len(keys))})", [ctx.tenant, *keys])
        return list(cursor.fetchall())


def load_rows(
    ctx: ServiceContext, wanted: dict[str, set[str]]
) -> dict[tuple[str, str], dict[str, Any]]:
    """This shop's stored rows of `{table: ids}`, by (table, id), in their in-memory form."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for table_name, ids in wanted.items():
        model = ctx.models.data[table_name]
        fields = list(model._meta.sorted_fields)
        for chunk in chunks(sorted(ids)):
            for values in select_by_keys(ctx, model, fields, model._meta.fields["id"], chunk):
                row = {f.name: f.python_value(v) for f, v in zip(fields, values, strict=True)}
                rows[(table_name, row["id"])] = from_db(row)
    return rows


def write_rows(ctx: ServiceContext, table_name: str, rows: Iterable[dict[str, Any]]) -> None:
    """Upsert whole rows of this shop: one statement text per table, `executemany`.

    peewee's `insert_many` renders every value of every row through its query builder,
    and psycopg then re-parses the long statement it makes (too long for its cache): that
    was most of a push's CPU time. psycopg 3 runs `executemany` as a pipeline (one round
    trip); sqlite3 runs it in C.
    """
    table = TABLES[table_name]
    sql, fields = _upsert_statement(ctx, table_name)
    params = []
    for r in rows:
        row = to_db(ctx, table, r)
        params.append([f.db_value(row[f.name]) for f in fields])
    _executemany(ctx, sql, params)


def insert_rows(ctx: ServiceContext, model: type[pw.Model], rows: list[dict[str, Any]]) -> None:
    """Insert rows of `model` (all its fields): one cached statement text, `executemany`."""
    if not rows:
        return
    fields = list(model._meta.sorted_fields)
    name = model._meta.table_name
    sql = ctx.sql_cache.get(name)
    if sql is None:
        sql = ctx.sql_cache[name] = (
            f"INSERT INTO {quote(name)} ({', '.join(quote(f.column_name) for f in fields)}) "
            f"VALUES ({', '.join([ctx.db.param] * len(fields))})"
        )
    _executemany(ctx, sql, [[f.db_value(r[f.name]) for f in fields] for r in rows])


def _executemany(ctx: ServiceContext, sql: str, params: list[list[Any]]) -> None:
    with _driver_errors:  # a duplicate eventId still raises pw.IntegrityError
        ctx.db.cursor().executemany(sql, params)


def _upsert_statement(ctx: ServiceContext, table_name: str) -> tuple[str, list[pw.Field]]:
    model = ctx.models.data[table_name]
    fields = [
        model._meta.fields["tenant_id"],
        model._meta.fields["id"],
        *(model._meta.fields[c] for c in META_COLUMNS),
        *(model._meta.fields[f] for f in TABLES[table_name].field_names),
    ]
    key = f"upsert:{table_name}"
    sql = ctx.sql_cache.get(key)
    if sql is None:
        cols = ", ".join(quote(f.column_name) for f in fields)
        sets = ", ".join(
            f"{quote(f.column_name)} = excluded.{quote(f.column_name)}" for f in fields[2:]
        )
        sql = ctx.sql_cache[key] = (
            f"INSERT INTO {quote(model._meta.table_name)} ({cols}) "
            f"VALUES ({', '.join([ctx.db.param] * len(fields))}) "
            f"ON CONFLICT (tenant_id, id) DO UPDATE SET {sets}"
        )
    return sql, fields
