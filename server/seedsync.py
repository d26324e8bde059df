"""The seed's reads by its own clock (`lastSync`): what changed since a moment.

The seed's client remembers when it last synced on ITS clock and asks for what changed
since. Rows are chosen by their change time (`changed_at`: the server's clock when the
commit that last changed the row was made), never by `updatedAt` (an edit time, which an
offline PDV's late sale carries from hours ago). The window starts `LASTSYNC_OVERLAP_MS`
before `lastSync`, which covers a client clock off by up to an hour either way and a commit
that became visible up to an hour after it took its change time; the duplicates this
returns are harmless (the client replaces records by id).
"""

from __future__ import annotations

from typing import Any

from protocol import to_wire
from protocol.messages import LASTSYNC_OVERLAP_MS, table_named

from . import sql
from .context import ServiceContext
from .db import dicts


def fetch_since(
    ctx: ServiceContext, table_name: str, last_sync: int | None
) -> list[dict[str, Any]]:
    """Wire records of this shop's table, in sequence order (see the module): every live row
    without `last_sync`; with it, every row and tombstone changed at or after
    `last_sync - LASTSYNC_OVERLAP_MS` on the server's clock."""
    table = table_named(table_name)
    model = ctx.models.data[table.name]
    where = model.tenant_id == ctx.tenant
    if last_sync is None:
        where &= model.deleted == False  # noqa: E712 - peewee expression
    else:
        where &= model.changed_at >= last_sync - LASTSYNC_OVERLAP_MS
    with ctx.connection():
        rows = list(dicts(model.select().where(where).order_by(model.seq)))
    return [to_wire(table, sql.from_db(r)) for r in rows]
