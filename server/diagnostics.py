"""The seed's diagnostics: per table, how many live rows, the latest edit, and how many rows
leave each expected field (protocol.schema `Field.expected`) empty.

Missing means NULL, or an empty text (a JSON field holding the empty string too). Any other
JSON value is present: an empty list of components (`[]`) is a recipe with no components, a
fact the front end chose, not a field it forgot. Booleans and numbers are missing only when
NULL (false and 0 are values).
"""

from __future__ import annotations

from typing import TypedDict

from protocol import TABLES, Kind, to_iso

from .context import ServiceContext
from .db import column_name
from .sql import quote


class TableDiagnostics(TypedDict):
    total: int  # live rows
    latestUpdatedAt: str | None
    missingByField: dict[str, int]  # expected field -> live rows where it is missing


def diagnostics(ctx: ServiceContext) -> dict[str, TableDiagnostics]:
    """`{table: {total, latestUpdatedAt, missingByField}}` of this shop's live rows, one
    query per table."""
    out: dict[str, TableDiagnostics] = {}
    p = ctx.db.param
    with ctx.connection():
        for name, table in TABLES.items():
            missing = []
            for field in table.expected:
                col = quote(column_name(field))
                kind = table.field(field).kind
                empty = {Kind.TEXT: f" OR {col} = ''", Kind.JSON: f" OR {col} IN ('', '\"\"')"}
                missing.append(
                    f"SUM(CASE WHEN {col} IS NULL{empty.get(kind, '')} THEN 1 ELSE 0 END)"
                )
            row = ctx.db.execute_sql(
                f"SELECT COUNT(*), MAX(updated_at){''.join(', ' + m for m in missing)} "
                f"FROM {quote(name)} WHERE tenant_id = {p} AND deleted = {p}",
                (ctx.tenant, False),
            ).fetchone()
            out[name] = {
                "total": int(row[0]),
                "latestUpdatedAt": to_iso(None if row[1] is None else int(row[1])),
                "missingByField": {
                    field: int(n or 0) for field, n in zip(table.expected, row[2:], strict=True)
                },
            }
    return out
