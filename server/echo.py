"""The page a push answers with (`POST /api/sync/{table}` or `/api/sync/batch` with a
`cursor`), built from the push's own rows when they are all that changed after the pusher's
cursor.

A client at the head that pushes gets back, as the changes after its cursor, exactly the rows
its push committed. Reading them back from the database cost as much as writing them; the
push holds them already, merged and numbered. They are given in the form a read would give
them (each value through its column and back: NUMERIC(18,4) on PostgreSQL, canonical JSON),
so the answer is the same bytes either way (tests/server/test_push_echo.py compares them).
Anything else (a cursor behind the head before the push, a cursor that a read would refuse)
is read from the database as before.
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import partial
from typing import Any

from protocol import TABLES, Kind, Table, to_iso, to_wire
from protocol.extras import META_KEYS, canonical_json, from_canonical

from .context import ServiceContext
from .pull import ChangesPage, TablePage, page_size
from .push import PushOutcome


def own_page(
    ctx: ServiceContext, outcome: PushOutcome, table_name: str, since: int, limit: int
) -> TablePage | None:
    """The changes of `table_name` after `since`, from the push's rows, or None when they
    must be read (pull.pull)."""
    if not _at_head(outcome, since):
        return None
    rows, cursor, has_more = _first_page(outcome, [table_name], limit)
    table = TABLES[table_name]
    plan = _plan(ctx, table)
    return {
        "synced": [_wire(table, r, plan) for _, _, r in rows],
        "cursor": cursor,
        "hasMore": has_more,
    }


def own_changes(
    ctx: ServiceContext, outcome: PushOutcome, since: int, limit: int
) -> ChangesPage | None:
    """Every table's changes after `since` in sequence order (`POST /api/sync/batch` with a
    `cursor`, on HTTP or the live socket), from the push's rows, or None when they must be
    read (pull.changes)."""
    if not _at_head(outcome, since):
        return None
    rows, cursor, has_more = _first_page(outcome, list(outcome.changed), limit)
    plans = {name: _plan(ctx, TABLES[name]) for name in {name for _, name, _ in rows}}
    return {
        "changes": [
            {"table": name, "seq": seq, "record": _wire(TABLES[name], r, plans[name])}
            for seq, name, r in rows
        ],
        "cursor": cursor,
        "hasMore": has_more,
    }


def _first_page(
    outcome: PushOutcome, tables: list[str], limit: int
) -> tuple[list[tuple[int, str, dict[str, Any]]], int, bool]:
    """The push's rows of `tables` as a read pages them: (seq, table, row) in sequence
    order, at most `limit`; the page's cursor; whether more follow."""
    limit = page_size(limit)
    rows = sorted(
        (
            (int(r["seq"]), name, r)
            for name in tables
            for r in outcome.changed.get(name, {}).values()
        ),
        key=lambda numbered: numbered[0],  # one change per number
    )[: limit + 1]
    has_more = len(rows) > limit
    rows = rows[:limit]
    return rows, rows[-1][0] if has_more else outcome.head, has_more


def _at_head(outcome: PushOutcome, since: int) -> bool:
    """The pusher was at the head when its push began, and a read's cursor check would
    have passed: the push's rows are then all that changed after `since`."""
    gap_low, gap_high = outcome.restore_gap
    # cursor_recorded: `since` is 0 or within (horizon, head), the cursor check a read
    # makes first would pass, and it is already recorded as the machine's cursor.
    return (
        outcome.cursor_recorded and since == outcome.first_head and not (gap_low < since < gap_high)
    )


def _plan(ctx: ServiceContext, table: Table) -> list[tuple[str, Any]]:
    return _wire_plan(
        table, _transforms(table, _decimal_scales(ctx, table) if ctx.postgres else {})
    )


def _wire(table: Table, row: dict[str, Any], plan: list[tuple[str, Any]]) -> dict[str, Any]:
    """The wire record a read of `row` would give: each value as its column gives it back
    (`transforms`), through `to_wire`; in one pass over the fields (`plan`: `_wire_plan`)."""
    if row.get("_deleted"):
        return to_wire(table, row)  # a tombstone goes out as {id, _deleted, updatedAt}
    out: dict[str, Any] = {"id": row["id"]}
    for name, transform in plan:
        value = row.get(name)
        if value is not None and transform is not None:
            value = transform(value)
        out[name] = value
    extra = row.get("_extra")
    if extra:  # as to_wire adds them, from their stored form
        stored = from_canonical(canonical_json(extra))
        out.update((k, v) for k, v in stored.items() if k not in out and k not in META_KEYS)
    out["updatedAt"] = to_iso(row["updatedAt"])
    return out


def _wire_plan(table: Table, transforms: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """(field, what storing and `to_wire` do to its value, or None), in field order."""
    by_name = dict(transforms)
    return [
        (f.name, to_iso if f.kind is Kind.TIMESTAMP else by_name.get(f.name)) for f in table.fields
    ]


def _transforms(table: Table, scales: dict[str, int]) -> list[tuple[str, Any]]:
    """(field, value -> the value its column gives back) of the fields whose stored form
    may differ from the merged value: decimals (NUMERIC(18,4) on PostgreSQL, exact text on
    SQLite), JSON (canonical text), booleans."""
    out: list[tuple[str, Any]] = []
    for f in table.fields:
        if f.kind is Kind.DECIMAL:
            scale = scales.get(f.name)
            if scale is None:
                out.append((f.name, _exact))
            else:
                out.append((f.name, partial(_quantized, Decimal(1).scaleb(-scale))))
        elif f.kind is Kind.JSON:
            out.append((f.name, _canonical))
        elif f.kind is Kind.BOOLEAN:
            out.append((f.name, bool))
    return out


def _exact(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _quantized(exponent: Decimal, value: Any) -> Decimal:
    return _exact(value).quantize(exponent)


def _canonical(value: Any) -> Any:
    return from_canonical(canonical_json(value))


def _decimal_scales(ctx: ServiceContext, table: Table) -> dict[str, int]:
    """PostgreSQL: the scale of each DECIMAL field's NUMERIC column (what it gives back)."""
    key = f"numeric-scales:{table.name}"
    cached = ctx.sql_cache.get(key)
    if cached is None:
        model = ctx.models.data[table.name]
        columns = {
            model._meta.fields[f.name].column_name: f.name
            for f in table.fields
            if f.kind is Kind.DECIMAL
        }
        with ctx.connection():
            cursor = ctx.db.execute_sql(
                "SELECT column_name, numeric_scale FROM information_schema.columns "
                "WHERE table_name = %s AND table_schema = current_schema()",
                (table.name,),
            )
            found = {columns[c]: s for c, s in cursor.fetchall() if c in columns and s is not None}
        cached = ctx.sql_cache[key] = json.dumps(found)
    return dict(json.loads(cached))
