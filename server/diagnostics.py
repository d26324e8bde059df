"""The seed's diagnostics: per table, how many live rows, the latest edit, and how many rows
leave each expected field (protocol.schema `Field.expected`) empty.

Missing means NULL, or an empty text. A JSON value is present whatever it holds: an empty
list of components (`[]`) is a recipe with no components, not a missing field.
"""

from __future__ import annotations

from typing import TypedDict

from .context import ServiceContext


class TableDiagnostics(TypedDict):
    total: int  # live rows
    latestUpdatedAt: str | None
    missingByField: dict[str, int]  # expected field -> live rows where it is missing


def diagnostics(ctx: ServiceContext) -> dict[str, TableDiagnostics]:
    raise NotImplementedError("diagnostics: lands with the new schema")
