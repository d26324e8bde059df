"""The seed's diagnostics of what the POS sees: per table, how many rows, the latest edit,
and how many rows leave each expected field (protocol.schema `Field.expected`) empty.

The same rule as the server's: missing means NULL, or an empty text (a JSON field holding
the empty string too); false, 0 and an empty list are values the front end chose.
"""

from __future__ import annotations

from typing import TypedDict

from protocol import TABLES, Kind, to_iso

from .context import StoreContext
from .models import column_name


class TableDiagnostics(TypedDict):
    total: int  # rows in the view
    latestUpdatedAt: str | None
    missingByField: dict[str, int]  # expected field -> rows where it is missing


# Besides NULL, what counts as missing per kind of column.
_EMPTY = {Kind.TEXT: " OR {col} = ''", Kind.JSON: " OR {col} IN ('', '\"\"')"}


def _query(name: str) -> str:
    """One aggregate query per table: the count, the newest edit, one sum per field."""
    table = TABLES[name]
    sums = []
    for field in table.expected:
        col = f'"{column_name(field)}"'
        empty = _EMPTY.get(table.field(field).kind, "").format(col=col)
        sums.append(f", SUM(CASE WHEN {col} IS NULL{empty} THEN 1 ELSE 0 END)")
    return f'SELECT COUNT(*), MAX(updated_at){"".join(sums)} FROM "{name}"'


_QUERIES = {name: _query(name) for name in TABLES}


def diagnostics(ctx: StoreContext) -> dict[str, TableDiagnostics]:
    """`{table: {total, latestUpdatedAt, missingByField}}` of the views, in one snapshot."""
    out: dict[str, TableDiagnostics] = {}
    with ctx.db.atomic("DEFERRED"):  # a read snapshot (WAL): blocks no POS write
        for name, table in TABLES.items():
            row = ctx.db.execute_sql(_QUERIES[name]).fetchone()
            out[name] = TableDiagnostics(
                total=int(row[0]),
                latestUpdatedAt=to_iso(None if row[1] is None else int(row[1])),
                missingByField={
                    field: int(n or 0) for field, n in zip(table.expected, row[2:], strict=True)
                },
            )
    return out
